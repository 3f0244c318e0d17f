"""Reflect mode: a PostgreSQL schema built from any SQLite file, by the conversion table.

Types follow the declared type unless the data holds values that type cannot (SQLite's dynamic
typing), one type per foreign-key group; identifiers are lower-cased unless that would make two
collide, and cut to PostgreSQL's 63 bytes with a hash suffix so they never collide. Every schema
object of the file becomes a line of the objects table (`objects`): translated, with the DDL
that creates it (PostgreSQL may still refuse it; then it is listed with its reason), or listed
with why. Nothing is dropped without a line."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from runbook.columns import objects, sqltext
from runbook.columns.inference import (
    choose_group_types,
    choose_type,
    key_groups,
    short_name,
    target_names,
)
from runbook.core import source as sqlite_source
from runbook.core.source import quote_ident

# --- the reflected schema ----------------------------------------------------------------------


@dataclass
class ColumnShape:
    name: str
    target: str
    declared: str
    pg_type: str
    why: str
    conversion: str | None
    notnull: bool
    default: str | None
    identity: bool = False
    collation: str = ""  # SQLite's COLLATE, when not BINARY


@dataclass
class TableShape:
    name: str
    target: str
    columns: list[ColumnShape]
    primary_key: list[str]
    uniques: list[list[str]] = field(default_factory=list)
    foreign_keys: list[dict[str, Any]] = field(default_factory=list)
    rowid: bool = True  # False: WITHOUT ROWID
    module: str = ""  # an FTS table whose documents are migrated as this table
    # generated columns (computed by PostgreSQL, never copied): name → (target, declared type)
    generated: dict[str, list[str]] = field(default_factory=dict)

    def column(self, name: str) -> ColumnShape:
        return next(c for c in self.columns if c.name == name)

    def col(self, name: str) -> str:
        """The quoted PostgreSQL name of a column (a generated one too)."""
        if name in self.generated:
            return quote_ident(self.generated[name][0])
        return quote_ident(self.column(name).target)


Types = dict[tuple[str, str], tuple[str, str, str | None]]  # (table, column) → type, why, conv


def _storage_classes(conn: sqlite3.Connection, table: str, column: str) -> dict[str, int]:
    sql = f"SELECT typeof({quote_ident(column)}), count(*) FROM {quote_ident(table)} GROUP BY 1"
    return dict(conn.execute(sql).fetchall())


def _parents(tables: list[sqlite_source.Table], fk: sqlite_source.ForeignKey) -> list | None:
    """The (table, column) each column of a foreign key refers to, as the tables name them
    (SQLite ignores case; no parent columns: the parent's primary key); None when the parent
    table or a column does not exist."""
    parent = next((t for t in tables if t.name.lower() == fk.parent.lower()), None)
    if parent is None:
        return None
    columns = fk.parent_columns if all(fk.parent_columns) else parent.primary_key
    found = [
        next((n for n in parent.column_names if n.lower() == column.lower()), None)
        for column in columns
    ]
    if len(found) != len(fk.columns) or None in found:
        return None
    return [(parent.name, column) for column in found]


def _types(conn: sqlite3.Connection, tables: list[sqlite_source.Table]) -> Types:
    """Each column's type by its declared type and data, one type per foreign-key group."""
    declared = {(t.name, c.name): c.declared for t in tables for c in t.columns}
    counts = {key: _storage_classes(conn, *key) for key in declared}
    types = {key: choose_type(declared[key], counts[key]) for key in declared}
    edges = [
        ((table.name, child), parent)
        for table in tables
        for fk in table.foreign_keys
        for child, parent in zip(fk.columns, _parents(tables, fk) or [], strict=False)
        if (table.name, child) in declared
    ]
    children = {child for child, _ in edges}
    for group in key_groups(edges):
        members = {m: (declared[m], counts[m]) for m in group}
        types.update(choose_group_types(members, children & set(group)))
    return types


def _generated(
    conn: sqlite3.Connection, table: sqlite_source.Table, columns: list[ColumnShape]
) -> dict[str, list[str]]:
    """The table's generated columns (table_info hides them): name → [target, declared]."""
    hidden = [
        (row[1], row[2] or "")
        for row in conn.execute(f"PRAGMA table_xinfo({quote_ident(table.name)})")
        if row[6] in (2, 3)  # VIRTUAL, STORED
    ]
    taken = {c.target for c in columns}
    return {
        name: [name.lower() if name.lower() not in taken else name, declared]
        for name, declared in hidden
    }


def _column_shapes(
    conn: sqlite3.Connection,
    table: sqlite_source.Table,
    types: Types,
    clauses: sqltext.Clauses,
) -> list[ColumnShape]:
    """Each column's target type, default, collation and name."""
    names = target_names(list(table.column_names))
    defaults = {
        row[1]: row[4] for row in conn.execute(f"PRAGMA table_info({quote_ident(table.name)})")
    }
    collations = {name.lower(): c for name, c in clauses.collations.items()}
    columns = []
    for column in table.columns:
        pg_type, why, conversion = types[(table.name, column.name)]
        collation = collations.get(column.name.lower(), "")
        columns.append(
            ColumnShape(
                column.name,
                names[column.name],
                column.declared,
                pg_type,
                why,
                conversion,
                column.notnull or bool(column.pk_position),
                defaults.get(column.name),
                identity=table.primary_key == (column.name,) and pg_type == "bigint",
                collation="" if collation.upper() == "BINARY" else collation,
            )
        )
    return columns


def _index_objects(
    conn: sqlite3.Connection, shape: TableShape, rename: Any
) -> list[dict[str, Any]]:
    """The table's indexes as objects (and its full unique constraints into `shape.uniques`)."""
    found = []
    for _, name, unique, origin, partial in conn.execute(
        f"PRAGMA index_list({quote_ident(shape.name)})"
    ):
        info = conn.execute(f"PRAGMA index_xinfo({quote_ident(name)})").fetchall()
        keyed = [row for row in info if row[5]]  # key columns, in order
        line = objects.line("index", shape.name, name)
        if any(row[1] == -2 for row in keyed):
            found.append(line | objects.listed("expression index not translated"))
            continue
        columns = [row[2] for row in keyed]
        if origin == "pk":
            continue
        if origin == "u" and not partial:
            shape.uniques.append(columns)
            continue
        where = ""
        if partial:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [name]).fetchone()[0]
            condition = sqltext.body_after(sql, "WHERE")[1]
            if not condition or re.search(r"\w\s*\(", condition):
                found.append(line | objects.listed("partial index condition calls a function"))
                continue
            where = f" WHERE {sqltext.postgres(condition, rename)}"
        target = name.lower()
        if not target.startswith(f"{shape.target}_"):
            target = f"{shape.target}_{target}"
        statement = (
            f"CREATE {'UNIQUE ' if unique else ''}INDEX {quote_ident(short_name(target))} ON "
            f"{quote_ident(shape.target)} ({', '.join(shape.col(c) for c in columns)}){where}"
        )
        found.append(
            line
            | objects.translate(f"index {short_name(target)}", [statement])
            | {"pg_name": short_name(target)}
        )
    return found


def _fk_objects(
    table: sqlite_source.Table,
    shape: TableShape,
    shapes: dict[str, TableShape],
    tables: list[sqlite_source.Table],
    clauses: sqltext.Clauses,
) -> list[dict[str, Any]]:
    """The table's foreign keys as objects (one to a missing table or column is listed)."""
    found, used = [], set()
    for fk in table.foreign_keys:
        resolved = _parents(tables, fk)
        given = clauses.fk_names.get((fk.columns, fk.parent.lower()), "").lower()
        columns = "_".join(shape.column(c).target for c in fk.columns)
        name = objects.unique_name(short_name(given or f"{shape.target}_{columns}_fkey"), used)
        line = objects.line("foreign key", table.name, name)
        if resolved is None or resolved[0][0] not in shapes:
            found.append(line | objects.listed(f"references {fk.parent}, which is not migrated"))
            continue
        parent = shapes[resolved[0][0]]
        deferrable, deferred = clauses.timing.get((fk.columns, fk.parent.lower()), (False, False))
        actions = {"on_update": fk.on_update, "on_delete": fk.on_delete}
        shape.foreign_keys.append(
            {
                "columns": list(fk.columns),
                "parent": parent.name,
                "parent_columns": [column for _, column in resolved],
                **actions,
                "deferrable": deferrable,
                "deferred": deferred,
            }
        )
        clause = "".join(
            f" ON {event} {actions[key]}"
            for event, key in (("UPDATE", "on_update"), ("DELETE", "on_delete"))
            if actions[key] and actions[key] != "NO ACTION"
        )
        if deferrable:
            clause += " DEFERRABLE INITIALLY " + ("DEFERRED" if deferred else "IMMEDIATE")
        statement = (
            f"ALTER TABLE {quote_ident(shape.target)} ADD CONSTRAINT {quote_ident(name)} "
            f"FOREIGN KEY ({', '.join(shape.col(c) for c in fk.columns)}) REFERENCES "
            f"{quote_ident(parent.target)} "
            f"({', '.join(parent.col(c) for _, c in resolved)}){clause}"
        )
        why = f"foreign key to {parent.target}" + (clause.replace(" ON", "; on") if clause else "")
        found.append(line | objects.translate(why, [statement], pg_name=name))
    return found


def reflect_source(conn: sqlite3.Connection) -> tuple[list[TableShape], list[dict[str, Any]]]:
    """The target shape of every migrated table of a SQLite database, and every schema object
    of the file as a line: translated with its DDL, or listed with why."""
    tables = sqlite_source.reflect(conn)
    views = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")]
    names = target_names([t.name for t in tables] + views)
    sqls = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    types = _types(conn, tables)
    shapes, clauses = {}, {}
    for table in tables:
        clauses[table.name] = sqltext.table_clauses(sqls.get(table.name) or "")
        columns = _column_shapes(conn, table, types, clauses[table.name])
        shapes[table.name] = TableShape(
            table.name,
            names[table.name],
            columns,
            list(table.primary_key),
            rowid=table.rowid,
            module=table.module,
            generated=_generated(conn, table, columns),
        )
    rename = objects.names_of(list(shapes.values()), {v: names[v] for v in views})
    found = [objects.table_line(shape) for shape in shapes.values()]
    for table in tables:
        shape = shapes[table.name]
        found += _index_objects(conn, shape, rename)
        found += _fk_objects(table, shape, shapes, tables, clauses[table.name])
        found += objects.column_objects(shape, clauses[table.name], rename)
    found += objects.schema_objects(conn, list(shapes.values()), names, rename)
    for line in found:
        if line["kind"] in ("table", "virtual table") and line["outcome"] == "translated":
            line["ddl"] = [table_statement(shapes[line["table"]])]
    return list(shapes.values()), found


def table_statement(shape: TableShape) -> str:
    """CREATE TABLE with columns, NOT NULL, identity, primary key and unique constraints;
    defaults, CHECKs, collations, indexes and foreign keys are added after it, one by one."""
    lines = []
    for c in shape.columns:
        line = f"{quote_ident(c.target)} {c.pg_type}"
        if c.identity:
            line += " GENERATED BY DEFAULT AS IDENTITY"
        if c.notnull:
            line += " NOT NULL"
        lines.append(line)
    if shape.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(shape.col(k) for k in shape.primary_key)})")
    for columns in shape.uniques:
        lines.append(f"UNIQUE ({', '.join(shape.col(k) for k in columns)})")
    return f"CREATE TABLE {quote_ident(shape.target)} (\n  " + ",\n  ".join(lines) + "\n)"


def describe(shapes: list[TableShape]) -> list[dict[str, Any]]:
    """The reflected schema as plain data for `schema.json`."""
    return [asdict(s) for s in shapes]


def plan(backup: str) -> dict[str, Any]:
    """The reflected schema of a SQLite file: table shapes and every schema object as a line
    (with the DDL that creates the translated ones)."""
    conn = sqlite_source.open_readonly(backup)
    try:
        shapes, found = reflect_source(conn)
    finally:
        conn.close()
    return {"tables": describe(shapes), "objects": found}
