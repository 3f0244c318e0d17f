"""Naming the differences: the segments whose checksums differ between the engines are read
row by row on both, canonicalized in Python by the conversion table, and compared by primary
key, so every difference is named by table, key and column."""

from __future__ import annotations

from typing import Any

from runbook.columns.conversions import open_source
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect
from runbook.engine.digest import FETCH_ROWS, MASK, segment_bounds
from runbook.engine.shapes import Shape

MAX_DIFFERENCES = 50  # per table, shown and stored


def _canonical_row(row: tuple, canon: list) -> list[str | None]:
    return [None if value is None else fn(value) for value, fn in zip(row, canon, strict=True)]


def differing_segments(
    source: dict[int, list[int]], target_sums: dict[int, list[int]]
) -> list[int]:
    """The segments whose [rows, checksum] differ between the engines (or exist on one only),
    in key order."""
    return sorted(
        s for s in source.keys() | target_sums.keys() if source.get(s) != target_sums.get(s)
    )


class _Side:
    """How to read one table's rows from one engine, keyed by primary key."""

    def __init__(self, shape: Shape) -> None:
        self.table = shape.table
        self.target = shape.target
        self.plans = shape.plans
        self.key = shape.key
        self.key_index = [
            next(i for i, p in enumerate(self.plans) if p.column == k) for k in self.key
        ]
        self.canon = [p.rule.canonical for p in self.plans]
        self.integer_key = shape.integer_key
        self.width = shape.width

    def key_of(self, row: tuple) -> tuple:
        return tuple(row[i] for i in self.key_index) if self.key else row


def _source_select(side: _Side, where: str = "") -> str:
    cols = ", ".join(quote_ident(p.column) for p in side.plans)
    return f"SELECT {cols} FROM {quote_ident(side.table)}" + (f" WHERE {where}" if where else "")


def _target_select(side: _Side, where: str = "") -> str:
    cols = ", ".join(p.rule.target_select(quote_ident(p.pg_column)) for p in side.plans)
    return f"SELECT {cols} FROM {quote_ident(side.target)}" + (f" WHERE {where}" if where else "")


def _segment_where(side: _Side, segment: int, column: str) -> str:
    """Rows of one segment (`key / width`, which truncates toward zero on both engines)."""
    if not side.integer_key:
        return ""
    low, high = segment_bounds(segment, side.width)
    return f"{quote_ident(column)} BETWEEN {low} AND {high}"


def _source_rows(backup: str, sql: str):
    conn = open_source(backup)
    try:
        cursor = conn.execute(sql)
        while batch := cursor.fetchmany(FETCH_ROWS):
            yield from batch
    finally:
        conn.close()


def _target_rows(target: Target, sql: str):
    with connect(target) as conn, conn.cursor(name="runbook_verify") as cursor:
        cursor.itersize = FETCH_ROWS
        cursor.execute(sql)
        yield from cursor


def compare(
    backup: str,
    target: Target,
    shape: Shape,
    where: str,
    source: dict[int, list[int]],
    target_sums: dict[int, list[int]],
) -> dict[str, Any]:
    """The result of one table's comparison: rows and checksums on both engines, and the rows
    of the differing segments that differ, named (at most MAX_DIFFERENCES)."""
    differing = differing_segments(source, target_sums)
    differences: list[dict[str, Any]] = []
    side = _Side(shape)
    for segment in differing:
        if len(differences) >= MAX_DIFFERENCES:
            break
        differences += _diff_segment(backup, target, side, segment, where)
    return {
        "table": shape.table,
        "table_target": shape.target,
        "source_rows": sum(v[0] for v in source.values()),
        "target_rows": sum(v[0] for v in target_sums.values()),
        "source_checksum": f"{sum(v[1] for v in source.values()) & MASK:016x}",
        "target_checksum": f"{sum(v[1] for v in target_sums.values()) & MASK:016x}",
        "mode": "rows" if shape.row_mode else "sql",
        "segments": len(source.keys() | target_sums.keys()),
        "differing_segments": len(differing),
        "differences": differences[:MAX_DIFFERENCES],
    }


def _diff_segment(
    backup: str, target: Target, side: _Side, segment: int, where: str = ""
) -> list[dict[str, Any]]:
    """Rows of one segment compared by primary key on both engines."""
    key_plan = next((p for p in side.plans if side.key and p.column == side.key[0]), None)
    source_where = _segment_where(side, segment, key_plan.column if key_plan else "")
    target_where = _segment_where(side, segment, key_plan.pg_column if key_plan else "")
    source_where = " AND ".join(f"({w})" for w in (source_where, where) if w)
    return compare_rows(backup, target, side, source_where, target_where)


def compare_rows(
    backup: str, target: Target, side: _Side | Shape, source_where: str, target_where: str
) -> list[dict[str, Any]]:
    """The rows each predicate selects (on the source, on the target) compared by primary key
    in their canonical form: every row missing on one side, and every value that differs."""
    side = side if isinstance(side, _Side) else _Side(side)

    def keyed(rows) -> dict[tuple, list[str | None]]:
        return {side.key_of(row): _canonical_row(row, side.canon) for row in rows}

    source = keyed(_source_rows(backup, _source_select(side, source_where)))
    target_rows = keyed(_target_rows(target, _target_select(side, target_where)))
    names = [p.column for p in side.plans]
    found = []
    for key in sorted(source.keys() | target_rows.keys(), key=repr):
        pk = dict(zip(side.key or names, key, strict=True))
        if key not in target_rows:
            found.append({"table": side.table, "pk": pk, "problem": "missing in target"})
        elif key not in source:
            found.append({"table": side.table, "pk": pk, "problem": "not in source"})
        elif source[key] != target_rows[key]:
            for name, left, right in zip(names, source[key], target_rows[key], strict=True):
                if left != right:
                    found.append(
                        {
                            "table": side.table,
                            "pk": pk,
                            "problem": "value differs",
                            "column": name,
                            "source": left,
                            "target": right,
                        }
                    )
    return found
