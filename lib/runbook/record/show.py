"""What the notebooks show as tables: step results as DataFrames, long ones cut to their first
rows with the count of all."""

from __future__ import annotations

from typing import Any

from runbook.record.lazy import pd

LONG_TABLE = 20  # rows shown of a long table; the rest is counted, not dumped


def summarize(frame: pd.DataFrame, limit: int = LONG_TABLE) -> pd.DataFrame:
    """The first rows of a long table; the caption says how many there are in all."""
    shown = frame.head(limit)
    if len(frame) > limit:
        print(f"{len(frame)} rows in all; the first {limit} are shown.")
    return shown


def facts(items: dict[str, Any]) -> pd.DataFrame:
    """Key facts of a step as a two-column table."""
    return pd.DataFrame({"fact": list(items), "value": [str(v) for v in items.values()]})


def backup_tables(backup: dict[str, Any]) -> pd.DataFrame:
    """Rows and bytes per table of the backup."""
    frame = pd.DataFrame(
        {
            "table": list(backup["row_counts"]),
            "rows": list(backup["row_counts"].values()),
            "bytes": [backup["table_bytes"].get(t, 0) for t in backup["row_counts"]],
        }
    )
    return frame.sort_values("bytes", ascending=False, ignore_index=True)


def column_map(schema: dict[str, Any]) -> pd.DataFrame:
    """Source column → target column type → conversion rule."""
    frame = pd.DataFrame(schema["columns"])
    return frame[["table", "column", "source_type", "target_type", "nullable", "conversion"]]


def conversion_rules(schema: dict[str, Any]) -> pd.DataFrame:
    """Each conversion used, with its rule and how many columns use it."""
    frame = pd.DataFrame(schema["columns"])
    return (
        frame.groupby(["conversion", "rule"], sort=True)
        .size()
        .reset_index(name="columns")
        .sort_values("conversion", ignore_index=True)
    )


def preflight_summary(schema: dict[str, Any]) -> pd.DataFrame:
    """Misfits per table, column and kind (empty when every value fits)."""
    summary = schema["preflight"]["summary"]
    return pd.DataFrame(summary, columns=["table", "column", "kind", "count"])


def columns_per_table(schema: dict[str, Any]) -> pd.DataFrame:
    """Per table: how many columns are mapped and with which conversions."""
    frame = pd.DataFrame(schema["columns"])
    grouped = frame.groupby("table", sort=False)
    return pd.DataFrame(
        {
            "columns": grouped.size(),
            "conversions": grouped["conversion"].agg(lambda c: ", ".join(sorted(set(c)))),
        }
    ).reset_index()


def preflight_findings(schema: dict[str, Any]) -> pd.DataFrame:
    """The individual misfits: table, primary key, column, kind, value."""
    findings = schema["preflight"]["findings"]
    return summarize(pd.DataFrame(findings, columns=["table", "pk", "column", "kind", "value"]))


def transfer_tables(transfer: dict[str, Any]) -> pd.DataFrame:
    """Rows copied, rows rejected into the ledger, and bytes per table, in load order."""
    frame = pd.DataFrame(transfer["tables"])
    frame["rejected"] = frame.get("rejected", pd.Series(0, index=frame.index)).fillna(0)
    rejected = int(frame["rejected"].sum())
    if rejected:
        print(f"{rejected} rows went to the reject ledger (rejects.jsonl), not to the target.")
    return frame[["table", "rows", "rejected", "bytes"]]


def transfer_timings(transfer: dict[str, Any]) -> pd.DataFrame:
    """Seconds and rows/s per table."""
    return pd.DataFrame(transfer["tables"])[["table", "rows", "seconds", "rows_per_second"]]


def sequences(transfer_or_verify: dict[str, Any]) -> pd.DataFrame:
    """Sequences and the values they were set to or will hand out next."""
    return pd.DataFrame(transfer_or_verify["sequences"])


VERIFY_COLUMNS = ("table", "source_rows", "loaded", "rejected")
VERIFY_COLUMNS += ("source_checksum", "target_checksum", "match")


def verify_tables(result: dict[str, Any]) -> pd.DataFrame:
    """Per table: the source's rows, how many were loaded and how many went to the reject
    ledger, the checksum on both sides, and whether the loaded rows match the source's."""
    frame = pd.DataFrame(result["tables"])
    if "compared_rows" not in frame:  # a result written before rejects were counted here
        frame["compared_rows"] = frame["source_rows"]
    frame["rejected"] = frame.get("rejected_rows", pd.Series(0, index=frame.index)).fillna(0)
    frame["loaded"] = frame["target_rows"]
    frame["match"] = (frame["compared_rows"] == frame["target_rows"]) & (
        frame["source_checksum"] == frame["target_checksum"]
    )
    rejected = int(frame["rejected"].sum())
    if rejected:
        print(f"{rejected} source rows are in the reject ledger (rejects.jsonl), not the target.")
    return frame[list(VERIFY_COLUMNS)]


def differences(result: dict[str, Any]) -> pd.DataFrame:
    """Rows that differ, side by side (empty when none)."""
    rows = [diff for table in result["tables"] for diff in table["differences"]]
    columns = ["table", "pk", "problem", "column", "source", "target"]
    return summarize(pd.DataFrame(rows, columns=columns))


def checks(result: dict[str, Any]) -> pd.DataFrame:
    """Foreign keys, sequences and application queries as one table of checks."""
    rows = [
        {"check": f"foreign key {fk['name']}", "ok": fk["validated"]}
        for fk in result["foreign_keys"]
    ]
    rows += [
        {
            "check": f"sequence {s['table']}.{s['column']} next {s['next_value']} > max {s['max']}",
            "ok": s["ok"],
        }
        for s in result["sequences"]
    ]
    rows += [
        {"check": f"application query: {q['query']} ({q['rows']} rows)", "ok": q["equal"]}
        for q in result["application_queries"]
    ]
    rows += [
        {
            "check": f"view {v['view']}: {v['target_rows']} rows"
            + (f" ({v['note']})" if v["note"] else ""),
            "ok": v["ok"],
        }
        for v in result.get("views", [])
    ]
    return pd.DataFrame(rows, columns=["check", "ok"])


def checks_summary(result: dict[str, Any]) -> pd.DataFrame:
    """The checks of `checks()` counted by kind, with the failing ones named."""
    frame = checks(result)
    frame["kind"] = frame["check"].str.extract(r"^(foreign key|sequence|application query|view)")[0]
    rows = []
    for kind, group in frame.groupby("kind", sort=False):
        failing = group.loc[~group["ok"].astype(bool), "check"].tolist()
        rows.append(
            {
                "kind": kind,
                "checked": len(group),
                "passed": len(group) - len(failing),
                "failing": "; ".join(failing[:5]) + (" …" if len(failing) > 5 else ""),
            }
        )
    return pd.DataFrame(rows, columns=["kind", "checked", "passed", "failing"])


def reflect_notes(schema: dict[str, Any]) -> pd.DataFrame:
    """Reflect mode: column types chosen by the data (or a foreign-key group), and names that
    differ in PostgreSQL."""
    reflected = schema.get("reflected")
    columns = ["table", "object", "note"]
    if not reflected:
        print("Schema from the application's Alembic migrations: nothing reflected.")
        return pd.DataFrame([], columns=columns)
    rows = [
        {"table": t["name"], "object": c["name"], "note": f"{c['pg_type']}: {c['why']}"}
        for t in reflected["tables"]
        for c in t["columns"]
        if "holds" in c["why"] or c["target"] != c["name"]
    ]
    rows += [
        {"table": t["name"], "object": "(table)", "note": f"named {t['target']} in PostgreSQL"}
        for t in reflected["tables"]
        if t["target"] != t["name"].lower()
    ]
    return summarize(pd.DataFrame(rows, columns=columns))


OUTCOMES = ("listed", "translated")  # listed first: what is not in PostgreSQL needs a look


def schema_objects(schema: dict[str, Any]) -> pd.DataFrame:
    """Reflect mode: every schema object of the SQLite file (tables, indexes, foreign keys,
    CHECKs, collations, defaults, views, triggers, virtual and shadow tables, sequences), each
    translated into PostgreSQL or listed, and why; `schema.json` has the DDL and suggestions."""
    reflected = schema.get("reflected")
    columns = ["kind", "table", "name", "outcome", "why"]
    if not reflected:
        print("Schema from the application's Alembic migrations: no reflected objects.")
        return pd.DataFrame([], columns=columns)
    frame = pd.DataFrame(reflected["objects"], columns=columns)
    counts = frame["outcome"].value_counts()
    print(
        f"schema objects: {counts.get('translated', 0)} translated, "
        f"{counts.get('listed', 0)} listed (not in PostgreSQL; why says what to do)"
    )
    frame["order"] = frame["outcome"].map(OUTCOMES.index)
    frame = frame.sort_values(["order", "kind"], kind="stable", ignore_index=True)
    return summarize(frame[columns], limit=40)


def load_attempts(result: dict[str, Any]) -> pd.DataFrame:
    """Which transfer attempt loaded how many key ranges and rows of each table (a run that
    was interrupted and run again shows more than one attempt)."""
    frame = pd.DataFrame(result.get("ranges", []), columns=["table", "attempt", "rows", "status"])
    if frame.empty:
        return pd.DataFrame([], columns=["table", "attempt", "ranges", "rows"])
    grouped = frame.groupby(["table", "attempt"], sort=True).agg(
        ranges=("rows", "size"), rows=("rows", "sum")
    )
    return grouped.reset_index()


def sync_changes(record: dict[str, Any]) -> pd.DataFrame:
    """A sync's changes per table: rows inserted, updated, deleted, and held back."""
    rows = [
        {"table": name, **{k: entry[k] for k in ("inserted", "updated", "deleted", "rejected")}}
        for name, entry in record["changes"]["tables"].items()
    ]
    frame = pd.DataFrame(rows, columns=["table", "inserted", "updated", "deleted", "rejected"])
    return frame.rename(columns={"rejected": "held back"})


def syncs(history: list[dict[str, Any]]) -> pd.DataFrame:
    """Every catch-up applied since the bulk run: when, how many changes, how long (and the
    forecast each sync made of the cutover, beside what the cutover took)."""
    rows = [
        {
            "sync": h["number"],
            "kind": h["kind"],
            "snapshot taken": h.get("snapshot_taken_at"),
            "changes": h["changes"]["total"],
            "seconds": round(sum(h.get("seconds", {}).values()), 2),
            "pages changed": h.get("pages", {}).get("changed"),
        }
        for h in history
    ]
    return pd.DataFrame(
        rows, columns=["sync", "kind", "snapshot taken", "changes", "seconds", "pages changed"]
    )


def table_sizes(report: dict[str, Any]) -> pd.DataFrame:
    """The post-migration report's sizes: PostgreSQL's tables and indexes beside SQLite's."""
    return pd.DataFrame(report["sizes"])


def connections(report: dict[str, Any]) -> pd.DataFrame:
    """The connections open on the migrated database, by application and state."""
    return pd.DataFrame(report["connections"], columns=["application", "state", "count"])
