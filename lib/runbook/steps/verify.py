"""Step 04: source and target hold the same data, proven by content checksums on both engines
(`engine.checksums`), not just counts; foreign keys, sequences and a few of the application's
own queries are checked beside them, and every source row is accounted for (in the target, or
in the reject ledger). One verdict, PASS or FAIL; the notebook raises on FAIL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from runbook.columns.plan import rejected_rowids, row_filter
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
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
            rejected = rejected_rowids(run.read("schema")["preflight"])
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
    if table["source_rows"] != table["target_rows"]:
        failures.append(
            f"{table['table']}: {table['source_rows']} source rows, "
            f"{table['target_rows']} in the target"
        )
    if table["source_checksum"] != table["target_checksum"]:
        failures.append(f"{table['table']}: content checksum differs")
    for diff in table["differences"]:
        detail = f" column {diff['column']}" if "column" in diff else ""
        failures.append(f"{diff['table']} {diff['pk']}: {diff['problem']}{detail}")
    return failures


def failures_of(tables: list, fks: list, seqs: list, queries: list) -> list[str]:
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
    return failures


AGAIN = "run the step again (runbook run SOURCE --steps verify --run-dir RUN_DIR)"


def verify(run: RunFolder, target: Target, *, workers: int | None = None) -> dict[str, Any]:
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
        with connect(target) as conn:  # what the cutover compares: did anybody write since?
            counters = ledger.write_counters(conn, [t["table_target"] for t in tables])
    failures = failures_of(tables, fks, seqs, queries)
    result = {
        "backup_sha256": sha,
        "verdict": "FAIL" if failures else "PASS",
        "failures": failures,
        "tables": tables,
        "foreign_keys": fks,
        "sequences": seqs,
        "application_queries": queries,
        "ranges": ranges,  # which key ranges of which tables each transfer attempt loaded
        "write_counters": counters,
    }
    run.write("verify", result)
    return result


def raise_on_fail(result: dict[str, Any]) -> str:
    """The verdict line; raises a RunbookError listing the failures when the verdict is FAIL."""
    if result["verdict"] == "PASS":
        rows = sum(t["source_rows"] for t in result["tables"])
        return (
            f"{len(result['tables'])} tables, {rows} rows: counts and content checksums match; "
            f"{len(result['foreign_keys'])} foreign keys valid; sequences and application "
            f"queries agree."
        )
    listed = "; ".join(result["failures"][:20])
    more = len(result["failures"]) - 20
    raise RunbookError(
        f"verification FAILED: {listed}" + (f"; and {more} more" if more > 0 else ""),
        fix="inspect the differences in 04_verify; do not switch the application over",
    )
