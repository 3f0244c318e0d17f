"""Every step meets a server that goes away mid-way with one RunbookError sentence on screen
(what, where, what to do) and no traceback; the notebook keeps the traceback for the audit."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from commands import query_running

from coldchain.sample import generate
from runbook.core.target import Target, connect, create_database
from runbook.record.parts import LIBRARY_CALL

STEPS = ("backup", "schema", "transfer", "verify")
NOTEBOOKS = {s: f"{i:02d}_{s}.ipynb" for i, s in enumerate(STEPS, start=1)}


def _schema_writing(target: Target) -> bool:
    """Step 02 has begun writing: its one transaction holds a transaction id (it commits only
    at the end, so nothing it wrote is visible from here before that)."""
    with connect(target) as conn:
        writing = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        return writing.fetchone()[0] > 0


def _range_loaded(target: Target) -> bool:
    with connect(target) as conn:
        done = conn.execute("SELECT count(*) FROM runbook_ranges WHERE status = 'complete'")
        return done.fetchone()[0] > 0


def _checksums_running(target: Target) -> bool:
    return query_running(target, "string_agg")


def _library_call_running(notebook: Path) -> bool:
    """The step's notebook, as last written, shows its library call running (the runbook's
    engine writes it as that cell starts)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError):  # not written yet, or being written
        return False
    return any(
        LIBRARY_CALL in cell["metadata"].get("tags", [])
        and cell["metadata"].get("papermill", {}).get("status") == "running"
        for cell in cells
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lost") / "dispatch.db"
    generate(path, scale=0.1, seed=5)
    return path


def _runbook(*args: str) -> list[str]:
    return [sys.executable, "-m", "runbook.cli", *args]


@pytest.mark.parametrize("step", STEPS)
def test_the_server_lost_mid_step_is_one_sentence_and_no_traceback(
    scram_server, source: Path, tmp_path: Path, step: str
) -> None:
    database = f"lost_{step}"
    create_database(scram_server.target(), database)
    target = scram_server.target(database)
    env = {**os.environ, "DATABASE_URL": target.url, "RUNBOOK_SPLIT_ROWS": "5000"}
    run_dir = tmp_path / "run"
    before = list(STEPS[: STEPS.index(step)])
    if before:
        done = subprocess.run(
            _runbook("run", str(source), "--run-dir", str(run_dir), "--steps", ",".join(before)),
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    # step 01 meets the server after its copy only when it saves the target it is to replace;
    # its copy waits for this lock on the source, so the server is stopped while 01 waits
    # (after the kernel connected), whatever the machine's speed
    replacing = ["--replace-target"] if step == "backup" else []
    lock = sqlite3.connect(source, isolation_level=None)
    if step == "backup":
        lock.execute("BEGIN EXCLUSIVE")
    process = subprocess.Popen(
        _runbook("run", str(source), "--run-dir", str(run_dir), "--steps", step, *replacing),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    conditions = {
        "backup": lambda: _library_call_running(run_dir / NOTEBOOKS["backup"]),  # at the lock
        "schema": lambda: _schema_writing(target),  # the schema step has begun writing
        "transfer": lambda: _range_loaded(target),  # in the middle of the load
        "verify": lambda: _checksums_running(target),  # in the middle of the checksums
    }
    try:
        output = scram_server.lost_during(
            process,
            conditions[step],
            f"step {step} reaching its server work",
            f"the run ended before step {step} reached its server work",
            then=lock.close,  # 01's copy goes on (closing ends the transaction, no write made)
        )
    finally:
        lock.close()
    assert process.returncode == 1, output
    assert "Traceback" not in output
    failed = [line for line in output.splitlines() if line.startswith(f"Step {step} failed: ")]
    assert len(failed) == 1, output
    assert "What to do:" in failed[0] and "RunbookError" not in failed[0], failed[0]
    assert scram_server.password not in output
    notebook = json.loads((run_dir / NOTEBOOKS[step]).read_text())
    errors = [
        out for cell in notebook["cells"] for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]  # fmt: skip
    assert errors and errors[0]["ename"] == "RunbookError" and errors[0]["traceback"]
