"""Step 04: source and target hold the same data, proven by content checksums, not just counts.

Each row's values are mapped to the canonical text of their conversion (the same function for
the SQLite and the PostgreSQL value), hashed, and the hashes summed per primary-key segment, an
order-independent checksum. A segment whose sums differ is compared row by row, so every
difference is named by table and primary key.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from runbook import source as sqlite_source
from runbook.errors import RunbookError
from runbook.run import RunFolder
from runbook.schema import ColumnPlan, by_table, plans_from
from runbook.source import quote_ident
from runbook.target import Target, connect

SEGMENT = 10_000  # primary-key values per checksum segment
MASK = (1 << 64) - 1
MAX_DIFFERENCES = 50  # per table, shown and stored


def row_hash(canonical: list[str | None]) -> int:
    """64-bit hash of one row's canonical values (NULL distinct from '', unambiguous joins)."""
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _canonical_row(row: tuple, canon: list) -> list[str | None]:
    return [None if value is None else fn(value) for value, fn in zip(row, canon, strict=True)]


class _Side:
    """How to read one table's rows from one engine, keyed by primary key."""

    def __init__(self, table: str, plans: list[ColumnPlan], key: tuple[str, ...]) -> None:
        self.table = table
        self.plans = plans
        self.key = key
        self.key_index = [next(i for i, p in enumerate(plans) if p.column == k) for k in key]
        self.canon = [p.rule.canonical for p in plans]
        self.integer_key = len(key) == 1

    def segment(self, row: tuple) -> int:
        return row[self.key_index[0]] // SEGMENT if self.integer_key else 0

    def key_of(self, row: tuple) -> tuple:
        return tuple(row[i] for i in self.key_index) if self.key else row

    def sums(self, rows) -> dict[int, list[int]]:
        segments: dict[int, list[int]] = {}
        for row in rows:
            entry = segments.setdefault(self.segment(row), [0, 0])
            entry[0] += 1
            entry[1] = (entry[1] + row_hash(_canonical_row(row, self.canon))) & MASK
        return segments


def _source_select(side: _Side, where: str = "") -> str:
    cols = ", ".join(quote_ident(p.column) for p in side.plans)
    return f"SELECT {cols} FROM {quote_ident(side.table)} {where}"


def _target_select(side: _Side, where: str = "") -> str:
    cols = ", ".join(p.rule.target_select(quote_ident(p.column)) for p in side.plans)
    return f"SELECT {cols} FROM {quote_ident(side.table)} {where}"


def _segment_where(side: _Side, segment: int) -> str:
    if not side.integer_key:
        return ""
    col = quote_ident(side.key[0])
    return f"WHERE {col} >= {segment * SEGMENT} AND {col} < {(segment + 1) * SEGMENT}"


def _source_rows(backup: str, sql: str):
    conn = sqlite_source.open_readonly(backup)
    try:
        cursor = conn.execute(sql)
        while batch := cursor.fetchmany(5_000):
            yield from batch
    finally:
        conn.close()


def _target_rows(target: Target, sql: str):
    with connect(target) as conn, conn.cursor(name="runbook_verify") as cursor:
        cursor.itersize = 5_000
        cursor.execute(sql)
        yield from cursor


def table_checksums(
    backup: str, target: Target, table: str, plans: list[ColumnPlan], key: tuple[str, ...]
) -> dict[str, Any]:
    """Segment sums of one table on both engines (read at the same time), and the rows that
    differ in any segment whose sums do not match."""
    side = _Side(table, plans, key)
    with ThreadPoolExecutor(max_workers=2) as pool:
        source_job = pool.submit(side.sums, _source_rows(backup, _source_select(side)))
        target_job = pool.submit(side.sums, _target_rows(target, _target_select(side)))
        source, target_sums = source_job.result(), target_job.result()
    differing = sorted(
        seg for seg in source.keys() | target_sums.keys() if source.get(seg) != target_sums.get(seg)
    )
    differences: list[dict[str, Any]] = []
    for segment in differing:
        if len(differences) >= MAX_DIFFERENCES:
            break
        differences += _diff_segment(backup, target, side, segment)
    return {
        "table": table,
        "source_rows": sum(v[0] for v in source.values()),
        "target_rows": sum(v[0] for v in target_sums.values()),
        "source_checksum": f"{sum(v[1] for v in source.values()) & MASK:016x}",
        "target_checksum": f"{sum(v[1] for v in target_sums.values()) & MASK:016x}",
        "segments": len(source.keys() | target_sums.keys()),
        "differing_segments": len(differing),
        "differences": differences[:MAX_DIFFERENCES],
    }


def _diff_segment(backup: str, target: Target, side: _Side, segment: int) -> list[dict[str, Any]]:
    """Rows of one segment compared by primary key on both engines."""
    where = _segment_where(side, segment)

    def keyed(rows) -> dict[tuple, list[str | None]]:
        return {side.key_of(row): _canonical_row(row, side.canon) for row in rows}

    source = keyed(_source_rows(backup, _source_select(side, where)))
    target_rows = keyed(_target_rows(target, _target_select(side, where)))
    names = [p.column for p in side.plans]
    found = []
    for key in sorted(source.keys() | target_rows.keys(), key=repr):
        pk = dict(zip(side.key or names, key, strict=True))
        if key not in target_rows:
            found.append({"table": side.table, "pk": pk, "problem": "missing in target"})
        elif key not in source:
            found.append({"table": side.table, "pk": pk, "problem": "not in source"})
        elif source[key] != target_rows[key]:
            for name, left, right in zip(names, source[key], target_rows[key], strict=True):
                if left != right:
                    found.append(
                        {
                            "table": side.table,
                            "pk": pk,
                            "problem": "value differs",
                            "column": name,
                            "source": left,
                            "target": right,
                        }
                    )
    return found


def checksums(run: RunFolder, target: Target) -> list[dict[str, Any]]:
    """Content checksums of every table on both engines."""
    plans = by_table(plans_from(run.read("schema")))
    conn = sqlite_source.open_readonly(run.backup_path)
    try:
        keys = {t.name: t.primary_key for t in sqlite_source.reflect(conn)}
    finally:
        conn.close()
    return [
        table_checksums(str(run.backup_path), target, name, table_plans, keys[name])
        for name, table_plans in plans.items()
    ]


def foreign_keys(target: Target, expected: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Every foreign key the schema defines is present and validated in the target."""
    with connect(target) as conn:
        present = {
            name: validated
            for name, validated in conn.execute(
                "SELECT conname, convalidated FROM pg_constraint "
                "WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
            )
        }
    return [
        {
            "table": fk["table"],
            "name": fk["name"],
            "present": fk["name"] in present,
            "validated": bool(present.get(fk["name"])),
        }
        for fk in expected
    ]


def sequences(target: Target, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sequence's next value is above the largest key in its column."""
    results = []
    with connect(target) as conn:
        for item in expected:
            last, called = conn.execute(
                f"SELECT last_value, is_called FROM {item['sequence']}"
            ).fetchone()
            top = conn.execute(
                f"SELECT max({quote_ident(item['column'])}) FROM {quote_ident(item['table'])}"
            ).fetchone()[0]
            next_value = last + 1 if called else last
            results.append(
                {
                    "table": item["table"],
                    "column": item["column"],
                    "max": top,
                    "next_value": next_value,
                    "ok": top is None or next_value > top,
                }
            )
    return results


APPLICATION_QUERIES = {
    "orders per client": (
        "SELECT c.code, count(o.id), sum(o.pallet_count) FROM clients c "
        "LEFT JOIN orders o ON o.client_id = c.id GROUP BY c.code ORDER BY c.code"
    ),
    "dispatches per day": (
        "SELECT dispatch_date, count(*), count(driver_id) FROM dispatches "
        "GROUP BY dispatch_date ORDER BY dispatch_date"
    ),
    "stops per dispatch status": (
        "SELECT d.status, count(r.id), sum(CASE WHEN r.is_completed THEN 1 ELSE 0 END) "
        "FROM dispatches d JOIN dispatch_routes r ON r.dispatch_id = d.id "
        "GROUP BY d.status ORDER BY d.status"
    ),
    "alerts per severity": (
        "SELECT severity, count(*), count(acknowledged_at) FROM temperature_alerts "
        "GROUP BY severity ORDER BY severity"
    ),
}


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
            for name, sql in APPLICATION_QUERIES.items():
                left = [[_plain(v) for v in row] for row in conn.execute(sql)]
                right = [[_plain(v) for v in row] for row in pg.execute(sql)]
                results.append(
                    {"query": name, "rows": len(left), "equal": left == right, "sql": sql}
                )
    finally:
        conn.close()
    return results


def verify(run: RunFolder, target: Target) -> dict[str, Any]:
    """All checks of step 04 and the verdict; written to `verify.json`."""
    transfer = run.read("transfer")
    tables = checksums(run, target)
    fks = foreign_keys(target, transfer["foreign_keys"])
    seqs = sequences(target, transfer["sequences"])
    schema = run.read("schema")
    queries = application_queries(run, target) if schema["mode"] == "alembic" else []
    failures = []
    for table in tables:
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
    result = {
        "backup_sha256": run.read("backup")["sha256"],
        "verdict": "FAIL" if failures else "PASS",
        "failures": failures,
        "tables": tables,
        "foreign_keys": fks,
        "sequences": seqs,
        "application_queries": queries,
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
