"""Step 04: source and target hold the same data, proven by content checksums on both engines
(`engine.checksums`), not just counts; foreign keys, sequences and a few of the application's
own queries are checked beside them, and every source row is accounted for (in the target, or
in the reject ledger). One verdict, PASS or FAIL; the notebook raises on FAIL."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from runbook.columns import sqltext
from runbook.columns.plan import rejected_rows, row_filter
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError, first_line
from runbook.core.run import RunFolder
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect, translated
from runbook.engine import constraints, ledger, rejects
from runbook.engine.checksums import checksums

APPLICATION_QUERIES = {
    # {table} is the table on PostgreSQL, and on SQLite the table without its rejected rows
    "orders per client": (
        "SELECT c.code, count(o.id), sum(o.pallet_count) FROM {clients} c "
        "LEFT JOIN {orders} o ON o.client_id = c.id GROUP BY c.code ORDER BY c.code"
    ),
    "dispatches per day": (
        "SELECT dispatch_date, count(*), count(driver_id) FROM {dispatches} d "
        "GROUP BY dispatch_date ORDER BY dispatch_date"
    ),
    "stops per dispatch status": (
        "SELECT d.status, count(r.id), sum(CASE WHEN r.is_completed THEN 1 ELSE 0 END) "
        "FROM {dispatches} d JOIN {dispatch_routes} r ON r.dispatch_id = d.id "
        "GROUP BY d.status ORDER BY d.status"
    ),
    "alerts per severity": (
        "SELECT severity, count(*), count(acknowledged_at) FROM {temperature_alerts} a "
        "GROUP BY severity ORDER BY severity"
    ),
}
_QUERY_TABLES = ("clients", "orders", "dispatches", "dispatch_routes", "temperature_alerts")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def application_queries(run: RunFolder, target: Target) -> list[dict[str, Any]]:
    """A few of the application's own queries, run on both engines, results compared."""
    conn = sqlite_source.open_readonly(run.backup_path)
    results = []
    try:
        with connect(target) as pg:
            rejected = rejected_rows(run.read("schema")["preflight"])
            loaded = {
                t: f"(SELECT * FROM {t} WHERE {row_filter(t, rejected)})" if rejected.get(t) else t
                for t in _QUERY_TABLES
            }
            # corrected rows: not compared with the source
            fixed = rejects.reinserted_keys(run, dict.fromkeys(_QUERY_TABLES, "id"))
            pg_tables = {
                t: f"(SELECT * FROM {t} WHERE id NOT IN ({', '.join(map(str, fixed[t]))}))"
                if fixed.get(t)
                else t
                for t in _QUERY_TABLES
            }
            for name, template in APPLICATION_QUERIES.items():
                sql = template.format(**pg_tables)
                left = [[_plain(v) for v in row] for row in conn.execute(template.format(**loaded))]
                right = [[_plain(v) for v in row] for row in pg.execute(sql)]
                results.append(
                    {"query": name, "rows": len(left), "equal": left == right, "sql": sql}
                )
    finally:
        conn.close()
    return results


def _table_failures(table: dict[str, Any]) -> list[str]:
    """What is wrong with one table's comparison (nothing, when it matches)."""
    failures = []
    if table.get("reinserted_rows") != table.get("reinserted_in_target", 0):
        failures.append(
            f"{table['table']}: {table['reinserted_rows']} corrected rows were re-inserted, "
            f"{table['reinserted_in_target']} are in the target"
        )
    compared = table.get("compared_rows", table["source_rows"])
    if compared != table["target_rows"]:
        rejected = table.get("rejected_rows", 0)
        failures.append(
            f"{table['table']}: {table['source_rows']} source rows, {rejected} rejected, "
            f"{table['target_rows']} in the target (expected {compared})"
        )
    if table["source_checksum"] != table["target_checksum"]:
        failures.append(f"{table['table']}: content checksum differs")
    for diff in table["differences"]:
        detail = f" column {diff['column']}" if "column" in diff else ""
        failures.append(f"{diff['table']} {diff['pk']}: {diff['problem']}{detail}")
    return failures


def failures_of(
    tables: list, fks: list, seqs: list, queries: list, views: list | None = None
) -> list[str]:
    """Every check that failed, one line each (empty: PASS)."""
    failures = [line for table in tables for line in _table_failures(table)]
    failures += [
        f"foreign key {fk['name']} missing or not valid" for fk in fks if not fk["validated"]
    ]
    failures += [
        f"sequence of {s['table']}.{s['column']} would hand out {s['next_value']} "
        f"(max is {s['max']})"
        for s in seqs
        if not s["ok"]
    ]
    failures += [f"application query {q['query']!r} differs" for q in queries if not q["equal"]]
    failures += [f"view {v['view']}: {v['note']}" for v in views or [] if not v["ok"]]
    return failures


def _reads_rejected(sql: str, tables: list[dict[str, Any]]) -> bool:
    """Whether a view's SQL names a table some of whose rows were rejected."""
    names = {t["table"].lower() for t in tables if t.get("rejected_rows")}
    return bool(names) and any(
        sqltext.name_of(token).lower() in names
        for token in sqltext.tokens(sql)
        if token[0] in ("word", "ident")
    )


def _view_counts(
    source: sqlite3.Connection, pg: psycopg.Connection, line: dict, tables: list[dict]
) -> dict[str, Any]:
    """One translated view's row count on both engines, and whether they agree."""
    note = ""
    try:
        count = f"SELECT count(*) FROM {quote_ident(line['pg_name'])}"
        target_rows = pg.execute(count).fetchone()[0]
    except psycopg.Error as exc:
        target_rows, note = None, f"PostgreSQL cannot run it: {first_line(exc)}"
    source_rows = None
    if _reads_rejected(line["sql"], tables):
        note = note or (
            "runs in PostgreSQL; it reads tables with rejected rows, so SQLite's count is not "
            "compared"
        )
    else:
        try:
            count = f"SELECT count(*) FROM {quote_ident(line['name'])}"
            source_rows = source.execute(count).fetchone()[0]
        except sqlite3.Error as exc:
            note = note or (
                f"runs in PostgreSQL; SQLite {sqlite3.sqlite_version} cannot run it ({exc}), "
                "so its rows are not compared"
            )
    ok = target_rows is not None and source_rows in (None, target_rows)
    if not ok and not note:
        note = f"{source_rows} rows in SQLite, {target_rows} in PostgreSQL"
    return {
        "view": line["name"],
        "source_rows": source_rows,
        "target_rows": target_rows,
        "ok": ok,
        "note": note,
    }


def views(run: RunFolder, target: Target, tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every view step 02 translated, run on both engines: PostgreSQL must run it, and give as
    many rows as SQLite's (where SQLite's own library can run the view, and no row of a table
    it reads was rejected)."""
    lines = [
        line
        for line in (run.read("schema").get("reflected") or {}).get("objects", [])
        if line["kind"] == "view" and line["outcome"] == "translated"
    ]
    if not lines:
        return []
    source = sqlite_source.open_readonly(run.backup_path)
    try:
        with connect(target, autocommit=True) as pg:
            return [_view_counts(source, pg, line, tables) for line in lines]
    finally:
        source.close()


AGAIN = "run the step again (runbook run SOURCE --steps verify --run-dir RUN_DIR)"


def verify(
    run: RunFolder,
    target: Target,
    *,
    workers: int | None = None,
) -> dict[str, Any]:
    """All checks of step 04 and the verdict; written to `verify.json`."""
    transfer, schema = run.read("transfer"), run.read("schema")
    sha = run.read("backup")["sha256"]
    with translated(target, "the verification", AGAIN):
        # the application's queries run beside the checksums (they read both engines too, and
        # would otherwise add their time to the step's)
        with ThreadPoolExecutor(max_workers=1) as beside:
            asked = schema["mode"] == "alembic"
            pending = beside.submit(application_queries, run, target) if asked else None
            tables = checksums(run, target, workers=workers)
            queries = pending.result() if pending else []
        fks = constraints.check_foreign_keys(target, transfer["foreign_keys"])
        seqs = constraints.check_sequences(target, transfer["sequences"])
        ranges = ledger.ranges_by_attempt(target, sha)
        compared_views = views(run, target, tables)
        with connect(target) as conn:  # what the cutover compares: did anybody write since?
            counters = ledger.write_counters(conn, [t["table_target"] for t in tables])
    failures = failures_of(tables, fks, seqs, queries, compared_views)
    result = {
        "backup_sha256": sha,
        "verdict": "FAIL" if failures else "PASS",
        "failures": failures,
        "tables": tables,
        "foreign_keys": fks,
        "sequences": seqs,
        "application_queries": queries,
        "views": compared_views,
        "rejected_rows": sum(t.get("rejected_rows", 0) for t in tables),
        "ranges": ranges,  # which key ranges of which tables each transfer attempt loaded
        "write_counters": counters,
    }
    run.write("verify", result)
    return result


def raise_on_fail(result: dict[str, Any]) -> str:
    """The verdict line; raises a RunbookError listing the failures when the verdict is FAIL."""
    if result["verdict"] == "PASS":
        rows = sum(t["source_rows"] for t in result["tables"])
        rejected = result.get("rejected_rows", 0)
        ledger_line = f" {rejected} rows rejected (see rejects.jsonl)." if rejected else ""
        return (
            f"{len(result['tables'])} tables, {rows} source rows: every one in the target or "
            f"the reject ledger, counts and content checksums match; "
            f"{len(result['foreign_keys'])} foreign keys valid; sequences, views and "
            f"application queries agree.{ledger_line}"
        )
    listed = "; ".join(result["failures"][:20])
    more = len(result["failures"]) - 20
    raise RunbookError(
        f"verification FAILED: {listed}" + (f"; and {more} more" if more > 0 else ""),
        fix="inspect the differences in 04_verify; do not switch the application over",
    )
