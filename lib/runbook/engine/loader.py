"""Moving rows: a table's rows stream from SQLite into `COPY … FROM STDIN`, as chunks (a whole
table, or a key range of a large one), on loader processes.

- Rows stream in batches of FETCH_ROWS; nothing is materialized beyond one batch per loader.
- Binary COPY where every column of a table has a plain conversion: SQLite computes what the
  wire format needs in C (booleans as 0/1, timestamps as microseconds since 2000-01-01, dates
  as days), psycopg 3's C dumpers pack the values, and the server skips text parsing (measured:
  the server ingests binary ~35 % faster than text; the client packs it with ~25 % less CPU).
  A table with an explicit rule on a column, or another non-default conversion, goes as COPY
  text rendered by the conversion table (`plan.copy_line_sql`).
- A table with more than SPLIT_ROWS rows and an integer primary key is split into key ranges,
  so one huge table does not serialize the load; each chunk is loaded in one transaction, which
  also marks it complete in the target's ledger (`ledger.complete_range_sql`): a crash leaves every
  chunk wholly loaded and recorded, or neither.
- Processes, not threads: SQLite stepping releases the GIL on every row, so loader threads
  slow each other down (measured: 2 threads 45 % slower than 1).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.copy import LibpqWriter
from psycopg.pq import Format
from psycopg.types.numeric import DecimalBinaryDumper
from psycopg.types.string import BytesBinaryDumper

from runbook.columns.conversions import open_fast_source, open_source
from runbook.columns.expressions import INT_RANGES
from runbook.columns.plan import ColumnPlan, copy_line_sql
from runbook.columns.types import Wire
from runbook.core.pool import on_connections
from runbook.core.source import key_bounds, quote_ident
from runbook.core.target import Target, session_url
from runbook.core.workers import in_processes

FETCH_ROWS = 5_000  # rows per round trip from SQLite; memory stays flat whatever the table size
FETCH_BYTES = 2 * 2**20  # and fewer for wide rows: a batch holds about this many bytes of values
# a table with more rows, or more bytes, is loaded as primary-key ranges of about this size
SPLIT_ROWS = int(os.environ.get("RUNBOOK_SPLIT_ROWS") or 250_000)
SPLIT_BYTES = 256 * 2**20  # a split table loses COPY FREEZE: its pages are hinted later
# what a row costs the load beyond its bytes, in bytes of the same cost (measured on the wide
# sample: ~6.6 us per row and ~25 ms per MB of values, client and server together)
ROW_COST_BYTES = 260
SAMPLE_ROWS = 1_000  # rows read to estimate a table's bytes per row


# --- the binary wire format: what SQLite computes per column, and how psycopg packs it ---------


class _NumericText(Dumper):
    """numeric from the text the conversion renders (REAL with 15 significant digits)."""

    format = Format.BINARY
    oid = psycopg.postgres.types["numeric"].oid

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        self._decimal = DecimalBinaryDumper(Decimal, context)

    def dump(self, obj: Any) -> bytes:
        return self._decimal.dump(Decimal(str(obj)))


WIRE_DUMPERS = (_NumericText,)


def register_dumpers(conn: psycopg.Connection) -> None:
    """The dumpers the binary wire format needs beyond psycopg's own; and bytea (text, jsonb
    and packed numerics travel as it) by psycopg's C dumper, not the DB-API `Binary` wrapper's
    Python one that psycopg otherwise picks for the type (measured: 0.9M Python calls, 2.1 s
    of CPU for the wide sample's 120k orders)."""
    for dumper in WIRE_DUMPERS:
        conn.adapters.register_dumper(None, dumper)
    conn.adapters.register_dumper(bytes, BytesBinaryDumper)  # psycopg swaps in its C class


def wire(plan: ColumnPlan, fast: bool = False) -> Wire | None:
    """What SQLite computes for binary COPY of a column with its type's plain conversion (the
    conversion table's `wire`, or its `fast_wire` for a `fast` reader: apsw's current SQLite);
    None where only the conversion's text rendering is right (an explicit rule, a conversion
    chosen for mixed data)."""
    if not plan.plain or not plan.rule.wire:
        return None
    column = quote_ident(plan.column)
    if fast and plan.rule.fast_wire and (packed := plan.rule.fast_wire(column, plan.kind)):
        return packed
    return plan.rule.wire(column, plan.kind)


# --- what is loaded: tables and their chunks ----------------------------------------------------


@dataclass
class TableLoad:
    """One table to load: where its rows come from and go, how many, and how they travel."""

    name: str  # SQLite table
    target: str  # PostgreSQL table
    plans: list[ColumnPlan]
    rows: int
    key: str | None  # single integer primary key column, when there is one
    stats: dict[str, Any] = field(default_factory=dict)  # rows, bytes, start, end as loaded
    row_bytes: float = 0.0  # bytes of values per row, estimated (`estimate_row_bytes`)

    @property
    def binary(self) -> bool:
        """Binary COPY when every column has a wire form."""
        return all(wire(p) is not None for p in self.plans)


@dataclass(frozen=True)
class Chunk:
    """A part of a table loaded in one transaction."""

    table: TableLoad
    where: str  # SQL predicate on the SQLite table ("" for all rows)
    rows: int  # expected rows (for scheduling and progress)
    whole: bool = False  # the whole table in one transaction (loaded with COPY FREEZE)
    span: tuple[int, int] = (0, 0)  # the key range [start, end) as the target's ledger names it
    record: tuple | None = None  # (SQL, params) marking the range complete in the ledger

    @property
    def cost(self) -> float:
        """What loading the chunk costs, in bytes: its values and a per-row share. Loaders take
        the costliest chunks first, so a wide table does not start last and end alone."""
        return self.rows * (self.table.row_bytes + ROW_COST_BYTES)


def _and(*predicates: str) -> str:
    return " AND ".join(f"({p})" for p in predicates if p)


def estimate_row_bytes(source: Any, table: TableLoad) -> float:
    """Bytes of values per row, averaged over the first SAMPLE_ROWS rows (what the load's
    schedule and splitting weigh tables by; read in milliseconds)."""
    sizes = " + ".join(
        f"coalesce(length(CAST({quote_ident(p.column)} AS BLOB)), 0)" for p in table.plans
    )
    sample = f"SELECT {sizes or 0} AS size FROM {quote_ident(table.name)} LIMIT {SAMPLE_ROWS}"
    return source.execute(f"SELECT coalesce(avg(size), 0) FROM ({sample})").fetchone()[0]


def split(source: Any, table: TableLoad, selection: str, workers: int) -> list[Chunk]:
    """One chunk per table, or primary-key ranges of about SPLIT_ROWS rows and SPLIT_BYTES
    bytes for a large table."""
    size = table.rows * table.row_bytes
    pieces = max(-(-table.rows // SPLIT_ROWS), int(-(-size // SPLIT_BYTES)))
    if table.key is None or pieces < 2 or workers < 2:
        return [Chunk(table, selection, table.rows, whole=True)]
    low, high = key_bounds(source, table.name, table.key)
    pieces = max(workers, pieces)
    step = max(1, -(-(high - low + 1) // pieces))
    rows = -(-table.rows // pieces)
    return [
        range_chunk(table, selection, start, min(start + step, KEY_END), rows)
        for start in range(low, high + 1, step)
    ]


KEY_END = INT_RANGES["bigint"][1]  # a range's end the ledger's bigint holds: keys unbounded above


def range_chunk(table: TableLoad, selection: str, start: int, end: int, rows: int) -> Chunk:
    """The chunk of the ledger's range [start, end) of a table ((0, 0): the whole table; an
    end of KEY_END: every key from start on, the largest bigint included, as random 64-bit
    keys reach it)."""
    if (start, end) == (0, 0):
        return Chunk(table, selection, rows, whole=True)
    key = quote_ident(table.key or "rowid")
    below = "" if end >= KEY_END else f" AND {key} < {end}"
    return Chunk(table, _and(f"{key} >= {start}{below}", selection), rows, span=(start, end))


def chunk_job(chunk: Chunk, fast: bool = False) -> dict[str, Any]:
    """What a loader needs to stream one chunk: plain data, so it can go to another process.
    `fast`: a binary chunk is read through apsw (`open_fast_source`), whose SQL may pack more."""
    table = chunk.table
    binary = table.binary
    columns = ", ".join(quote_ident(p.pg_column) for p in table.plans)
    # a table loaded in one piece is emptied in the same transaction, so COPY may write its
    # rows frozen: no hint bits to set later (index builds, ANALYZE and verify read it clean)
    options = (["FORMAT BINARY"] if binary else []) + (["FREEZE"] if chunk.whole else [])
    job = {
        "table": table.name,
        "span": chunk.span,
        "record": chunk.record,
        "truncate": f"TRUNCATE {quote_ident(table.target)}" if chunk.whole else None,
        "copy": f"COPY {quote_ident(table.target)} ({columns}) FROM STDIN"
        + (f" ({', '.join(options)})" if options else ""),
        "binary": binary,
        "fast": fast and binary,
        # wide rows in smaller batches, so a loader holds ~FETCH_BYTES, not 5,000 wide rows
        "batch": max(100, min(FETCH_ROWS, int(FETCH_BYTES // max(1.0, table.row_bytes)))),
    }
    if binary:
        wires = [wire(p, fast) for p in table.plans]
        where = f" WHERE {chunk.where}" if chunk.where else ""
        job["select"] = (
            f"SELECT {', '.join(e for e, _ in wires)} FROM {quote_ident(table.name)}{where}"
        )
        job["types"] = [kind for _, kind in wires]
    else:
        job["select"] = copy_line_sql(table.name, table.plans, chunk.where)
    return job


# --- streaming one chunk ------------------------------------------------------------------------


try:  # psycopg's binary COPY framing and its C row formatter (3.2+)
    from psycopg._copy_base import _binary_signature as _SIGNATURE
    from psycopg._copy_base import _binary_trailer as _TRAILER
    from psycopg._copy_base import format_row_binary as _format_row
except ImportError:  # pragma: no cover - rows go through Copy.write_row instead
    _format_row = None


class _CountingWriter(LibpqWriter):
    """The default libpq writer, counting the bytes it sends."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        super().__init__(cursor)
        self.sent = 0

    def write(self, data: Any) -> None:
        self.sent += len(data)
        super().write(data)


def _copy_rows(source: Any, copy: Any, job: dict[str, Any], progress: Callable[[int], Any]) -> int:
    """Feed one chunk's rows into an open COPY; the number of rows."""
    rows = 0
    if job["binary"]:
        if hasattr(source, "text_factory"):  # the standard module's reader (apsw's gives str)
            source.text_factory = str  # the preflight has refused text that is not UTF-8
        copy.set_types(job["types"])
        cursor = iter(source.execute(job["select"]))
        if _format_row is None:  # another psycopg: its public row writer
            while batch := list(islice(cursor, job.get("batch", FETCH_ROWS))):
                for row in batch:
                    copy.write_row(row)
                rows += len(batch)
                progress(len(batch))
            return rows
        # psycopg's C formatter straight into one buffer per batch (measured: 1.2 s less CPU
        # for 1.2M temperature logs than write_row's two Python calls a row)
        transformer = copy.formatter.transformer
        copy.write(_SIGNATURE)
        while batch := list(islice(cursor, job.get("batch", FETCH_ROWS))):
            buffer = bytearray()
            for row in batch:
                _format_row(row, transformer, buffer)
            copy.write(buffer)
            rows += len(batch)
            progress(len(batch))
        copy.write(_TRAILER)
    else:
        source.text_factory = bytes  # COPY lines go as the bytes SQLite rendered
        cursor = source.execute(job["select"])
        while batch := cursor.fetchmany(FETCH_ROWS):
            copy.write(b"".join(line for (line,) in batch))
            rows += len(batch)
            progress(len(batch))
    return rows


def stream(
    source: Any, conn: psycopg.Connection, job: dict[str, Any], progress: Callable[[int], Any]
) -> tuple[int, int]:
    """Stream one chunk from SQLite into COPY in one transaction, recording the range as
    complete in the same transaction (loaded and recorded, or neither); (rows, bytes sent)."""
    with conn.cursor() as cursor, conn.transaction():
        if job["truncate"]:
            cursor.execute(job["truncate"])
        writer = _CountingWriter(cursor)
        with cursor.copy(job["copy"], writer=writer) as copy:
            rows = _copy_rows(source, copy, job, progress)
        if job.get("record"):
            sql, (attempt, sha, table, start) = job["record"]
            cursor.execute(sql, [rows, attempt, sha, table, start])
    return rows, writer.sent


_STATS_LOCK = threading.Lock()


def _record(table: TableLoad, rows: int, sent: int, started: float, ended: float) -> None:
    stats = table.stats
    with _STATS_LOCK:
        stats["rows"] = stats.get("rows", 0) + rows
        stats["bytes"] = stats.get("bytes", 0) + sent
        stats["start"] = min(stats.get("start", started), started)
        stats["end"] = max(stats.get("end", 0.0), ended)


# --- loader processes ---------------------------------------------------------------------------

_LOADER: dict[str, Any] = {}


def _loader_start(url: str, backup: str) -> Callable[[], None]:
    """Initializer of a loader process: its own PostgreSQL connection (`url`: the target's
    `session_url`, TLS parameters and session settings as every connection), and the backup
    read by the SQLite its first job asks for (`_reader`); what closes them, for the end."""
    conn = psycopg.connect(url)
    register_dumpers(conn)
    _LOADER.update(conn=conn, backup=backup)
    return _loader_stop


def _reader(fast: bool) -> Any:
    """The loader's reader of the backup: apsw's SQLite (`fast`) or the standard module's,
    opened on first use (the jobs of loader processes all ask for apsw's)."""
    key = "fast" if fast else "source"
    if key not in _LOADER:
        _LOADER[key] = (open_fast_source if fast else open_source)(_LOADER["backup"])
    return _LOADER[key]


def _loader_stop() -> None:
    for key in ("fast", "source", "conn"):
        if key in _LOADER:
            _LOADER.pop(key).close()


def _loader_run(job: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    source = _reader(job["fast"])
    rows, sent = stream(source, _LOADER["conn"], job, lambda n: None)
    return {"rows": rows, "bytes": sent, "start": started, "end": time.time()}


def _load_in_processes(
    target: Target, backup: str, chunks: list[Chunk], workers: int, bars: dict[str, Any]
) -> None:
    def done(chunk: Chunk, outcome: dict[str, Any]) -> None:
        _record(chunk.table, outcome["rows"], outcome["bytes"], outcome["start"], outcome["end"])
        bars[chunk.table.name].update(outcome["rows"])

    in_processes(
        [(chunk, chunk_job(chunk, fast=True)) for chunk in chunks],
        workers,
        f"{__name__}:_loader_start",
        (session_url(target.url), backup),
        f"{__name__}:_loader_run",
        done,
    )


def _load_here(target: Target, backup: str, chunks: list[Chunk], bars: dict[str, Any]) -> None:
    """Stream the chunks in this process, one after another, on one connection."""

    def opener(stack: ExitStack, conn: psycopg.Connection) -> tuple[Any, Any, psycopg.Connection]:
        source, fast = open_source(backup), open_fast_source(backup)
        stack.callback(source.close)
        stack.callback(fast.close)
        register_dumpers(conn)
        return source, fast, conn

    def copy_chunk(state: tuple[Any, Any, psycopg.Connection], chunk: Chunk) -> None:
        source, fast, conn = state
        job = chunk_job(chunk, fast=True)
        started = time.time()
        rows, sent = stream(
            fast if job["fast"] else source, conn, job, bars[chunk.table.name].update
        )
        _record(chunk.table, rows, sent, started, time.time())

    on_connections(target, chunks, copy_chunk, 1, open_worker=opener)


def load(
    target: Target, backup: str, chunks: list[Chunk], workers: int, bars: dict[str, Any]
) -> None:
    """Load the chunks, in the order given: on `workers` loader processes, each taking the
    next chunk when it is done with one, or in this process when there is one worker or one
    chunk. Each table's `stats` and progress bar follow the rows as they land."""
    if workers > 1 and len(chunks) > 1:
        _load_in_processes(target, backup, chunks, workers, bars)
    elif chunks:
        _load_here(target, backup, chunks, bars)
