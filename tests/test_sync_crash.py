"""A sync killed at any moment (SIGKILL of the command and everything it started), or cut off by
its server going down, leaves the target at the previous snapshot or the new one, never in
between; the same command then succeeds and the target equals a fresh migration. The bulk run
here is archived by `runbook run`, so each sync also rewrites its manifest, which the audit
accepts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from commands import command, kill_tree, query_running, wait_until
from fingerprint import data_fingerprint
from migration import TABLES, fresh_content, migrate

from coldchain.sample import generate
from coldchain.traffic import Traffic
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect, create_database
from runbook.engine import ledger
from runbook.record.reference import fresh_database

KILLS = int(os.environ.get("RUNBOOK_KILL_RUNS", "3"))


def run(args: list[str], target: Target) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args),
        env={**os.environ, "DATABASE_URL": target.url},
        capture_output=True,
        text=True,
        timeout=600,
    )


def applied(target: Target, sha: str) -> int:
    with connect(target) as conn:
        return len(ledger.applied_syncs(conn, sha))


def applying(target: Target) -> bool:
    """A sync's transaction is writing (its staging tables are being filled or used)."""
    return query_running(target, "runbook_delta")


@pytest.fixture(scope="module")
def bulk(tmp_path_factory) -> dict:
    """A sample, archived by `runbook run` into a fresh database, and the traffic after it."""
    folder = tmp_path_factory.mktemp("bulk")
    source = folder / "dispatch.db"
    generate(source, scale=0.01, seed=41)
    return {"folder": folder, "source": source}


def _archived(bulk: dict, run_dir: Path, target: Target) -> Path:
    done = run(["run", str(bulk["source"]), "--run-dir", str(run_dir)], target)
    assert done.returncode == 0, done.stdout + done.stderr
    return run_dir


def _equal_to_a_fresh_migration(bulk: dict, target: Target, folder: Path) -> None:
    assert data_fingerprint(target, TABLES) == fresh_content(bulk["source"], folder)


@pytest.mark.parametrize("attempt", range(KILLS))
def test_a_sync_killed_at_any_moment_leaves_one_snapshot_and_succeeds_again(
    bulk: dict, tmp_path: Path, attempt: int
) -> None:
    with fresh_database("runbook_sync_kill") as target:
        run = migrate(bulk["source"], tmp_path / "bulk", target)
        writer = Traffic(bulk["source"], seed=100 + attempt)
        writer.run(3000)
        writer.close()
        before = data_fingerprint(target, TABLES)
        process = subprocess.Popen(
            command("sync", str(bulk["source"]), "--run-dir", str(run.path)),
            env={**os.environ, "DATABASE_URL": target.url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        moments = [
            lambda: (run.path / "sync" / "incoming.db").exists(),  # taking the snapshot
            lambda: applying(target),  # inside the apply's transaction
            lambda: bool(list((run.path / "sync").glob("*.db"))),  # comparing, or later
        ]
        wait_until(moments[attempt % 3], process, "the sync reaching its moment", 120)
        kill_tree(process)
        done = applied(target, run.read("backup")["sha256"])
        if done == 0:
            assert data_fingerprint(target, TABLES) == before  # the previous snapshot
        again = subprocess.run(
            command("sync", str(bulk["source"]), "--run-dir", str(run.path)),
            env={**os.environ, "DATABASE_URL": target.url},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        if done == 1:  # killed after its commit: the next sync finds nothing new
            assert "  0 changes" in again.stdout
        _equal_to_a_fresh_migration(bulk, target, tmp_path)


def test_a_sync_whose_server_goes_down_says_so_and_succeeds_again(
    scram_server, bulk: dict, tmp_path: Path
) -> None:
    create_database(scram_server.target(), "sync_down")
    target = scram_server.target("sync_down")
    run_dir = _archived(bulk, tmp_path / "bulk", target)  # by `runbook run`: with a manifest
    writer = Traffic(bulk["source"], seed=7)
    writer.run(3000)
    writer.close()
    # the application's tables held in SHARE mode: the apply's first write waits for them, so
    # the server is stopped inside its transaction, however fast the machine
    held = connect(target)
    held.execute(f"LOCK TABLE {', '.join(map(quote_ident, TABLES))} IN SHARE MODE")
    process = subprocess.Popen(
        command("sync", str(bulk["source"]), "--run-dir", str(run_dir)),
        env={**os.environ, "DATABASE_URL": target.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = scram_server.lost_during(
            process,
            lambda: query_running(target, "runbook_delta", waiting_for_a_lock=True),
            "the apply waiting for the test's lock",
            "sync ended early",
            120,
        )
    finally:
        held.close()
    assert process.returncode == 2, output
    assert "the connection to the server was lost" in output and "Traceback" not in output
    assert scram_server.password not in output
    again = run(["sync", str(bulk["source"]), "--run-dir", str(run_dir)], target)
    assert again.returncode == 0, again.stdout + again.stderr
    _equal_to_a_fresh_migration(bulk, target, tmp_path)
    audit = subprocess.run(command("audit", str(run_dir)), capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout  # the syncs rewrote the archive's manifest
