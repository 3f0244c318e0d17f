"""Step 05: the cutover, with the application stopped. The freeze window runs from the moment
the application was declared stopped to the PASS: the source must be quiet (no write
transaction, nothing committed for a moment), the last catch-up is applied, the target is
proven equal to the final snapshot at the cost of the changes (`engine.recheck`), and the
application's own smoke test passes; then the application's new DATABASE_URL line. After the
window, with the application already on PostgreSQL: the post-migration report and the first
PostgreSQL backup with its restore drill (`engine.aftercare`)."""

from __future__ import annotations

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder, bulk_run_folder, sha256_file
from runbook.core.source import check_file, open_readonly, quote_ident, reflect
from runbook.core.target import Target, connect, libpq_url, mask_url, translated
from runbook.engine import aftercare, catchup, constraints, delta, ledger, recheck, smoke, writers
from runbook.engine.checksums import checksums, shapes_of

AGAIN = "run the cutover again: it applies what is missing and checks again"
AFTER = (  # after the window: the application is on PostgreSQL, the cutover's PASS stands
    "the cutover itself passed (cutover.json); fix the cause and run the notebook's cells "
    "after the window again in JupyterLab"
)
FINAL_SNAPSHOT = "source-final.db"  # the snapshot the target equals, kept with the cutover


@dataclass
class Cutover:
    """One cutover: its own run folder, the bulk run it finishes, the live source, the target,
    and what each phase found (written to cutover.json as it goes)."""

    run: RunFolder
    bulk: RunFolder
    source: Path
    target: Target
    stopped_at: datetime
    facts: dict[str, Any] = field(default_factory=dict)
    quiet: writers.Quiet | None = None  # what the quiet check saw of the source
    write_files: Any = None  # the last sync's files, written once the window is over
    held: dict[str, set[int]] = field(default_factory=dict)  # source rows held back

    def save(self, phase: str = "") -> None:
        """Write cutover.json; `phase`: a phase ended now (its time since the application was
        declared stopped goes into the window's timeline)."""
        if phase:
            elapsed = (datetime.now(UTC) - self.stopped_at).total_seconds()
            self.facts.setdefault("timeline", {})[phase] = round(elapsed, 3)
        self.run.write("cutover", self.facts)


def begin(
    run: RunFolder, bulk_run_dir: str, source: Path, target: Target, stopped_at: str
) -> Cutover:
    """The cutover of the bulk run in `bulk_run_dir`, timed from `stopped_at` (ISO time, UTC:
    when the application was declared stopped; empty: now)."""
    bulk = bulk_run_folder(bulk_run_dir)
    catchup.bulk_run(bulk)
    run.path.mkdir(parents=True, exist_ok=True)  # refuses a bulk run that did not verify
    check_file(source)
    moment = datetime.fromisoformat(stopped_at) if stopped_at else datetime.now(UTC)
    print(f"Bulk run:   {bulk.name} ({bulk.why})" if bulk.why else f"Bulk run:   {bulk.name}")
    cut = Cutover(run, bulk, source, target, moment)
    cut.facts = {
        "bulk_run": bulk.name,
        "bulk_manifest_sha256": _sha256_or_none(bulk.path / "manifest.json"),
        "stopped_at": moment.isoformat(timespec="milliseconds"),
        "status": "started",
    }
    cut.save("notebook ready")
    return cut


def _sha256_or_none(path: Path) -> str | None:
    return sha256_file(path) if path.exists() else None


def require_stopped(cut: Cutover, wait_seconds: float, quiet_seconds: float) -> dict[str, Any]:
    """(a) The application has stopped: nobody holds a write transaction on the source, and
    nothing is committed to it for `quiet_seconds` (waiting up to `wait_seconds`). While the
    quiet period runs, what the next phases need is made ready beside it (the target's write
    counters, the smoke test's SQLAlchemy), so the window does not pay for it twice."""
    with ThreadPoolExecutor(max_workers=1) as beside:
        ready = beside.submit(_prepare, cut)
        quiet = writers.require_stopped(cut.source, wait_seconds, quiet_seconds)
        ready.result()
    cut.quiet = quiet
    found = {"waited_seconds": quiet.waited, "quiet_seconds": quiet.quiet_seconds}
    found["still_open_by"] = {str(p): c for p, c in quiet.openers.items()}
    cut.facts["quiet"] = found
    cut.save("source quiet")
    return found


def _prepare(cut: Cutover) -> None:
    """The target's write counters now (did anybody write to it since the runbook did?), and
    the smoke test's libraries imported."""
    names = [p[0].pg_table for p in catchup.bulk_run(cut.bulk).plans.values()]
    reading = translated(cut.target, "reading the target's write counters", AGAIN)
    with reading, connect(cut.target) as conn:
        now = ledger.write_counters(conn, names)
    then = _counters_then(cut)
    cut.facts["target_untouched"] = then is not None and {k: list(v) for k, v in now.items()} == {
        k: list(v) for k, v in then.items()
    }
    smoke.load()


def _counters_then(cut: Cutover) -> dict[str, list[int]] | None:
    """The target's write counters as the runbook last left them: after the last sync, else
    after the bulk verification."""
    done = catchup.records(cut.bulk)
    if done:
        return done[-1].get("write_counters")
    return cut.bulk.read("verify").get("write_counters")


def final_sync(cut: Cutover, on_bad_rows: str) -> dict[str, Any]:
    """(b) The last catch-up: the final snapshot's changes applied in one transaction (the
    target's write counters were read during the quiet check, before this)."""
    if "target_untouched" not in cut.facts:
        _prepare(cut)
    record = catchup.catch_up(
        cut.bulk, cut.source, cut.target, on_bad_rows, kind="cutover", files_now=False
    )
    cut.write_files = record.pop("write_files")
    cut.facts["final_sync"] = {
        k: record[k] for k in ("number", "snapshot_sha256", "seconds", "pages", "compared_rows")
    }
    cut.facts["final_sync"]["changes"] = {
        name: {k: entry[k] for k in ("inserted", "updated", "deleted", "rejected")}
        for name, entry in record["changes"]["tables"].items()
    }
    final = catchup.bulk_run(cut.bulk).snapshot_path(record["snapshot_sha256"])
    evidence = cut.run.path / FINAL_SNAPSHOT
    evidence.unlink(missing_ok=True)
    try:
        evidence.hardlink_to(final)  # the same bytes, at no cost
    except OSError:
        shutil.copyfile(final, evidence)
    cut.save("last sync applied")
    return record


def _changed_rows(cut: Cutover, final: Path) -> dict[str, Any]:
    """The rows changed since the bulk run, or written by a sync, compared on both engines."""
    bulk = catchup.bulk_run(cut.bulk)
    with connect(cut.target) as conn:
        syncs = ledger.applied_syncs(conn, bulk.sha256)
        cut.held = {t: set(rows) for t, rows in ledger.held_back(conn, bulk.sha256).items()}
    shapes, _ = shapes_of(str(final), bulk.plans)
    conn = open_readonly(final)
    try:
        tables = {t.name: t for t in reflect(conn)}
    finally:
        conn.close()
    # with one sync only, from S0, the changes since S0 are that sync's (all in `syncs`)
    since = delta.Delta({}) if [s["base_sha256"] for s in syncs] == [bulk.sha256] else None
    return recheck.recheck_rows(
        cut.bulk.backup_path, final, cut.target, shapes, tables, syncs, cut.held,
        bulk.reinserted, since,
    )  # fmt: skip


def verify_final(cut: Cutover, record: dict[str, Any], workers: int = 0) -> dict[str, Any]:
    """(c) The target equals the final snapshot: the rows changed since the bulk run, or
    written by a sync, compared on both engines; foreign keys valid, sequences past their
    largest keys, and nobody else wrote to the target (its write counters), else every
    segment on both engines again. Raises on FAIL."""
    final = catchup.bulk_run(cut.bulk).snapshot_path(record["snapshot_sha256"])
    clock = time.perf_counter()
    with translated(cut.target, "the verification of the cutover", AGAIN):
        rows = _changed_rows(cut, final)
        full = None
        if not cut.facts.get("target_untouched"):
            held_rows = {t: sorted(r) for t, r in cut.held.items()}
            full = recheck.recheck_all(cut.bulk, cut.target, final, held_rows)
        transfer = cut.bulk.read("transfer")
        fks = constraints.check_foreign_keys(cut.target, transfer["foreign_keys"])
        seqs = constraints.check_sequences(cut.target, transfer["sequences"])
    failures = _failures(rows, full, fks, seqs)
    result = {
        "verdict": "FAIL" if failures else "PASS",
        "failures": failures,
        "rows_compared": {t: r["rows_compared"] for t, r in rows["tables"].items()},
        "pages_since_bulk_run": rows["pages"],
        "target_untouched": cut.facts.get("target_untouched"),
        "all_segments_checked_again": full is not None,
        "foreign_keys": len(fks),
        "sequences": len(seqs),
        "seconds": round(time.perf_counter() - clock, 3),
    }
    cut.facts["verification"] = result
    cut.save("verified")
    if failures:
        raise RunbookError(
            f"the cutover's verification FAILED: {'; '.join(failures[:10])}",
            fix="do not switch the application over; inspect the differences in 05_cutover",
        )
    return result


def _failures(rows: dict, full: list | None, fks: list, seqs: list) -> list[str]:
    """Every check of the cutover's verification that failed, one line each."""
    failures = [
        f"{d['table']} {d['pk']}: {d['problem']}"
        + (f" column {d['column']}" if "column" in d else "")
        for table in rows["tables"].values()
        for d in table["differences"]
    ]
    failures += [
        f"{t['table']}: content checksum differs"
        for t in full or []
        if (t["source_checksum"], t["source_rows"]) != (t["target_checksum"], t["target_rows"])
    ]
    failures += [f"foreign key {k['name']} missing or not valid" for k in fks if not k["validated"]]
    failures += [
        f"sequence of {s['table']}.{s['column']} would hand out {s['next_value']}"
        for s in seqs
        if not s["ok"]
    ]
    return failures


def smoke_test(cut: Cutover) -> dict[str, Any]:
    """(d) The application's own queries and an insert, through psycopg2, rolled back."""
    facts = smoke.smoke_test(cut.target)
    cut.facts["smoke_test"] = facts
    cut.save("smoke test passed")
    return facts


def switch_line(cut: Cutover) -> str:
    """(e) The application's new DATABASE_URL line, its password masked: the operator fills it
    in (nothing with a secret is written)."""
    url = libpq_url(cut.target.url)
    shown = re.sub(r"host=/[^&]*", "host=<socket>", mask_url(url))
    if cut.target.password is None:
        user, at, rest = shown.partition("@")
        shown = f"{user}:***@{rest}" if at else shown
    return f"DATABASE_URL={shown}"


def close_window(cut: Cutover) -> str:
    """(f) The freeze window, from the application declared stopped to the PASS (the source
    must still be as it was when the window began)."""
    writers.unchanged_since(cut.source, cut.quiet, cut.facts["final_sync"]["snapshot_sha256"])
    ended = datetime.now(UTC)
    window = (ended - cut.stopped_at).total_seconds()
    cut.facts.update(
        status="passed",
        window_ended_at=ended.isoformat(timespec="milliseconds"),
        window_seconds=round(window, 3),
    )
    cut.save()
    if cut.write_files:  # the record of the changes, old and new values: after the window
        cut.write_files()
    cut.facts["helper_indexes_dropped"] = constraints.drop_helper_indexes(cut.target)
    cut.save()
    return (
        f"Freeze window closed after {window:.1f} s: the target equals the final snapshot "
        f"{cut.facts['final_sync']['snapshot_sha256'][:12]}…; start the application on PostgreSQL."
    )


def report(cut: Cutover) -> dict[str, Any]:
    """(g) After the window: sizes beside the SQLite file's, connections, pg_stat_statements,
    fresh statistics (ANALYZE of the tables the cutover changed), the application's pool."""
    bulk = catchup.bulk_run(cut.bulk)
    names = {name: plans[0].pg_table for name, plans in bulk.plans.items()}
    changed = [names[n] for n in cut.facts["final_sync"]["changes"] if n in names]
    final = bulk.snapshot_path(cut.facts["final_sync"]["snapshot_sha256"])
    with translated(cut.target, "the post-migration report", AFTER):
        with connect(cut.target, autocommit=True) as conn:
            for table in changed:
                conn.execute(f"ANALYZE {quote_ident(table)}")
        found = {
            "sizes": aftercare.sizes(cut.target, final, names),
            **aftercare.server_facts(cut.target, list(names.values())),
        }
    cut.facts["report"] = found
    cut.save()
    return found


def backup_drill(cut: Cutover, workers: int = 0) -> dict[str, Any]:
    """(h) The first PostgreSQL backup into the cutover's folder, restored into a scratch
    database and verified there by the same checksums against the final snapshot."""
    final = catchup.bulk_run(cut.bulk).snapshot_path(cut.facts["final_sync"]["snapshot_sha256"])
    with connect(cut.target) as conn:
        held = {
            t: sorted(r)
            for t, r in ledger.held_back(conn, catchup.bulk_run(cut.bulk).sha256).items()
        }

    def verify(scratch: Target) -> str:
        tables = checksums(cut.bulk, scratch, workers=workers or None, source=final, rejected=held)
        bad = [t["table"] for t in tables if t["source_checksum"] != t["target_checksum"]]
        return "PASS: every table's checksum matches" if not bad else f"FAIL: {', '.join(bad)}"

    with translated(cut.target, "the first PostgreSQL backup", AFTER):
        found = aftercare.backup_drill(cut.run.path, cut.target, verify)
    cut.facts["backup"] = found
    cut.save()
    return found


def summary(cut: Cutover) -> str:
    """The notebook's closing line: the window, and what became of the first backup (a restore
    that does not verify fails the step: the operator must not count on that backup)."""
    backup = cut.facts.get("backup", {})
    verification = str(backup.get("verification", ""))
    if verification.startswith("FAIL"):
        raise RunbookError(
            f"the first PostgreSQL backup, restored, does not match the final snapshot "
            f"({verification}); the cutover itself passed",
            where=str(cut.run.path / aftercare.DUMP_NAME),
            fix="keep source-final.db of the cutover folder as the backup, and take and "
            "restore-check a pg_dump by hand before relying on one",
        )
    drill = backup.get("restore") or backup.get("skipped") or "not taken"
    return (
        f"The target equals the final snapshot "
        f"{cut.facts['final_sync']['snapshot_sha256'][:12]}…; freeze window "
        f"{cut.facts['window_seconds']:.1f} s; first backup: {drill}"
    )


def history(cut: Cutover) -> list[dict[str, Any]]:
    """Every catch-up applied since the bulk run, this cutover's last (with the forecast the
    sync before it made, to set beside what the cutover took)."""
    return catchup.records(cut.bulk)
