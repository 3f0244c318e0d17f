"""Unique values that move between rows within one catch-up: two route stops trading their
sequence numbers, a stop's number taken by the stop that replaced it. PostgreSQL checks a unique
index that is not deferrable row by row, so upserting such a change fails although the end
state is unique. The unique indexes concerned (and the foreign keys that rely on them) are set
aside inside the catch-up's transaction and made again after its changes, which proves the end
state unique; an index is set aside only when a new version collides with another row, so the
rebuild (it reads the whole table) is paid only then."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from runbook.core.errors import RunbookError
from runbook.core.source import quote_ident

# the non-primary unique indexes on plain columns of a table, with their constraint if any
UNIQUE_INDEXES = """
SELECT i.indexrelid, ic.relname, array_agg(a.attname ORDER BY k.n), min(con.oid),
       min(con.conname), min(pg_get_indexdef(i.indexrelid))
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary
  AND i.indexprs IS NULL
GROUP BY i.indexrelid, ic.relname
"""
DEPENDENT_KEYS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE contype = 'f' AND conindid = %s
"""


@dataclass
class SetAside:
    """What was set aside, to be made again: per table, unique constraints (name, definition)
    and plain unique indexes (definition); the foreign keys relying on them (table, name,
    definition)."""

    constraints: list[tuple[str, str, str]] = field(default_factory=list)
    indexes: list[tuple[str, str, str]] = field(default_factory=list)
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for _, name, _ in self.constraints + self.indexes]


def _collides(
    conn: psycopg.Connection, table: str, incoming: str, key: list[str], columns: list[str]
) -> bool:
    """Whether a new version (in `incoming`) holds a unique value another row still has."""
    same = " AND ".join(f"t.{quote_ident(c)} = n.{quote_ident(c)}" for c in columns)
    other = " OR ".join(f"t.{quote_ident(k)} <> n.{quote_ident(k)}" for k in key)
    found = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {quote_ident(incoming)} n "
        f"JOIN {quote_ident(table)} t ON {same} WHERE {other})"
    )
    return bool(found.fetchone()[0])


def set_aside(conn: psycopg.Connection, tables: list[tuple[str, str, list[str]]]) -> SetAside:
    """For each (table, staging table of its new versions, primary key): drop the unique
    indexes a new version collides on, and the foreign keys relying on them, in the caller's
    transaction; what `restore` makes again."""
    aside = SetAside()
    for table, incoming, key in tables:
        for oid, name, columns, constraint, constraint_name, definition in conn.execute(
            UNIQUE_INDEXES, [quote_ident(table)]
        ).fetchall():
            if not _collides(conn, table, incoming, key, columns):
                continue
            for child, fk, fk_definition in conn.execute(DEPENDENT_KEYS, [oid]).fetchall():
                conn.execute(f"ALTER TABLE {child} DROP CONSTRAINT {quote_ident(fk)}")
                aside.foreign_keys.append((child, fk, fk_definition))
            if constraint is not None:
                made = conn.execute("SELECT pg_get_constraintdef(%s)", [constraint]).fetchone()
                conn.execute(
                    f"ALTER TABLE {quote_ident(table)} DROP CONSTRAINT "
                    f"{quote_ident(constraint_name)}"
                )
                aside.constraints.append((table, constraint_name, made[0]))
            else:
                conn.execute(f"DROP INDEX {quote_ident(name)}")
                aside.indexes.append((table, name, definition))
    return aside


def restore(conn: psycopg.Connection, aside: SetAside) -> None:
    """Make the set-aside indexes and foreign keys again, in the caller's transaction: a
    duplicate left by the changes stops the catch-up there, so nothing is applied."""
    try:
        for table, name, definition in aside.constraints:
            conn.execute(
                f"ALTER TABLE {quote_ident(table)} ADD CONSTRAINT {quote_ident(name)} {definition}"
            )
        for _, _, definition in aside.indexes:
            conn.execute(definition)
        for child, name, definition in aside.foreign_keys:
            conn.execute(f"ALTER TABLE {child} ADD CONSTRAINT {quote_ident(name)} {definition}")
    except psycopg.errors.UniqueViolation as exc:
        detail = (exc.diag.message_detail or "").strip()
        raise RunbookError(
            f"the changes would leave two rows with the same unique value ({detail}); nothing "
            "was applied",
            where=exc.diag.table_name or "the target",
            fix="the target holds a row the source does not: re-verify the bulk run (runbook run "
            "SOURCE --steps verify --run-dir RUN) and migrate again with a full run",
        ) from None
