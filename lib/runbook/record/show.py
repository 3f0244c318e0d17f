"""What the notebooks show as tables: step results as `Table`s, long ones cut to their first
rows with the count of all."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from runbook.record.table import Table

LONG_TABLE = 20  # rows shown of a long table; the rest is counted, not dumped


def summarize(table: Table, limit: int = LONG_TABLE) -> Table:
    """The first rows of a long table; the caption says how many there are in all."""
    if len(table) > limit:
        print(f"{len(table)} rows in all; the first {limit} are shown.")
    return table.head(limit)


def facts(items: dict[str, Any]) -> Table:
    """Key facts of a step as a two-column table."""
    return Table([(k, str(v)) for k, v in items.items()], ["fact", "value"])


def backup_tables(backup: dict[str, Any]) -> Table:
    """Rows and bytes per table of the backup, the largest first."""
    rows = [(t, n, backup["table_bytes"].get(t, 0)) for t, n in backup["row_counts"].items()]
    return Table(sorted(rows, key=lambda row: -row[2]), ["table", "rows", "bytes"])


COLUMN_MAP = ["table", "column", "source_type", "target_type", "nullable", "conversion"]


def column_map(schema: dict[str, Any]) -> Table:
    """Source column → target column type → conversion rule."""
    return Table(schema["columns"], COLUMN_MAP)


def conversion_rules(schema: dict[str, Any]) -> Table:
    """Each conversion used, with its rule and how many columns use it."""
    used = Counter((c["conversion"], c["rule"]) for c in schema["columns"])
    return Table([(*key, n) for key, n in sorted(used.items())], ["conversion", "rule", "columns"])


def preflight_summary(schema: dict[str, Any]) -> Table:
    """Misfits per table, column and kind (empty when every value fits)."""
    return Table(schema["preflight"]["summary"], ["table", "column", "kind", "count"])


def columns_per_table(schema: dict[str, Any]) -> Table:
    """Per table: how many columns are mapped and with which conversions."""
    tables: dict[str, list[str]] = {}
    for column in schema["columns"]:
        tables.setdefault(column["table"], []).append(column["conversion"])
    rows = [(t, len(c), ", ".join(sorted(set(c)))) for t, c in tables.items()]
    return Table(rows, ["table", "columns", "conversions"])


def preflight_findings(schema: dict[str, Any]) -> Table:
    """The individual misfits: table, primary key, column, kind, value."""
    findings = schema["preflight"]["findings"]
    return summarize(Table(findings, ["table", "pk", "column", "kind", "value"]))


def transfer_tables(transfer: dict[str, Any]) -> Table:
    """Rows copied, rows rejected into the ledger, and bytes per table, in load order."""
    rows = [(t["table"], t["rows"], t.get("rejected") or 0, t["bytes"]) for t in transfer["tables"]]
    rejected = sum(row[2] for row in rows)
    if rejected:
        print(f"{rejected} rows went to the reject ledger (rejects.jsonl), not to the target.")
    return Table(rows, ["table", "rows", "rejected", "bytes"])


def transfer_timings(transfer: dict[str, Any]) -> Table:
    """Seconds and rows/s per table."""
    return Table(transfer["tables"], ["table", "rows", "seconds", "rows_per_second"])


def sequences(transfer_or_verify: dict[str, Any]) -> Table:
    """Sequences and the values they were set to or will hand out next."""
    found = transfer_or_verify["sequences"]
    return Table(found, list(dict.fromkeys(k for s in found for k in s)))


VERIFY_COLUMNS = ("table", "source_rows", "loaded", "rejected")
VERIFY_COLUMNS += ("source_checksum", "target_checksum", "match")


def verify_tables(result: dict[str, Any]) -> Table:
    """Per table: the source's rows, how many were loaded and how many went to the reject
    ledger, the checksum on both sides, and whether the loaded rows match the source's."""
    rows = []
    for t in result["tables"]:
        compared = t.get("compared_rows", t["source_rows"])  # older results: no rejects
        match = compared == t["target_rows"] and t["source_checksum"] == t["target_checksum"]
        rows.append(
            (t["table"], t["source_rows"], t["target_rows"], t.get("rejected_rows") or 0)
            + (t["source_checksum"], t["target_checksum"], match)
        )
    rejected = sum(row[3] for row in rows)
    if rejected:
        print(f"{rejected} source rows are in the reject ledger (rejects.jsonl), not the target.")
    return Table(rows, VERIFY_COLUMNS)


def differences(result: dict[str, Any]) -> Table:
    """Rows that differ, side by side (empty when none)."""
    rows = [diff for table in result["tables"] for diff in table["differences"]]
    return summarize(Table(rows, ["table", "pk", "problem", "column", "source", "target"]))


def checks(result: dict[str, Any]) -> Table:
    """Foreign keys, sequences and application queries as one table of checks."""
    rows = [(f"foreign key {fk['name']}", fk["validated"]) for fk in result["foreign_keys"]]
    rows += [
        (f"sequence {s['table']}.{s['column']} next {s['next_value']} > max {s['max']}", s["ok"])
        for s in result["sequences"]
    ]
    rows += [
        (f"application query: {q['query']} ({q['rows']} rows)", q["equal"])
        for q in result["application_queries"]
    ]
    rows += [
        (f"view {v['view']}: {v['target_rows']} rows" + (f" ({v['note']})" if v["note"] else ""),)
        + (v["ok"],)
        for v in result.get("views", [])
    ]
    return Table(rows, ["check", "ok"])


CHECK_KIND = re.compile(r"^(foreign key|sequence|application query|view)")


def checks_summary(result: dict[str, Any]) -> Table:
    """The checks of `checks()` counted by kind, with the failing ones named."""
    kinds: dict[str, list[tuple[str, Any]]] = {}
    for check, ok in checks(result).rows:
        kinds.setdefault(CHECK_KIND.match(check)[1], []).append((check, ok))
    rows = []
    for kind, group in kinds.items():
        failing = [check for check, ok in group if not ok]
        shown = "; ".join(failing[:5]) + (" …" if len(failing) > 5 else "")
        rows.append((kind, len(group), len(group) - len(failing), shown))
    return Table(rows, ["kind", "checked", "passed", "failing"])


def reflect_notes(schema: dict[str, Any]) -> Table:
    """Reflect mode: column types chosen by the data (or a foreign-key group), and names that
    differ in PostgreSQL."""
    reflected = schema.get("reflected")
    columns = ["table", "object", "note"]
    if not reflected:
        print("Schema from the application's Alembic migrations: nothing reflected.")
        return Table([], columns)
    rows = [
        (t["name"], c["name"], f"{c['pg_type']}: {c['why']}")
        for t in reflected["tables"]
        for c in t["columns"]
        if "holds" in c["why"] or c["target"] != c["name"]
    ]
    rows += [
        (t["name"], "(table)", f"named {t['target']} in PostgreSQL")
        for t in reflected["tables"]
        if t["target"] != t["name"].lower()
    ]
    return summarize(Table(rows, columns))


OUTCOMES = ("listed", "translated")  # listed first: what is not in PostgreSQL needs a look


def schema_objects(schema: dict[str, Any]) -> Table:
    """Reflect mode: every schema object of the SQLite file (tables, indexes, foreign keys,
    CHECKs, collations, defaults, views, triggers, virtual and shadow tables, sequences), each
    translated into PostgreSQL or listed, and why; `schema.json` has the DDL and suggestions."""
    reflected = schema.get("reflected")
    columns = ["kind", "table", "name", "outcome", "why"]
    if not reflected:
        print("Schema from the application's Alembic migrations: no reflected objects.")
        return Table([], columns)
    objects = reflected["objects"]
    counts = Counter(o["outcome"] for o in objects)
    print(
        f"schema objects: {counts['translated']} translated, "
        f"{counts['listed']} listed (not in PostgreSQL; why says what to do)"
    )
    ordered = sorted(objects, key=lambda o: (OUTCOMES.index(o["outcome"]), o["kind"]))
    return summarize(Table(ordered, columns), limit=40)


def load_attempts(result: dict[str, Any]) -> Table:
    """Which transfer attempt loaded how many key ranges and rows of each table (a run that
    was interrupted and run again shows more than one attempt)."""
    attempts: dict[tuple[str, Any], list[int]] = {}
    for loaded in result.get("ranges", []):
        counted = attempts.setdefault((loaded["table"], loaded["attempt"]), [0, 0])
        counted[0] += 1
        counted[1] += loaded["rows"]
    rows = [(*key, *counted) for key, counted in sorted(attempts.items())]
    return Table(rows, ["table", "attempt", "ranges", "rows"])


def sync_changes(record: dict[str, Any]) -> Table:
    """A sync's changes per table: rows inserted, updated, deleted, and held back."""
    rows = [
        (name, *(entry[k] for k in ("inserted", "updated", "deleted", "rejected")))
        for name, entry in record["changes"]["tables"].items()
    ]
    return Table(rows, ["table", "inserted", "updated", "deleted", "held back"])


def syncs(history: list[dict[str, Any]]) -> Table:
    """Every catch-up applied since the bulk run: when, how many changes, how long (and the
    forecast each sync made of the cutover, beside what the cutover took)."""
    rows = [
        (h["number"], h["kind"], h.get("snapshot_taken_at"), h["changes"]["total"])
        + (round(sum(h.get("seconds", {}).values()), 2), h.get("pages", {}).get("changed"))
        for h in history
    ]
    return Table(rows, ["sync", "kind", "snapshot taken", "changes", "seconds", "pages changed"])


def table_sizes(report: dict[str, Any]) -> Table:
    """The post-migration report's sizes: PostgreSQL's tables and indexes beside SQLite's."""
    sizes = report["sizes"]
    return Table(sizes, list(dict.fromkeys(k for row in sizes for k in row)))


def connections(report: dict[str, Any]) -> Table:
    """The connections open on the migrated database, by application and state."""
    return Table(report["connections"], ["application", "state", "count"])
