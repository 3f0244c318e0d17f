"""Reflect mode: a PostgreSQL schema built from any SQLite file, by the conversion table.

Types follow the declared type unless the data holds values that type cannot (SQLite's dynamic
typing); identifiers are lower-cased unless that would make two collide, and cut to
PostgreSQL's 63 bytes with a hash suffix so they never collide; what cannot be translated
(expression indexes, unknown defaults) is reported, never dropped silently."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from runbook import source as sqlite_source
from runbook.source import quote_ident

MAX_IDENTIFIER = 63  # bytes, PostgreSQL's NAMEDATALEN - 1


def _short(name: str) -> str:
    """The name cut to 63 bytes with a hash of the whole name, when longer."""
    raw = name.encode()
    if len(raw) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:8]
    cut = raw[: MAX_IDENTIFIER - 9].decode("utf-8", "ignore")
    return f"{cut}_{digest}"


def target_names(names: list[str]) -> dict[str, str]:
    """PostgreSQL names for a set of SQLite names in one namespace: lower case where no two
    collide, as written otherwise, and never longer than 63 bytes."""
    lowered = [n.lower() for n in names]
    mapped = {
        name: _short(low if lowered.count(low) == 1 else name)
        for name, low in zip(names, lowered, strict=True)
    }
    seen: dict[str, str] = {}
    for name, new in mapped.items():
        if new in seen:  # only possible through truncation; hash the whole name to separate
            mapped[name] = _short(new + "_" + hashlib.sha1(name.encode()).hexdigest())
        seen[mapped[name]] = name
    return mapped


# --- types -------------------------------------------------------------------------------------

_DECLARED = [  # (pattern on the upper-cased declared type, PostgreSQL type, conversion name)
    (r"^(BOOL|BOOLEAN)\b", "boolean", None),
    (r"^(DATETIME|TIMESTAMP)\b", "timestamp without time zone", None),
    (r"^DATE$", "date", None),
    (r"^TIME$", "time without time zone", None),
    (r"^JSONB?\b", "jsonb", None),
    (r"^(NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", "numeric({2},{3})", None),
    (r"^(NUMERIC|DECIMAL|NUMBER)\b", "numeric", None),
    (
        r"^(N?VARCHAR|NCHAR|CHAR|CHARACTER|VARYING CHARACTER|NATIVE CHARACTER)\s*\(\s*(\d+)\s*\)",
        "character varying({2})",
        None,
    ),
]


def declared_type(declared: str) -> str:
    """The PostgreSQL type a SQLite declared type maps to (SQLite's affinity rules otherwise)."""
    upper = declared.upper().strip()
    for pattern, pg_type, _ in _DECLARED:
        match = re.match(pattern, upper)
        if match:
            return pg_type.format(*([None] + list(match.groups())))
    if "INT" in upper:
        return "bigint"  # SQLite integers are 64-bit
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "double precision"
    if upper == "" or "BLOB" in upper:
        return ""  # no affinity: the data decides
    return "numeric"


def data_type(counts: dict[str, int]) -> str:
    """The narrowest PostgreSQL type that holds every value of these SQLite storage classes."""
    kinds = {k for k, n in counts.items() if n and k != "null"}
    if not kinds or kinds == {"text"}:
        return "text"
    if kinds == {"integer"}:
        return "bigint"
    if kinds <= {"integer", "real"}:
        return "double precision" if "integer" not in kinds else "numeric"
    if kinds == {"blob"}:
        return "bytea"
    if "blob" in kinds:
        return "bytea"  # text and blobs mixed: the text values are misfits, shown in 02
    return "text"  # text mixed with numbers: numbers are kept as their exact text


_HOLDS = {  # storage classes each declared mapping holds without a misfit of kind wrong_type
    "bigint": {"integer"},
    "double precision": {"integer", "real"},
    "numeric": {"integer", "real"},
    "text": {"text"},
    "bytea": {"blob"},
}


def choose_type(declared: str, counts: dict[str, int]) -> tuple[str, str, str | None]:
    """(PostgreSQL type, why, conversion name when not the type's default) for one column."""
    by_declared = declared_type(declared)
    if not by_declared:
        chosen = data_type(counts)
        return chosen, f"no declared type; the data holds {_kinds(counts)}", _text_from_any(chosen)
    base = re.sub(r"\(.*\)", "", by_declared)
    holds = _HOLDS.get(base)
    present = {k for k, n in counts.items() if n and k != "null"}
    if holds is not None and not present <= holds and "blob" not in present:
        chosen = data_type(counts)
        if chosen != by_declared:
            return (
                chosen,
                f"declared {declared} but the data holds {_kinds(counts)}",
                _text_from_any(chosen),
            )
    return by_declared, f"declared {declared}", None


def _text_from_any(pg_type: str) -> str | None:
    return "text-from-any" if pg_type == "text" else None


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if n and k != "null")


# --- defaults ----------------------------------------------------------------------------------

_NOW_UTC = "(now() AT TIME ZONE 'UTC')"
_DEFAULTS = {
    "current_timestamp": _NOW_UTC,
    "datetime('now')": _NOW_UTC,
    "(datetime('now'))": _NOW_UTC,
    "datetime('now','localtime')": "LOCALTIMESTAMP",
    "(datetime('now','localtime'))": "LOCALTIMESTAMP",
    "(strftime('%y-%m-%d %h:%m:%f','now'))": _NOW_UTC,
    "strftime('%y-%m-%d %h:%m:%f','now')": _NOW_UTC,
    "current_date": f"{_NOW_UTC}::date",
    "date('now')": f"{_NOW_UTC}::date",
    "current_time": f"{_NOW_UTC}::time",
}


def translate_default(default: str | None, pg_type: str) -> tuple[str | None, str | None]:
    """(PostgreSQL default, note) for a SQLite column default; the note says what was done."""
    if default is None:
        return None, None
    text = default.strip()
    key = re.sub(r"\s+", "", text).lower()
    if key in _DEFAULTS:
        return _DEFAULTS[key], f"SQLite {text} → {_DEFAULTS[key]}"
    if key == "null":
        return None, None
    if re.fullmatch(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?", text):
        if pg_type == "boolean":
            return ("true" if float(text) else "false"), None
        return text, None
    if re.fullmatch(r"'([^']|'')*'", text):
        return text, None
    if key in ("true", "false") and pg_type == "boolean":
        return key, None
    return None, f"default {text} not translated (no PostgreSQL equivalent known); left out"


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


def reflect_source(conn: sqlite3.Connection) -> tuple[list[TableShape], list[dict[str, str]]]:
    """The target shape of every table of a SQLite database, and notes on what was translated
    or left out."""
    notes: list[dict[str, str]] = []
    tables = sqlite_source.reflect(conn)
    table_names = target_names([t.name for t in tables])
    shapes = []
    for table in tables:
        column_names = target_names(list(table.column_names))
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
            single_integer_key = table.primary_key == (column.name,) and pg_type == "bigint"
            columns.append(
                ColumnShape(
                    column.name,
                    column_names[column.name],
                    column.declared,
                    pg_type,
                    why,
                    conversion,
                    column.notnull or bool(column.pk_position),
                    default,
                    identity=single_integer_key,
                )
            )
        uniques, indexes = _index_shapes(conn, table, column_names, notes)
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
            if not all(parent_cols):
                parent_cols = list(parent.primary_key)
            fks.append(
                {
                    "columns": [r[3] for r in rows],
                    "parent": parent.name,
                    "parent_columns": parent_cols,
                    "on_update": rows[0][5],
                    "on_delete": rows[0][6],
                }
            )
        shapes.append(
            TableShape(
                table.name,
                table_names[table.name],
                columns,
                list(table.primary_key),
                uniques,
                indexes,
                fks,
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
            name = _short(f"{shape.target}_{index['name']}".lower())
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


def build(backup: str, target: Any) -> dict[str, Any]:
    """Create the reflected schema in an empty target (refusing one that has any of its
    tables), in one transaction; returns the shapes, notes and statements for `schema.json`."""
    reflected = plan(backup)
    create(target, reflected)
    return reflected


def create(target: Any, reflected: dict[str, Any]) -> None:
    """Run the DDL of a reflected schema in one transaction, refusing clashing tables."""
    from runbook.errors import RunbookError
    from runbook.target import connect

    with connect(target) as pg:
        existing = {
            name
            for (name,) in pg.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
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
