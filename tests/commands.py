"""The runbook command as the tests run it: in a subprocess, with the test's environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from runbook.core.target import Target, connect


def command(*args: str) -> list[str]:
    """The argv of `runbook ARGS` run by this interpreter."""
    return [sys.executable, "-m", "runbook.cli", *args]


def runbook(
    *args: str, env: dict[str, str], wrapper: tuple[str, ...] = (), cwd: str | None = None
) -> subprocess.CompletedProcess:
    """`runbook ARGS` with `env` over this process's environment, started through `wrapper`
    (e.g. setpriv) when given, in folder `cwd` when given; output captured."""
    return subprocess.run(
        [*wrapper, *command(*args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
    )


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the runbook command and everything it started (kernel, loader processes)."""
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for member in [psutil.Process(process.pid), *family]:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    process.wait()


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen, what: str, seconds: float = 300
) -> bool:
    """Poll `condition` until it holds (True) or `process` ended first (False); the test fails
    when neither happened within `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds:g} s"
        time.sleep(0.02)
    return True


def prepare_transfer(source: Path, run_dir: Path, env: dict[str, str]) -> None:
    """Steps 01 and 02 of a run (they must pass), before a transfer the test interrupts."""
    prepared = runbook(
        "run", str(source), "--run-dir", str(run_dir), "--steps", "backup,schema", env=env
    )
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr


def start_transfer(source: Path, run_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    """Step 03 of the run in `run_dir` in the background (its output discarded), for the test
    to interrupt."""
    return subprocess.Popen(
        command("run", str(source), "--run-dir", str(run_dir), "--steps", "transfer"),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def query_running(target: Target, fragment: str, *, waiting_for_a_lock: bool = False) -> bool:
    """Another session of the target is running a statement whose text contains `fragment`
    (`waiting_for_a_lock`: and that statement waits for a lock)."""
    waiting = " AND wait_event_type = 'Lock'" if waiting_for_a_lock else ""
    with connect(target) as conn:
        busy = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            f"AND query ILIKE %s{waiting}",
            (f"%{fragment}%",),
        )
        return busy.fetchone()[0] > 0
