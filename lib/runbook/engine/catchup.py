"""A catch-up: the changes the application made to the source since the snapshot the target
holds, carried over in one transaction. A new snapshot of the live source (online backup API),
the delta from the last applied snapshot (`delta`: pages, then rows), the preflight of the rows
to write (`preflight.scan_changes`, the bulk run's conversion table and `on_bad_rows`), the
apply (`apply`) with its ledger record, then the files of the sync. Used by `runbook sync`
(while the application runs) and by the cutover (after it stopped).

Where things are: the target's ledger says which snapshot it holds (`ledger.applied_syncs`);
the snapshots live in the bulk run folder's `sync/`, named by their sha256, with each sync's
record (`sync-0001.json`: counts, keys, timings) and its changes (`changes-0001.jsonl`)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from runbook.columns.conversions import open_source
from runbook.columns.plan import ColumnPlan, by_table, load_order, plans_from
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder, sha256_file
from runbook.core.target import Target, connect, translated
from runbook.engine import apply, delta, ledger, rejects
from runbook.engine.preflight import require_clean, scan_changes
from runbook.engine.snapshot import online_copy, stopped_copy

SYNC_FOLDER = "sync"
AGAIN = "run the same command again: a sync is applied whole or not at all"


@dataclass
class Bulk:
    """What a catch-up needs of the bulk run it continues."""

    run: RunFolder
    sha256: str  # the bulk run's snapshot (S0): the load's identity in the target's ledger
    plans: dict[str, list[ColumnPlan]]
    reinserted: dict[str, set[int]] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.run.path / SYNC_FOLDER

    def snapshot_path(self, sha256: str) -> Path:
        """Where the snapshot with this sha256 is kept (S0 is the bulk run's backup)."""
        return self.run.backup_path if sha256 == self.sha256 else self.folder / f"{sha256}.db"


def bulk_run(run: RunFolder) -> Bulk:
    """The bulk run a catch-up continues: it must have ended with a verification PASS."""
    verified = run.read("verify")
    if verified["verdict"] != "PASS":
        raise RunbookError(
            f"the bulk run {run.name} did not verify (verdict {verified['verdict']})",
            where=run.name,
            fix="run the bulk migration to a PASS first (runbook run), then sync",
        )
    schema = run.read("schema")
    plans = by_table(plans_from(schema))
    keys = {name: "rowid" for name in plans}
    reinserted = {t: set(k) for t, k in rejects.reinserted_keys(run, keys).items()}
    return Bulk(run, run.read("backup")["sha256"], plans, reinserted)


def _take_snapshot(source: Path, bulk: Bulk, wait_seconds: float, stopped: bool) -> Path:
    """A new snapshot of the source into the sync folder (`incoming.db` until it is named):
    by the online backup API while the application runs, by copying its files once it
    stopped."""
    bulk.folder.mkdir(exist_ok=True)
    incoming = bulk.folder / "incoming.db"
    if stopped:
        stopped_copy(source, incoming)
    else:
        online_copy(source, incoming, wait_seconds)
    return incoming


def _named(bulk: Bulk, incoming: Path, sha: str) -> Path:
    """The snapshot under its name, its sha256."""
    path = bulk.snapshot_path(sha)
    if path.exists():
        incoming.unlink()
    else:
        incoming.rename(path)
    return path


def _base(conn: Any, bulk: Bulk) -> tuple[int, str, Path]:
    """The last sync applied to the target (0: the bulk load), and the snapshot it holds."""
    applied = ledger.applied_syncs(conn, bulk.sha256)
    number, sha = (
        (applied[-1]["number"], applied[-1]["snapshot_sha256"]) if applied else (0, bulk.sha256)
    )
    path = bulk.snapshot_path(sha)
    if not path.exists():
        raise RunbookError(
            f"the snapshot the target holds ({sha[:12]}…) is no longer in {bulk.run.name}/sync",
            where=bulk.run.name,
            fix="the changes since it cannot be computed; migrate again with a full run",
        )
    return number, sha, path


def _held(conn: Any, bulk: Bulk) -> dict[str, dict[int, Any]]:
    """The source rows held back now: the ledger's, or (before the first sync) the bulk run's
    rejected rows."""
    held = ledger.held_back(conn, bulk.sha256)
    if held or ledger.applied_syncs(conn, bulk.sha256):
        return held
    preflight = bulk.run.read("schema")["preflight"]
    return {
        table: {rowid: {"column": column, "kind": kind} for rowid, column, kind in rows}
        for table, rows in preflight.get("rejected", {}).items()
    }


@dataclass
class _Plan:
    """What a sync will write: per table the items to apply, and the rows held back after it."""

    items: list[apply.TableApply]
    held: dict[str, dict[int, Any]]
    released: dict[str, list[int]]
    preflight: dict[str, Any]


def _plan(new: Path, bulk: Bulk, found: delta.Delta, held: dict, on_bad_rows: str) -> _Plan:
    """Preflight the rows to write (new versions, and rows held back before), refuse or reject
    misfits as `on_bad_rows` says, and plan the apply. Re-inserted rows are the operator's:
    left alone."""
    conn = open_source(new)
    try:
        tables = {t.name: t for t in sqlite_source.reflect(conn)}
        present = set()
        for name, rowids in held.items():
            rows = conn.execute(
                f"SELECT rowid FROM {sqlite_source.quote_ident(name)} "
                "WHERE rowid IN (SELECT value FROM json_each(?))",
                [json.dumps(list(rowids))],
            )
            present |= {(name, r) for (r,) in rows}
        candidates = {name: [] for name in bulk.plans}
        for name, changes in found.tables.items():
            candidates[name] += changes.inserted + changes.updated
        for name, rowid in present:
            candidates[name].append(rowid)
        for name, mine in bulk.reinserted.items():
            candidates[name] = [r for r in candidates.get(name, []) if r not in mine]
        deleted = {name: c.deleted_keys for name, c in found.tables.items()}
        preflight = scan_changes(conn, bulk.plans, candidates, deleted)
        require_clean(preflight, on_bad_rows)
        refused = {t: [r[0] for r in rows] for t, rows in preflight["rejected"].items()}
        now_held = {
            table: {rowid: {"column": column, "kind": kind} for rowid, column, kind in rows}
            for table, rows in preflight["rejected"].items()
        }
        released = {
            name: [r for r in rowids if r not in now_held.get(name, {})]
            for name, rowids in held.items()
        }
        refused_keys = {t: delta.keys_of(conn, "main", tables[t], r) for t, r in refused.items()}
        again = {t: [r for r in rows if (t, r) in present] for t, rows in released.items()}
        order = [n for n in load_order(list(tables.values())) if n in bulk.plans]
        items = apply.plan_items(found, tables, bulk.plans, order, refused, refused_keys, again)
    finally:
        conn.close()
    return _Plan(items, now_held, released, preflight)


def _record(number: int, kind: str, base_sha: str, new_sha: str, plan: _Plan, found) -> dict:
    """The sync as the ledger and the run folder keep it: counts and keys per table."""
    tables = {}
    for item in plan.items:
        changes = item.changes
        tables[item.table.name] = {
            **changes.counts(),
            "rejected": len(plan.held.get(item.table.name, {})),
            "inserted_rowids": changes.inserted,
            "updated_rowids": changes.updated,
            "deleted_keys": [list(k) for k in changes.deleted_keys],
            "written_rowids": item.upserted,
            "removed_keys": [list(k) for k in item.removed],
        }
    return {
        "number": number,
        "kind": kind,
        "base_sha256": base_sha,
        "snapshot_sha256": new_sha,
        "changes": {"tables": tables, "total": found.total},
    }


def catch_up(
    run: RunFolder,
    source: Path,
    target: Target,
    on_bad_rows: str = "stop",
    *,
    kind: str = "sync",
    wait_seconds: float = 60.0,
    files_now: bool = True,
) -> dict[str, Any]:
    """Carry the source's changes since the snapshot the target holds over to the target, in
    one transaction; returns the sync's record (also written into the run folder). Its
    changes, with their old and new values, are written now, or with `files_now` off by the
    record's `write_files()` when the caller is ready.

    Long because it reads as the sync's phases in order: lock, base, snapshot (hashed beside
    the delta), delta, plan, apply, record."""
    bulk = bulk_run(run)
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def phase(name: str) -> None:
        seconds[name] = round(time.perf_counter() - clock - sum(seconds.values()), 3)

    with translated(target, f"the {kind}", AGAIN), connect(target) as conn:
        ledger.lock_syncs(conn, bulk.sha256, target)
        number, base_sha, base = _base(conn, bulk)
        held = _held(conn, bulk)
        conn.commit()
        started = datetime.now(UTC)
        incoming = _take_snapshot(source, bulk, wait_seconds, stopped=kind == "cutover")
        phase("snapshot")
        with ThreadPoolExecutor(max_workers=1) as beside:  # hashing releases the GIL
            hashed = beside.submit(sha256_file, incoming)
            tables = sqlite_source.tables_of(incoming)
            found = delta.compute(base, incoming, [tables[n] for n in bulk.plans if n in tables])
            phase("delta")
            plan = _plan(incoming, bulk, found, held, on_bad_rows)
            phase("preflight")
            new_sha = hashed.result()
        new = _named(bulk, incoming, new_sha)
        record = _record(number + 1, kind, base_sha, new_sha, plan, found)
        lite = open_source(new)
        names = [p[0].pg_table for p in bulk.plans.values()]
        try:  # in the window, an index is built only where it beats the scans it saves
            applied = apply.apply(conn, lite, plan.items, names, 1 if kind == "sync" else 10)
        finally:
            lite.close()
        ledger.hold_back(conn, bulk.sha256, plan.held, plan.released)
        ledger.record_sync(conn, bulk.sha256, record)
        conn.commit()
        phase("apply")
        record["write_counters"] = ledger.write_counters(
            conn, [p[0].pg_table for p in bulk.plans.values()]
        )
    record.update(
        snapshot_taken_at=started.isoformat(timespec="seconds"),
        seconds=seconds,
        pages={"compared": found.pages, "changed": found.changed_pages},
        compared_rows=found.compared_rows,
        sequences=applied["sequences"],
        helper_indexes=applied["helper_indexes"],
        unique_indexes_rebuilt=applied["unique_indexes_rebuilt"],
        preflight={k: plan.preflight[k] for k in ("total", "rows", "summary", "findings")},
    )
    _write_record(bulk, record, new, plan)
    changes = partial(_write_changes, bulk, record["number"], base, new, found, base_sha)
    if files_now:
        changes()
    else:  # the caller writes them when the freeze window is over
        record["write_files"] = changes
    return record


def _write_record(bulk: Bulk, record: dict, new: Path, plan: _Plan) -> None:
    """The sync's record and the rows it rejected, into the sync folder."""
    number = record["number"]
    (bulk.folder / f"sync-{number:04d}.json").write_text(
        json.dumps(record, indent=1, default=str, sort_keys=True) + "\n", encoding="utf-8"
    )
    if plan.preflight["rows"]:
        with (bulk.folder / f"rejects-{number:04d}.jsonl").open("w", encoding="utf-8") as out:
            for entry in rejects.ledger_lines(new, plan.preflight):
                out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")


def _write_changes(
    bulk: Bulk, number: int, base: Path, new: Path, found: delta.Delta, base_sha: str
) -> None:
    """The sync's changes with their old and new values, then the snapshot it replaced
    removed (the bulk run's own stays)."""
    tables = sqlite_source.tables_of(new)
    with (bulk.folder / f"changes-{number:04d}.jsonl").open("w", encoding="utf-8") as out:
        for name, changes in found.tables.items():
            for line in _change_lines(base, new, tables[name], changes):
                out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
    if base_sha != bulk.sha256 and base != new:
        base.unlink(missing_ok=True)


def _change_lines(base: Path, new: Path, table: sqlite_source.Table, changes) -> Any:
    """One line per changed row: table, kind, rowid, and its old and new values (blobs and
    text that is not UTF-8 encoded as in the reject ledger)."""
    old = delta.rows(base, table, changes.updated + changes.deleted)
    now = delta.rows(new, table, changes.inserted + changes.updated)
    names = table.column_names

    def values(row: tuple | None) -> dict | None:
        if row is None:
            return None
        return {n: rejects.encode_value(v) for n, v in zip(names, row, strict=True)}

    for kind, rowids in (("insert", changes.inserted), ("update", changes.updated)):
        for rowid in rowids:
            yield {
                "table": table.name,
                "kind": kind,
                "rowid": rowid,
                "old": values(old.get(rowid)),
                "new": values(now[rowid]),
            }
    for rowid in changes.deleted:
        yield {
            "table": table.name,
            "kind": "delete",
            "rowid": rowid,
            "old": values(old[rowid]),
            "new": None,
        }


def records(run: RunFolder) -> list[dict[str, Any]]:
    """The records of the syncs applied so far from this bulk run, in order."""
    folder = run.path / SYNC_FOLDER
    return [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("sync-*.json"))
    ]


def forecast(run: RunFolder, hours: float = 1.0) -> dict[str, Any] | None:
    """What a cutover will cost, from the last sync: its catch-up rate (changes per second of
    preflight and apply), its fixed cost (snapshot and comparison), and the traffic since the
    snapshot before it (changes per hour); None before the first sync."""
    done = records(run)
    if not done:
        return None
    last = done[-1]
    before = done[-2]["snapshot_taken_at"] if len(done) > 1 else run.read("backup")["started_at"]
    interval = (
        datetime.fromisoformat(last["snapshot_taken_at"]) - datetime.fromisoformat(before)
    ).total_seconds()
    seconds, changes = last["seconds"], last["changes"]["total"]
    working = seconds["preflight"] + seconds["apply"]
    per_hour = changes / interval * 3600 if interval > 0 else 0.0
    expected = per_hour * hours
    fixed = seconds["snapshot"] + seconds["delta"]
    estimate = fixed + expected * working / max(changes, 1)
    return {
        "sync": last["number"],
        "changes": changes,
        "seconds": round(sum(seconds.values()), 3),
        "changes_per_second": round(changes / working) if working > 0 else None,
        "traffic_per_hour": round(per_hour),
        "hours_ahead": hours,
        "expected_changes": round(expected),
        "estimate_seconds": round(estimate, 1),
        "sentence": (
            f"the last sync applied {changes:,} changes in {sum(seconds.values()):.1f} s "
            f"(snapshot {seconds['snapshot']:.1f} s, comparison {seconds['delta']:.1f} s, "
            f"preflight and apply {working:.1f} s); at the traffic since the snapshot before it "
            f"({per_hour:,.0f} changes an hour), a cutover after {hours:g} more hour(s) catches "
            f"up about {expected:,.0f} changes in about {estimate:.1f} s, plus the quiet check, "
            "the verification of the rows changed since the bulk run and the smoke test"
        ),
    }
