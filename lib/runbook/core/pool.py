"""Work on the target from several threads, each holding its own connection: index builds,
foreign-key validation, ANALYZE and the single-process load run this way (the server does the
work, so threads do not hold each other up on the GIL)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import psycopg

from runbook.core.target import Target, connect


def _on_threads(run: Callable[[], None], count: int, stop: Callable[[BaseException], None]) -> None:
    """Run `run` on `count` daemon threads and wait for them; when the waiting is interrupted
    (Ctrl-C), `stop` is called with the interruption, which is then raised."""
    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException as exc:
        stop(exc)
        raise


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

    _on_threads(run, min(workers, count), lambda _: stop.set())
    if errors:
        raise errors[0]


# PostgreSQL's table lock modes that the rebuild's statements take, and which of them conflict
# (the table in the documentation's "Explicit Locking": ROW SHARE is taken on the table a foreign
# key references, SHARE by CREATE INDEX, SHARE UPDATE EXCLUSIVE by VALIDATE CONSTRAINT and
# ANALYZE, SHARE ROW EXCLUSIVE by ADD FOREIGN KEY, ACCESS EXCLUSIVE by other ALTER TABLE forms)
ROW_SHARE, SHARE_UPDATE_EXCLUSIVE, SHARE = "ROW SHARE", "SHARE UPDATE EXCLUSIVE", "SHARE"
SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE = "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"
_CONFLICTS = {
    ROW_SHARE: {ACCESS_EXCLUSIVE},
    SHARE_UPDATE_EXCLUSIVE: {SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE},
    SHARE: {SHARE_UPDATE_EXCLUSIVE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE},
    SHARE_ROW_EXCLUSIVE: {SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE},
    ACCESS_EXCLUSIVE: {
        ROW_SHARE,
        SHARE_UPDATE_EXCLUSIVE,
        SHARE,
        SHARE_ROW_EXCLUSIVE,
        ACCESS_EXCLUSIVE,
    },
}


def conflict(held: dict[str, str], wanted: dict[str, str]) -> bool:
    """True when a statement taking `wanted` (table → lock mode) would wait for one holding
    `held`."""
    return any(wanted[table] in _CONFLICTS[mode] for table, mode in held.items() if table in wanted)


@dataclass
class Job:
    """One piece of server work: what it runs on a connection, the table locks it takes, the
    jobs that must end before it starts, and its estimated seconds (to start the longest chain
    of work first)."""

    name: str
    work: Callable[[Any], Any]
    locks: dict[str, str]
    after: set[str] = field(default_factory=set)
    seconds: float = 0.0


def _chain_seconds(jobs: list[Job]) -> dict[str, float]:
    """Each job's seconds plus the longest chain of jobs waiting for it: its priority."""
    waiting: dict[str, list[str]] = {job.name: [] for job in jobs}
    for job in jobs:
        for before in job.after:
            waiting[before].append(job.name)
    by_name = {job.name: job for job in jobs}
    chain: dict[str, float] = {}

    def length(name: str) -> float:
        if name not in chain:
            chain[name] = by_name[name].seconds + max(map(length, waiting[name]), default=0.0)
        return chain[name]

    for job in jobs:
        length(job.name)
    return chain


class _Schedule:
    """The jobs not yet started, running and ended, shared by the worker threads."""

    def __init__(self, jobs: list[Job]) -> None:
        missing = {before for job in jobs for before in job.after} - {job.name for job in jobs}
        if missing:
            raise ValueError(f"jobs wait for jobs not given: {sorted(missing)}")
        chain = _chain_seconds(jobs)
        self.pending = sorted(jobs, key=lambda job: -chain[job.name])
        self.running: dict[str, dict[str, str]] = {}
        self.done: set[str] = set()
        self.errors: list[BaseException] = []
        self.changed = threading.Condition()

    def _runnable(self) -> Job | None:
        for job in self.pending:
            if job.after <= self.done and not any(
                conflict(held, job.locks) for held in self.running.values()
            ):
                return job
        return None

    def next_job(self) -> Job | None:
        """The next job to run (waiting until one may start), or None when all have started
        or one failed."""
        with self.changed:
            while not self.errors and self.pending and (job := self._runnable()) is None:
                if not self.running:  # nothing will end to make a job runnable
                    waiting = [job.name for job in self.pending]
                    self.errors.append(ValueError(f"jobs wait for each other: {waiting}"))
                    break
                self.changed.wait()
            if self.errors or not self.pending:
                self.changed.notify_all()
                return None
            self.pending.remove(job)
            self.running[job.name] = job.locks
            return job

    def ended(self, job: Job | None, error: BaseException | None = None) -> None:
        """A job ended (or a worker failed outside one, `job` None): its locks free, its
        followers possibly runnable; an error stops every worker before its next job."""
        with self.changed:
            if job is not None:
                self.running.pop(job.name)
                if error is None:
                    self.done.add(job.name)
            if error is not None:
                self.errors.append(error)
            self.changed.notify_all()


def on_connections_scheduled(target: Target, jobs: list[Job], workers: int) -> None:
    """Run the jobs on `workers` threads with a connection each (autocommit), the longest chain
    first, each only once the jobs it waits for have ended and when no running job holds a lock
    it would wait for: no thread sits in a lock queue while other work could run, and jobs that
    lock each other's tables never run together (so never deadlock). The first error stops all
    of them and is raised here."""
    schedule = _Schedule(jobs)

    def worker() -> None:
        try:
            with connect(target, autocommit=True) as conn:
                while job := schedule.next_job():
                    try:
                        job.work(conn)
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        schedule.ended(job, exc)
                        return
                    schedule.ended(job)
        except BaseException as exc:  # noqa: BLE001 - the connection failed
            schedule.ended(None, exc)

    # interrupted: the running jobs end, no other starts
    _on_threads(worker, min(workers, len(jobs)), lambda exc: schedule.ended(None, exc))
    if schedule.errors:
        raise schedule.errors[0]
