"""Cutover in seconds: the bulk run while the application writes, `runbook sync` while it still
runs, `runbook cutover` (notebook 05) once it stopped. The target ends equal to a fresh full
migration of the final file, whatever the traffic (inserts, updates, deletes cascading, the
drivers ↔ vehicles cycle, a row updated back and forth, a row inserted and deleted between two
syncs); two syncs then a cutover give the same target as one cutover; a misfit in a changed row
follows on_bad_rows; a cutover while the application still writes refuses and changes nothing;
a tampered target fails the cutover's verification."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fingerprint import data_fingerprint, fingerprint
from migration import TABLES, fresh_content, migrate

from coldchain.sample import generate
from coldchain.traffic import Traffic
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.target import Target, connect
from runbook.engine import catchup, ledger
from runbook.record.reference import fresh_database
from runbook.steps import cutover


def sequences(target: Target) -> dict[str, int]:
    with connect(target) as conn:
        return {
            name: conn.execute(f"SELECT last_value FROM {name}").fetchone()[0]
            for (name,) in conn.execute("SELECT sequencename FROM pg_sequences ORDER BY 1")
        }


def runbook(*args: str, target: Target) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runbook.cli", *args],
        env={**os.environ, "DATABASE_URL": target.url},
        capture_output=True,
        text=True,
        timeout=900,
    )


def traffic(source: Path, seed: int, rows: int) -> Traffic:
    writer = Traffic(source, seed=seed)
    writer.run(rows)
    return writer


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "dispatch.db"
    generate(path, scale=0.01, seed=31)
    return path


def test_syncs_and_a_cutover_end_equal_to_a_fresh_migration_and_to_one_cutover(
    source: Path, tmp_path: Path
) -> None:
    with fresh_database("runbook_cutover_a") as a, fresh_database("runbook_cutover_b") as b:
        run_a = migrate(source, tmp_path / "bulk-a", a)
        run_b = migrate(source, tmp_path / "bulk-b", b)
        writer = traffic(source, 1, 400)
        with writer.conn:  # a row inserted now and deleted before the next sync
            short_lived = writer.new_order()
        writer.conn.execute("UPDATE clients SET phone = 'before' WHERE id = 3")
        synced = runbook("sync", str(source), "--run-dir", str(run_a.path), target=a)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "Forecast: the last sync applied" in synced.stdout
        writer.conn.execute("DELETE FROM orders WHERE id = ?", [short_lived])
        writer.conn.execute("UPDATE clients SET phone = 'after' WHERE id = 3")
        writer.reassign_driver()
        writer.run(800)
        second = catchup.catch_up(run_a, source, a)
        assert second["number"] == 2 and second["changes"]["total"] > 0
        writer.conn.execute("UPDATE clients SET phone = 'before' WHERE id = 3")  # and back
        writer.delete_planned_dispatch()
        writer.run(1200)
        writer.close()

        done = runbook("cutover", str(source), "--run-dir", str(run_a.path), target=a)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "PASS" in done.stdout
        with connect(a) as conn:
            catalog_after = repr(conn.execute("SELECT relname FROM pg_class").fetchall())
        expected = fresh_content(source, tmp_path)
        assert data_fingerprint(a, TABLES) == expected

        one = cutover.begin(RunFolder(tmp_path / "cut-b"), str(run_b.path), source, b, "")
        cutover.require_stopped(one, 5, 0.2)
        record = cutover.final_sync(one, "stop")
        assert record["number"] == 1
        assert cutover.verify_final(one, record)["verdict"] == "PASS"
        assert data_fingerprint(b, TABLES) == expected
        # the same sequences, but for the id the smoke test's rolled-back order took on A
        consumed = sequences(b)
        consumed["orders_id_seq"] += 1
        assert sequences(a) == consumed
        with connect(a) as conn:
            kinds = [s["kind"] for s in ledger.applied_syncs(conn, run_a.read("backup")["sha256"])]
        assert kinds == ["sync", "sync", "cutover"]

    cut_dir = Path(done.stdout.split("Run folder: ")[1].split()[0])
    assert "runbook_fk_" not in catalog_after  # the catch-ups' helper indexes are gone
    facts = json.loads((cut_dir / "cutover.json").read_text())
    assert facts["status"] == "passed" and facts["target_untouched"] is True
    assert not facts["verification"]["all_segments_checked_again"]
    assert facts["window_seconds"] > 0 and facts["smoke_test"]["new order id"] > 0
    manifest = json.loads((cut_dir / "manifest.json").read_text())
    assert manifest["outcome"] == "passed" and manifest["finishes"]["run"] == "bulk-a"
    audited = subprocess.run(
        [sys.executable, "-m", "runbook.cli", "audit", str(cut_dir)], capture_output=True, text=True
    )
    assert audited.returncode == 0, audited.stdout


def test_unique_values_moving_between_rows_are_caught_up(source: Path, tmp_path: Path) -> None:
    """Two stops of a dispatch trade their sequence numbers (unique per dispatch), and a stop
    replaced by a new one leaves its number to it: PostgreSQL checks such an index row by row,
    yet the sync applies both, and the target equals a fresh migration of the file."""
    with fresh_database("runbook_moves") as target:
        run = migrate(source, tmp_path / "bulk", target)
        writer = Traffic(source, seed=5)
        with writer.conn:
            writer.new_dispatch([writer.new_order() for _ in range(3)])
        catchup.catch_up(run, source, target)
        with writer.conn:
            writer.swap_stops()
            writer.replace_stop()
        assert writer.counts["routes updated"] == 2 and writer.counts["routes deleted"] == 1
        writer.close()
        record = catchup.catch_up(run, source, target)
        routes = record["changes"]["tables"]["dispatch_routes"]
        assert routes["inserted"] == routes["deleted"] == 1 and routes["updated"] >= 1
        assert record["unique_indexes_rebuilt"] == ["dispatch_routes_dispatch_id_sequence_key"]
        assert data_fingerprint(target, TABLES) == fresh_content(source, tmp_path)


def test_a_changed_row_that_does_not_fit_follows_on_bad_rows(source: Path, tmp_path: Path) -> None:
    with fresh_database("runbook_cutover_misfit") as target:
        run = migrate(source, tmp_path / "bulk", target)
        writer = traffic(source, 2, 200)
        bad = writer.misfit()
        writer.close()
        before = fingerprint(target)
        with pytest.raises(
            RunbookError, match=f"orders {{'id': {bad}}} column requested_delivery_at"
        ):
            catchup.catch_up(run, source, target, "stop")
        assert fingerprint(target) == before  # nothing written

        record = catchup.catch_up(run, source, target, "reject")
        assert record["changes"]["tables"]["orders"]["rejected"] >= 1
        with connect(target) as conn:
            assert (
                conn.execute("SELECT count(*) FROM orders WHERE id = %s", [bad]).fetchone()[0] == 0
            )
            held = ledger.held_back(conn, run.read("backup")["sha256"])
        assert bad in held["orders"]
        ledger_lines = (run.path / "sync" / f"rejects-{record['number']:04d}.jsonl").read_text()
        assert '"tomorrow morning"' in ledger_lines

        with sqlite3.connect(source) as app:  # the application corrects the row
            corrected = "2026-03-05 09:00:00.000000"
            app.execute(
                "UPDATE orders SET requested_delivery_at = ? WHERE id = ?", [corrected, bad]
            )
        catchup.catch_up(run, source, target, "stop")
        with connect(target) as conn:
            assert (
                conn.execute("SELECT count(*) FROM orders WHERE id = %s", [bad]).fetchone()[0] == 1
            )
            assert not ledger.held_back(conn, run.read("backup")["sha256"]).get("orders")
        assert data_fingerprint(target, TABLES) == fresh_content(source, tmp_path)


def test_a_cutover_while_the_application_writes_refuses_and_changes_nothing(
    source: Path, tmp_path: Path
) -> None:
    with fresh_database("runbook_cutover_busy") as target:
        run = migrate(source, tmp_path / "bulk", target)
        traffic(source, 3, 100).close()
        before = fingerprint(target)
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "c.execute('BEGIN IMMEDIATE'); c.execute('UPDATE clients SET phone = phone'); "
                "print('writing', flush=True); sys.stdin.readline()",
                str(source),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "writing"
            refused = runbook(
                "cutover", str(source), "--run-dir", str(run.path), "--write-wait-seconds", "1",
                target=target,
            )  # fmt: skip
        finally:
            holder.kill()
            holder.wait()
        assert refused.returncode == 1
        assert (
            f"process {holder.pid} still holds a write transaction on the source" in refused.stdout
        )
        assert "stop the application" in refused.stdout and "Traceback" not in refused.stdout
        assert fingerprint(target) == before
        assert not (run.path / "sync").exists() or not list((run.path / "sync").glob("sync-*.json"))


def test_a_tampered_target_fails_the_cutover(source: Path, tmp_path: Path) -> None:
    with fresh_database("runbook_cutover_tamper") as target:
        run = migrate(source, tmp_path / "bulk", target)
        traffic(source, 4, 300).close()
        cut = cutover.begin(RunFolder(tmp_path / "cut"), str(run.path), source, target, "")
        cutover.require_stopped(cut, 5, 0.2)
        record = cutover.final_sync(cut, "stop")
        changed = record["changes"]["tables"]["orders"]["written_rowids"][0]
        with connect(target) as conn:  # a row the catch-up wrote
            conn.execute(
                "UPDATE orders SET pallet_count = pallet_count + 1 WHERE id = %s", [changed]
            )
        with pytest.raises(
            RunbookError, match=f"orders {{'id': {changed}}}: value differs column pallet_count"
        ):
            cutover.verify_final(cut, record)

    with fresh_database("runbook_cutover_tamper2") as target:
        run = migrate(source, tmp_path / "bulk2", target)
        with connect(target) as conn:  # a row nobody should touch, before the cutover
            conn.execute("UPDATE users SET full_name = 'somebody else' WHERE id = 1")
        cut = cutover.begin(RunFolder(tmp_path / "cut2"), str(run.path), source, target, "")
        cutover.require_stopped(cut, 5, 0.2)
        record = cutover.final_sync(cut, "stop")
        assert cut.facts["target_untouched"] is False
        with pytest.raises(RunbookError, match="users: content checksum differs"):
            cutover.verify_final(cut, record)
        assert cut.facts["verification"]["all_segments_checked_again"]
