"""The cutover's verification, at the cost of the changes: the target equals the final snapshot.

The bulk run proved the target equal to S0 segment by segment: every row, since a segment's
checksum is the SHA-256 of its rows' self-delimiting canonical bytes. Since then:
- on the source, only rows on pages that differ between S0 and the final snapshot can differ,
  and among them only those whose values differ (`delta`, computed here from S0, whatever the
  syncs did);
- on the target, only rows the syncs wrote or removed (their keys are in the ledger) were
  written by the runbook, and the tables' write counters show nobody else wrote (else every
  segment is checked on both engines again, and the result says so).
So those rows are compared on both engines in their canonical form, by primary key; every
other row is the same on both sides as at the bulk verification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook.columns.conversions import open_source
from runbook.core.source import Table, quote_ident
from runbook.core.target import Target
from runbook.engine import delta
from runbook.engine.checksums import checksums, server_session
from runbook.engine.differences import MAX_DIFFERENCES, compare_rows
from runbook.engine.shapes import Shape


def _literal(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _keys_in(columns: list[str], keys: set[tuple]) -> str:
    """SQL true for the rows whose key is one of `keys` (false when there is none)."""
    if not keys:
        return "false"
    ordered = sorted(keys, key=repr)
    if len(columns) == 1:
        return f"{quote_ident(columns[0])} IN ({', '.join(_literal(k[0]) for k in ordered)})"
    names = ", ".join(map(quote_ident, columns))
    values = ", ".join("(" + ", ".join(_literal(v) for v in key) + ")" for key in ordered)
    return f"({names}) IN ({values})"


def _differing_keys(
    final: Path, target: Target, shape: Shape, source_where: str, target_where: str
) -> set[tuple]:
    """The keys whose rows differ between the engines, compared as each row's canonical bytes
    (the checksums' own, built in SQL on both sides): a few microseconds a row, where naming
    the columns that differ costs Python per value (done only for these keys)."""
    conn = open_source(final)
    width = len(shape.key) or 1
    try:
        hasher = shape.hasher(0)
        source = {
            tuple(row[:width]): hasher.row_bytes(row[width:])
            for row in conn.execute(shape.keyed_sql(0, source_where))
        }
    finally:
        conn.close()
    hasher = shape.hasher(1)
    with server_session(target) as session:
        rows = session.execute(shape.keyed_sql(1, target_where)).fetchall()
    here = {tuple(row[:width]): hasher.row_bytes(row[width:]) for row in rows}
    return {key for key in source.keys() | here.keys() if source.get(key) != here.get(key)}


def touched(syncs: list[dict[str, Any]], name: str) -> tuple[set[int], set[tuple]]:
    """The source rowids the syncs wrote to a table, and the target keys they removed."""
    written: set[int] = set()
    removed: set[tuple] = set()
    for sync in syncs:
        entry = sync["changes"]["tables"].get(name, {})
        written.update(entry.get("written_rowids", []))
        removed.update(tuple(k) for k in entry.get("removed_keys", []))
    return written, removed


def recheck_rows(
    s0: Path,
    final: Path,
    target: Target,
    shapes: dict[str, Shape],
    tables: dict[str, Table],
    syncs: list[dict[str, Any]],
    held: dict[str, set[int]],
    reinserted: dict[str, set[int]],
    since: delta.Delta | None = None,
) -> dict[str, Any]:
    """Compare, on both engines, the rows of each table that changed since S0 or that a sync
    wrote or removed: the source's rows (held-back ones left out: they must be absent from the
    target) with the target's rows of the same keys (re-inserted rows, the operator's, left
    out on both sides); returns per table the rows compared and the differences named. `since`:
    the changes from S0 to the final snapshot when already known (the only sync's, whose base
    was S0); computed here otherwise. Long because it is one comparison per table with its key
    sets spelt out."""
    if since is None:
        since = delta.compute(s0, final, [tables[n] for n in shapes])
    conn = delta.open_pair(final, s0)
    results = {}
    try:
        for name, shape in shapes.items():
            changes = since.tables.get(name) or delta.TableChanges(name)
            written, removed = touched(syncs, name)
            mine = reinserted.get(name, set())
            rowids = (set(changes.inserted) | set(changes.updated) | written) - mine
            loaded = sorted(rowids - held.get(name, set()))
            keys = set(delta.present_keys(conn, "main", tables[name], sorted(rowids)).values())
            keys |= set(changes.deleted_keys) | removed
            keys -= set(delta.present_keys(conn, "main", tables[name], sorted(mine)).values())
            if not keys:
                results[name] = {"table": name, "rows_compared": 0, "differences": []}
                continue
            pg_key = [next(p.pg_column for p in shape.plans if p.column == k) for k in shape.key]
            source_where = (
                f"rowid IN (SELECT value FROM json_each('[{','.join(map(str, loaded))}]'))"
            )
            differing = _differing_keys(final, target, shape, source_where, _keys_in(pg_key, keys))
            found = (
                compare_rows(str(final), target, shape, source_where, _keys_in(pg_key, differing))
                if differing
                else []
            )
            results[name] = {
                "table": name,
                "rows_compared": len(keys),
                "differences": found[:MAX_DIFFERENCES],
            }
    finally:
        conn.close()
    return {"tables": results, "pages": {"compared": since.pages, "changed": since.changed_pages}}


def recheck_all(run: Any, target: Target, final: Path, held: dict[str, list[int]]) -> list[dict]:
    """The fallback: every segment of every table on both engines, as the bulk verification,
    against the final snapshot."""
    return checksums(run, target, source=final, rejected=held)
