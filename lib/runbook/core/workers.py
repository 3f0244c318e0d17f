"""Worker processes for reading SQLite in parallel (steps 03 and 04): jobs go to `workers`
`python -c` processes by pickle, results come back the same way. Processes, not threads: SQLite
releases the GIL on every row it steps, so threads that read SQLite slow each other down
(measured: two loader threads 45 % slower than one). Only the standard library is imported
here, so a worker starts in milliseconds and imports just what its job names."""

from __future__ import annotations

import os
import pickle
import selectors
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any

from runbook.core.errors import WorkerError, first_line


def default_workers() -> int:
    """Connections used when the caller does not say: one per CPU, at least 2, at most 8."""
    return max(2, min(os.cpu_count() or 2, 8))


_WORKER_CODE = (
    "import pickle, sys; sys.path[:0] = pickle.load(sys.stdin.buffer); "
    "from runbook.core.workers import _worker_main; _worker_main(int(sys.argv[1]))"
)


def _resolve(name: str) -> Callable:
    import importlib

    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _message(exc: BaseException) -> str:
    """What a worker reports of an error: a driver's or the runbook's own message as it is
    (its first line), anything else with its type, since it is a bug."""
    expected = type(exc).__module__.split(".")[0] in ("psycopg", "sqlite3", "apsw", "runbook")
    return first_line(exc) if expected else f"{type(exc).__name__}: {first_line(exc)}"


def _raise(exc: BaseException, _job: Any) -> None:
    raise exc


def _worker_main(result_fd: int) -> None:
    """A worker process: reads (setup, its arguments, work) and then jobs from stdin (pickled),
    runs `work(job)` for each and writes each outcome to `result_fd`. Started as `python -c`
    by `in_processes` (multiprocessing would re-import the caller's main script). `setup` may
    return what closes what it opened; the worker runs it after the last job and ends at once
    (os._exit): the interpreter's own teardown of psycopg's modules cost a loader 35 ms at the
    end of 03's load, where the step waits for it (measured: 2 ms this way)."""
    jobs = sys.stdin.buffer
    finish = None
    with os.fdopen(result_fd, "wb") as results:
        setup, arguments, work = pickle.load(jobs)
        try:
            finish = _resolve(setup)(*arguments)
            work = _resolve(work)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as its first job's
            # error (the server lost while the worker connects, say), not as a traceback
            work = partial(_raise, exc)
        while (job := pickle.load(jobs)) is not None:
            try:
                outcome = {"ok": work(job)}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                outcome = {"error": _message(exc)}
            pickle.dump(outcome, results)
            results.flush()
    if callable(finish):
        with suppress(Exception):  # the results are in; a connection that fails to close
            finish()  # ends with the process
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _start(setup: str, arguments: tuple, work: str) -> tuple[subprocess.Popen, Any]:
    """One worker process, told the import path and what to set up and run; (process, the
    pipe its results come back on)."""
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER_CODE, str(write_fd)],
        stdin=subprocess.PIPE,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    pickle.dump([p for p in sys.path if p], process.stdin)
    pickle.dump((setup, arguments, work), process.stdin)
    return process, os.fdopen(read_fd, "rb")


def _stop(started: list[tuple[subprocess.Popen, Any]], failed: bool) -> None:
    """End the workers: killed after a failure, else told there is no more work."""
    for process, results in started:
        if failed:
            process.kill()
        else:
            with suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        results.close()


Started = list[tuple[subprocess.Popen, Any]]  # worker processes and the pipes of their results


def start_workers(count: int, setup: str, arguments: tuple, work: str) -> Started:
    """`count` worker processes started ahead of their jobs, each running `setup(*arguments)`
    as it starts (its interpreter, imports and setup beside the caller's own work):
    `in_processes(ahead=…)` takes them, `stop_workers` ends those it did not take."""
    return [_start(setup, arguments, work) for _ in range(count)]


def stop_workers(ahead: Started) -> None:
    """End workers started ahead that got no job: told there is none, so each closes what its
    setup opened and ends without a traceback."""
    for process, _ in ahead:
        with suppress(OSError, ValueError):
            pickle.dump(None, process.stdin)
            process.stdin.flush()
    _stop(ahead, failed=False)
    ahead.clear()


def in_processes(
    jobs: list[tuple[Any, Any]],
    workers: int,
    setup: str,
    arguments: tuple,
    work: str,
    done: Callable[[Any, Any], None],
    ahead: Started | None = None,
) -> None:
    """Run `work(payload)` ("module:function") for each (key, payload) job, in the order given,
    on `workers` processes that each ran `setup(*arguments)` first (taken out of `ahead`, the
    ones `start_workers` started with the same setup and work, before any is started here);
    `done(key, result)` is called here as each finishes. The first error stops them all and is
    raised as WorkerError."""
    pending = list(jobs)
    started: Started = []
    selector = selectors.DefaultSelector()
    failed = True

    def give(process: subprocess.Popen, current: list) -> None:
        current[0] = pending.pop(0) if pending else None
        pickle.dump(current[0][1] if current[0] else None, process.stdin)
        process.stdin.flush()

    try:
        for _ in range(min(workers, len(jobs))):
            process, results = ahead.pop(0) if ahead else _start(setup, arguments, work)
            started.append((process, results))
            current: list = [None]
            selector.register(results, selectors.EVENT_READ, (process, results, current))
            give(process, current)
        busy = len(started)
        while busy:
            for key, _ in selector.select(timeout=1.0):
                process, results, current = key.data
                try:
                    outcome = pickle.load(results)
                except EOFError:
                    raise WorkerError(
                        f"a worker process ended unexpectedly (exit {process.wait()})"
                    ) from None
                if "error" in outcome:
                    raise WorkerError(outcome["error"])
                done(current[0][0], outcome["ok"])
                give(process, current)  # the next job, or None: the worker ends
                if current[0] is None:
                    selector.unregister(results)
                    busy -= 1
        failed = False
    finally:
        _stop(started, failed)
        selector.close()
