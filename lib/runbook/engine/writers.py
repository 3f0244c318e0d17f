"""Is anyone still writing to the source? Before the cutover the application must have stopped:
no process may hold a write transaction on the database (SQLite's RESERVED lock, or the WAL
write lock), and nothing may be committed for a quiet period. Everything here only looks: a
lock is tested with F_GETLK (which places none), commits are seen by `PRAGMA data_version`
through a read-only connection, and the processes that have the file open are named from
/proc where the system has it."""

from __future__ import annotations

import fcntl
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError

PENDING_BYTE = 0x40000000  # SQLite's lock bytes in the database file (os_unix.c)
RESERVED_BYTE = PENDING_BYTE + 1
WAL_WRITE_LOCK = 120  # the write lock's byte in the -shm file (WAL mode)


def _lock_holder(path: Path, offset: int) -> int | None:
    """The process holding a lock that conflicts with a write lock on byte `offset` of the
    file (F_GETLK: nothing is locked by asking), or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        request = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, request)
        kind, _, _, _, pid = struct.unpack("@hhqqi4x", answer)
        return pid if kind != fcntl.F_UNLCK else None
    finally:
        os.close(fd)


def write_lock_holder(path: Path) -> int | None:
    """The process with an open write transaction on the database, or None: SQLite's RESERVED
    lock (rollback journal), or the WAL write lock in the -shm file (WAL mode)."""
    holder = _lock_holder(path, RESERVED_BYTE)
    if holder is None:
        shm = path.with_name(path.name + "-shm")
        if shm.exists():
            holder = _lock_holder(shm, WAL_WRITE_LOCK)
    return holder


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(raw.replace(b"\0", b" ").decode("utf-8", "replace").split())[:120] or "?"


def openers(path: Path) -> dict[int, str]:
    """The other processes that have the database (or its -wal/-shm files) open, with their
    command lines (from /proc; empty where the system has none)."""
    names = {str(path.resolve()), *(f"{path.resolve()}-{s}" for s in ("wal", "shm", "journal"))}
    found: dict[int, str] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in names:
                    found[int(entry.name)] = _command(int(entry.name))
                    break
            except OSError:
                continue
    return found


@dataclass
class Quiet:
    """What the check saw: how long it waited, who had the file open, and the files' size and
    modification time (a later write changes them)."""

    waited: float
    quiet_seconds: float
    openers: dict[int, str] = field(default_factory=dict)
    signature: tuple = ()


def signature(path: Path) -> tuple:
    """Size and modification time of the database and its -wal file."""
    found = []
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            stat = name.stat()
            found.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            found.append(None)
    return tuple(found)


def _named(path: Path, pid: int | None) -> str:
    """The processes to name in a refusal: the lock holder, and everyone with the file open."""
    others = openers(path)
    if pid is not None:
        others.setdefault(pid, _command(pid))
    listed = ", ".join(f"process {p} ({c})" for p, c in sorted(others.items()))
    return f" (the file is open in {listed})" if listed else ""


def require_stopped(path: Path, wait_seconds: float = 10.0, quiet_seconds: float = 1.0) -> Quiet:
    """Refuse, in one sentence naming who holds the source, unless no process holds a write
    transaction on it (waited for up to `wait_seconds`) and nothing is committed to it for
    `quiet_seconds` within that time."""
    sqlite_source.check_file(path)
    started = time.monotonic()
    conn = sqlite_source.open_readonly(path, wait_seconds)
    try:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        quiet_since = time.monotonic()
        while True:
            holder = write_lock_holder(path)
            now_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if holder is not None or now_version != version:
                version, quiet_since = now_version, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_seconds:
                waited = round(time.monotonic() - started, 3)
                return Quiet(waited, quiet_seconds, openers(path), signature(path))
            if time.monotonic() - started > wait_seconds:
                doing = "holds a write transaction on" if holder is not None else "wrote to"
                who = f"process {holder}" if holder is not None else "another process"
                named = _named(path, holder)
                raise RunbookError(
                    f"the application has not stopped: {who} still {doing} the source "
                    f"{path.name} after {wait_seconds:g} s{named}; nothing was changed",
                    fix="stop the application (every process that writes to the database), "
                    "then run the cutover again",
                )
            time.sleep(0.05)
    finally:
        conn.close()


def unchanged_since(path: Path, quiet: Quiet, snapshot_sha: str) -> None:
    """After the cutover: nobody wrote to the source, nor holds a write lock, since the quiet
    check (such a write would not be in the final snapshot the target now holds)."""
    holder = write_lock_holder(path)
    if holder is not None or signature(path) != quiet.signature:
        who = f"process {holder}" if holder is not None else "another process"
        raise RunbookError(
            f"{who} wrote to the source {path.name} during the cutover; the target holds the "
            f"snapshot {snapshot_sha[:12]}…, not what was written since",
            fix="stop the application, then run the cutover again (it applies the rest)",
        )
