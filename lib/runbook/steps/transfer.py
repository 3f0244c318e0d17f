"""Step 03: every source row into the target by streamed COPY, keys preserved, sequences set.

`transfer` reads as its four phases: plan (which tables, how many rows, in what order),
prepare (claim the key ranges in the target's ledger, refuse rows nobody loaded, drop secondary
indexes and foreign keys, their definitions recorded first), load (`engine.loader`: COPY on
worker processes) and rebuild (`engine.rebuild`: index builds, foreign keys added NOT VALID then
validated, and ANALYZE as one schedule on the workers' connections; then sequences). Primary
keys stay during the load. Each key range is marked complete in the transaction that loads it,
so a re-run after a crash continues from there and restores what the crashed run dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from runbook.columns.conversions import open_source
from runbook.columns.plan import (
    by_table,
    integer_key,
    load_order,
    plans_from,
    rejected_rows,
    row_filter,
)
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError
from runbook.core.progress import bar
from runbook.core.run import RunFolder
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect, translated
from runbook.core.workers import default_workers
from runbook.engine import constraints, ledger, loader, rebuild
from runbook.engine.loader import Chunk, TableLoad
from runbook.engine.preflight import require_clean
from runbook.engine.rejects import write_ledger

RESUME = (
    "fix the cause and run the same command again: it continues from the key ranges already "
    "loaded (recorded in the target's runbook_ranges table) and restores the indexes and keys "
    "dropped for the load"
)


@dataclass
class _Prepared:
    """What the prepare phase decided: this attempt's number, the chunks still to load, and
    the foreign keys and indexes to rebuild after the load."""

    attempt: int
    chunks: list[Chunk]
    foreign_keys: list[dict[str, Any]]
    indexes: list[dict[str, Any]]
    keys_in_place: bool  # loaded before: the foreign keys were never dropped


class _Phases:
    """Seconds per phase, each measured from the end of the one before."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def done(self, phase: str) -> None:
        self.seconds[phase] = time.perf_counter() - self.started - sum(self.seconds.values())

    def record(self) -> dict[str, float]:
        return {name: round(seconds, 3) for name, seconds in self.seconds.items()}


def _inputs(run: RunFolder) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema and backup results this step works from, checked to speak of one backup."""
    schema, backup = run.read("schema"), run.read("backup")
    if schema["backup_sha256"] != backup["sha256"]:
        raise RunbookError(
            "the schema step ran on another backup than the one in this run folder",
            where=run.name,
            fix="run 02_schema again for this run",
        )
    return schema, backup


def _plan(source: Any, schema: dict, backup: dict, rejected: dict) -> list[TableLoad]:
    """Plan: the tables to load in load order, with their row counts (rejected rows left out)."""
    plans = by_table(plans_from(schema))
    reflected = {t.name: t for t in sqlite_source.reflect(source)}
    tables = []
    for name in [n for n in load_order(list(reflected.values())) if n in plans]:
        selection = row_filter(name, rejected)
        count = None if selection else backup["row_counts"].get(name)
        if count is None:  # the backup counted every row; rejected ones are left out here
            where = f" WHERE {selection}" if selection else ""
            count = source.execute(f"SELECT count(*) FROM {quote_ident(name)}{where}").fetchone()
            count = count[0]
        key = integer_key(reflected[name], plans[name])
        table = TableLoad(name, plans[name][0].pg_table, plans[name], count, key)
        table.row_bytes = loader.estimate_row_bytes(source, table)
        tables.append(table)
    return tables


def _chunks(conn, source, tables, rejected, workers, state, sha) -> list[Chunk]:
    """The chunks still to load: the ranges an earlier attempt planned and did not complete,
    or, on a first attempt, a new plan, recorded in the target before any row is written."""
    by_name = {t.name: t for t in tables}
    if state["ranges"]:
        return [
            loader.range_chunk(
                by_name[r["table"]],
                row_filter(r["table"], rejected),
                r["start"],
                r["end"],
                r["rows"],
            )
            for r in state["ranges"]
            if r["status"] != "complete"
        ]
    chunks = [
        c for t in tables for c in loader.split(source, t, row_filter(t.name, rejected), workers)
    ]
    ledger.plan_ranges(conn, sha, [(c.table.name, *c.span, c.rows) for c in chunks])
    return chunks


def require_written(schema: dict[str, Any]) -> None:
    """Refuse to load after a step 02 whose preflight stopped the run: it wrote nothing (no
    schema, no ledger) into the target."""
    if not schema.get("written", True):
        raise RunbookError(
            "step 02 stopped on misfits and wrote nothing to the target, so there is nothing "
            "to load into",
            fix='run 02_schema again with on_bad_rows="reject" (runbook run SOURCE '
            "--on-bad-rows reject), or fix the rows its preflight table lists",
        )


def _require_only_ours(conn, tables: list[TableLoad], state: dict, target: Target) -> None:
    """Every row in the target's tables must belong to a range this load completed: rows
    somebody else put there, or a range loaded but not recorded, stop the run unchanged."""
    recorded: dict[str, int] = {}
    for r in state["ranges"]:
        if r["status"] == "complete":
            recorded[r["table"]] = recorded.get(r["table"], 0) + r["rows"]
    strangers = []
    for table in tables:
        expected = recorded.get(table.name, 0)
        name = quote_ident(table.target)
        if expected:
            present = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        else:
            present = int(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {name})").fetchone()[0])
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


def _prepare(run, target, source, tables, rejected, sha, workers) -> _Prepared:
    """Prepare: count this attempt, plan or resume the key ranges, refuse foreign rows, and drop
    what the load rebuilds (its definitions recorded in the target and in transfer.json first,
    so a crashed run can restore them)."""
    names = [t.target for t in tables]
    with connect(target) as conn:
        state = ledger.load_state(conn, sha)
        attempt = ledger.start_attempt(conn, sha)
        chunks = _chunks(conn, source, tables, rejected, workers, state, sha)
        _require_only_ours(conn, tables, state, target)
        in_place = state["dropped"] is None and state["status"] == "complete"
        if state["dropped"] is not None:  # an interrupted load: its drops are recorded
            fks, indexes = state["dropped"]["foreign_keys"], state["dropped"]["indexes"]
            dropping = constraints.present(conn, fks, indexes)
        elif in_place:  # loaded before: nothing is dropped again, the keys are validated again
            fks, indexes, dropping = constraints.foreign_keys(conn, names), [], ([], [])
        else:
            fks = constraints.foreign_keys(conn, names)
            indexes = constraints.secondary_indexes(conn, names)
            ledger.record_dropped(conn, sha, {"foreign_keys": fks, "indexes": indexes})
            dropping = (fks, indexes)
        loading = {"status": "loading", "dropped_foreign_keys": fks, "dropped_indexes": indexes}
        run.write("transfer", loading)
        constraints.drop(conn, *dropping)
        complete = ledger.complete_range_sql(conn)
    marked = [
        replace(c, record=(complete, (attempt, sha, c.table.name, c.span[0]))) for c in chunks
    ]
    marked.sort(key=lambda c: -c.cost)  # the costliest first: a short tail
    return _Prepared(attempt, marked, fks, indexes, in_place)


def _load(run: RunFolder, target: Target, tables, prepared: _Prepared, workers: int) -> None:
    """Load: the chunks on the loader processes, a progress bar per table."""
    bars = {t.name: bar(total=t.rows, desc=t.name, unit="rows", leave=True) for t in tables}
    try:
        loader.load(target, str(run.backup_path), prepared.chunks, workers, bars)
    finally:
        for shown in bars.values():
            shown.close()


def _rebuild(
    target, tables, prepared: _Prepared, workers: int, phases: _Phases, floors: dict[str, int]
) -> list[dict]:
    """Rebuild: indexes, foreign keys (added NOT VALID, then validated) and ANALYZE as one
    schedule (`rebuild`), then sequences (past the largest key and past `floors`: every id
    SQLite's AUTOINCREMENT handed out); returns the sequences set."""
    sizes = {t.target: (t.rows, t.row_bytes) for t in tables}
    add = not prepared.keys_in_place
    rebuild.rebuild(
        target, prepared.indexes, prepared.foreign_keys, sizes, workers, add_foreign_keys=add
    )
    phases.done("indexes_keys_analyze")
    with connect(target) as conn:
        sequences = constraints.set_sequences(conn, [t.target for t in tables], floors)
    phases.done("sequences")
    return sequences


def _table_rows(
    tables: list[TableLoad], ranges: list[dict], wall_clock: float, rejected: dict[str, int]
) -> list[dict]:
    """Per table: rows (this and earlier attempts), rows rejected into the ledger, bytes,
    format, seconds, rows/s and when its COPY began (seconds since the load began)."""
    loaded = []
    for t in tables:
        stats = t.stats
        seconds = stats.get("end", 0.0) - stats.get("start", 0.0)
        loaded.append(
            {
                "table": t.name,
                "rows": sum(r["rows"] for r in ranges if r["table"] == t.name),
                "rejected": rejected.get(t.name, 0),
                "bytes": stats.get("bytes", 0),
                "format": "binary" if t.binary else "text",
                "seconds": round(seconds, 3),
                "rows_per_second": round(stats.get("rows", 0) / seconds) if seconds > 0 else None,
                "start_seconds": round(stats["start"] - wall_clock, 3)
                if "start" in stats
                else None,
            }
        )
    return loaded


def transfer(
    run: RunFolder,
    target: Target,
    on_bad_rows: str = "stop",
    *,
    workers: int | None = None,
    after_load: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Load every table of the backup into the target (plan, prepare, load, rebuild) on
    `workers` connections (default: one per CPU); misfits and occupied tables are refused before
    anything is written. `after_load` is called with the per-table rows (transfer.json's
    "tables") when the loader processes have ended: the notebook draws its load charts while
    the server builds indexes. Writes and returns `transfer.json`."""
    workers = workers or default_workers()
    schema, backup = _inputs(run)
    require_clean(schema["preflight"], on_bad_rows)
    require_written(schema)
    rejected_counts = write_ledger(run, schema["preflight"]) if schema["preflight"]["rows"] else {}
    rejected = rejected_rows(schema["preflight"])
    sha = backup["sha256"]
    started, wall_clock, phases = datetime.now(UTC), time.time(), _Phases()
    source = open_source(run.backup_path)
    try:
        with translated(target, "the load", RESUME):
            tables = _plan(source, schema, backup, rejected)
            prepared = _prepare(run, target, source, tables, rejected, sha, workers)
            phases.done("prepare")
            _load(run, target, tables, prepared, workers)
            phases.done("data")
            with connect(target) as conn:  # the ranges loaded; the rebuild changes none
                ranges = ledger.load_state(conn, sha)["ranges"]
            loaded = _table_rows(tables, ranges, wall_clock, rejected_counts)
            if after_load:
                after_load(loaded)
            seen = sqlite_source.autoincrement_handed_out(source)
            floors = {t.target: seen[t.name.lower()] for t in tables if t.name.lower() in seen}
            sequences = _rebuild(target, tables, prepared, workers, phases, floors)
            with connect(target) as conn:
                ledger.finish(conn, sha)
    finally:
        source.close()
    result = {
        "status": "complete",
        "backup_sha256": sha,
        "started_at": started.isoformat(timespec="seconds"),
        "workers": workers,
        "order": [t.name for t in tables],
        "tables": loaded,
        "rejected_rows": rejected_counts,
        "indexes": [i["name"] for i in prepared.indexes],
        "foreign_keys": prepared.foreign_keys,
        "sequences": sequences,
        "phases": phases.record(),
        "seconds": round(time.perf_counter() - phases.started, 3),
        "attempt": prepared.attempt,
        "ranges": ranges,
    }
    run.write("transfer", result)
    return result


def summary(result: dict[str, Any]) -> str:
    """One line for the verdict, saying how many rows of which tables went to the ledger."""
    rows = sum(t["rows"] for t in result["tables"])
    rejected = {t: n for t, n in result.get("rejected_rows", {}).items() if n}
    ledger = ""
    if rejected:
        per_table = ", ".join(f"{t} {n}" for t, n in sorted(rejected.items()))
        ledger = f"{sum(rejected.values())} rows rejected into rejects.jsonl ({per_table}); "
    return (
        f"{rows} rows in {len(result['tables'])} tables copied; {ledger}"
        f"{len(result['foreign_keys'])} foreign keys validated; "
        f"{len(result['sequences'])} sequences set."
    )
