"""Worker processes report what went wrong as one message, never as a traceback on screen."""

from __future__ import annotations

import pytest

from runbook.core.errors import RunbookError, WorkerError
from runbook.core.workers import in_processes


def fail_setup(message: str) -> None:
    raise RunbookError(message, fix="nothing")


def double(job: int) -> int:
    return 2 * job


def test_the_results_come_back_for_every_job() -> None:
    done: dict[int, int] = {}
    in_processes([(n, n) for n in range(7)], 3, "builtins:print", (), "test_workers:double",
                 done.__setitem__)  # fmt: skip
    assert done == {n: 2 * n for n in range(7)}


def test_a_setup_that_fails_is_the_error_of_the_run_not_a_traceback(capfd) -> None:
    with pytest.raises(WorkerError, match="the server went away"):
        in_processes([(1, 1), (2, 2)], 2, "test_workers:fail_setup", ("the server went away",),
                     "test_workers:double", lambda key, result: None)  # fmt: skip
    assert "Traceback" not in capfd.readouterr().err


def open_marker(path: str):
    """A setup that opens something: a file saying "open", and what closes it."""
    from pathlib import Path

    Path(path).write_text("open")
    return lambda: Path(path).write_text("closed after the last job")


def test_what_a_setup_opened_is_closed_after_the_last_job(tmp_path) -> None:
    markers = [tmp_path / f"worker-{n}" for n in range(2)]
    done: dict[int, int] = {}
    for marker in markers:  # one worker each, so each writes its own
        in_processes([(n, n) for n in range(3)], 1, "test_workers:open_marker", (str(marker),),
                     "test_workers:double", done.__setitem__)  # fmt: skip
    assert done == {0: 0, 1: 2, 2: 4}
    assert [m.read_text() for m in markers] == ["closed after the last job"] * 2


def mark_open(folder: str):
    """A setup that leaves a file named by its process id, saying "open", and what closes it."""
    import os
    from pathlib import Path

    marker = Path(folder) / str(os.getpid())
    marker.write_text("open")
    return lambda: marker.write_text("closed")


def double_and_pid(job: int) -> tuple[int, int]:
    import os

    return 2 * job, os.getpid()


def test_workers_started_ahead_take_the_jobs_and_the_rest_end_cleanly(tmp_path, capfd) -> None:
    """Processes started ahead run the jobs (no other is started); the one left over is told
    there is no work, closes what its setup opened and ends without a traceback."""
    from runbook.core.workers import start_workers, stop_workers

    setup, work = "test_workers:mark_open", "test_workers:double_and_pid"
    ahead = start_workers(3, setup, (str(tmp_path),), work)
    pids = {process.pid for process, _ in ahead}
    done: dict[int, tuple[int, int]] = {}
    in_processes([(n, n) for n in range(5)], 2, setup, (str(tmp_path),), work, done.__setitem__,
                 ahead)  # fmt: skip
    assert {n: result for n, (result, _) in done.items()} == {n: 2 * n for n in range(5)}
    assert {pid for _, pid in done.values()} < pids and len(ahead) == 1
    stop_workers(ahead)
    assert ahead == []
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        str(pid): "closed" for pid in pids
    }
    assert "Traceback" not in capfd.readouterr().err
