"""Preflight: every value that would not fit its target column, found inside SQLite before a row
is written."""

from __future__ import annotations

from typing import Any

from runbook import source as sqlite_source
from runbook.errors import RunbookError
from runbook.schema import ColumnPlan, by_table, target_type
from runbook.source import quote_ident

MAX_LISTED = 10_000  # findings kept in preflight results; counts always cover every value


def _shorten(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_expr(table: sqlite_source.Table) -> tuple[list[str], str]:
    names = list(table.primary_key) or ["rowid"]
    return names, ", ".join(quote_ident(n) for n in names)


def scan(backup: str, plans: list[ColumnPlan]) -> dict[str, Any]:
    """Run every conversion's misfit predicates and the NOT NULL and foreign-key checks over the
    backup; returns counts per (table, column, kind) and the first MAX_LISTED findings."""
    conn = sqlite_source.open_readonly(backup)
    conn.text_factory = lambda raw: raw.decode("utf-8", "backslashreplace")
    tables = {t.name: t for t in sqlite_source.reflect(conn)}
    findings: list[dict[str, Any]] = []
    counts: dict[tuple[str, str, str], int] = {}
    try:
        for table_name, table_plans in by_table(plans).items():
            table = tables[table_name]
            key_names, key_sql = _key_expr(table)
            for plan in table_plans:
                col = quote_ident(plan.column)
                checks = [] if plan.nullable else [("null_in_not_null", f"{col} IS NULL")]
                checks += [
                    (kind, f"{col} IS NOT NULL AND ({predicate})")
                    for kind, predicate in plan.rule.checks(col, target_type(plan))
                ]
                for kind, predicate in checks:
                    rows = conn.execute(
                        f"SELECT {key_sql}, {col} FROM {quote_ident(table_name)} WHERE {predicate}"
                    )
                    for row in rows:
                        counts[(table_name, plan.column, kind)] = (
                            counts.get((table_name, plan.column, kind), 0) + 1
                        )
                        if len(findings) < MAX_LISTED:
                            findings.append(
                                {
                                    "table": table_name,
                                    "pk": dict(zip(key_names, row[:-1], strict=True)),
                                    "column": plan.column,
                                    "kind": kind,
                                    "value": _shorten(row[-1]),
                                }
                            )
        for problem in sqlite_source.foreign_key_problems(conn):
            table = tables[problem["table"]]
            fk = table.foreign_keys[problem["fk_index"]]
            key_names, key_sql = _key_expr(table)
            key = conn.execute(
                f"SELECT {key_sql} FROM {quote_ident(table.name)} WHERE rowid = ?",
                [problem["rowid"]],
            ).fetchone()
            column = ", ".join(fk.columns)
            counts[(table.name, column, "orphan_foreign_key")] = (
                counts.get((table.name, column, "orphan_foreign_key"), 0) + 1
            )
            if len(findings) < MAX_LISTED:
                findings.append(
                    {
                        "table": table.name,
                        "pk": dict(zip(key_names, key, strict=True)),
                        "column": column,
                        "kind": "orphan_foreign_key",
                        "value": f"no row in {fk.parent}",
                    }
                )
    finally:
        conn.close()
    summary = [
        {"table": t, "column": c, "kind": k, "count": n} for (t, c, k), n in sorted(counts.items())
    ]
    return {"total": sum(counts.values()), "summary": summary, "findings": findings}


def require_clean(preflight: dict[str, Any], on_bad_rows: str = "stop") -> None:
    """Stop before writing when misfits exist and the policy is `stop` (the default)."""
    if on_bad_rows != "stop":
        raise RunbookError(
            f"on_bad_rows={on_bad_rows!r} is not a known policy",
            fix='use on_bad_rows="stop"',
        )
    if preflight["total"]:
        first = "; ".join(
            f"{f['table']} {f['pk']} column {f['column']}: {f['kind']} {f['value']}"
            for f in preflight["findings"][:5]
        )
        raise RunbookError(
            f"{preflight['total']} source values do not fit the target; nothing was written. "
            f"First: {first}",
            fix="fix these rows in the source (see the preflight table in 02_schema) and run again",
        )
