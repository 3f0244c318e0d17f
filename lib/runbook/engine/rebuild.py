"""The rebuild after a bulk load as one schedule: every index build, foreign key (added NOT
VALID, then validated) and ANALYZE is a job holding the table locks its statements take and
waiting for the jobs it needs, run on the workers' connections longest chain first
(`pool.on_connections_scheduled`).

Run phase after phase, each phase waited for its longest job with the other worker idle: at
standard scale 1 on 2 workers the three phases took 2.5 s for 2.5 s of work (the largest
table's index 0.74 s, its two foreign keys 0.19 s each, the ANALYZE of orders 0.41 s). A
foreign key's validation needs no secondary index, and an ANALYZE only its own table's
indexes, so one schedule keeps both workers busy."""

from __future__ import annotations

import re
from typing import Any

from runbook.core.pool import (
    ACCESS_EXCLUSIVE,
    ROW_SHARE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    Job,
    on_connections_scheduled,
)
from runbook.core.source import quote_ident
from runbook.core.target import Target
from runbook.engine import constraints

# estimated seconds, only to start the longest chain first (measured on 2 vCPUs at standard
# scale 1: an index of a 1M-row table 0.74 s, a foreign key's validation 0.19 s; ANALYZE reads
# a sample of 300 x default_statistics_target rows: 0.03 s per MB of it)
INDEX_SECONDS_PER_ROW = 0.74e-6
VALIDATE_SECONDS_PER_ROW = 0.19e-6
ANALYZE_SAMPLE_ROWS = 30_000
ANALYZE_SECONDS_PER_BYTE = 0.03e-6
JOB_SECONDS = 0.005  # a statement's round trip and catalog work

_NAME = r'(?:"(?:[^"]|"")+"|[^\s".(]+)'
_REFERENCES = re.compile(rf"REFERENCES\s+(?:{_NAME}\.)?({_NAME})\s*\(")


def referenced_table(definition: str) -> str | None:
    """The table a foreign key's definition (`pg_get_constraintdef`) references, unquoted."""
    found = _REFERENCES.search(definition)
    if not found:
        return None
    name = found.group(1)
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _analyze(table: str) -> Any:
    return lambda conn: conn.execute(f"ANALYZE {quote_ident(table)}")


def jobs(
    indexes: list[dict[str, Any]],
    fks: list[dict[str, str]],
    tables: dict[str, tuple[int, float]],
    *,
    add_foreign_keys: bool = True,
) -> list[Job]:
    """The rebuild's jobs: the dropped `indexes` built again, the `fks` added NOT VALID (unless
    they are in place) and validated, every table of `tables` (name → rows, bytes per row)
    analyzed once its indexes are built; a foreign key is added once the referenced table's
    unique indexes are (the key may reference one of them)."""
    rows = {name: size[0] for name, size in tables.items()}
    result: list[Job] = []
    built: dict[str, set[str]] = {}  # table → its index jobs
    unique: dict[str, set[str]] = {}  # table → its unique and exclusion index jobs
    for index in indexes:
        name, table = f"index {index['name']}", index["table"]
        # a unique or exclusion constraint is attached by ALTER TABLE: ACCESS EXCLUSIVE
        mode = ACCESS_EXCLUSIVE if index["constraint_type"] in ("u", "x") else SHARE
        seconds = JOB_SECONDS + INDEX_SECONDS_PER_ROW * rows.get(table, 0)
        result.append(
            Job(name, _bound(constraints.build_index, index), {table: mode}, set(), seconds)
        )
        built.setdefault(table, set()).add(name)
        if mode == ACCESS_EXCLUSIVE:
            unique.setdefault(table, set()).add(name)
    every_unique = set().union(*unique.values())
    for fk in fks:
        table, referenced = fk["table"], referenced_table(fk["definition"])
        after: set[str] = set()
        if add_foreign_keys:
            adding = f"add {fk['name']}"
            # unknown referenced table: every table locked, every unique index waited for
            locks = {t: SHARE_ROW_EXCLUSIVE for t in ([referenced] if referenced else tables)}
            locks[table] = SHARE_ROW_EXCLUSIVE
            needs = unique.get(referenced, set()) if referenced else every_unique
            adds = _bound(constraints.add_foreign_key, fk)
            result.append(Job(adding, adds, locks, set(needs), JOB_SECONDS))
            after = {adding}
        locks = {referenced: ROW_SHARE} if referenced else {}
        locks[table] = SHARE_UPDATE_EXCLUSIVE
        seconds = JOB_SECONDS + VALIDATE_SECONDS_PER_ROW * rows.get(table, 0)
        validates = _bound(constraints.validate, fk)
        result.append(Job(f"validate {fk['name']}", validates, locks, after, seconds))
    for table, (count, row_bytes) in tables.items():
        sampled = min(count, ANALYZE_SAMPLE_ROWS) * row_bytes
        seconds = JOB_SECONDS + ANALYZE_SECONDS_PER_BYTE * sampled
        locks = {table: SHARE_UPDATE_EXCLUSIVE}
        result.append(
            Job(f"analyze {table}", _analyze(table), locks, set(built.get(table, ())), seconds)
        )
    return result


def _bound(work: Any, item: Any) -> Any:
    return lambda conn: work(conn, item)


def rebuild(
    target: Target,
    indexes: list[dict[str, Any]],
    fks: list[dict[str, str]],
    tables: dict[str, tuple[int, float]],
    workers: int,
    *,
    add_foreign_keys: bool = True,
) -> None:
    """Build the indexes, add and validate the foreign keys and ANALYZE the tables (`jobs`) on
    `workers` connections."""
    on_connections_scheduled(
        target, jobs(indexes, fks, tables, add_foreign_keys=add_foreign_keys), workers
    )
