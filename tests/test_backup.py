"""Step 01's snapshot: SQLite's online backup API sees committed rows still in the -wal file
(a plain copy of the main file does not), a rollback-journal file is copied as its bytes while
the read lock keeps writers off it, and the source is never modified."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.engine import snapshot as snapshots
from runbook.steps.backup import require_sound, snapshot

CRASHING_WRITER = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA wal_autocheckpoint = 0")
db.execute("CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, note TEXT)")
db.executemany("INSERT INTO readings (note) VALUES (?)", [("냉장 %d" % i,) for i in range(500)])
os._exit(0)  # the application dies: committed rows stay in dispatch.db-wal, never checkpointed
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


@pytest.fixture
def wal_source(tmp_path: Path) -> Path:
    source = tmp_path / "app" / "dispatch.db"
    source.parent.mkdir()
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(source)], check=True)
    assert Path(f"{source}-wal").stat().st_size > 0
    return source


def test_backup_includes_rows_only_in_the_wal_and_leaves_the_source_alone(
    wal_source: Path, tmp_path: Path
) -> None:
    # the database and its WAL; -shm is SQLite's shared-memory index, which every reader
    # (the application's own included) rebuilds after a crash
    files = [wal_source, Path(f"{wal_source}-wal")]
    before = {f.name: digest(f) for f in files}

    plain_copy = tmp_path / "cp.db"
    shutil.copy(wal_source, plain_copy)  # what `cp dispatch.db` gives
    with sqlite3.connect(plain_copy) as lite:
        tables = lite.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    assert tables == 0  # the table and its 500 rows exist only in the -wal file

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    result = snapshot(wal_source, run)
    assert result["row_counts"] == {"readings": 500}
    assert result["integrity_check"] == ["ok"]
    assert json.loads((run.path / "backup.json").read_text())["sha256"] == result["sha256"]
    assert {f.name: digest(f) for f in files} == before  # not modified, not checkpointed


def test_backup_of_a_database_another_process_is_writing(tmp_path: Path) -> None:
    source = tmp_path / "busy.db"
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("INSERT INTO t (v) VALUES ('committed')")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t (v) VALUES ('not yet committed')")
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    result = snapshot(source, run)  # rollback journal mode: readers see the committed state
    writer.execute("ROLLBACK")
    writer.close()
    assert result["row_counts"] == {"t": 1}


TRY_TO_WRITE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    db.execute("INSERT INTO t (v) VALUES ('written during the copy')")
    print("written")
except sqlite3.OperationalError as exc:
    print(exc)
"""


def test_a_rollback_journal_database_is_copied_as_its_bytes_under_the_read_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "plain.db"
    with sqlite3.connect(source) as lite:
        lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        lite.executemany("INSERT INTO t (v) VALUES (?)", [(f"냉장 {i}",) for i in range(2000)])
    writers = []
    copy_as_is = snapshots._copied_as_is

    def copy_then_let_a_writer_try(raw: int, copy: Path) -> bool:
        copied = copy_as_is(raw, copy)
        attempt = [sys.executable, "-c", TRY_TO_WRITE, str(source)]
        writers.append(subprocess.run(attempt, capture_output=True, text=True).stdout.strip())
        return copied

    monkeypatch.setattr(snapshots, "_copied_as_is", copy_then_let_a_writer_try)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    result = snapshot(source, run)
    assert writers == ["database is locked"]  # the read lock held until the copy was whole
    assert run.backup_path.read_bytes() == source.read_bytes()
    assert result["row_counts"] == {"t": 2000} and result["integrity_check"] == ["ok"]


BUSY_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("PRAGMA synchronous = OFF")  # commits back to back, the lock rarely free for long
n = 0
while True:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO entries (amount, note) VALUES (?, ?)", (n, "냉장 " * 50))
    db.execute("UPDATE totals SET total = total + ?, entries = entries + 1", (n,))
    db.execute("COMMIT")
    if n == 1:
        print("writing", flush=True)
"""


def test_snapshots_taken_while_a_writer_commits_are_each_one_consistent_state(
    tmp_path: Path,
) -> None:
    """Each copy of a rollback-journal database taken while another process commits one
    transaction after the other holds every transaction whole or not at all (the totals row
    agrees with the entries) and passes SQLite's integrity check. (Copying with the lock dropped
    fails this once a commit lands mid-copy; that the lock is held is proven by the test above.)"""
    source = tmp_path / "busy.db"
    with sqlite3.connect(source) as lite:
        lite.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, amount INTEGER, note TEXT)")
        lite.execute("CREATE INDEX entries_amount ON entries (amount)")
        lite.execute("CREATE TABLE totals (total INTEGER, entries INTEGER)")
        lite.execute("INSERT INTO totals VALUES (0, 0)")
    writer = subprocess.Popen(
        [sys.executable, "-c", BUSY_WRITER, str(source)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        seen = []
        for attempt in range(5):
            copy = tmp_path / f"copy-{attempt}.db"
            snapshots.online_copy(source, copy, flush=False)
            with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as lite:
                assert lite.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                total, entries = lite.execute("SELECT total, entries FROM totals").fetchone()
                rows, amounts = lite.execute("SELECT count(*), sum(amount) FROM entries").fetchone()
            assert (rows, amounts or 0) == (entries, total)  # every transaction whole, or absent
            seen.append(rows)
        assert seen == sorted(seen) and seen[-1] > 0
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize(("code", "outcome"), [("EINVAL", "copied"), ("ENOSPC", "refused")])
def test_a_file_system_without_sendfile_gets_the_backup_api_and_a_full_disk_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, outcome: str
) -> None:
    import errno
    import os

    source = tmp_path / "plain.db"
    with sqlite3.connect(source) as lite:
        lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        lite.execute("INSERT INTO t (v) VALUES ('kept')")

    def refuse(*_: object) -> int:
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(snapshots.os, "sendfile", refuse)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    if outcome == "copied":
        result = snapshot(source, run)
        assert result["row_counts"] == {"t": 1} and result["integrity_check"] == ["ok"]
    else:
        with pytest.raises(RunbookError, match="could not be written: No space left") as error:
            snapshot(source, run)
        assert "free space" in str(error.value)
        assert not run.backup_path.exists() and not (run.path / "backup.json").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], "is not a file"),
        (lambda p: (p.write_text("id,name\n1,x\n"), p)[1], "not a SQLite database"),
    ],
)
def test_a_bad_source_is_a_clear_error(tmp_path: Path, make, message: str) -> None:
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    with pytest.raises(RunbookError, match=message):
        snapshot(make(tmp_path / "dispatch.db"), run)
    assert not (run.path / "backup.json").exists()


def test_an_empty_database_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "none.db"
    with sqlite3.connect(empty) as lite:
        lite.execute("PRAGMA user_version = 1")
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    with pytest.raises(RunbookError, match="holds no tables"):
        snapshot(empty, run)


def _damaged(tmp_path: Path, how: str) -> Path:
    from coldchain.sample import generate

    source = tmp_path / "good.db"
    generate(source, scale=0.002, seed=1)
    data = source.read_bytes()
    damaged = {
        "truncated": data[: len(data) * 6 // 10],
        "newer_format": data[:18] + bytes([3, 3]) + data[20:],
        "garbage_page": data[:8192] + b"\xff" * 4096 + data[12288:],
    }[how]
    path = tmp_path / f"{how}.db"
    path.write_bytes(damaged)
    return path


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "could not be copied: database disk image is malformed"),
        ("newer_format", "asks for SQLite file format 3"),
        ("garbage_page", "integrity_check failed"),
    ],
)
def test_a_damaged_or_newer_file_is_a_clear_error(tmp_path: Path, how: str, message: str) -> None:
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    with pytest.raises(RunbookError, match=message) as error:
        snapshot(_damaged(tmp_path, how), run)
    assert "What to do" in str(error.value)
    assert not (run.path / "backup.json").exists()


def test_a_corrupt_copy_stops_the_run() -> None:
    with pytest.raises(RunbookError, match="integrity_check failed"):
        require_sound({"integrity_check": ["*** in database main ***", "Page 3: btree error"]})


LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("INSERT INTO t (v) VALUES ('written under the lock')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@pytest.mark.parametrize(
    ("hold", "wait", "outcome"), [(2.0, 20.0, "copied"), (30.0, 1.0, "refused")]
)
def test_a_long_held_write_lock_is_waited_for_within_a_bound(
    tmp_path: Path, hold: float, wait: float, outcome: str
) -> None:
    import time

    source = tmp_path / "locked.db"
    with sqlite3.connect(source) as lite:
        lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        lite.execute("INSERT INTO t (v) VALUES ('before')")
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(source), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        run = RunFolder(tmp_path / "run")
        run.path.mkdir()
        started = time.monotonic()
        if outcome == "copied":
            result = snapshot(source, run, wait_seconds=wait)
            assert result["row_counts"] == {"t": 2}  # the writer's commit, whole
        else:
            with pytest.raises(RunbookError, match="stayed locked by another process"):
                snapshot(source, run, wait_seconds=wait)
            assert time.monotonic() - started < wait + 10
            assert not run.backup_path.exists()
    finally:
        holder.kill()
        holder.wait()


def test_table_sizes_add_up_every_page_of_a_table_and_its_indexes(tmp_path: Path) -> None:
    """The sizes step 01 records (a row per b-tree from dbstat) are the bytes of every page of
    a table and its indexes: overflow pages of long text and a WITHOUT ROWID table included."""
    from runbook.core.source import table_sizes

    path = tmp_path / "sizes.db"
    with sqlite3.connect(path) as lite:
        lite.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        lite.execute("CREATE INDEX notes_body ON notes (substr(body, 1, 10))")
        lite.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT) WITHOUT ROWID")
        lite.executemany("INSERT INTO notes (body) VALUES (?)", [("냉장" * 3000,)] * 40)
        codes = [(f"c{i}", "x" * i) for i in range(300)]
        lite.executemany("INSERT INTO codes VALUES (?, ?)", codes)
    conn = sqlite3.connect(path)
    per_page = dict.fromkeys(("notes", "codes"), 0)
    for name, size in conn.execute(
        "SELECT coalesce(m.tbl_name, s.name), s.pgsize FROM dbstat s "
        "LEFT JOIN sqlite_master m ON m.name = s.name"
    ):
        if name in per_page:
            per_page[name] += size
    assert table_sizes(conn) == per_page
    assert per_page["notes"] > 40 * 18000  # the overflow pages of the long text are counted
    conn.close()
