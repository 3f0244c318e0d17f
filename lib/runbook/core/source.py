"""The SQLite source: read-only access, reflection of tables, keys and foreign keys, integrity."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from runbook.core.errors import RunbookError

if TYPE_CHECKING:
    import apsw

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Column:
    """One source column as SQLite declares it."""

    name: str
    declared: str
    notnull: bool
    pk_position: int  # 0 when not part of the primary key


@dataclass(frozen=True)
class ForeignKey:
    """A declared foreign key (SQLite does not enforce it unless asked)."""

    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """One source table with what the migration needs to know about it."""

    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...]

    @property
    def primary_key(self) -> tuple[str, ...]:
        """Primary-key column names in key order (empty when the table has none)."""
        keyed = sorted((c for c in self.columns if c.pk_position), key=lambda c: c.pk_position)
        return tuple(c.name for c in keyed)

    @property
    def column_names(self) -> tuple[str, ...]:
        """All column names in table order."""
        return tuple(c.name for c in self.columns)


def check_file(path: str | Path) -> Path:
    """The path if it names a readable SQLite database file, else a RunbookError saying why."""
    path = Path(path)
    fix = "pass the path of the application's SQLite database (e.g. backend/dispatch.db)"
    if not path.exists():
        raise RunbookError(f"the source database {path} does not exist", fix=fix)
    if not path.is_file():
        raise RunbookError(f"the source {path} is not a file", fix=fix)
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except PermissionError:
        raise RunbookError(
            f"the source {path} cannot be read (permission denied)",
            fix="run as a user that can read the file, or copy it with the right permissions",
        ) from None
    if header != SQLITE_HEADER:
        raise RunbookError(f"the source {path} is not a SQLite database (wrong header)", fix=fix)
    return path


def open_readonly(path: str | Path, wait_seconds: float = 5.0) -> sqlite3.Connection:
    """Open a SQLite file read-only: the runbook never writes to, checkpoints or locks a source
    beyond the shared lock of a read; a writer's lock is waited for up to `wait_seconds`."""
    path = check_file(path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=wait_seconds)
    conn.execute("PRAGMA query_only = 1")
    conn.text_factory = decode_text
    return conn


def open_readonly_fast(path: str | Path, wait_seconds: float = 5.0) -> apsw.Connection:
    """The same read-only access through apsw, for reading a whole table fast: its SQLite
    (current, built with the wheel) evaluates SQL such as verify's canonical text about twice as
    fast as the system library the standard module links, and hands rows to Python faster
    (measured: 0.78 s instead of 1.51 s for the 1M temperature logs at scale 1). Text comes back
    as str (strict UTF-8), a BLOB as bytes; no Python SQL functions are registered."""
    import apsw

    path = check_file(path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    conn.set_busy_timeout(int(wait_seconds * 1000))
    conn.execute("PRAGMA query_only = 1")
    return conn


def decode_text(raw: bytes) -> str:
    """SQLite text as str; bytes that are not UTF-8 survive as surrogates (never an exception,
    never a silent replacement), so a checker can still see and report them."""
    return raw.decode("utf-8", "surrogateescape")


def quote_ident(name: str) -> str:
    """An identifier quoted for SQLite and PostgreSQL alike."""
    return '"' + name.replace('"', '""') + '"'


def table_names(conn: sqlite3.Connection) -> list[str]:
    """User tables in creation order (SQLite's internal tables left out)."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    )
    return [name for (name,) in rows]


def reflect(conn: sqlite3.Connection) -> list[Table]:
    """Every user table with its columns, primary key and foreign keys, as SQLite declares them."""
    tables = []
    for name in table_names(conn):
        columns = tuple(
            Column(row[1], row[2] or "", bool(row[3]), row[5])
            for row in conn.execute(f"PRAGMA table_info({quote_ident(name)})")
        )
        grouped: dict[int, list[tuple]] = {}
        for row in conn.execute(f"PRAGMA foreign_key_list({quote_ident(name)})"):
            grouped.setdefault(row[0], []).append(row)
        fks = tuple(
            ForeignKey(
                tuple(r[3] for r in rows),
                rows[0][2],
                tuple(r[4] for r in rows),
            )
            for _, rows in sorted(grouped.items())
        )
        tables.append(Table(name, columns, fks))
    return tables


def row_counts(conn: sqlite3.Connection, tables: list[str] | None = None) -> dict[str, int]:
    """Exact row count of each table."""
    names = tables if tables is not None else table_names(conn)
    return {n: conn.execute(f"SELECT count(*) FROM {quote_ident(n)}").fetchone()[0] for n in names}


def table_sizes(conn: sqlite3.Connection) -> dict[str, int]:
    """Bytes used by each table and its indexes (from the dbstat virtual table)."""
    sizes: dict[str, int] = {}
    try:
        rows = conn.execute(
            "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
            "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1"
        ).fetchall()
    except sqlite3.OperationalError:  # SQLite built without dbstat
        return sizes
    for name, size in rows:
        if not name.startswith("sqlite_"):
            sizes[name] = sizes.get(name, 0) + size
    return sizes


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """What `PRAGMA integrity_check` reports (empty when the file is sound)."""
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    return [] if rows == ["ok"] else rows


def foreign_key_problems(conn: sqlite3.Connection) -> list[dict]:
    """Rows whose foreign key points at no parent (`PRAGMA foreign_key_check`)."""
    return [
        {"table": table, "rowid": rowid, "parent": parent, "fk_index": index}
        for table, rowid, parent, index in conn.execute("PRAGMA foreign_key_check")
    ]
