"""The rebuild after a load as one schedule: indexes, foreign keys and ANALYZE on a real server,
every job started only after the jobs it needs and never beside one it would wait for."""

from __future__ import annotations

import threading
import time

import pytest
from test_transfer import catalog

from runbook.core.errors import RunbookError
from runbook.core.pool import (
    ROW_SHARE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    conflict,
    on_connections_scheduled,
)
from runbook.core.target import Target, connect
from runbook.engine import constraints, rebuild

# circular and self-referencing keys, a key on a unique column that is not the primary key, a
# deferrable unique constraint, an expression index, a name that needs quoting
SCHEMA = """
CREATE TABLE depot (id integer PRIMARY KEY, code text NOT NULL, manager_id integer);
CREATE TABLE "Crew Member" (id integer PRIMARY KEY, depot_code text,
    depot_id integer REFERENCES depot, mentor_id integer REFERENCES "Crew Member");
ALTER TABLE depot ADD CONSTRAINT depot_code_key UNIQUE (code);
ALTER TABLE "Crew Member" ADD CONSTRAINT crew_pair UNIQUE (depot_id, id)
    DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE depot ADD FOREIGN KEY (manager_id) REFERENCES "Crew Member";
ALTER TABLE "Crew Member" ADD FOREIGN KEY (depot_code) REFERENCES depot (code);
CREATE INDEX crew_depot ON "Crew Member" (depot_id, id);
CREATE INDEX depot_lower_code ON depot (lower(code));
INSERT INTO depot SELECT i, 'D' || i, NULL FROM generate_series(1, 2000) i;
INSERT INTO "Crew Member" SELECT i, 'D' || (i % 2000 + 1), i % 2000 + 1, nullif(i - 1, 0)
FROM generate_series(1, 20000) i;
UPDATE depot SET manager_id = id * 10;
"""
TABLES = {"depot": (2000, 20.0), "Crew Member": (20000, 30.0)}


def _loaded(target: Target) -> tuple[list[tuple], list[dict], list[dict]]:
    """The schema made (its catalog), then its foreign keys and secondary indexes dropped as
    the load drops them."""
    with connect(target) as conn:
        conn.execute(SCHEMA)
    before = catalog(target)
    with connect(target) as conn:
        fks = constraints.foreign_keys(conn, list(TABLES))
        indexes = constraints.secondary_indexes(conn, list(TABLES))
        constraints.drop(conn, fks, indexes)
    return before, fks, indexes


def test_the_schedule_rebuilds_the_catalog_without_waiting_on_locks(fresh_target: Target) -> None:
    before, fks, indexes = _loaded(fresh_target)
    assert len(fks) == 4 and len(indexes) == 4
    jobs = rebuild.jobs(indexes, fks, TABLES)
    spans: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()
    for job in jobs:
        work = job.work

        def recorded(conn, work=work, name=job.name):
            started = time.perf_counter()
            work(conn)
            with lock:
                spans[name] = (started, time.perf_counter())

        job.work = recorded
    on_connections_scheduled(fresh_target, jobs, 3)

    assert catalog(fresh_target) == before
    with connect(fresh_target) as conn:
        analyzed = conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"
        ).fetchall()
    assert sorted(name for (name,) in analyzed) == sorted(TABLES)
    by_name = {job.name: job for job in jobs}
    assert set(spans) == set(by_name)
    for job in jobs:
        start, end = spans[job.name]
        for before in job.after:  # begun only when what it needs had ended
            assert spans[before][1] <= start, (before, job.name)
        for other in jobs:  # never beside a job holding a lock it would wait for
            if other.name != job.name and conflict(other.locks, job.locks):
                other_start, other_end = spans[other.name]
                assert other_end <= start or end <= other_start, (job.name, other.name)
    # the key on depot.code is added only once the unique index it references stands
    assert by_name[f"add {_fk(fks, 'depot_code')}"].after == {"index depot_code_key"}


def _fk(fks: list[dict], column: str) -> str:
    return next(fk["name"] for fk in fks if f"({column})" in fk["definition"])


def test_an_orphan_stops_the_schedule_with_the_key_named(fresh_target: Target) -> None:
    _, fks, indexes = _loaded(fresh_target)
    with connect(fresh_target) as conn:
        conn.execute("""UPDATE "Crew Member" SET depot_id = 99999 WHERE id = 7""")
    with pytest.raises(RunbookError, match=_fk(fks, "depot_id")) as raised:
        rebuild.rebuild(fresh_target, indexes, fks, TABLES, 2)
    assert raised.value.where == "Crew Member"
    assert "99999" in str(raised.value)


@pytest.mark.parametrize(
    ("definition", "table"),
    [
        ("FOREIGN KEY (client_id) REFERENCES clients(id)", "clients"),
        ("FOREIGN KEY (a) REFERENCES other.clients(id) ON DELETE CASCADE", "clients"),
        ('FOREIGN KEY ("x y") REFERENCES "Crew ""A"" Member"(id)', 'Crew "A" Member'),
        ('FOREIGN KEY (a, b) REFERENCES "s.x"."t(1)"(a, b) DEFERRABLE', "t(1)"),
        ("CHECK (a > 0)", None),
    ],
)
def test_the_referenced_table_is_read_from_the_definition(definition: str, table: str) -> None:
    assert rebuild.referenced_table(definition) == table


def test_lock_conflicts_follow_postgresql() -> None:
    assert not conflict({"t": SHARE}, {"t": SHARE})  # two index builds on one table
    assert conflict({"t": SHARE}, {"t": SHARE_UPDATE_EXCLUSIVE})  # index build, ANALYZE
    assert conflict({"t": SHARE_UPDATE_EXCLUSIVE}, {"t": SHARE_UPDATE_EXCLUSIVE})
    assert not conflict({"t": ROW_SHARE}, {"t": SHARE_UPDATE_EXCLUSIVE})
    assert conflict({"t": SHARE_ROW_EXCLUSIVE}, {"t": SHARE_ROW_EXCLUSIVE})
    assert not conflict({"t": SHARE_ROW_EXCLUSIVE}, {"u": SHARE_ROW_EXCLUSIVE})
