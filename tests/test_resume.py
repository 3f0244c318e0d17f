"""A migration killed at any moment of the transfer, or cut off by its server going down, ends
with the same command run again: PASS, and the same content as a run never interrupted."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import psycopg
import pytest
from commands import command, kill_tree, prepare_transfer, start_transfer
from fingerprint import data_fingerprint

from coldchain.models import Base
from coldchain.sample import generate
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect
from runbook.record.reference import fresh_database

TABLES = list(Base.metadata.tables)
KILLS = int(os.environ.get("RUNBOOK_KILL_RUNS", "2"))  # the soak check uses 10
SPLIT = {"RUNBOOK_SPLIT_ROWS": "4000"}  # many key ranges, so kills land between and inside them


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args), env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("source") / "dispatch.db"
    generate(path, scale=0.03, seed=21)
    return path


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory) -> dict:
    """The content of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    with fresh_database("runbook_resume_ref") as target:
        done = run(
            ["run", str(source), "--run-dir", str(folder / "run")],
            {"DATABASE_URL": target.url, **SPLIT},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return {"content": data_fingerprint(target, TABLES)}


def load_status(target: Target) -> tuple[str | None, int]:
    """The ledger's status of the load and how many key ranges are complete."""
    with connect(target) as conn:
        if not conn.execute("SELECT to_regclass('runbook_ranges') IS NOT NULL").fetchone()[0]:
            return None, 0
        status = conn.execute("SELECT status FROM runbook_loads").fetchone()
        done = conn.execute("SELECT count(*) FROM runbook_ranges WHERE status = 'complete'")
        return (status[0] if status else None), done.fetchone()[0]


def planned_ranges(target: Target) -> int:
    deadline = time.monotonic() + 60
    while True:
        with connect(target) as conn:
            count = conn.execute("SELECT count(*) FROM runbook_ranges").fetchone()[0]
        if count or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


def wait_for_ranges(target: Target, process: subprocess.Popen, done: int) -> None:
    while load_status(target)[1] < done and process.poll() is None:
        time.sleep(0.02)


@contextlib.contextmanager
def one_range_held(
    target: Target, start: Callable[[], subprocess.Popen]
) -> Iterator[subprocess.Popen]:
    """Start a transfer (`start`) with one of its key ranges held: the row of its smallest range
    (its turn comes last) locked, so its loader waits at marking it complete, inside the
    transaction that loads it, while the others go on; the test stops the load with that range
    in flight and never loaded, however fast the machine. The application's tables are held
    (ACCESS SHARE) until the ranges are planned and that row is locked: the transfer cannot
    drop what it rebuilds, let alone load, before. Let go when the block ends (the server may
    be gone by then)."""
    gate, hold = connect(target), connect(target)
    started = None
    try:
        gate.execute(f"LOCK TABLE {', '.join(map(quote_ident, TABLES))} IN ACCESS SHARE MODE")
        started = start()
        assert planned_ranges(target), "the transfer planned no key ranges within 60 s"
        held = hold.execute(
            "SELECT 1 FROM runbook_ranges WHERE status = 'planned' "
            "ORDER BY rows, table_name, range_start LIMIT 1 FOR UPDATE"
        ).fetchall()
        assert held, "every key range was loaded before one could be held"
        gate.rollback()  # the transfer drops what it rebuilds and loads
        yield started
    except BaseException:
        if started is not None and started.poll() is None:
            kill_tree(started)  # the test failed with the transfer still running
        raise
    finally:
        for conn in (gate, hold):
            with contextlib.suppress(psycopg.Error):
                conn.close()


@pytest.mark.parametrize("attempt", range(KILLS))
def test_a_run_killed_during_the_transfer_ends_in_pass_when_run_again(
    source: Path, reference: dict, tmp_path: Path, attempt: int
) -> None:
    with fresh_database("runbook_resume") as target:
        env = {"DATABASE_URL": target.url, **SPLIT}
        first = tmp_path / "first"
        prepare_transfer(source, first, env)
        # a random moment within the data load: after a random number of its key ranges (one
        # at least still loading at the kill)
        with one_range_held(target, lambda: start_transfer(source, first, env)) as process:
            total = planned_ranges(target)
            wait_for_ranges(target, process, random.Random(attempt).randint(0, total - 1))
            kill_tree(process)
        status, ranges_done = load_status(target)
        print(f"killed with the load {status}, {ranges_done} key ranges complete")
        assert status == "loading"

        again = run(["run", str(source), "--run-dir", str(tmp_path / "again")], env)
        assert again.returncode == 0, again.stdout + again.stderr
        verify = json.loads((tmp_path / "again" / "verify.json").read_text())
        assert verify["verdict"] == "PASS"
        assert data_fingerprint(target, TABLES) == reference["content"]


def test_a_server_stopped_mid_table_then_restarted(
    scram_server, source: Path, tmp_path, reference
) -> None:
    from runbook.core.target import create_database

    create_database(scram_server.target(), "resume_stop")
    target: Target = scram_server.target("resume_stop")
    env = {"DATABASE_URL": target.url, **SPLIT}
    prepared = run(
        ["run", str(source), "--run-dir", str(tmp_path / "a"), "--steps", "backup,schema"], env
    )
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    transfer = partial(
        subprocess.Popen,
        command("run", str(source), "--run-dir", str(tmp_path / "a"), "--steps", "transfer"),
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with one_range_held(target, transfer) as process:  # stopped with its COPY in flight
        wait_for_ranges(target, process, planned_ranges(target) - 1)
        scram_server.stop("immediate")
    output, _ = process.communicate(timeout=300)
    scram_server.start()
    assert scram_server.password not in output
    again = run(["run", str(source), "--run-dir", str(tmp_path / "b")], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert data_fingerprint(target, TABLES) == reference["content"]


def test_an_index_rebuilt_without_its_constraint_before_a_crash(tmp_path: Path) -> None:
    """A crash between CREATE INDEX and ADD CONSTRAINT … USING INDEX leaves an index without
    its unique constraint; the next run drops and rebuilds it, ending with Alembic's catalog."""
    from test_transfer import catalog

    from runbook.core.run import RunFolder
    from runbook.engine import constraints
    from runbook.steps import backup, schema, transfer

    sample = tmp_path / "dispatch.db"
    generate(sample, scale=0.003, seed=11)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    backup.snapshot(sample, run)
    with fresh_database("runbook_resume_index") as target:
        schema.prepare(run, target)
        before = catalog(target)
        build = constraints.build_index

        def crash_after_the_index(conn, index):
            if index["constraint_type"] == "u":
                conn.execute(index["definition"])  # committed: the connection autocommits
                raise RuntimeError("the server went away before ADD CONSTRAINT")
            build(conn, index)

        constraints.build_index = crash_after_the_index
        try:
            with pytest.raises(RuntimeError, match="went away"):
                transfer.transfer(run, target, workers=2)
        finally:
            constraints.build_index = build
        assert catalog(target) != before
        result = transfer.transfer(run, target, workers=2)
        assert result["attempt"] == 2
        assert catalog(target) == before
