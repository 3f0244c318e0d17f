"""The preflight's foreign-key scans inside SQLite: rows referring to a row the database does
not hold (orphans), and every row depending, through any chain, on a row that will not load."""

from __future__ import annotations

import json
import sqlite3

from runbook.core import source as sqlite_source
from runbook.core.source import quote_ident
from runbook.engine.findings import Findings, key_select


def _named(tables: dict[str, sqlite_source.Table], name: str) -> sqlite_source.Table | None:
    """The table a foreign key names (SQLite ignores the case of names)."""
    return tables.get(name) or next(
        (t for n, t in tables.items() if n.lower() == name.lower()), None
    )


def _orphans_by_key(
    conn: sqlite3.Connection,
    table: sqlite_source.Table,
    fk: sqlite_source.ForeignKey,
    parent: sqlite_source.Table,
    found: Findings,
) -> None:
    """Orphans of a WITHOUT ROWID table (foreign_key_check names no rowid for them)."""
    key_names, key_sql = key_select(table)
    parent_columns = fk.parent_columns if all(fk.parent_columns) else parent.primary_key
    pairs = list(zip(parent_columns, fk.columns, strict=True))
    refs = ", ".join(f"c.{quote_ident(c)}" for c in fk.columns)
    sql = (
        f"SELECT {key_sql}, json_array({refs}) FROM {quote_ident(table.name)} AS c "
        f"WHERE {' AND '.join(f'c.{quote_ident(c)} IS NOT NULL' for c in fk.columns)} "
        f"AND NOT EXISTS (SELECT 1 FROM {quote_ident(parent.name)} AS p WHERE "
        + " AND ".join(f"p.{quote_ident(p)} = c.{quote_ident(c)}" for p, c in pairs)
        + ")"
    )
    for rowid, *key, ref in conn.execute(sql):
        pk = dict(zip(key_names, key, strict=True))
        shown = ", ".join(map(repr, json.loads(ref)))
        found.add(
            table.name,
            rowid,
            pk,
            ", ".join(fk.columns),
            "orphan_foreign_key",
            f"{fk.parent} has no row {shown}",
        )


def scan_orphans(
    conn: sqlite3.Connection,
    tables: dict[str, sqlite_source.Table],
    found: Findings,
    problems: list[dict] | None = None,
) -> None:
    """Every row whose foreign key points at no parent, from `PRAGMA foreign_key_check` (or
    its `problems` when the caller has them: step 01 ran it on the same backup)."""
    rowless = set()
    if problems is None:
        problems = sqlite_source.foreign_key_problems(conn)
    for problem in problems:
        table = tables.get(problem["table"])
        if table is None:
            continue
        fk = table.foreign_keys[problem["fk_index"]]
        if problem["rowid"] is None:  # a WITHOUT ROWID table: its orphans are found by key
            rowless.add((table.name, problem["fk_index"]))
            continue
        key_names, key_sql = key_select(table)
        row = conn.execute(
            f"SELECT {key_sql}, {', '.join(quote_ident(c) for c in fk.columns)} "
            f"FROM {quote_ident(table.name)} WHERE rowid = ?",
            [problem["rowid"]],
        ).fetchone()
        pk = dict(zip(key_names, row[1 : len(key_names) + 1], strict=True))
        refs = row[len(key_names) + 1 :]
        found.add(
            table.name,
            problem["rowid"],
            pk,
            ", ".join(fk.columns),
            "orphan_foreign_key",
            f"{fk.parent} has no row {', '.join(map(repr, refs))}",
        )
    for name, index in sorted(rowless):
        fk = tables[name].foreign_keys[index]
        parent = _named(tables, fk.parent)
        if parent is not None:
            _orphans_by_key(conn, tables[name], fk, parent, found)


def scan_dependents(
    conn: sqlite3.Connection, tables: dict[str, sqlite_source.Table], found: Findings
) -> None:
    """Rows whose foreign key points at a row that will not be loaded, through any chain."""
    changed = True
    while changed:
        changed = False
        for child in tables.values():
            key_names, key_sql = key_select(child)
            for fk in child.foreign_keys:
                parent = _named(tables, fk.parent)
                parent_rows = found.rows.get(parent.name) if parent else None
                if not parent_rows:
                    continue
                parent_cols = fk.parent_columns if all(fk.parent_columns) else None
                parent_cols = parent_cols or parent.primary_key or ("rowid",)
                refs = conn.execute(
                    f"SELECT DISTINCT json_array({', '.join(quote_ident(c) for c in parent_cols)}) "
                    f"FROM {quote_ident(parent.name)} "
                    f"WHERE {parent.row_identity} IN (SELECT value FROM json_each(?))",
                    [json.dumps(list(parent_rows))],
                ).fetchall()
                child_ref = f"json_array({', '.join(quote_ident(c) for c in fk.columns)})"
                sql = (
                    f"SELECT {key_sql}, {child_ref} FROM {quote_ident(child.name)} "
                    f"WHERE {child_ref} IN (SELECT value FROM json_each(?))"
                )
                encoded = json.dumps([json.loads(r) for (r,) in refs])
                for rowid, *key, ref in conn.execute(sql, [encoded]):
                    if rowid in found.rows.get(child.name, {}):
                        continue
                    pk = dict(zip(key_names, key, strict=True))
                    value = f"{fk.parent} {ref} is rejected"
                    found.add(
                        child.name, rowid, pk, ", ".join(fk.columns), "depends_on_rejected", value
                    )
                    changed = True


def scan_references(
    conn: sqlite3.Connection,
    tables: dict[str, sqlite_source.Table],
    child: sqlite_source.Table,
    found: Findings,
    only: str = "",
    parent_keys: dict[str, list[tuple]] | None = None,
) -> None:
    """Rows whose foreign key refers to a row the database does not hold: the rows `only`
    selects, or, with `parent_keys`, the rows referring to one of those keys of a parent."""
    key_names, _ = key_select(child)
    for fk in child.foreign_keys:
        parent = tables.get(fk.parent)
        if parent is None:
            continue
        parent_cols = fk.parent_columns if all(fk.parent_columns) else parent.primary_key
        parent_cols = tuple(parent_cols) or ("rowid",)
        selected = only
        if parent_keys is not None:
            keys = parent_keys.get(fk.parent)
            if not keys:
                continue
            if len(fk.columns) == 1 and parent_cols == tuple(parent.primary_key):
                values = json.dumps([k[0] for k in keys])
                selected = (
                    f"{quote_ident(fk.columns[0])} IN (SELECT value FROM json_each('{values}'))"
                )
        present = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in fk.columns)
        match = " AND ".join(
            f"p.{quote_ident(pc)} = c.{quote_ident(cc)}"
            for cc, pc in zip(fk.columns, parent_cols, strict=True)
        )
        columns = ", ".join(f"c.{quote_ident(c)}" for c in (*key_names, *fk.columns))
        sql = (
            f"SELECT c.rowid, {columns} FROM {quote_ident(child.name)} c "
            f"WHERE {present}{f' AND c.{selected}' if selected else ''} AND NOT EXISTS "
            f"(SELECT 1 FROM {quote_ident(parent.name)} p WHERE {match})"
        )
        for rowid, *rest in conn.execute(sql):
            pk = dict(zip(key_names, rest[: len(key_names)], strict=True))
            value = f"{fk.parent} has no row {', '.join(map(repr, rest[len(key_names) :]))}"
            found.add(child.name, rowid, pk, ", ".join(fk.columns), "orphan_foreign_key", value)
