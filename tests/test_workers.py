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
