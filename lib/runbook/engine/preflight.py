"""Preflight: every value that would not fit its target column, every orphan foreign key, and
every row that depends on such a row, found inside SQLite before a row is written."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from runbook.columns.conversions import open_source
from runbook.columns.plan import ColumnPlan, by_table
from runbook.columns.rules import SUGGESTIONS, column_rule_hint
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError
from runbook.core.source import quote_ident
from runbook.core.workers import Started
from runbook.engine.findings import Findings, key_select, shorten
from runbook.engine.references import scan_dependents, scan_orphans, scan_references
from runbook.engine.scanners import scan_in_parts
from runbook.engine.values import scan_values

POLICIES = ("stop", "reject")
REASONS = {
    "null_in_not_null": "NULL in a column the target declares NOT NULL",
    "wrong_type": "the value's SQLite type does not fit the target column type",
    "integer_overflow": "integer outside the target integer type's range",
    "too_precise": "more decimal places than the target numeric keeps (would be rounded)",
    "numeric_overflow": "too many digits for the target numeric's precision",
    "not_boolean": "not one of 0/1, t/f, true/false",
    "empty_string": "'' where a value of another type is expected",
    "epoch_in_datetime": "a number in a DATETIME column (an epoch?) needs an explicit rule",
    "datetime_with_offset": "a timestamp with a UTC offset in a local-time column needs a rule",
    "unparseable_datetime": "not an ISO date and time PostgreSQL would read the same way",
    "date_in_datetime": "a date without a time of day in a DATETIME column needs a rule",
    "unparseable_date": "not a valid ISO date",
    "unparseable_time": "not a valid ISO time of day",
    "invalid_json": "not valid JSON",
    "nul_character": "holds a NUL character, which PostgreSQL text cannot store",
    "invalid_utf8": "bytes that are not UTF-8",
    "too_long": "longer than the column's character limit",
    "orphan_foreign_key": "refers to a row that does not exist",
    "depends_on_rejected": "refers to a row that is itself rejected",
    "duplicate_after_conversion": (
        "distinct in SQLite, equal once converted, under a unique index or primary key"
    ),
    "check_violation": "breaks a CHECK constraint of the table (SQLite was told to ignore it)",
}


def _scan_checks(
    conn: sqlite3.Connection,
    table: sqlite_source.Table,
    checks: list[tuple[str, str]],
    found: Findings,
) -> None:
    """Rows breaking a CHECK constraint the target enforces (SQLite holds such rows only when
    it was told to ignore CHECKs): found here, not by a failing COPY."""
    key_names, key_sql = key_select(table)
    for name, expression in checks:
        sql = f"SELECT {key_sql} FROM {quote_ident(table.name)} WHERE NOT ({expression})"
        for rowid, *key in conn.execute(sql):
            pk = dict(zip(key_names, key, strict=True))
            found.add(table.name, rowid, pk, name, "check_violation", f"CHECK ({expression})")


def _unique_keys(conn: sqlite3.Connection, table: sqlite_source.Table) -> list[tuple[str, ...]]:
    """The column sets SQLite keeps unique in a table (primary key and full unique indexes;
    partial and expression indexes are left out)."""
    keys = []
    for _, name, unique, _, partial in conn.execute(
        f"PRAGMA index_list({quote_ident(table.name)})"
    ):
        if not unique or partial:
            continue
        columns = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({quote_ident(name)})"))
        if columns and None not in columns:
            keys.append(columns)
    return keys


_SAME_EQUALITY = {"integer", "float8", "blob-hex", "text"}  # conversions SQLite compares alike


def _as_postgres_compares(plan: ColumnPlan, col: str) -> str | None:
    """SQL giving equal results for source values PostgreSQL will hold as equal (its canonical
    text, or the COPY text of a ruled value); None where SQLite's equality is already the same."""
    kind = plan.kind
    if plan.rule.name in _SAME_EQUALITY:  # a ruled conversion has another name
        return f"rtrim({col}, ' ')" if kind.base == "character" else None  # char(n) pads
    if plan.rule.sql_canonical:
        return plan.rule.sql_canonical(col, col, kind, False)[0]
    return plan.rule.render(col, kind)


def _scan_unique(
    conn: sqlite3.Connection, table: sqlite_source.Table, plans: list[ColumnPlan], found: Findings
) -> None:
    """Rows that SQLite holds as distinct but PostgreSQL would see as equal under a unique key
    (e.g. '2025-01-01T10:00:00' and '2025-01-01 10:00:00' in a unique DATETIME column): the
    index build after the load would fail, so they are found here, every one of them."""
    by_column = {p.column: p for p in plans}
    key_names, key_sql = key_select(table)
    for columns in _unique_keys(conn, table):
        if not all(c in by_column for c in columns):
            continue
        compared = [_as_postgres_compares(by_column[c], quote_ident(c)) for c in columns]
        if not any(compared):
            continue  # PostgreSQL compares these values as SQLite does: its uniqueness carries
        converted = [e or quote_ident(c) for e, c in zip(compared, columns, strict=True)]
        present = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in columns)
        value = f"json_array({', '.join(converted)})"
        sql = (
            f"SELECT {key_sql}, {value} FROM {quote_ident(table.name)} "
            f"WHERE {present} AND {value} IN (SELECT {value} FROM {quote_ident(table.name)} "
            f"WHERE {present} GROUP BY 1 HAVING count(*) > 1)"
        )
        for rowid, *key, converted_value in conn.execute(sql):
            pk = dict(zip(key_names, key, strict=True))
            found.add(
                table.name,
                rowid,
                pk,
                ", ".join(columns),
                "duplicate_after_conversion",
                f"{shorten(converted_value)} is also another row's key",
            )


def scan_rows(conn: sqlite3.Connection, plans: dict[str, list[ColumnPlan]]) -> list[dict[str, Any]]:
    """The misfits (values and NOT NULL) of the given tables in an open SQLite database, for
    rows corrected by the operator before they are re-inserted."""
    tables = {t.name: t for t in sqlite_source.reflect(conn)}
    found = Findings()
    for name, table_plans in plans.items():
        scan_values(conn, tables[name], table_plans, found)
    return found.listed


def scan(
    backup: str,
    plans: list[ColumnPlan],
    checks: dict[str, list[tuple[str, str]]] | None = None,
    orphans: list[dict] | None = None,
    ahead: Started | None = None,
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Run every conversion's misfit predicates, the NOT NULL, unique-key, CHECK (`checks`:
    per table, the target's (name, SQLite expression)) and foreign-key checks (`orphans`: the
    backup's whole `PRAGMA foreign_key_check`, when step 01 has it), and follow foreign keys to
    the rows that depend on a misfit row, the values scanned by the processes started `ahead`
    (`scanners.scanners_ahead`) where there are some, in ranges cut by the rows of each table
    (`counts`: the backup's census, else counted); returns counts per (table, column, kind),
    the first MAX_LISTED findings, and the identity of every row that cannot be loaded (its
    rowid, or its primary key's text in a WITHOUT ROWID table)."""
    conn = open_source(backup)
    tables = {t.name: t for t in sqlite_source.reflect(conn)}
    found = Findings()
    seconds: dict[str, float] = {}  # what the scan cost, per table and for the foreign keys
    try:
        planned = by_table(plans)
        scanned = {n: tables[n] for n in planned}
        parts = scan_in_parts(backup, conn, scanned, planned, ahead, counts)
        for table_name, table_plans in planned.items():
            recorded, spent = parts[table_name]
            clock = time.perf_counter()
            for finding in recorded:  # in the order one pass would have found them
                found.add(*finding)
            _scan_unique(conn, tables[table_name], table_plans, found)
            _scan_checks(conn, tables[table_name], (checks or {}).get(table_name, []), found)
            seconds[table_name] = round(spent + time.perf_counter() - clock, 3)
        clock = time.perf_counter()
        scan_orphans(conn, tables, found, orphans)
        scan_dependents(conn, tables, found)
        seconds["(foreign keys)"] = round(time.perf_counter() - clock, 3)
    finally:
        conn.close()
    return {**_result(found, tables), "seconds": seconds}


def _result(found: Findings, tables: dict[str, sqlite_source.Table]) -> dict[str, Any]:
    """Counts per (table, column, kind), the first findings, and every row that cannot be
    loaded: table → [[rowid, column, kind] of its first problem]."""
    summary = [
        {"table": t, "column": c, "kind": k, "count": n}
        for (t, c, k), n in sorted(found.counts.items())
    ]
    return {
        "total": sum(found.counts.values()),
        "rows": sum(len(rows) for rows in found.rows.values()),
        "summary": summary,
        "findings": found.listed,
        # every row that cannot be loaded: table → [[rowid, column, kind] of its first problem]
        # (for a WITHOUT ROWID table the row's identity is its primary key's text: identity)
        "rejected": {
            table: [[rowid, *rows[rowid]] for rowid in sorted(rows)]
            for table, rows in sorted(found.rows.items())
        },
        "identity": {
            table: tables[table].row_identity
            for table in sorted(found.rows)
            if not tables[table].rowid
        },
    }


def _in(rowids: list[int]) -> str:
    return f"rowid IN (SELECT value FROM json_each('[{','.join(str(int(r)) for r in rowids)}]'))"


def scan_changes(
    conn: sqlite3.Connection,
    plans: dict[str, list[ColumnPlan]],
    changed: dict[str, list[int]],
    deleted: dict[str, list[tuple]],
) -> dict[str, Any]:
    """The preflight of a catch-up, on the new snapshot: misfits among the rows to write
    (`changed`: rowids per table: new versions, and rows held back before), those referring to
    a row the snapshot does not hold, rows referring to a deleted row (`deleted`: keys per
    table; SQLite kept them without their parent), and every row that depends on one of these.
    The same result as `scan`'s."""
    tables = {t.name: t for t in sqlite_source.reflect(conn)}
    found = Findings()
    for name, rowids in changed.items():
        if rowids:
            only = _in(rowids)
            scan_values(conn, tables[name], plans[name], found, only)
            scan_references(conn, tables, tables[name], found, only=only)
    if any(deleted.values()):
        for child in tables.values():
            if child.name in plans:
                scan_references(conn, tables, child, found, parent_keys=deleted)
    scan_dependents(conn, tables, found)
    return _result(found, tables)


def require_policy(on_bad_rows: str) -> None:
    """Refuse a policy for bad rows that is not one of POLICIES."""
    if on_bad_rows not in POLICIES:
        raise RunbookError(
            f"on_bad_rows={on_bad_rows!r} is not a known policy",
            fix='use on_bad_rows="stop" (the default) or "reject"',
        )


def require_clean(preflight: dict[str, Any], on_bad_rows: str = "stop") -> None:
    """Stop before writing when misfits exist and the policy is `stop` (the default); with
    `reject` the misfit rows and their dependents go to the reject ledger instead."""
    require_policy(on_bad_rows)
    if not preflight["total"] or on_bad_rows == "reject":
        return
    first = "; ".join(
        f"{f['table']} {f['pk']} column {f['column']}: {f['kind']} {f['value']}"
        for f in preflight["findings"][:5]
    )
    kinds = {s["kind"] for s in preflight["summary"]}
    rules = sorted({SUGGESTIONS[k] for k in kinds if k in SUGGESTIONS})
    hint = f"; or switch on column rules ({', '.join(rules)}) where they fit" if rules else ""
    raise RunbookError(
        f"{preflight['total']} problems in {preflight['rows']} source rows; nothing was written. "
        f"First: {first}",
        fix="fix these rows in the source (see the preflight table in 02_schema) and run again, "
        f'or run with on_bad_rows="reject" to load every other row and list these in '
        f"rejects.jsonl{hint}{column_rule_hint(preflight['summary'])}",
    )
