"""The checksum engine: content checksums of every table on both engines, read at the same
time, compared per primary-key segment.

A table's rows are cut into primary-key segments (SEGMENT key values each, as many more as its
keys are sparse: `digest.width`); a segment's checksum
is the first 64 bits of the SHA-256 of its rows' canonical bytes (`shapes`) in key order (for a
table without an integer key, the sum of each row's). Where the work is done (measured on 2
vCPUs; each choice below made it faster):

- Both engines walk a table segment by segment (the next key present, then that segment's key
  range by the primary key's index): the server hashes a segment in one aggregate query, its
  rows fed in key order by a sorted subquery on PostgreSQL 15 and older (a segment that then
  differs is hashed again with the ORDER BY inside the aggregate, the order PostgreSQL
  promises, before it counts). The source is read by worker processes (`digest`) through
  apsw's current SQLite, where rows of SQL text and doubles are joined and hashed by C loops.
- Both engines are read at the same time: the server's queries on threads, the source on
  `workers` processes, the costliest tables first, a costly table in key ranges.
- Segments that differ are read row by row and the differences named (`differences`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.columns.plan import (
    RejectedRows,
    by_table,
    integer_key,
    plans_from,
    rejected_rows,
    row_filter,
)
from runbook.core import source as sqlite_source
from runbook.core.run import RunFolder
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect
from runbook.core.workers import default_workers, in_processes
from runbook.engine import digest, rejects
from runbook.engine.differences import compare, differing_segments
from runbook.engine.digest import FETCH_ROWS, SEGMENT
from runbook.engine.shapes import Shape

# a table costlier than this (rows x cost per row) is read as key ranges (of whole segments) in
# parallel: 400,000 rows of ten plain columns
SPLIT_COST = 4_000_000


@dataclass
class _Part:
    """A table, or one key range of it, checksummed on both engines as one job each."""

    table: str
    source_where: str
    target_where: str
    # the lowest key of the range: the walk from segment to segment starts there (SQLite seeks
    # the next key on the walk's bound, not the range's, so a walk from the lowest integer read
    # every row before the range first: 0.45 s for the last range of 10M rows)
    start: int = digest.INT64_MIN


def _source_job(
    backup: str, shape: Shape, where: str, start: int = digest.INT64_MIN
) -> dict[str, Any]:
    """What reading one table's sums from the source takes, as plain data."""
    if not shape.python:
        text_factory = "bytes"  # the canonical text SQLite built, hashed as it is; JSON as UTF-8
    elif not any(p.options for p in shape.plans):
        text_factory = "str"  # the preflight has refused text that is not UTF-8
    else:
        text_factory = "decode"  # text as the rules see it (invalid UTF-8 kept as surrogates)
    job = {
        "backup": backup,
        "text_factory": text_factory,
        "hasher": shape.hasher(0),
        "start": start,
        "width": shape.width,
    }
    if shape.integer_key:
        job["next_key_sql"], job["segment_sql"] = shape.source_segment_sql(where)
    else:
        job["sql"] = shape.source_sql(where)
    return job


def _source_sums(
    backup: str, shape: Shape, where: str, start: int = digest.INT64_MIN
) -> dict[int, list[int]]:
    return digest.source_sums(_source_job(backup, shape, where, start))


def server_session(target: Target):
    """A connection set up for the checksum queries."""
    conn = connect(target)
    conn.execute("SET work_mem = '64MB'")  # each segment's rows sorted in memory
    conn.execute("SET DateStyle = 'ISO, YMD'")  # the canonical text of dates and times
    conn.execute("SET client_encoding = 'UTF8'")  # textsend's bytes are UTF-8
    return conn


# PostgreSQL 16 feeds rows already in key order to an ordered aggregate without sorting them, so
# there the promised order costs nothing (older servers sort each segment's rows again)
PRESORTED_AGGREGATES = 160000


def _target_sums(
    target: Target, shape: Shape, where: str = "", start: int = digest.INT64_MIN
) -> dict[int, list[int]]:
    with server_session(target) as conn:
        if not shape.row_mode:
            ordered = conn.info.server_version >= PRESORTED_AGGREGATES
            next_key_sql, segment_sql = shape.target_segment_sql(where, ordered=ordered)
            sums = {}

            def next_key(start: int) -> int | None:
                return conn.execute(next_key_sql, [start]).fetchone()[0]

            for segment, low, high in digest.segments_present(next_key, start, shape.width):
                count, sha256 = conn.execute(segment_sql, [low, high]).fetchone()
                sums[segment] = [count, digest.digest64(sha256)]
            return sums
        with conn.cursor(name="runbook_verify") as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(shape.target_sql(where))
            return shape.sums(cursor, 1)


def _ordered_again(
    target: Target,
    shape: Shape,
    where: str,
    source: dict[int, list[int]],
    target_sums: dict[int, list[int]],
) -> None:
    """Segments whose checksums differ are hashed again on the server with the order inside the
    aggregate, which PostgreSQL promises, before they count as different: a match from the
    faster query stands (the rows' canonical bytes delimit themselves, so equal bytes are the
    same rows in the same order), a difference is only ever the promised order's."""
    differing = differing_segments(source, target_sums)
    if shape.row_mode or not differing:
        return
    _, segment_sql = shape.target_segment_sql(where, ordered=True)
    with server_session(target) as conn:
        for segment in differing:
            bounds = digest.segment_bounds(segment, shape.width)
            count, sha256 = conn.execute(segment_sql, bounds).fetchone()
            if count:
                target_sums[segment] = [count, digest.digest64(sha256)]
            else:
                target_sums.pop(segment, None)


Extent = tuple[int, int, int]  # a table's rows, its lowest and highest integer key (else 0, 0)


def _extent(conn: Any, table: str, key: str | None, rows: int | None) -> Extent:
    """A table's rows (`rows`, else counted) and the bounds of its integer key (from its index)."""
    if rows is None:
        rows = sqlite_source.row_counts(conn, [table]).get(table, 0)
    low, high = sqlite_source.key_bounds(conn, table, key) if key else (None, None)
    return rows, low or 0, high or 0


def shapes_of(
    backup: str, plans: dict, counts: dict[str, int] | None = None
) -> tuple[dict[str, Shape], dict[str, Extent]]:
    """Each table's row shape, its segments as wide as its keys are sparse, and its extent (for
    the cost of reading it, and its key ranges): its rows from `counts`, those missing there
    counted; with no `counts`, for comparing rows by key, segments of SEGMENT keys and no
    extents."""
    conn = sqlite_source.open_readonly(backup)
    try:
        tables = {t.name: t for t in sqlite_source.reflect(conn)}
        keys = {name: integer_key(tables[name], table_plans) for name, table_plans in plans.items()}
        extents = (
            {}
            if counts is None
            else {name: _extent(conn, name, keys[name], counts.get(name)) for name in plans}
        )
    finally:
        conn.close()
    shapes = {
        name: Shape(
            name,
            table_plans[0].pg_table,
            table_plans,
            tables[name].primary_key,
            keys[name] is not None,
            digest.width(*extents[name]) if keys[name] and name in extents else SEGMENT,
        )
        for name, table_plans in plans.items()
    }
    return shapes, extents


def _ranges(shape: Shape, extent: Extent, pieces: int, where: str) -> list[_Part]:
    """A table as `pieces` key ranges of whole segments (so no segment is split: each starts on
    a segment's first key, and the first takes every key below, where segment 0 holds the keys
    either side of 0), each with its bounds on both engines and the lowest key its walk starts
    from."""
    _, low, high = extent
    base = max(0, low // shape.width * shape.width)
    if high < base:  # every key below 0: in the one part that starts from the lowest
        return [_Part(shape.table, where, "")]
    width = max(1, -(-(high + 1 - base) // pieces // shape.width)) * shape.width
    source_key, target_key = shape.key_column(0), shape.key_column(1)
    parts = []
    for start in range(base, high + 1, width):
        lower = "" if start == base else f"{{key}} >= {start}"
        upper = "" if start + width > high else f"{{key}} < {start + width}"
        bounds = " AND ".join(b for b in (lower, upper) if b)
        source_where = " AND ".join(f"({w})" for w in (bounds.format(key=source_key), where) if w)
        first = start if start != base else digest.INT64_MIN
        parts.append(_Part(shape.table, source_where, bounds.format(key=target_key), first))
    return parts


def _parts(
    shapes: dict[str, Shape], extents: dict[str, Extent], wheres: dict[str, str], reinserted: dict
) -> list[_Part]:
    """The jobs of both engines, costliest first (a short tail): a costly table with an integer
    key as key ranges, so that one table does not become the critical path; re-inserted keys
    left out of the target's side."""
    parts: list[_Part] = []
    part_cost: dict[str, float] = {}
    for name, shape in shapes.items():
        cost = extents[name][0] * shape.cost_per_row
        split = shape.integer_key and not shape.python
        pieces = max(1, -(-cost // SPLIT_COST)) if split else 1
        part_cost[name] = cost / pieces
        if pieces <= 1:
            parts.append(_Part(name, wheres[name], ""))
        else:
            parts += _ranges(shape, extents[name], pieces, wheres[name])
    parts.sort(key=lambda part: -part_cost[part.table])
    for part in parts:
        keys = reinserted.get(part.table, [])
        part.target_where = _without(shapes[part.table], keys, part.target_where)
    return parts


Sums = dict[str, dict[int, list[int]]]  # table → segment → [rows, checksum]


def _both_engines(
    backup: str, target: Target, shapes: dict[str, Shape], parts: list[_Part], workers: int
) -> tuple[Sums, Sums]:
    """Every part's sums on both engines at the same time: the source's processes and the
    server's queries each have their own pool (in one pool the source waited until the last
    query had started). A table with explicit rules is read in this process (its canonical
    functions are the rules')."""
    source_parts: dict[int, dict[int, list[int]]] = {}
    local = {i for i, part in enumerate(parts) if any(p.options for p in shapes[part.table].plans)}
    remote = [
        (i, _source_job(backup, shapes[part.table], part.source_where, part.start))
        for i, part in enumerate(parts)
        if i not in local
    ]
    with (
        ThreadPoolExecutor(max_workers=1) as source_side,
        ThreadPoolExecutor(max_workers=workers) as server_side,
    ):
        sources = source_side.submit(
            in_processes,
            remote,
            workers,
            "runbook.engine.digest:setup",
            (),
            "runbook.engine.digest:source_sums",
            source_parts.__setitem__,
        )
        targets = [
            server_side.submit(_target_sums, target, shapes[p.table], p.target_where, p.start)
            for p in parts
        ]
        for i in sorted(local):
            part = parts[i]
            source_parts[i] = _source_sums(
                backup, shapes[part.table], part.source_where, part.start
            )
        sources.result()
        source_sums: Sums = {name: {} for name in shapes}
        target_sums: Sums = {name: {} for name in shapes}
        for i, part in enumerate(parts):
            source_sums[part.table].update(source_parts[i])
            target_sums[part.table].update(targets[i].result())
    return source_sums, target_sums


def checksums(
    run: RunFolder,
    target: Target,
    *,
    workers: int | None = None,
    source: Path | None = None,
    rejected: dict[str, list[int]] | None = None,
) -> list[dict[str, Any]]:
    """Content checksums of every table on both engines, read at the same time, compared per
    segment, the differing rows named; per table also the rows rejected and re-inserted. The
    source is the run's backup, or `source` (a later snapshot) with `rejected`, the rowids it
    holds back per table."""
    schema = run.read("schema")
    plans = by_table(plans_from(schema))
    held = (
        rejected_rows(schema.get("preflight", {}))
        if rejected is None
        else {t: RejectedRows("rowid", tuple(ids)) for t, ids in rejected.items()}
    )
    # the backup's census counts the source rows; a later snapshot's are the rows compared
    census = run.read("backup")["row_counts"] if source is None else {}
    backup = str(source or run.backup_path)
    shapes, extents = shapes_of(backup, plans, census)
    wheres = {name: row_filter(name, held) for name in plans}
    # rows the operator corrected and re-inserted: in the target, but not as in the source, so
    # the comparison leaves them out and accounts for them by count
    reinserted = rejects.reinserted_keys(
        run, {name: shape.key[0] if shape.key else "rowid" for name, shape in shapes.items()}
    )
    parts = _parts(shapes, extents, wheres, reinserted)
    source_sums, target_sums = _both_engines(
        backup, target, shapes, parts, workers or default_workers()
    )
    results = []
    for name, shape in shapes.items():
        keys = reinserted.get(name, [])
        _ordered_again(
            target, shape, _without(shape, keys, ""), source_sums[name], target_sums[name]
        )
        result = compare(backup, target, shape, wheres[name], source_sums[name], target_sums[name])
        # the source's rows: compared with the target, or in the reject ledger
        result["compared_rows"] = result.pop("source_rows")
        result["rejected_rows"] = len(held.get(name, ()))
        result["source_rows"] = census.get(name, result["compared_rows"] + result["rejected_rows"])
        result["reinserted_rows"] = len(keys)
        result["reinserted_in_target"] = _reinserted_present(target, shape, keys)
        results.append(result)
    return results


def _reinserted_present(target: Target, shape: Shape, keys: list[int]) -> int:
    """How many of the re-inserted keys the target holds (all of them, unless altered since)."""
    if not keys:
        return 0
    with connect(target) as conn:
        sql = (
            f"SELECT count(*) FROM {quote_ident(shape.target)} "
            f"WHERE {shape.key_column(1)} IN ({', '.join(str(int(k)) for k in keys)})"
        )
        return conn.execute(sql).fetchone()[0]


def _without(shape: Shape, keys: list[int], where: str) -> str:
    """A target-side predicate leaving out the re-inserted keys."""
    if not keys:
        return where
    excluded = f"{shape.key_column(1)} NOT IN ({', '.join(str(int(k)) for k in keys)})"
    return f"({where}) AND {excluded}" if where else excluded
