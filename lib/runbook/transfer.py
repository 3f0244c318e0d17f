"""Step 03: every source row into the target by streamed COPY, keys preserved, sequences set.

How the load is made fast without holding data in memory:

- Rows stream from SQLite in batches of FETCH_ROWS into `COPY … FROM STDIN`; nothing is ever
  materialized beyond one batch per worker.
- Binary COPY where every column of a table has a plain conversion: SQLite computes what the
  wire format needs in C (booleans as 0/1, timestamps as microseconds since 2000-01-01, dates
  as days), psycopg 3's C dumpers pack the values, and the server skips text parsing (measured:
  the server ingests binary ~35 % faster than text; the client packs it with ~25 % less CPU).
  A table with an operator rule on a column (`runbook.rules`) or another non-default
  conversion goes as COPY text rendered by the conversion table (`copy_line_sql`).
- `workers` connections load tables in parallel, largest first, and a table with more than
  SPLIT_ROWS rows and an integer primary key is split into primary-key ranges, so one huge
  table does not serialize the run. SQLite reads, psycopg's packing and the server's ingest
  overlap: each worker streams while the others' servers parse.
- Secondary indexes, unique constraints and foreign keys are dropped before the load (their
  definitions read from the catalog and recorded in transfer.json first, so a crashed run can
  restore them) and rebuilt after it: indexes in parallel, foreign keys added NOT VALID and then
  validated in parallel, then sequences and ANALYZE. Primary keys stay during the load.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.copy import LibpqWriter
from psycopg.pq import Format
from psycopg.types.numeric import DecimalBinaryDumper

from runbook import ledger
from runbook import source as sqlite_source
from runbook.conversions import TargetType, Wire, conversion_for
from runbook.errors import RunbookError
from runbook.run import RunFolder
from runbook.source import quote_ident
from runbook.target import Target, connect, mask_text
from runbook.workers import WorkerError, default_workers, in_processes

if TYPE_CHECKING:  # runbook.schema imports SQLAlchemy: loader processes stay lean without it
    from runbook.schema import ColumnPlan

FETCH_ROWS = 5_000  # rows per round trip from SQLite; memory stays flat whatever the table size
# a table with more rows is loaded as primary-key ranges of about this size
SPLIT_ROWS = int(os.environ.get("RUNBOOK_SPLIT_ROWS") or 250_000)
INDEX_MEMORY = "256MB"  # maintenance_work_mem of the sessions that build indexes


def load_order(tables: list[sqlite_source.Table]) -> list[str]:
    """Tables with parents before children (cycles, like drivers ↔ vehicles, broken in source
    order); foreign keys are re-added after all data, so the order only keeps the log readable."""
    remaining = {
        t.name: {fk.parent for fk in t.foreign_keys if fk.parent != t.name} for t in tables
    }
    order: list[str] = []
    while remaining:
        ready = [name for name, parents in remaining.items() if not parents - set(order)]
        pick = ready[0] if ready else next(iter(remaining))
        order.append(pick)
        del remaining[pick]
    return order


def copy_line_sql(table: str, plans: list[ColumnPlan], where: str = "") -> str:
    """A SELECT that makes SQLite render each row as one line of COPY text format."""
    fields = []
    for plan in plans:
        col = quote_ident(plan.column)
        render = plan.rule.render(col, TargetType(plan.target_type))
        fields.append(f"CASE WHEN {col} IS NULL THEN '\\N' ELSE {render} END")
    return f"SELECT {' || char(9) || '.join(fields)} || char(10) FROM {quote_ident(table)}" + (
        f" WHERE {where}" if where else ""
    )


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


_WIRE_DUMPERS = (_NumericText,)


def _wire(plan: ColumnPlan) -> Wire | None:
    """What SQLite computes for binary COPY of a column with its type's plain conversion (the
    conversion table's `wire`); None where only the conversion's text rendering is right (an
    explicit rule, a conversion chosen for mixed data)."""
    if plan.options or plan.rule is not conversion_for(plan.target_type) or not plan.rule.wire:
        return None
    return plan.rule.wire(quote_ident(plan.column), TargetType(plan.target_type))


# --- loading ------------------------------------------------------------------------------------


@dataclass
class _TablePlan:
    name: str  # SQLite table
    target: str  # PostgreSQL table
    plans: list[ColumnPlan]
    rows: int
    key: str | None  # single integer primary key column, when there is one
    binary: bool
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Chunk:
    table: _TablePlan
    where: str  # SQL predicate on the SQLite table ("" for all rows)
    rows: int  # expected rows (for scheduling and progress)
    whole: bool = False  # the whole table in one transaction (loaded with COPY FREEZE)
    span: tuple[int, int] = (0, 0)  # the key range [start, end) as the target's ledger names it
    record: tuple | None = None  # (SQL, params) marking the range complete in the ledger


class _CountingWriter(LibpqWriter):
    """The default libpq writer, counting the bytes it sends."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        super().__init__(cursor)
        self.sent = 0

    def write(self, data: Any) -> None:
        self.sent += len(data)
        super().write(data)


def row_filter(table: str, rejected: dict[str, list[int]]) -> str:
    """The SQL predicate choosing the rows of `table` that are loaded (and verified): every row
    but those the reject ledger holds. The one place that decides which rows move."""
    ids = rejected.get(table)
    if not ids:
        return ""
    return f"rowid NOT IN ({', '.join(str(int(i)) for i in ids)})"


def _and(*predicates: str) -> str:
    return " AND ".join(f"({p})" for p in predicates if p)


def _split(source: Any, table: _TablePlan, selection: str, workers: int) -> list[_Chunk]:
    """One chunk per table, or primary-key ranges of about SPLIT_ROWS rows for a large table."""
    if table.key is None or table.rows <= SPLIT_ROWS or workers < 2:
        return [_Chunk(table, selection, table.rows, whole=True)]
    key = quote_ident(table.key)
    low, high = source.execute(
        f"SELECT min({key}), max({key}) FROM {quote_ident(table.name)}"
    ).fetchone()
    pieces = max(workers, -(-table.rows // SPLIT_ROWS))
    step = max(1, -(-(high - low + 1) // pieces))
    chunks = []
    for start in range(low, high + 1, step):
        chunks.append(_range_chunk(table, selection, start, start + step, -(-table.rows // pieces)))
    return chunks


def _range_chunk(table: _TablePlan, selection: str, start: int, end: int, rows: int) -> _Chunk:
    """The chunk of the ledger's range [start, end) of a table ((0, 0): the whole table)."""
    if (start, end) == (0, 0):
        return _Chunk(table, selection, rows, whole=True)
    key = quote_ident(table.key or "rowid")
    where = _and(f"{key} >= {start} AND {key} < {end}", selection)
    return _Chunk(table, where, rows, span=(start, end))


def _chunk_job(chunk: _Chunk) -> dict[str, Any]:
    """What a loader needs to stream one chunk: plain data, so it can go to another process."""
    table = chunk.table
    columns = ", ".join(quote_ident(p.pg_column) for p in table.plans)
    # a table loaded in one piece is emptied in the same transaction, so COPY may write its
    # rows frozen: no hint bits to set later (index builds, ANALYZE and verify read it clean)
    options = ["FORMAT BINARY"] if table.binary else []
    options += ["FREEZE"] if chunk.whole else []
    job = {
        "table": table.name,
        "span": chunk.span,
        "record": chunk.record,
        "truncate": f"TRUNCATE {quote_ident(table.target)}" if chunk.whole else None,
        "copy": f"COPY {quote_ident(table.target)} ({columns}) FROM STDIN"
        + (f" ({', '.join(options)})" if options else ""),
        "binary": table.binary,
    }
    if table.binary:
        wires = [_wire(p) for p in table.plans]
        where = f" WHERE {chunk.where}" if chunk.where else ""
        job["select"] = (
            f"SELECT {', '.join(e for e, _ in wires)} FROM {quote_ident(table.name)}{where}"
        )
        job["types"] = [kind for _, kind in wires]
    else:
        job["select"] = copy_line_sql(table.name, table.plans, chunk.where)
    return job


def _stream(
    source: Any, conn: psycopg.Connection, job: dict[str, Any], progress: Callable[[int], Any]
) -> tuple[int, int]:
    """Stream one chunk from SQLite into COPY in one transaction; (rows, bytes sent)."""
    rows = 0
    with conn.cursor() as cursor, conn.transaction():
        if job["truncate"]:
            cursor.execute(job["truncate"])
        writer = _CountingWriter(cursor)
        with cursor.copy(job["copy"], writer=writer) as copy:
            if job["binary"]:
                source.text_factory = str  # the preflight has refused text that is not UTF-8
                copy.set_types(job["types"])
                rows_of = source.execute(job["select"])
                write_row = copy.write_row
                while batch := rows_of.fetchmany(FETCH_ROWS):
                    for row in batch:
                        write_row(row)
                    rows += len(batch)
                    progress(len(batch))
            else:
                source.text_factory = bytes  # COPY lines go as the bytes SQLite rendered
                lines = source.execute(job["select"])
                while batch := lines.fetchmany(FETCH_ROWS):
                    copy.write(b"".join(line for (line,) in batch))
                    rows += len(batch)
                    progress(len(batch))
        if job.get(
            "record"
        ):  # in the same transaction: the range is loaded and recorded, or neither
            sql, (attempt, sha, table, start) = job["record"]
            cursor.execute(sql, [rows, attempt, sha, table, start])
    return rows, writer.sent


def _record(table: _TablePlan, rows: int, sent: int, started: float, ended: float) -> None:
    stats = table.stats
    with _STATS_LOCK:
        stats["rows"] = stats.get("rows", 0) + rows
        stats["bytes"] = stats.get("bytes", 0) + sent
        stats["start"] = min(stats.get("start", started), started)
        stats["end"] = max(stats.get("end", 0.0), ended)


def _copy_chunk(source: Any, conn: psycopg.Connection, chunk: _Chunk, bar: Any) -> None:
    """Stream one chunk in this process (the connection has the wire dumpers registered)."""
    started = time.time()
    rows, sent = _stream(source, conn, _chunk_job(chunk), bar.update)
    _record(chunk.table, rows, sent, started, time.time())


# --- loader processes: SQLite stepping releases the GIL on every row, so loader threads slow
# each other down (measured: 2 threads 45 % slower than 1); processes do not.

_LOADER: dict[str, Any] = {}


def _loader_start(url: str, backup: str) -> None:
    """Initializer of a loader process: its own SQLite reader and PostgreSQL connection."""
    _LOADER["source"] = sqlite_source.open_readonly(backup)
    conn = psycopg.connect(url)
    for dumper in _WIRE_DUMPERS:
        conn.adapters.register_dumper(None, dumper)
    _LOADER["conn"] = conn


def _loader_run(job: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    try:
        rows, sent = _stream(_LOADER["source"], _LOADER["conn"], job, lambda n: None)
    except psycopg.Error as exc:  # psycopg's errors do not cross processes: their message does
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise WorkerError(message) from None
    return {"rows": rows, "bytes": sent, "start": started, "end": time.time()}


def _load_in_processes(
    target: Target, backup: str, chunks: list[_Chunk], workers: int, bars: dict[str, Any]
) -> None:
    """Stream the chunks on `workers` loader processes, largest first, each taking the next
    chunk when it is done with one."""
    from runbook.target import libpq_url

    def done(chunk: _Chunk, outcome: dict[str, Any]) -> None:
        _record(chunk.table, outcome["rows"], outcome["bytes"], outcome["start"], outcome["end"])
        bars[chunk.table.name].update(outcome["rows"])

    in_processes(
        [(chunk, _chunk_job(chunk)) for chunk in chunks],
        workers,
        "runbook.transfer:_loader_start",
        (libpq_url(target.url), backup),
        "runbook.transfer:_loader_run",
        done,
    )


_STATS_LOCK = threading.Lock()


def _parallel(
    target: Target,
    jobs: Iterable[Any],
    work: Callable[[Any, Any], Any],
    workers: int,
    open_worker: Callable[[ExitStack, psycopg.Connection], Any] | None = None,
    autocommit: bool = False,
) -> None:
    """Run `work(state, job)` for every job, in the order given, on `workers` threads that each
    hold one connection (and whatever `open_worker` opens); the first error stops all of them
    and is raised here."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    count = 0
    for job in jobs:
        pending.put(job)
        count += 1
    errors: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            with ExitStack() as stack:
                conn = stack.enter_context(connect(target, autocommit=autocommit))
                state = open_worker(stack, conn) if open_worker else conn
                while not stop.is_set():
                    try:
                        job = pending.get_nowait()
                    except queue.Empty:
                        return
                    work(state, job)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(min(workers, count))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:
        stop.set()
        raise
    if errors:
        raise errors[0]


# --- what is dropped for the load and rebuilt after it -------------------------------------------


def _foreign_keys(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, str]]:
    rows = conn.execute(
        """
        SELECT cl.relname, co.conname, pg_get_constraintdef(co.oid)
        FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
        WHERE co.contype = 'f' AND cl.relnamespace = 'public'::regnamespace
          AND cl.relname = ANY(%s)
        ORDER BY cl.relname, co.conname
        """,
        [tables],
    ).fetchall()
    return [{"table": t, "name": n, "definition": d} for t, n, d in rows]


def _secondary_indexes(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, Any]]:
    """Indexes other than primary keys, with the unique or exclusion constraint that owns one,
    as the catalog defines them (pg_get_indexdef / pg_get_constraintdef)."""
    rows = conn.execute(
        """
        SELECT t.relname, i.relname, pg_get_indexdef(i.oid),
               co.conname, co.contype, pg_get_constraintdef(co.oid),
               co.condeferrable, co.condeferred, pg_relation_size(t.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        LEFT JOIN pg_constraint co
          ON co.conindid = x.indexrelid AND co.conrelid = x.indrelid AND co.contype IN ('u', 'x')
        WHERE t.relnamespace = 'public'::regnamespace AND t.relname = ANY(%s)
          AND NOT x.indisprimary
        ORDER BY t.relname, i.relname
        """,
        [tables],
    ).fetchall()
    return [
        {
            "table": table,
            "name": index,
            "definition": indexdef,
            "constraint": conname,
            "constraint_type": contype,
            "constraint_definition": condef,
            "deferrable": bool(deferrable),
            "deferred": bool(deferred),
        }
        for table, index, indexdef, conname, contype, condef, deferrable, deferred, _ in rows
    ]


def _drop(conn: psycopg.Connection, fks: list[dict], indexes: list[dict]) -> None:
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
        conn.execute(f"DROP INDEX IF EXISTS public.{quote_ident(index['name'])}")
    conn.commit()


def _build_index(conn: psycopg.Connection, index: dict[str, Any]) -> None:
    """Create one index as the catalog defined it; a unique constraint is attached to its index
    (ADD CONSTRAINT … USING INDEX), an exclusion constraint re-added from its definition."""
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


def _add_foreign_keys(conn: psycopg.Connection, fks: list[dict[str, str]]) -> None:
    for fk in fks:
        conn.execute(
            f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT {quote_ident(fk['name'])} "
            f"{fk['definition']} NOT VALID"
        )
    conn.commit()


def _validate(conn: psycopg.Connection, fk: dict[str, str]) -> None:
    try:
        conn.execute(
            f"ALTER TABLE {quote_ident(fk['table'])} VALIDATE CONSTRAINT {quote_ident(fk['name'])}"
        )
    except psycopg.errors.ForeignKeyViolation as exc:
        raise RunbookError(
            f"foreign key {fk['name']} does not hold after the load: {str(exc).splitlines()[0]}",
            where=fk["table"],
            fix="the source holds orphan rows the preflight did not catch; report this",
        ) from None


def _missing(conn: psycopg.Connection, recorded: dict[str, Any]) -> tuple[list, list]:
    """Recorded indexes and foreign keys the catalog no longer has (a crashed load's drops)."""
    present = {
        name
        for (name,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "UNION SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        )
    }
    indexes = [i for i in recorded.get("dropped_indexes", []) if i["name"] not in present]
    fks = [f for f in recorded.get("dropped_foreign_keys", []) if f["name"] not in present]
    return indexes, fks


def restore_schema(run: RunFolder, target: Target) -> dict[str, int]:
    """Re-create the indexes, unique constraints and foreign keys an interrupted transfer
    dropped (as recorded in its transfer.json); returns how many of each were restored."""
    if not run.has("transfer"):
        return {"indexes": 0, "foreign_keys": 0}
    recorded = run.read("transfer")
    with connect(target) as conn:
        indexes, fks = _missing(conn, recorded)
        for index in indexes:
            _build_index(conn, index)
        conn.commit()
        _add_foreign_keys(conn, fks)
        for fk in fks:
            _validate(conn, fk)
            conn.commit()
    return {"indexes": len(indexes), "foreign_keys": len(fks)}


# --- the step -------------------------------------------------------------------------------------


def set_sequences(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, Any]]:
    """Move every column sequence past the largest key copied, so the next insert gets a new id."""
    results = []
    for table in tables:
        columns = conn.execute(
            """
            SELECT a.attname, pg_get_serial_sequence(quote_ident(%s), a.attname)
            FROM pg_attribute a
            WHERE a.attrelid = ('public.' || quote_ident(%s))::regclass AND a.attnum > 0
              AND NOT a.attisdropped
            """,
            [table, table],
        ).fetchall()
        for column, sequence in columns:
            if not sequence:
                continue
            top = conn.execute(f"SELECT max({quote_ident(column)}) FROM {quote_ident(table)}")
            top = top.fetchone()[0]
            if top is None:
                conn.execute("SELECT setval(%s, 1, false)", [sequence])
            else:
                conn.execute("SELECT setval(%s, %s, true)", [sequence, top])
            results.append({"table": table, "column": column, "sequence": sequence, "max": top})
    conn.commit()
    return results


def _integer_key(table: sqlite_source.Table) -> str | None:
    if len(table.primary_key) != 1:
        return None
    column = next(c for c in table.columns if c.name == table.primary_key[0])
    return column.name if "INT" in column.declared.upper() else None


def _open_loader(source_path: Any) -> Callable[[ExitStack, psycopg.Connection], Any]:
    def opener(stack: ExitStack, conn: psycopg.Connection) -> tuple[Any, psycopg.Connection]:
        source = sqlite_source.open_readonly(source_path)
        stack.callback(source.close)
        source.text_factory = str  # the preflight has refused text that is not UTF-8
        for dumper in _WIRE_DUMPERS:
            conn.adapters.register_dumper(None, dumper)
        return source, conn

    return opener


def _resume_or_plan(
    conn: psycopg.Connection,
    source: Any,
    tables: list[_TablePlan],
    rejected: dict[str, list[int]],
    workers: int,
    state: dict[str, Any],
    sha: str,
) -> list[_Chunk]:
    """The chunks still to load: the ranges an earlier attempt planned and did not complete,
    or, on a first attempt, a new plan, recorded in the target before any row is written."""
    by_name = {t.name: t for t in tables}
    if state["ranges"]:
        return [
            _range_chunk(
                by_name[r["table"]],
                row_filter(r["table"], rejected),
                r["start"],
                r["end"],
                r["rows"],
            )
            for r in state["ranges"]
            if r["status"] != "complete"
        ]
    chunks = [c for t in tables for c in _split(source, t, row_filter(t.name, rejected), workers)]
    ledger.plan_ranges(conn, sha, [(c.table.name, *c.span, c.rows) for c in chunks])
    return chunks


def _require_only_ours(
    conn: psycopg.Connection, tables: list[_TablePlan], state: dict[str, Any], target: Target
) -> None:
    """Every row in the target's tables must belong to a range this load completed: rows
    somebody else put there, or a range loaded but not recorded, stop the run unchanged."""
    recorded: dict[str, int] = {}
    for r in state["ranges"]:
        if r["status"] == "complete":
            recorded[r["table"]] = recorded.get(r["table"], 0) + r["rows"]
    strangers = []
    for table in tables:
        expected = recorded.get(table.name, 0)
        if expected:
            present = conn.execute(f"SELECT count(*) FROM {quote_ident(table.target)}").fetchone()[
                0
            ]
        else:
            query = f"SELECT EXISTS (SELECT 1 FROM {quote_ident(table.target)})"
            present = int(conn.execute(query).fetchone()[0])
        if present != expected:
            strangers.append(
                f"{table.target} ({present} rows, {expected} loaded by this migration)"
            )
    if strangers:
        raise RunbookError(
            f"target tables hold rows this migration did not load: {', '.join(strangers)}; "
            "nothing was written",
            where=target.display,
            fix="migrate into an empty database (run 02_schema on a fresh one)",
        )


def _present(
    conn: psycopg.Connection, fks: list[dict], indexes: list[dict]
) -> tuple[list[dict], list[dict]]:
    """Those of the recorded foreign keys and indexes the catalog has (rebuilt before a crash)."""
    names = {
        name
        for (name,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "UNION SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        )
    }
    return [f for f in fks if f["name"] in names], [i for i in indexes if i["name"] in names]


def transfer(
    run: RunFolder, target: Target, on_bad_rows: str = "stop", *, workers: int | None = None
) -> dict[str, Any]:
    """Load every table of the backup into the target: refuse misfits and occupied tables before
    writing, drop secondary indexes and foreign keys (recorded first), COPY the tables on
    `workers` connections (default: one per CPU), rebuild indexes, re-add and validate the keys,
    set sequences, ANALYZE."""
    from runbook.preflight import require_clean
    from runbook.progress import bar
    from runbook.rejects import write_ledger
    from runbook.schema import by_table, plans_from

    workers = workers or default_workers()
    schema = run.read("schema")
    backup = run.read("backup")
    if schema["backup_sha256"] != backup["sha256"]:
        raise RunbookError(
            "the schema step ran on another backup than the one in this run folder",
            where=run.name,
            fix="run 02_schema again for this run",
        )
    require_clean(schema["preflight"], on_bad_rows)
    ledger_counts = write_ledger(run, schema["preflight"]) if schema["preflight"]["rows"] else {}
    rejected = {
        table: [r[0] for r in rows]
        for table, rows in schema["preflight"].get("rejected", {}).items()
    }
    plans = by_table(plans_from(schema))
    source = sqlite_source.open_readonly(run.backup_path)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    wall_clock = time.time()  # the loaders' start and end stamps are wall-clock times
    timings: dict[str, float] = {}
    try:
        reflected = {t.name: t for t in sqlite_source.reflect(source)}
        order = [name for name in load_order(list(reflected.values())) if name in plans]
        tables = []
        for name in order:
            selection = row_filter(name, rejected)
            count = backup["row_counts"].get(name) if not selection else None
            if count is None:  # the backup counted every row; rejected ones are left out here
                count = source.execute(
                    f"SELECT count(*) FROM {quote_ident(name)}"
                    + (f" WHERE {selection}" if selection else "")
                ).fetchone()[0]
            tables.append(
                _TablePlan(
                    name,
                    plans[name][0].pg_table,
                    plans[name],
                    count,
                    _integer_key(reflected[name]),
                    all(_wire(p) is not None for p in plans[name]),
                )
            )
        targets = [t.target for t in tables]
        sha = backup["sha256"]
        with connect(target) as conn:
            state = ledger.load_state(conn, sha)
            attempt = ledger.start_attempt(conn, sha)
            chunks = _resume_or_plan(conn, source, tables, rejected, workers, state, sha)
            _require_only_ours(conn, tables, state, target)
            if state["dropped"] is not None:  # an interrupted load: its drops are recorded
                fks = state["dropped"]["foreign_keys"]
                indexes = state["dropped"]["indexes"]
                present_fks, present_indexes = _present(conn, fks, indexes)
            elif state["status"] == "complete":  # loaded before: nothing is dropped again
                fks, indexes, present_fks, present_indexes = (
                    _foreign_keys(conn, targets),
                    [],
                    [],
                    [],
                )
            else:
                fks = _foreign_keys(conn, targets)
                indexes = _secondary_indexes(conn, targets)
                present_fks, present_indexes = fks, indexes
                dropped = {"foreign_keys": fks, "indexes": indexes}
                ledger.record_dropped(conn, sha, dropped)
            run.write(
                "transfer",
                {"status": "loading", "dropped_foreign_keys": fks, "dropped_indexes": indexes},
            )
            _drop(conn, present_fks, present_indexes)
        complete = ledger.COMPLETE_RANGE
        chunks = [
            replace(c, record=(complete, (attempt, sha, c.table.name, c.span[0]))) for c in chunks
        ]
        chunks.sort(key=lambda c: -c.rows)
        timings["prepare"] = time.perf_counter() - clock

        bars = {t.name: bar(total=t.rows, desc=t.name, unit="rows", leave=True) for t in tables}
        try:
            if not chunks:  # every range was loaded by an earlier attempt
                pass
            elif workers > 1 and len(chunks) > 1:
                _load_in_processes(target, str(run.backup_path), chunks, workers, bars)
            else:
                _parallel(
                    target,
                    chunks,
                    lambda state, chunk: _copy_chunk(*state, chunk, bars[chunk.table.name]),
                    workers,
                    open_worker=_open_loader(run.backup_path),
                )
        finally:
            for shown in bars.values():
                shown.close()
        timings["data"] = time.perf_counter() - clock - sum(timings.values())

        def build(conn: psycopg.Connection, index: dict[str, Any]) -> None:
            conn.execute(f"SET maintenance_work_mem = '{INDEX_MEMORY}'")
            _build_index(conn, index)

        _parallel(target, indexes, build, workers, autocommit=True)
        timings["indexes"] = time.perf_counter() - clock - sum(timings.values())
        with connect(target) as conn:
            _add_foreign_keys(conn, [] if state["status"] == "complete" else fks)
        _parallel(target, fks, _validate, workers, autocommit=True)
        timings["foreign_keys"] = time.perf_counter() - clock - sum(timings.values())
        with connect(target) as conn:
            sequences = set_sequences(conn, targets)
        by_size = sorted(tables, key=lambda t: -t.rows)
        _parallel(
            target,
            by_size,
            lambda conn, t: conn.execute(f"ANALYZE {quote_ident(t.target)}"),
            workers,
            autocommit=True,
        )
        timings["sequences_analyze"] = time.perf_counter() - clock - sum(timings.values())
        with connect(target) as conn:
            ledger.finish(conn, sha)
            ranges = ledger.load_state(conn, sha)["ranges"]
    except (psycopg.Error, WorkerError) as exc:
        message = mask_text(str(exc).strip().splitlines()[0], target.password or "")
        raise RunbookError(
            f"the load failed: {message}",
            where=target.display,
            fix="fix the cause and run the same command again: it continues from the key ranges "
            "already loaded (recorded in the target's runbook schema) and restores the indexes "
            "and keys dropped for the load",
        ) from None
    finally:
        source.close()
    loaded = []
    for t in tables:
        seconds = t.stats.get("end", 0.0) - t.stats.get("start", 0.0)
        rows = sum(r["rows"] for r in ranges if r["table"] == t.name)  # this and earlier attempts
        loaded.append(
            {
                "table": t.name,
                "rows": rows,
                "bytes": t.stats.get("bytes", 0),
                "format": "binary" if t.binary else "text",
                "seconds": round(seconds, 3),
                "rows_per_second": round(t.stats.get("rows", 0) / seconds) if seconds > 0 else None,
                "start_seconds": round(t.stats["start"] - wall_clock, 3)
                if "start" in t.stats
                else None,
            }
        )
    result = {
        "status": "complete",
        "backup_sha256": backup["sha256"],
        "started_at": started.isoformat(timespec="seconds"),
        "workers": workers,
        "order": order,
        "tables": loaded,
        "rejected_rows": ledger_counts,
        "indexes": [i["name"] for i in indexes],
        "foreign_keys": fks,
        "sequences": sequences,
        "phases": {name: round(seconds, 3) for name, seconds in timings.items()},
        "seconds": round(time.perf_counter() - clock, 3),
        "attempt": attempt,
        "ranges": ranges,
    }
    run.write("transfer", result)
    return result


def summary(result: dict[str, Any]) -> str:
    """One line for the verdict."""
    rows = sum(t["rows"] for t in result["tables"])
    return (
        f"{rows} rows in {len(result['tables'])} tables copied; "
        f"{len(result['foreign_keys'])} foreign keys validated; "
        f"{len(result['sequences'])} sequences set."
    )
