"""The schema objects of a SQLite file beyond its tables' columns, as lines of reflect mode's
objects table: CHECK constraints, collations and defaults of each column; views (their SQL
rewritten for PostgreSQL, which then decides whether it runs); triggers (listed, with a PL/pgSQL
suggestion where the body is plain SQL); virtual tables and their shadow tables (an FTS table's
documents migrate as a table, its index is listed with a PostgreSQL full-text search
suggestion); AUTOINCREMENT sequences. Each line is translated (with the DDL that makes it) or
listed (with why)."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from runbook.columns import sqltext
from runbook.columns.inference import declared_type, short_name, translate_default
from runbook.columns.triggers import trigger_objects
from runbook.core import source as sqlite_source
from runbook.core.source import quote_ident

TableShape = Any  # runbook.columns.reflect.TableShape (which imports this module)

Rename = Any  # sqltext.renamer's look-up


def line(kind: str, table: str, name: str, **extra: Any) -> dict[str, Any]:
    """One object of the objects table (its outcome and why are merged in)."""
    return {"kind": kind, "table": table, "name": name, **extra}


def listed(why: str, **extra: Any) -> dict[str, Any]:
    """The outcome of an object not made in PostgreSQL, with why (and what to do)."""
    return {"outcome": "listed", "why": why, **extra}


def translate(why: str, ddl: list[str], **extra: Any) -> dict[str, Any]:
    """The outcome of an object made by `ddl` (step 02 lists it if PostgreSQL refuses)."""
    return {"outcome": "translated", "why": why, "ddl": ddl, **extra}


def unique_name(name: str, used: set[str]) -> str:
    """`name`, or with a number after it where it is taken (as PostgreSQL names constraints)."""
    found, number = name, 0
    while found in used:
        number += 1
        found = short_name(f"{name}{number}")
    used.add(found)
    return found


def names_of(shapes: list[TableShape], views: dict[str, str]) -> Rename:
    """The look-up of PostgreSQL names for SQL rewritten from SQLite: tables, views, columns."""
    pairs = [(s.name, s.target) for s in shapes] + list(views.items())
    pairs += [(c.name, c.target) for s in shapes for c in s.columns]
    pairs += [(name, g[0]) for s in shapes for name, g in s.generated.items()]
    return sqltext.renamer(pairs)


def table_line(shape: TableShape) -> dict[str, Any]:
    """The line of a migrated table (its DDL is set once its unique constraints are known)."""
    if shape.module:
        return line("virtual table", shape.name, shape.name, pg_name=shape.target) | translate(
            f"{shape.module} table: its documents migrated as table {shape.target}, keyed by "
            "their rowid (its index: see the full-text index line)",
            [],
        )
    rowless = "; WITHOUT ROWID: rows known by the primary key" if not shape.rowid else ""
    here = line("table", shape.name, shape.name, pg_name=shape.target)
    return here | translate(f"table {shape.target}{rowless}", [])


# --- per column: CHECK, COLLATE, DEFAULT -------------------------------------------------------

_ICU = (
    "CREATE COLLATION IF NOT EXISTS nocase "
    "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
)
_TEXT = ("text", "character varying", "character")


def _collation(shape: TableShape, column: Any) -> dict[str, Any]:
    here = line(
        "collation", shape.name, f"{shape.name}.{column.name}", column=[shape.target, column.target]
    )
    base = re.sub(r"\(.*\)", "", column.pg_type).strip()
    if column.collation.upper() != "NOCASE":
        return here | listed(
            f"COLLATE {column.collation}: PostgreSQL has no such collation; it compares these "
            "values as written"
        )
    if base not in _TEXT:
        return here | translate(f"NOCASE on a {column.pg_type} column: nothing to compare", [])
    alter = f"ALTER TABLE {quote_ident(shape.target)} ALTER COLUMN {quote_ident(column.target)}"
    return here | {
        "outcome": "translated",
        "why": "NOCASE",
        "alternatives": [
            {
                "why": "NOCASE → nondeterministic ICU collation nocase (und-u-ks-level2): "
                "compares without case, beyond ASCII too; LIKE on it needs PostgreSQL 18",
                "ddl": [_ICU, f"{alter} TYPE {column.pg_type} COLLATE nocase"],
            },
            {
                "why": "NOCASE → citext (this server has no ICU collations): compares without "
                "case; the length limit of the declared type is not kept",
                "ddl": ["CREATE EXTENSION IF NOT EXISTS citext", f"{alter} TYPE citext"],
            },
        ],
        "fallback": f"NOCASE: this server has neither ICU collations nor the citext extension, "
        f"so PostgreSQL compares {shape.target}.{column.target} with case (SQLite did not)",
    }


def _default(shape: TableShape, column: Any) -> dict[str, Any] | None:
    default, note = translate_default(column.default, column.pg_type)
    if default is None and note is None:
        return None  # no default, or DEFAULT NULL
    here = line(
        "default",
        shape.name,
        f"{shape.name}.{column.name}",
        sql=column.default,
        column=[shape.target, column.target],
    )
    if default is None or column.identity:
        return here | listed(note or "an identity column: PostgreSQL generates its values")
    statement = (
        f"ALTER TABLE {quote_ident(shape.target)} ALTER COLUMN {quote_ident(column.target)} "
        f"SET DEFAULT {default}"
    )
    return here | translate(note or f"SQLite DEFAULT {column.default}", [statement])


def column_objects(
    shape: TableShape, clauses: sqltext.Clauses, rename: Rename
) -> list[dict[str, Any]]:
    """The table's CHECK constraints, collations and defaults as lines."""
    found, used = [], set()
    for named, column, expression in clauses.checks:
        of = next((c for c in shape.columns if column and c.name.lower() == column.lower()), None)
        base = f"{shape.target}_{of.target}_check" if of else f"{shape.target}_check"
        name = unique_name(named or short_name(base), used)
        statement = (
            f"ALTER TABLE {quote_ident(shape.target)} ADD CONSTRAINT {quote_ident(name)} "
            f"CHECK ({sqltext.postgres(expression, rename)})"
        )
        found.append(
            line(
                "check",
                shape.name,
                name,
                sql=f"CHECK ({expression})",
                check=expression,
                pg_name=name,
            )
            | translate(f"CHECK ({expression})", [statement])
        )
    for name, (target, declared) in shape.generated.items():
        expression = next(
            (e for c, e in clauses.generated.items() if c.lower() == name.lower()), None
        )
        here = line("generated column", shape.name, f"{shape.name}.{name}", sql=expression)
        if expression is None:
            found.append(here | listed("its expression could not be read from the SQL"))
            continue
        pg_type = declared_type(declared) or "text"
        statement = (
            f"ALTER TABLE {quote_ident(shape.target)} ADD COLUMN {quote_ident(target)} {pg_type} "
            f"GENERATED ALWAYS AS ({sqltext.postgres(expression, rename)}) STORED"
        )
        found.append(
            here | translate(f"computed by PostgreSQL from ({expression}), not copied", [statement])
        )
    for column in shape.columns:
        if column.collation:
            found.append(_collation(shape, column))
        default = _default(shape, column)
        if default:
            found.append(default)
    return found


# --- views, virtual and shadow tables, sequences ------------------------------------------------


def _views(conn: sqlite3.Connection, names: dict[str, str], rename: Rename) -> list[dict]:
    """Each view with its SELECT rewritten for PostgreSQL (which decides whether it runs)."""
    found = []
    for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid"
    ):
        head, select = sqltext.body_after(sql, "AS")
        here = line("view", name, name, sql=sql, pg_name=names[name])
        if not select:
            found.append(here | listed("its SELECT could not be found in the SQL"))
            continue
        columns = head[head.index("(") :] if head.rstrip().endswith(")") else ""
        statement = (
            f"CREATE VIEW {quote_ident(names[name])} {sqltext.postgres(columns, rename)} AS "
            f"{sqltext.postgres(select, rename)}"
        ).replace("  AS", " AS")
        found.append(here | translate(f"view {names[name]}", [statement]))
    return found


def _search_suggestion(shape: TableShape, columns: list[str]) -> str:
    """A GIN index over the text of the given columns (PostgreSQL full-text search)."""
    document = " || ' ' || ".join(f"coalesce({shape.col(c)}::text, '')" for c in columns)
    name = quote_ident(short_name(f"{shape.target}_search"))
    return (
        f"CREATE INDEX {name} ON {quote_ident(shape.target)} "
        f"USING GIN (to_tsvector('simple', {document}))"
    )


REBUILD = "rebuild with PostgreSQL full-text search: to_tsvector + GIN"


def _virtual(name: str, sql: str, shapes: dict[str, TableShape]) -> dict[str, Any]:
    """The line of a virtual table: an FTS index (rebuilt with PostgreSQL full-text search over
    the table holding its documents), or another module's table (not migrated)."""
    module, arguments = sqlite_source.virtual_module(sql)
    if module not in sqlite_source.FTS_MODULES:
        hint = " (an R*Tree index: a GiST index in PostGIS)" if "rtree" in module else ""
        return line("virtual table", name, name, sql=sql) | listed(
            f"a {module} virtual table: its module's data is not migrated{hint}"
        )
    here = line("full-text index", name, name, sql=sql)
    content = sqlite_source.content_table(arguments)
    owner = shapes.get(name) if content is None else _shape_named(shapes, content)
    if owner is None:
        return here | listed(
            f"{module} index keeping no documents of its own; {REBUILD} over "
            "the table its documents come from"
        )
    fts_columns = [
        c.split()[0].strip("'\"`[]") for c in sqltext.split_text(arguments) if c and "=" not in c
    ]
    indexed = [
        c.name
        for c in owner.columns
        if c.name.lower() in {f.lower() for f in fts_columns} and c.name != "rowid"
    ]
    if not indexed:
        return here | listed(f"{module} index over {owner.target}; {REBUILD}")
    return here | listed(
        f"{module} index over {owner.target} ({', '.join(indexed)}); {REBUILD} (the index "
        "statement is in schema.json: suggestion)",
        suggestion=_search_suggestion(owner, indexed),
    )


def _shape_named(shapes: dict[str, TableShape], name: str) -> TableShape | None:
    return next((s for n, s in shapes.items() if n.lower() == name.lower()), None)


def _virtual_and_shadow(conn: sqlite3.Connection, shapes: dict[str, TableShape]) -> list[dict]:
    sqls = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    kinds = sqlite_source.table_kinds(conn)
    virtual = sorted((n for n, k in kinds.items() if k == "virtual"), key=len, reverse=True)
    found = []
    for name, kind in kinds.items():
        if kind == "virtual":
            found.append(_virtual(name, sqls[name], shapes))
        elif kind == "shadow":
            owner = next((v for v in virtual if name.startswith(f"{v}_")), "a virtual table")
            module = sqlite_source.virtual_module(sqls.get(owner))[0] or "virtual"
            found.append(
                line("shadow table", name, name)
                | listed(f"internal data of the {module} table {owner}; not copied")
            )
    return found


def _sequences(conn: sqlite3.Connection, shapes: dict[str, TableShape]) -> list[dict]:
    """AUTOINCREMENT tables (sqlite_sequence): step 03 moves the identity past max(id) and
    past every id SQLite handed out, so no id is used twice."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
    if exists.fetchone() is None:
        return []
    found = []
    for table, seq in conn.execute("SELECT name, seq FROM sqlite_sequence"):
        shape = _shape_named(shapes, table)
        if shape is None or len(shape.primary_key) != 1:
            continue
        key = shape.column(shape.primary_key[0])
        here = line("sequence", shape.name, f"{shape.name}.{key.name}")
        if key.identity:
            found.append(
                here
                | translate(
                    f"identity of {shape.target}.{key.target}: step 03 sets it past max("
                    f"{key.target}) and past sqlite_sequence's {seq}",
                    [],
                )
            )
        else:
            found.append(here | listed(f"AUTOINCREMENT key held as {key.pg_type}: no sequence"))
    return found


def schema_objects(
    conn: sqlite3.Connection, shapes: list[TableShape], names: dict[str, str], rename: Rename
) -> list[dict[str, Any]]:
    """Views, triggers, virtual and shadow tables and AUTOINCREMENT sequences as lines."""
    by_name = {s.name: s for s in shapes}
    return (
        _views(conn, names, rename)
        + trigger_objects(conn, by_name, rename)
        + _virtual_and_shadow(conn, by_name)
        + _sequences(conn, by_name)
    )
