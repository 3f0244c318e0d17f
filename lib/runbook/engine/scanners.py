"""The values scan of a whole backup (`values.scan_values` per part): each table cut into rowid
ranges by its rows, the ranges scanned in worker processes, started ahead while the schema is
made, or here for a small database."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runbook.columns.conversions import open_fast_source
from runbook.columns.plan import ColumnPlan
from runbook.core import source as sqlite_source
from runbook.core.workers import Started, in_processes, start_workers, stop_workers
from runbook.engine.values import Recorded, Source, scan_values

SPLIT_ROWS = 50_000  # a larger table's values are scanned in rowid ranges of this many rows
PROCESSES = min(4, os.cpu_count() or 1)  # ranges scanned at once, each in its own process
IN_PROCESS_ROWS = 100_000  # a database this small is scanned here (a process costs ~0.1 s)


Range = tuple[int, tuple[int, int] | None]  # its rows (about), rowid bounds (None: no rowid)


def _ranges(conn: sqlite3.Connection, table: sqlite_source.Table, rows: int | None) -> list[Range]:
    """A large rowid table of `rows` rows (None: counted here) as ranges of about SPLIT_ROWS
    rows, in rowid order (the order of one pass): its rowids' span cut into as many pieces as
    its rows need, so sparse rowids (an epoch in milliseconds, say) make no more ranges than
    dense ones; the whole table otherwise."""
    if rows is None:
        rows = sqlite_source.row_counts(conn, [table.name]).get(table.name, 0)
    low, high = sqlite_source.key_bounds(conn, table.name) if table.rowid else (None, None)
    if low is None:
        return [(rows, None)]
    pieces = max(1, -(-rows // SPLIT_ROWS))
    step = -(-(high - low + 1) // pieces)
    return [
        (-(-rows // pieces), (start, min(start + step - 1, high)))
        for start in range(low, high + 1, step)
    ]


_PART: dict[str, Any] = {}  # a scanning process's source connection and tables
# a scanning process's page cache: its ranges are read once, in rowid order, so SQLite's default
# 2 MiB holds nothing read again (measured, the scan of standard and wide scale 1 in one
# process: the same seconds, 1.4-1.8 MiB less resident; the processes run at the run's peak)
SCAN_CACHE_KIB = 256


def _open_part(backup: str) -> None:
    """Set up a scanning process: the backup opened through apsw's SQLite with the conversions'
    SQL functions (the SQLite the transfer reads with; measured, scale 1: the scan on one core
    2.6-2.8 s against 3.7-6.1 s through the standard module's older SQLite)."""
    _PART["conn"] = open_fast_source(backup)
    _PART["conn"].execute(f"PRAGMA cache_size = -{SCAN_CACHE_KIB}")
    _PART["tables"] = sqlite_source.tables_of(backup)


def _scan_range(
    conn: Source,
    tables: dict[str, sqlite_source.Table],
    job: tuple[list[ColumnPlan], tuple[int, int] | None],
) -> tuple[list[tuple], float]:
    """One range's values scan: its findings in order, and its seconds."""
    plans, bounds = job
    only = f"rowid BETWEEN {bounds[0]} AND {bounds[1]}" if bounds else ""
    clock, recorded = time.perf_counter(), Recorded()
    scan_values(conn, tables[plans[0].table], plans, recorded, only, bounds)
    return list(recorded), time.perf_counter() - clock


def _scan_part(job: tuple[list[ColumnPlan], tuple[int, int] | None]) -> tuple[list[tuple], float]:
    """One range's values scan in a scanning process."""
    return _scan_range(_PART["conn"], _PART["tables"], job)


def _scanned_here(rows: int) -> bool:
    """Whether a scan of `rows` rows runs in the calling process (a process costs ~0.1 s)."""
    return rows <= IN_PROCESS_ROWS or PROCESSES < 2


_OPEN_PART = "runbook.engine.scanners:_open_part"
_SCAN_PART = "runbook.engine.scanners:_scan_part"


@contextmanager
def scanners_ahead(backup: str, rows: int) -> Iterator[Started]:
    """The scanning processes of a backup of `rows` rows, started ahead of the scan (their
    interpreter, imports and the backup opened while the schema is created: 0.2 s a process on
    2 vCPUs; none where the scan runs in the kernel, `scan_in_parts`); those the scan did not
    take, every one when it did not run, are ended on leaving."""
    here = _scanned_here(rows)
    ahead = [] if here else start_workers(PROCESSES, _OPEN_PART, (backup,), _SCAN_PART)
    try:
        yield ahead
    finally:
        stop_workers(ahead)


def scan_in_parts(
    backup: str,
    conn: sqlite3.Connection,
    tables: dict[str, sqlite_source.Table],
    plans: dict[str, list[ColumnPlan]],
    ahead: Started | None = None,
    counts: dict[str, int] | None = None,
) -> dict[str, tuple[list[tuple], float]]:
    """The values scan of every table (its rows: `counts`, the backup's census, else counted),
    its ranges in PROCESSES processes (those started `ahead` first) when the database has
    more than IN_PROCESS_ROWS rows or processes were started for it (largest ranges first):
    per table, its findings in one pass's order and the seconds its ranges took, summed.
    Processes, not threads: the UTF-8 check is a Python call, and threads making it waited on
    each other's GIL (measured, 1.2M rows: one thread 2.6 s, two threads 7.5 s; the scan of
    scale 1 in two processes 2.2 s)."""
    counted = counts or {}
    tasks = [
        (name, *cut) for name in plans for cut in _ranges(conn, tables[name], counted.get(name))
    ]
    done: dict[int, tuple[list[tuple], float]] = {}
    if _scanned_here(sum(rows for _, rows, _ in tasks)) and not ahead:
        fast = open_fast_source(backup)  # the SQLite the processes would scan with
        try:
            for index, (name, _, bounds) in enumerate(tasks):
                done[index] = _scan_range(fast, tables, (plans[name], bounds))
        finally:
            fast.close()
    else:
        order = sorted(range(len(tasks)), key=lambda index: -tasks[index][1])
        in_processes(
            [(index, (plans[tasks[index][0]], tasks[index][2])) for index in order],
            PROCESSES,
            _OPEN_PART,
            (backup,),
            _SCAN_PART,
            done.__setitem__,
            ahead,
        )
    parts: dict[str, tuple[list[tuple], float]] = {name: ([], 0.0) for name in plans}
    for index, (name, _, _) in enumerate(tasks):
        recorded, spent = done[index]
        parts[name] = (parts[name][0] + recorded, parts[name][1] + spent)
    return parts
