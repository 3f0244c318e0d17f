"""Work on the target from several threads, each holding its own connection: index builds,
foreign-key validation, ANALYZE and the single-process load run this way (the server does the
work, so threads do not hold each other up on the GIL)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any

import psycopg

from runbook.core.target import Target, connect


def on_connections(
    target: Target,
    jobs: Iterable[Any],
    work: Callable[[Any, Any], Any],
    workers: int,
    open_worker: Callable[[ExitStack, psycopg.Connection], Any] | None = None,
    autocommit: bool = False,
) -> None:
    """Run `work(state, job)` for every job, in the order given, on `workers` threads that each
    hold one connection (`state`, or what `open_worker` makes of it); the first error stops all
    of them and is raised here."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    count = 0
    for job in jobs:
        pending.put(job)
        count += 1
    errors: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            with ExitStack() as stack:
                conn = stack.enter_context(connect(target, autocommit=autocommit))
                state = open_worker(stack, conn) if open_worker else conn
                while not stop.is_set():
                    try:
                        job = pending.get_nowait()
                    except queue.Empty:
                        return
                    work(state, job)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(min(workers, count))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:
        stop.set()
        raise
    if errors:
        raise errors[0]
