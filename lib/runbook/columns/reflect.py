"""Reflect mode: a PostgreSQL schema built from any SQLite file, by the conversion table.

Types follow the declared type unless the data holds values that type cannot (SQLite's dynamic
typing); identifiers are lower-cased unless that would make two collide, and cut to
PostgreSQL's 63 bytes with a hash suffix so they never collide; what cannot be translated
(expression indexes, unknown defaults) is reported, never dropped silently."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from runbook.columns.inference import (
    choose_type,
    short_name,
    target_names,
    translate_default,
)
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError
from runbook.core.source import quote_ident
from runbook.core.target import connect

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


@dataclass
class TableShape:
    name: str
    target: str
    columns: list[ColumnShape]
    primary_key: list[str]
    uniques: list[list[str]] = field(default_factory=list)
    indexes: list[dict[str, Any]] = field(default_factory=list)
    foreign_keys: list[dict[str, Any]] = field(default_factory=list)


def _storage_classes(conn: sqlite3.Connection, table: str, column: str) -> dict[str, int]:
    sql = f"SELECT typeof({quote_ident(column)}), count(*) FROM {quote_ident(table)} GROUP BY 1"
    return dict(conn.execute(sql).fetchall())


def _index_shapes(
    conn: sqlite3.Connection,
    table: sqlite_source.Table,
    names: dict[str, str],
    notes: list[dict[str, str]],
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    uniques, indexes = [], []
    for _, name, unique, origin, partial in conn.execute(
        f"PRAGMA index_list({quote_ident(table.name)})"
    ):
        info = conn.execute(f"PRAGMA index_xinfo({quote_ident(name)})").fetchall()
        keyed = [row for row in info if row[5]]  # key columns, in order
        if any(row[1] == -2 for row in keyed):
            notes.append(
                {"table": table.name, "object": name, "note": "expression index not translated"}
            )
            continue
        columns = [row[2] for row in keyed]
        if origin == "pk":
            continue
        where = None
        if partial:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [name]).fetchone()[0]
            where = _partial_where(sql, names)
            if where is None:
                notes.append(
                    {
                        "table": table.name,
                        "object": name,
                        "note": "partial index condition not translatable; index left out",
                    }
                )
                continue
        if origin == "u" and not partial:
            uniques.append(columns)
        else:
            indexes.append(
                {"name": name, "columns": columns, "unique": bool(unique), "where": where}
            )
    return uniques, indexes


def _partial_where(sql: str, names: dict[str, str]) -> str | None:
    """The WHERE clause of a partial index, identifiers renamed, when it calls no function."""
    match = re.search(r"\bWHERE\b(.*)$", sql, flags=re.I | re.S)
    if not match or re.search(r"\w\s*\(", match.group(1)):
        return None

    def rename(found: re.Match) -> str:
        name = found.group(1) or found.group(2) or found.group(3)
        return quote_ident(names.get(name, name))

    return re.sub(r'\[([^\]]+)\]|`([^`]+)`|"([^"]+)"', rename, match.group(1).strip())


def _column_shapes(
    conn: sqlite3.Connection, table: sqlite_source.Table, notes: list[dict[str, str]]
) -> list[ColumnShape]:
    """Each column's target type (by its declared type and its data), default and name."""
    names = target_names(list(table.column_names))
    defaults = {
        row[1]: row[4] for row in conn.execute(f"PRAGMA table_info({quote_ident(table.name)})")
    }
    columns = []
    for column in table.columns:
        counts = _storage_classes(conn, table.name, column.name)
        pg_type, why, conversion = choose_type(column.declared, counts)
        default, note = translate_default(defaults[column.name], pg_type)
        if note:
            notes.append({"table": table.name, "object": column.name, "note": note})
        columns.append(
            ColumnShape(
                column.name,
                names[column.name],
                column.declared,
                pg_type,
                why,
                conversion,
                column.notnull or bool(column.pk_position),
                default,
                identity=table.primary_key == (column.name,) and pg_type == "bigint",
            )
        )
    return columns


def _foreign_key_shapes(
    conn: sqlite3.Connection,
    table: sqlite_source.Table,
    tables: list[sqlite_source.Table],
    notes: list[dict[str, str]],
) -> list[dict[str, Any]]:
    """The table's foreign keys (one referring to a missing table is noted and left out)."""
    fks = []
    for fk_id, rows in _fk_rows(conn, table.name).items():
        parent = next((t for t in tables if t.name.lower() == rows[0][2].lower()), None)
        if parent is None:
            notes.append(
                {
                    "table": table.name,
                    "object": f"foreign key {fk_id}",
                    "note": f"references missing table {rows[0][2]}; left out",
                }
            )
            continue
        parent_cols = [r[4] for r in rows]
        fks.append(
            {
                "columns": [r[3] for r in rows],
                "parent": parent.name,
                "parent_columns": parent_cols if all(parent_cols) else list(parent.primary_key),
                "on_update": rows[0][5],
                "on_delete": rows[0][6],
            }
        )
    return fks


def reflect_source(conn: sqlite3.Connection) -> tuple[list[TableShape], list[dict[str, str]]]:
    """The target shape of every table of a SQLite database, and notes on what was translated
    or left out."""
    notes: list[dict[str, str]] = []
    tables = sqlite_source.reflect(conn)
    table_names = target_names([t.name for t in tables])
    shapes = []
    for table in tables:
        columns = _column_shapes(conn, table, notes)
        names = {c.name: c.target for c in columns}
        uniques, indexes = _index_shapes(conn, table, names, notes)
        shapes.append(
            TableShape(
                table.name,
                table_names[table.name],
                columns,
                list(table.primary_key),
                uniques,
                indexes,
                _foreign_key_shapes(conn, table, tables, notes),
            )
        )
    return shapes, notes


def _fk_rows(conn: sqlite3.Connection, table: str) -> dict[int, list[tuple]]:
    grouped: dict[int, list[tuple]] = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({quote_ident(table)})"):
        grouped.setdefault(row[0], []).append(row)
    return grouped


def create_statements(shapes: list[TableShape]) -> list[str]:
    """DDL for the reflected schema: tables with keys and defaults, unique constraints,
    indexes, then foreign keys (so the order of tables does not matter)."""
    by_name = {s.name: s for s in shapes}

    def col(shape: TableShape, name: str) -> str:
        return quote_ident(next(c.target for c in shape.columns if c.name == name))

    statements, later = [], []
    for shape in shapes:
        lines = []
        for c in shape.columns:
            line = f"{quote_ident(c.target)} {c.pg_type}"
            if c.identity:
                line += " GENERATED BY DEFAULT AS IDENTITY"
            if c.notnull:
                line += " NOT NULL"
            if c.default is not None:
                line += f" DEFAULT {c.default}"
            lines.append(line)
        if shape.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(col(shape, k) for k in shape.primary_key)})")
        for columns in shape.uniques:
            lines.append(f"UNIQUE ({', '.join(col(shape, k) for k in columns)})")
        statements.append(
            f"CREATE TABLE {quote_ident(shape.target)} (\n  " + ",\n  ".join(lines) + "\n)"
        )
        for index in shape.indexes:
            name = short_name(f"{shape.target}_{index['name']}".lower())
            where = f" WHERE {index['where']}" if index["where"] else ""
            columns = ", ".join(col(shape, k) for k in index["columns"])
            later.append(
                f"CREATE {'UNIQUE ' if index['unique'] else ''}INDEX {quote_ident(name)} "
                f"ON {quote_ident(shape.target)} ({columns}){where}"
            )
        for fk in shape.foreign_keys:
            parent = by_name[fk["parent"]]
            actions = "".join(
                f" ON {event} {fk[key]}"
                for event, key in (("UPDATE", "on_update"), ("DELETE", "on_delete"))
                if fk[key] and fk[key] != "NO ACTION"
            )
            later.append(
                f"ALTER TABLE {quote_ident(shape.target)} ADD FOREIGN KEY "
                f"({', '.join(col(shape, k) for k in fk['columns'])}) REFERENCES "
                f"{quote_ident(parent.target)} "
                f"({', '.join(col(parent, k) for k in fk['parent_columns'])}){actions}"
            )
    return statements + later


def describe(shapes: list[TableShape]) -> list[dict[str, Any]]:
    """The reflected schema as plain data for `schema.json`."""
    return [asdict(s) for s in shapes]


def plan(backup: str) -> dict[str, Any]:
    """The reflected schema of a SQLite file: shapes, notes and the DDL that creates it."""
    conn = sqlite_source.open_readonly(backup)
    try:
        shapes, notes = reflect_source(conn)
    finally:
        conn.close()
    return {"tables": describe(shapes), "notes": notes, "statements": create_statements(shapes)}


def create(target: Any, reflected: dict[str, Any]) -> None:
    """Run the DDL of a reflected schema in one transaction, refusing clashing tables."""
    with connect(target) as pg:
        existing = {
            name
            for (name,) in pg.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }
        clash = sorted(existing & {t["target"] for t in reflected["tables"]})
        if clash:
            raise RunbookError(
                f"the target already has tables named {', '.join(clash)}; nothing was changed",
                where=target.display,
                fix="reflect into an empty database",
            )
        for statement in reflected["statements"]:
            pg.execute(statement)
        pg.commit()
