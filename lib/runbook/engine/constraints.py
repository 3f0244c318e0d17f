"""What a bulk load drops and rebuilds: secondary indexes, unique constraints and foreign keys,
read from the catalog (so the target ends exactly as its schema made it), then sequences moved
past the largest key and ANALYZE (`rebuild` schedules them on the workers' connections);
foreign keys are added NOT VALID first, so validating them only reads."""

from __future__ import annotations

from typing import Any

import psycopg

from runbook.core.errors import RunbookError
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect, qualified

INDEX_MEMORY = "256MB"  # maintenance_work_mem of the sessions that build indexes


def foreign_keys(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, str]]:
    """The foreign keys of the given tables, as the catalog defines them."""
    rows = conn.execute(
        """
        SELECT cl.relname, co.conname, pg_get_constraintdef(co.oid)
        FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
        WHERE co.contype = 'f' AND cl.relnamespace = current_schema()::regnamespace
          AND cl.relname = ANY(%s)
        ORDER BY cl.relname, co.conname
        """,
        [tables],
    ).fetchall()
    return [{"table": t, "name": n, "definition": d} for t, n, d in rows]


def secondary_indexes(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, Any]]:
    """Indexes other than primary keys, with the unique or exclusion constraint that owns one,
    as the catalog defines them (pg_get_indexdef / pg_get_constraintdef)."""
    rows = conn.execute(
        """
        SELECT t.relname, i.relname, pg_get_indexdef(i.oid),
               co.conname, co.contype, pg_get_constraintdef(co.oid),
               co.condeferrable, co.condeferred
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        LEFT JOIN pg_constraint co
          ON co.conindid = x.indexrelid AND co.conrelid = x.indrelid AND co.contype IN ('u', 'x')
        WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(%s)
          AND NOT x.indisprimary
        ORDER BY t.relname, i.relname
        """,
        [tables],
    ).fetchall()
    keys = ("table", "name", "definition", "constraint", "constraint_type")
    keys += ("constraint_definition", "deferrable", "deferred")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def catalog_names(conn: psycopg.Connection) -> set[str]:
    """The names of the current schema's relations (tables, indexes, sequences, views) and
    constraints."""
    return {
        name
        for (name,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
            "UNION SELECT conname FROM pg_constraint "
            "WHERE connamespace = current_schema()::regnamespace"
        )
    }


def present(
    conn: psycopg.Connection, fks: list[dict], indexes: list[dict]
) -> tuple[list[dict], list[dict]]:
    """Those of the recorded foreign keys and indexes the catalog has (an interrupted load may
    have dropped some, or rebuilt some before it stopped)."""
    names = catalog_names(conn)
    return [f for f in fks if f["name"] in names], [i for i in indexes if i["name"] in names]


def drop(conn: psycopg.Connection, fks: list[dict], indexes: list[dict]) -> None:
    """Drop foreign keys and indexes for the load; idempotent, since an interrupted rebuild can
    leave an index whose unique constraint was not attached yet."""
    for fk in fks:
        conn.execute(
            f"ALTER TABLE {quote_ident(fk['table'])} "
            f"DROP CONSTRAINT IF EXISTS {quote_ident(fk['name'])}"
        )
    for index in indexes:
        if index["constraint"]:
            conn.execute(
                f"ALTER TABLE {quote_ident(index['table'])} "
                f"DROP CONSTRAINT IF EXISTS {quote_ident(index['constraint'])}"
            )
        conn.execute(f"DROP INDEX IF EXISTS {qualified(conn, index['name'])}")
    conn.commit()


def build_index(conn: psycopg.Connection, index: dict[str, Any]) -> None:
    """Create one index as the catalog defined it; a unique constraint is attached to its index
    (ADD CONSTRAINT … USING INDEX), an exclusion constraint re-added from its definition."""
    conn.execute(f"SET maintenance_work_mem = '{INDEX_MEMORY}'")
    table = quote_ident(index["table"])
    if index["constraint_type"] == "x":
        conn.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(index['constraint'])} "
            f"{index['constraint_definition']}"
        )
        return
    conn.execute(index["definition"])
    if index["constraint_type"] == "u":
        timing = ""
        if index["deferrable"]:
            timing = " DEFERRABLE INITIALLY " + ("DEFERRED" if index["deferred"] else "IMMEDIATE")
        conn.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(index['constraint'])} "
            f"UNIQUE USING INDEX {quote_ident(index['name'])}{timing}"
        )


def add_foreign_key(conn: psycopg.Connection, fk: dict[str, str]) -> None:
    """Add a dropped foreign key NOT VALID: the catalog only, its rows validated later."""
    conn.execute(
        f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT {quote_ident(fk['name'])} "
        f"{fk['definition']} NOT VALID"
    )


def validate(conn: psycopg.Connection, fk: dict[str, str]) -> None:
    """Validate a foreign key added NOT VALID: reads both tables, writes nothing."""
    try:
        conn.execute(
            f"ALTER TABLE {quote_ident(fk['table'])} VALIDATE CONSTRAINT {quote_ident(fk['name'])}"
        )
    except psycopg.errors.ForeignKeyViolation as exc:
        detail = exc.diag.message_detail or str(exc).splitlines()[0]  # the key and its value
        raise RunbookError(
            f"foreign key {fk['name']} does not hold after the load: {detail}",
            where=fk["table"],
            fix="the source holds orphan rows the preflight did not catch; report this",
        ) from None


def set_sequences(
    conn: psycopg.Connection, tables: list[str], floors: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """Move every column sequence past the largest key copied, and past the table's floor
    (the largest id SQLite's AUTOINCREMENT handed out), so the next insert gets a new id (in
    the caller's transaction; setval itself is never rolled back, which only skips ids)."""
    results = []
    for table in tables:
        columns = conn.execute(
            """
            SELECT a.attname, pg_get_serial_sequence(%s, a.attname)
            FROM pg_attribute a
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
            """,
            [qualified(conn, table)] * 2,
        ).fetchall()
        for column, sequence in columns:
            if not sequence:
                continue
            top = conn.execute(f"SELECT max({quote_ident(column)}) FROM {quote_ident(table)}")
            top = top.fetchone()[0]
            floor = (floors or {}).get(table)
            past = max((v for v in (top, floor) if v is not None), default=None)
            if past is None or past < 1:
                conn.execute("SELECT setval(%s, 1, false)", [sequence])
            else:
                conn.execute("SELECT setval(%s, %s, true)", [sequence, past])
            results.append(
                {
                    "table": table,
                    "column": column,
                    "sequence": sequence,
                    "max": top,
                    "sqlite_sequence": floor,
                }
            )
    return results


# --- checks after a load or a catch-up ------------------------------------------------------


def check_foreign_keys(target: Target, expected: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Every foreign key the schema defines is present and validated in the target."""
    with connect(target) as conn:
        present = {
            name: validated
            for name, validated in conn.execute(
                "SELECT conname, convalidated FROM pg_constraint "
                "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
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


def check_sequences(target: Target, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sequence's next value is above the largest key in its column, and above every id
    SQLite's AUTOINCREMENT handed out (sqlite_sequence)."""
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
            past = max(
                (v for v in (top, item.get("sqlite_sequence")) if v is not None), default=None
            )
            results.append(
                {
                    "table": item["table"],
                    "column": item["column"],
                    "max": past,
                    "next_value": next_value,
                    "ok": past is None or next_value > past,
                }
            )
    return results


# --- helper indexes for catch-ups: the foreign keys' columns that no index leads with ---------
# Deleting a parent row makes PostgreSQL look for its children by the referencing column; with
# no index there, each deleted parent costs a scan of the child table (measured at scale 3:
# 45 deleted dispatches, 3 s of scans of temperature_logs). The catch-ups index those columns
# for their own deletes, and the cutover drops the indexes again after its window.

HELPER_PREFIX = "runbook_fk_"
HELPER_MIN_ROWS = 10_000  # a smaller child table is scanned faster than an index is built


def unindexed_references(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, Any]]:
    """Foreign keys of the given tables whose columns no index starts with: child, columns,
    parent, and the child's estimated rows."""
    rows = conn.execute(
        """
        SELECT c.relname, p.relname, c.reltuples::bigint,
               array_agg(a.attname ORDER BY k.ordinality)
        FROM pg_constraint co
        JOIN pg_class c ON c.oid = co.conrelid
        JOIN pg_class p ON p.oid = co.confrelid
        CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, ordinality)
        JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum
        WHERE co.contype = 'f' AND c.relnamespace = current_schema()::regnamespace
          AND c.relname = ANY(%s)
          AND NOT EXISTS (
            SELECT 1 FROM pg_index x WHERE x.indrelid = co.conrelid
              AND (x.indkey::int2[])[0:cardinality(co.conkey) - 1] = co.conkey)
        GROUP BY co.oid, c.relname, p.relname, c.reltuples
        ORDER BY 1, 4
        """,
        [tables],
    ).fetchall()
    return [{"table": c, "parent": p, "rows": n, "columns": list(cols)} for c, p, n, cols in rows]


def add_helper_indexes(
    conn: psycopg.Connection, tables: list[str], parents: set[str] | None = None
) -> list[str]:
    """Index the referencing columns of large child tables that no index serves (of every
    parent, or of `parents` only), in the caller's transaction; the new indexes' names."""
    made = []
    conn.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_MEMORY}'")
    for ref in unindexed_references(conn, tables):
        if ref["rows"] < HELPER_MIN_ROWS or (parents is not None and ref["parent"] not in parents):
            continue
        name = f"{HELPER_PREFIX}{ref['table']}_{'_'.join(ref['columns'])}"[:63]
        columns = ", ".join(quote_ident(c) for c in ref["columns"])
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {quote_ident(name)} ON {quote_ident(ref['table'])} "
            f"({columns})"
        )
        made.append(name)
    return made


def drop_helper_indexes(target: Target) -> list[str]:
    """Drop the catch-ups' helper indexes: the catalog ends as the schema made it."""
    with connect(target) as conn:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'i' "
                "AND relnamespace = current_schema()::regnamespace AND relname LIKE %s",
                [HELPER_PREFIX.replace("_", "\\_") + "%"],
            )
        ]
        for name in names:
            conn.execute(f"DROP INDEX {quote_ident(name)}")
    return names
