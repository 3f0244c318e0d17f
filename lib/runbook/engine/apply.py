"""Applying a delta to the target in one transaction: the new versions of inserted and updated
rows are streamed from the new snapshot by the bulk load's own conversions (`loader`) into
staging tables, then upserted parents first; deleted rows go children first; sequences move
past the new largest keys; and the sync is recorded in the target's ledger in the same
transaction, so a crash leaves the target at the previous snapshot or the new one.

Foreign keys stay in place and are checked row by row as usual. A cycle of foreign keys (the
`drivers` ↔ `vehicles` pair, or a table referring to itself) is applied in two passes: rows go
in with their nullable cyclic references empty, which are then set from the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from runbook.columns.plan import ColumnPlan
from runbook.core.source import Table, autoincrement_handed_out, quote_ident
from runbook.engine import loader, moves
from runbook.engine.constraints import add_helper_indexes, set_sequences
from runbook.engine.delta import Delta, TableChanges


@dataclass
class TableApply:
    """How one changed table is applied: its plans, key and cyclic reference columns."""

    table: Table
    plans: list[ColumnPlan]
    changes: TableChanges
    upserted: list[int]  # source rowids of the new versions to write
    removed: list[tuple]  # target keys to delete (deleted rows, and rejected ones)
    cyclic: list[str]  # PostgreSQL columns of foreign keys inside a cycle, set in a second pass

    @property
    def target(self) -> str:
        return self.plans[0].pg_table

    @property
    def key(self) -> list[str]:
        by_name = {p.column: p.pg_column for p in self.plans}
        return [by_name[c] for c in self.table.primary_key]

    @property
    def staging(self) -> str:
        return f"runbook_delta_{self.target}"[:63]


def cycles(tables: dict[str, Table]) -> set[tuple[str, str]]:
    """The foreign-key columns (table, column) that lie on a cycle of references, a table
    referring to itself included (a parent that reaches back to its child)."""
    edges = {
        name: {fk.parent for fk in t.foreign_keys if fk.parent in tables}
        for name, t in tables.items()
    }

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        return False

    return {
        (name, column)
        for name, table in tables.items()
        for fk in table.foreign_keys
        if fk.parent in tables and reaches(fk.parent, name)
        for column in fk.columns
    }


def _stream_new_versions(conn: psycopg.Connection, source: Any, item: TableApply) -> None:
    """The new versions of the table's changed rows, converted as the bulk load converts them,
    into a staging table shaped like the target table. Staging tables are unlogged tables of
    the current schema, made and dropped inside the transaction: the least-privilege role may
    create there, while a temporary table needs the database's TEMPORARY right."""
    conn.execute(
        f"CREATE UNLOGGED TABLE {quote_ident(item.staging)} (LIKE {quote_ident(item.target)})"
    )
    if not item.upserted:
        return
    load = loader.TableLoad(item.table.name, item.staging, item.plans, len(item.upserted), None)
    rowids = ",".join(str(int(r)) for r in item.upserted)
    where = f"rowid IN (SELECT value FROM json_each('[{rowids}]'))"
    job = loader.chunk_job(loader.Chunk(load, where, len(item.upserted)))
    loader.stream(source, conn, job, lambda rows: None)


def _key_match(item: TableApply, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote_ident(k)} = {right}.{quote_ident(k)}" for k in item.key)


def _upsert(conn: psycopg.Connection, item: TableApply) -> None:
    """Insert the new versions, or update the rows with their keys; cyclic references empty."""
    columns = [p.pg_column for p in item.plans]
    values = [
        f"NULL::{p.target_type}" if p.pg_column in item.cyclic else quote_ident(p.pg_column)
        for p in item.plans
    ]
    others = [c for c in columns if c not in item.key]
    action = (
        "DO UPDATE SET "
        + ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in others)
        if others
        else "DO NOTHING"
    )
    conn.execute(
        f"INSERT INTO {quote_ident(item.target)} ({', '.join(map(quote_ident, columns))}) "
        f"SELECT {', '.join(values)} FROM {quote_ident(item.staging)} "
        f"ON CONFLICT ({', '.join(map(quote_ident, item.key))}) {action}"
    )


def _set_cyclic(conn: psycopg.Connection, item: TableApply) -> None:
    """Second pass: the cyclic references of the upserted rows, now that every row is there."""
    if not item.cyclic or not item.upserted:
        return
    assignments = ", ".join(f"{quote_ident(c)} = d.{quote_ident(c)}" for c in item.cyclic)
    conn.execute(
        f"UPDATE {quote_ident(item.target)} t SET {assignments} "
        f"FROM {quote_ident(item.staging)} d WHERE {_key_match(item, 't', 'd')}"
    )


def _keys_table(conn: psycopg.Connection, item: TableApply) -> str:
    """The keys to delete in a staging table, typed like the target's key columns."""
    name = quote_ident(f"{item.staging}_gone"[:63])
    key = ", ".join(map(quote_ident, item.key))
    conn.execute(
        f"CREATE UNLOGGED TABLE {name} AS SELECT {key} FROM {quote_ident(item.target)} WITH NO DATA"
    )
    with conn.cursor().copy(f"COPY {name} ({key}) FROM STDIN") as copy:
        for row in item.removed:
            copy.write_row(row)
    return name


def _delete(conn: psycopg.Connection, item: TableApply, gone: str) -> int:
    """Delete the removed rows (children before parents: the caller's order)."""
    match = _key_match(item, "t", "g")
    return conn.execute(
        f"DELETE FROM {quote_ident(item.target)} t USING {gone} g WHERE {match}"
    ).rowcount


def _empty_cyclic(conn: psycopg.Connection, item: TableApply, gone: str) -> None:
    """Before deleting rows that refer to each other around a cycle: empty those references."""
    if item.cyclic:
        assignments = ", ".join(f"{quote_ident(c)} = NULL" for c in item.cyclic)
        conn.execute(
            f"UPDATE {quote_ident(item.target)} t SET {assignments} FROM {gone} g "
            f"WHERE {_key_match(item, 't', 'g')}"
        )


def apply(
    conn: psycopg.Connection,
    source: Any,
    items: list[TableApply],
    tables: list[str],
    helper_deletes: int = 1,
) -> dict[str, Any]:
    """Apply the changes of `items` (in load order: parents first) in the connection's open
    transaction: new versions upserted parents first, cyclic references set, removed rows
    deleted children first, sequences moved. A parent losing `helper_deletes` rows or more
    first gets its large children's referencing columns indexed (`constraints`: each deleted
    row would otherwise scan them); a unique value moving between rows has its index set aside
    and made again (`moves`). The caller records the sync in the ledger in the same
    transaction and commits. Returns rows deleted per table, helper indexes, unique indexes
    rebuilt, sequences set."""
    loader.register_dumpers(conn)
    losing = {item.target for item in items if len(item.removed) >= helper_deletes}
    helpers = add_helper_indexes(conn, tables, losing) if losing else []
    for item in items:
        _stream_new_versions(conn, source, item)
    aside = moves.set_aside(
        conn, [(item.target, item.staging, item.key) for item in items if item.upserted]
    )
    for item in items:
        if item.upserted:
            _upsert(conn, item)
    for item in items:
        _set_cyclic(conn, item)
    gone = {item.table.name: _keys_table(conn, item) for item in items if item.removed}
    for item in items:
        if item.table.name in gone:
            _empty_cyclic(conn, item, gone[item.table.name])
    deleted = {}
    for item in reversed(items):
        if item.table.name in gone:
            deleted[item.table.name] = _delete(conn, item, gone[item.table.name])
    moves.restore(conn, aside)
    for item in items:  # the staging tables go with the transaction that made them
        conn.execute(f"DROP TABLE {quote_ident(item.staging)}")
    for name in gone.values():
        conn.execute(f"DROP TABLE {name}")
    seen = autoincrement_handed_out(source)
    floors = {i.target: seen[i.table.name.lower()] for i in items if i.table.name.lower() in seen}
    sequences = set_sequences(conn, [item.target for item in items if item.upserted], floors)
    return {
        "deleted": deleted,
        "helper_indexes": helpers,
        "unique_indexes_rebuilt": aside.names,
        "sequences": sequences,
    }


def plan_items(
    found: Delta,
    tables: dict[str, Table],
    plans: dict[str, list[ColumnPlan]],
    order: list[str],
    refused: dict[str, list[int]],
    refused_keys: dict[str, list[tuple]],
    released: dict[str, list[int]],
) -> list[TableApply]:
    """What to apply per changed table, in load order: the new versions of inserted and
    updated rows and of rows no longer held back (`released`), unless refused now; the keys of
    deleted rows and of refused ones, to delete."""
    cyclic = cycles(tables)
    items = []
    for name in order:
        changes = found.tables.get(name) or TableChanges(name)
        if not (changes.total or refused_keys.get(name) or released.get(name)):
            continue
        skip = set(refused.get(name, ()))
        written = [r for r in changes.inserted + changes.updated + released.get(name, [])]
        table_plans = plans[name]
        by_column = {p.column: p.pg_column for p in table_plans}
        items.append(
            TableApply(
                tables[name],
                table_plans,
                changes,
                sorted({r for r in written if r not in skip}),
                changes.deleted_keys + refused_keys.get(name, []),
                [by_column[c] for t, c in cyclic if t == name and _nullable(table_plans, c)],
            )
        )
    return items


def _nullable(plans: list[ColumnPlan], column: str) -> bool:
    return next(p.nullable for p in plans if p.column == column)
