"""The delta between two snapshots, found from the pages that differ and then row by row, is
exactly what a full comparison of the two files finds: inserted, updated and deleted rows by
primary key, whatever the operations between them (long rows rewritten in place on their
overflow pages, rows moved by VACUUM, tables keyed by text or without a key); a changed WITHOUT
ROWID table is refused with what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runbook.core import source as sqlite_source
from runbook.engine import delta, pages

SCHEMA = """
CREATE TABLE logs (id INTEGER PRIMARY KEY, note TEXT, value REAL, blob BLOB);
CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT);
CREATE TABLE loose (x, y);
"""
LONG = 6000  # bytes: a row this long spills onto overflow pages (4 KiB pages)


def _copy(src: Path, dst: Path) -> None:
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    source.backup(target)
    target.close()
    source.close()


def _rows(path: Path, table: sqlite_source.Table) -> dict:
    """Every row by its key (rowid for a table without one), values with their types."""
    conn = sqlite3.connect(path)
    key = ", ".join(f'"{c}"' for c in table.primary_key) or "rowid"
    columns = ", ".join(f'"{c}", typeof("{c}")' for c in table.column_names)
    width = len(table.primary_key) or 1
    query = f'SELECT {key}, {columns} FROM "{table.name}"'
    found = {tuple(row[:width]): row[width:] for row in conn.execute(query)}
    conn.close()
    return found


def _by_key(base: Path, new: Path, table: sqlite_source.Table, changes: delta.TableChanges):
    """The delta's rows as keys: inserted and updated in the new file, deleted in the base."""
    conn = delta.open_pair(new, base)
    try:
        inserted = set(delta.keys_of(conn, "main", table, changes.inserted))
        updated = set(delta.keys_of(conn, "main", table, changes.updated))
    finally:
        conn.close()
    return inserted, updated, set(changes.deleted_keys)


def _expected(base: Path, new: Path, table: sqlite_source.Table):
    before, after = _rows(base, table), _rows(new, table)
    changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    return set(after) - set(before), changed, set(before) - set(after)


OPERATION = st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 400), st.integers(0, LONG)),
    st.tuples(st.just("update"), st.integers(1, 400), st.integers(0, LONG)),
    st.tuples(st.just("same_size"), st.integers(1, 400), st.integers(0, LONG)),
    st.tuples(st.just("delete"), st.integers(1, 400), st.just(0)),
    st.tuples(st.just("vacuum"), st.just(0), st.just(0)),
)


def _apply(conn: sqlite3.Connection, operation: tuple[str, int, int]) -> None:
    kind, key, size = operation
    text = f"{key:06d}" + "x" * size
    if kind == "insert":
        conn.execute(
            "INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?)",
            [key, text, key / 7, b"\0" * (key % 5)],
        )
        conn.execute("INSERT OR REPLACE INTO codes VALUES (?, ?)", [f"C{key}", text[:50]])
        conn.execute("INSERT INTO loose VALUES (?, ?)", [key, 1.0 if key % 2 else 1])
    elif kind == "update":
        conn.execute("UPDATE logs SET note = ? WHERE id = ?", [text, key])
        conn.execute("UPDATE codes SET label = ? WHERE code = ?", [str(size), f"C{key}"])
        conn.execute("UPDATE loose SET y = ? WHERE x = ?", [str(size), key])
    elif kind == "same_size":  # one byte changed deep in a long row: its overflow page only
        conn.execute(
            "UPDATE logs SET note = substr(note, 1, length(note) - 1) || "
            "CASE substr(note, -1) WHEN 'x' THEN 'y' ELSE 'x' END WHERE id = ?",
            [key],
        )
        flipped = "CASE WHEN typeof(y) = 'integer' THEN 1.0 ELSE 1 END"  # same value, new type
        conn.execute(f"UPDATE loose SET y = {flipped} WHERE x = ?", [key])
    elif kind == "delete":
        conn.execute("DELETE FROM logs WHERE id = ?", [key])
        conn.execute("DELETE FROM codes WHERE code = ?", [f"C{key}"])
        conn.execute("DELETE FROM loose WHERE x = ?", [key])
    else:
        conn.execute("VACUUM")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    before=st.lists(OPERATION, min_size=20, max_size=60),
    between=st.lists(OPERATION, min_size=1, max_size=25),
)
def test_the_delta_is_what_a_full_comparison_finds(tmp_path: Path, before, between) -> None:
    live, base, new = tmp_path / "live.db", tmp_path / "base.db", tmp_path / "new.db"
    for path in (live, base, new):
        path.unlink(missing_ok=True)
    conn = sqlite3.connect(live, isolation_level=None)
    conn.executescript(SCHEMA)
    for operation in before:
        _apply(conn, operation)
    _copy(live, base)
    for operation in between:
        _apply(conn, operation)
    conn.close()
    _copy(live, new)
    reader = sqlite_source.open_readonly(new)
    tables = sqlite_source.reflect(reader)
    reader.close()
    found = delta.compute(base, new, tables)
    for table in tables:
        changes = found.tables.get(table.name) or delta.TableChanges(table.name)
        assert _by_key(base, new, table, changes) == _expected(base, new, table), table.name


def test_a_long_row_rewritten_in_place_is_traced_from_its_overflow_page(tmp_path: Path) -> None:
    """Updating one byte of a long row keeps its size: SQLite rewrites only the overflow page,
    not the leaf; the change is still found, by the row's rowid."""
    live, base, new = tmp_path / "live.db", tmp_path / "base.db", tmp_path / "new.db"
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?)",
        [(i, "x" * (LONG if i % 7 == 0 else 20)) for i in range(1, 400)],
    )
    _copy(live, base)
    conn.execute("UPDATE t SET v = substr(v, 1, 4499) || 'Y' || substr(v, 4501) WHERE id = 14")
    conn.close()
    _copy(live, new)
    found = pages.suspects(base, new)
    assert found.ranges == {} and found.rowids == {"t": {14}}
    reader = sqlite_source.open_readonly(new)
    changes = delta.compute(base, new, sqlite_source.reflect(reader)).tables["t"]
    reader.close()
    assert (changes.inserted, changes.updated, changes.deleted) == ([], [14], [])


def test_a_changed_schema_is_refused(tmp_path: Path) -> None:
    from runbook.core.errors import RunbookError

    live, base, new = tmp_path / "live.db", tmp_path / "base.db", tmp_path / "new.db"
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    _copy(live, base)
    conn.execute("ALTER TABLE t ADD COLUMN w TEXT")
    conn.close()
    _copy(live, new)
    reader = sqlite_source.open_readonly(new)
    tables = sqlite_source.reflect(reader)
    reader.close()
    with pytest.raises(RunbookError, match="schema changed.*full run"):
        delta.compute(base, new, tables)


def test_a_changed_without_rowid_table_is_refused_with_what_to_do(tmp_path: Path) -> None:
    from runbook.core.errors import RunbookError

    live, base, new = tmp_path / "live.db", tmp_path / "base.db", tmp_path / "new.db"
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("CREATE TABLE keyed (a INTEGER, b TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO keyed VALUES (?, ?)", [(i, str(i)) for i in range(500)])
    _copy(live, base)
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    _copy(live, new)
    reader = sqlite_source.open_readonly(new)
    tables = sqlite_source.reflect(reader)
    reader.close()
    assert set(delta.compute(base, new, tables).tables) == {"t"}  # unchanged: no refusal
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("UPDATE keyed SET b = 'changed' WHERE a = 250")
    conn.close()
    new.unlink()
    _copy(live, new)
    with pytest.raises(RunbookError, match="keyed is a WITHOUT ROWID table.*full run"):
        delta.compute(base, new, tables)
