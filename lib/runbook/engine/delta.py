"""The changes between two snapshots of the source, per table by primary key: rows inserted,
updated (old and new values) and deleted. Only the suspect key ranges (`pages`) are compared,
inside SQLite: the new snapshot with the old one attached, row by row by rowid, every column
compared exactly (binary collation, and its storage class: 1 and 1.0 and '1' differ)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runbook.core.errors import RunbookError
from runbook.core.source import Table, decode_text, quote_ident
from runbook.engine.pages import WHOLE, Suspects, suspects

LOW, HIGH = -(1 << 63), (1 << 63) - 1


@dataclass
class TableChanges:
    """What changed in one table: source rowids of the new snapshot (inserted, updated) and
    of the old one (deleted), and the primary key of each deleted row."""

    table: str
    inserted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    deleted_keys: list[tuple] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.inserted) + len(self.updated) + len(self.deleted)

    def counts(self) -> dict[str, int]:
        return {
            "inserted": len(self.inserted),
            "updated": len(self.updated),
            "deleted": len(self.deleted),
        }


@dataclass
class Delta:
    """The changes from one snapshot to the next, and what finding them cost."""

    tables: dict[str, TableChanges]
    pages: int = 0
    changed_pages: int = 0
    compared_rows: int = 0

    @property
    def total(self) -> int:
        return sum(t.total for t in self.tables.values())


def open_pair(new: Path, base: Path) -> sqlite3.Connection:
    """The new snapshot, read-only, with the base one attached as `base`."""
    conn = sqlite3.connect(f"file:{quote(str(new.resolve()))}?mode=ro", uri=True)
    conn.execute("ATTACH ? AS base", [f"file:{quote(str(base.resolve()))}?mode=ro"])
    return conn


def _merged(spans: list[tuple[int | None, int | None]]) -> list[tuple[int, int]]:
    """Leaf key ranges (lowest exclusive, highest inclusive, None unbounded) as inclusive
    ranges, merged where they touch or overlap."""
    bounds = sorted((LOW if lo is None else lo + 1, HIGH if hi is None else hi) for lo, hi in spans)
    merged: list[list[int]] = []
    for lo, hi in bounds:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _differs(table: Table) -> str:
    """SQL true when the row `n` differs from the row `o` in any column: value (binary
    collation, whatever the column declares), and for a column without type affinity also its
    storage class (1 and 1.0 are equal values; a typed column stores only one of them, so
    typeof(), which costs 60 % of the comparison, is asked only where it can differ)."""
    tests = []
    for column in table.columns:
        c = quote_ident(column.name)
        test = f"n.{c} IS NOT o.{c} COLLATE BINARY"
        if _no_affinity(column.declared):
            test += f" OR typeof(n.{c}) <> typeof(o.{c})"
        tests.append(test)
    return " OR ".join(f"({t})" for t in tests) or "0"


def _no_affinity(declared: str) -> bool:
    """SQLite's rule: a declared type containing INT, CHAR/CLOB/TEXT or REAL/FLOA/DOUB, or any
    other declared type (NUMERIC affinity), converts what it stores; only an empty declared
    type or one containing BLOB keeps every value's storage class as given."""
    upper = declared.upper()
    if any(word in upper for word in ("INT", "CHAR", "CLOB", "TEXT")):
        return False
    return not upper or "BLOB" in upper


def _candidates(conn: sqlite3.Connection, table: Table, spans: list, rowids: set[int]) -> None:
    """Fill temp table `candidate` with the rowids of either snapshot in the suspect ranges."""
    name = quote_ident(table.name)
    conn.execute("DELETE FROM temp.candidate")
    conn.execute("DELETE FROM temp.span")
    if WHOLE in spans:
        conn.execute(
            f"INSERT OR IGNORE INTO temp.candidate SELECT rowid FROM main.{name} "
            f"UNION SELECT rowid FROM base.{name}"
        )
        return
    conn.executemany("INSERT INTO temp.span VALUES (?, ?)", _merged(spans))
    for side in ("main", "base"):
        conn.execute(
            f"INSERT OR IGNORE INTO temp.candidate SELECT t.rowid FROM temp.span s "
            f"JOIN {side}.{name} t ON t.rowid BETWEEN s.lo AND s.hi"
        )
    conn.executemany("INSERT OR IGNORE INTO temp.candidate VALUES (?)", [(r,) for r in rowids])


def _table_changes(conn: sqlite3.Connection, table: Table) -> tuple[TableChanges, int]:
    """Compare the candidate rows of one table between the snapshots; (changes, rows
    compared). A table whose key is not its rowid is matched by its key: a row SQLite renumbered
    (VACUUM) is then an update, not a delete and an insert."""
    name = quote_ident(table.name)
    rows = conn.execute(
        f"SELECT c.r, n.rowid IS NOT NULL, o.rowid IS NOT NULL FROM temp.candidate c "
        f"LEFT JOIN main.{name} n ON n.rowid = c.r LEFT JOIN base.{name} o ON o.rowid = c.r "
        f"WHERE n.rowid IS NULL OR o.rowid IS NULL OR {_differs(table)}"
    ).fetchall()
    compared = conn.execute("SELECT count(*) FROM temp.candidate").fetchone()[0]
    changes = TableChanges(table.name)
    for rowid, in_new, in_base in rows:
        if in_new and in_base:
            changes.updated.append(rowid)
        elif in_new:
            changes.inserted.append(rowid)
        else:
            changes.deleted.append(rowid)
    if changes.deleted:
        changes.deleted_keys = keys_of(conn, "base", table, changes.deleted)
    if table.primary_key and not _rowid_is_key(table):
        _match_renumbered(conn, table, changes)
    return changes, compared


def _rowid_is_key(table: Table) -> bool:
    """True when the primary key is the rowid itself (INTEGER PRIMARY KEY)."""
    if len(table.primary_key) != 1:
        return False
    column = next(c for c in table.columns if c.name == table.primary_key[0])
    return column.declared.upper() == "INTEGER"


def keys_of(conn: sqlite3.Connection, side: str, table: Table, rowids: list[int]) -> list[tuple]:
    """The primary key (or the rowid, for a table without one) of the given rows, in order
    (every one of them must be there)."""
    found = present_keys(conn, side, table, rowids)
    return [found[r] for r in rowids]


def present_keys(
    conn: sqlite3.Connection, side: str, table: Table, rowids: list[int]
) -> dict[int, tuple]:
    """The primary key (or the rowid) of those of the given rows the snapshot holds."""
    key = ", ".join(quote_ident(c) for c in table.primary_key) or "rowid"
    found = dict(
        (row[0], tuple(row[1:]))
        for row in conn.execute(
            f"SELECT rowid, {key} FROM {side}.{quote_ident(table.name)} "
            "WHERE rowid IN (SELECT value FROM json_each(?))",
            [_json_list(rowids)],
        )
    )
    return found


def _match_renumbered(conn: sqlite3.Connection, table: Table, changes: TableChanges) -> None:
    """A deleted row whose key an inserted row carries is the same row renumbered (VACUUM,
    INSERT OR REPLACE): an update when its values differ, else no change at all."""
    if not (changes.inserted and changes.deleted):
        return
    inserted = dict(
        zip(keys_of(conn, "main", table, changes.inserted), changes.inserted, strict=True)
    )
    pairs = [
        (inserted[k], r)
        for r, k in zip(changes.deleted, changes.deleted_keys, strict=True)
        if k in inserted
    ]
    if not pairs:
        return
    name = quote_ident(table.name)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS pair (n INTEGER, o INTEGER)")
    conn.execute("DELETE FROM temp.pair")
    conn.executemany("INSERT INTO temp.pair VALUES (?, ?)", pairs)
    differing = {
        n
        for (n,) in conn.execute(
            f"SELECT p.n FROM temp.pair p JOIN main.{name} n ON n.rowid = p.n "
            f"JOIN base.{name} o ON o.rowid = p.o WHERE {_differs(table)}"
        )
    }
    matched_new, matched_old = {n for n, _ in pairs}, {o for _, o in pairs}
    changes.updated = sorted(set(changes.updated) | differing)
    changes.inserted = [r for r in changes.inserted if r not in matched_new]
    kept = [
        (r, k)
        for r, k in zip(changes.deleted, changes.deleted_keys, strict=True)
        if r not in matched_old
    ]
    changes.deleted = [r for r, _ in kept]
    changes.deleted_keys = [k for _, k in kept]


def _json_list(values: list[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def _require_same_schema(conn: sqlite3.Connection) -> None:
    query = "SELECT type, name, sql FROM {}.sqlite_master WHERE sql IS NOT NULL ORDER BY 1, 2"
    before = conn.execute(query.format("base")).fetchall()
    after = conn.execute(query.format("main")).fetchall()
    if before != after:
        changed = sorted({r[1] for r in set(before) ^ set(after)})
        raise RunbookError(
            f"the source's schema changed since the snapshot the target holds "
            f"({', '.join(changed[:5])}); a catch-up moves rows, not schema changes",
            fix="migrate the application's new schema with a full run (runbook run) instead",
        )


def compute(base: Path, new: Path, tables: list[Table]) -> Delta:
    """The changes from snapshot `base` to snapshot `new` for the given tables."""
    found: Suspects = suspects(base, new)
    conn = open_pair(new, base)
    try:
        _require_same_schema(conn)
        conn.execute("CREATE TEMP TABLE candidate (r INTEGER PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE span (lo INTEGER, hi INTEGER)")
        delta = Delta({}, found.pages, found.changed)
        for table in tables:
            if table.name not in found.tables():
                continue
            if found.keyed.get(table.name):
                raise RunbookError(
                    f"table {table.name} is a WITHOUT ROWID table and changed since the "
                    "snapshot the target holds; a catch-up follows rows by rowid",
                    where=table.name,
                    fix="migrate again with a full run (runbook run) once the application "
                    "has stopped",
                )
            _candidates(
                conn, table, found.ranges.get(table.name, []), found.rowids.get(table.name, set())
            )
            changes, compared = _table_changes(conn, table)
            delta.compared_rows += compared
            if changes.total:
                delta.tables[table.name] = changes
        return delta
    finally:
        conn.close()


def rows(path: Path, table: Table, rowids: list[int]) -> dict[int, tuple[Any, ...]]:
    """The rows with the given rowids of one snapshot, by rowid (for the record of changes)."""
    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    conn.text_factory = decode_text
    try:
        columns = ", ".join(quote_ident(c) for c in table.column_names)
        return {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                f"SELECT rowid, {columns} FROM {quote_ident(table.name)} "
                "WHERE rowid IN (SELECT value FROM json_each(?))",
                [_json_list(rowids)],
            )
        }
    finally:
        conn.close()
