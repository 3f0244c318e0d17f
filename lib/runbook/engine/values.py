"""The preflight's values scan of one table or rowid range: every value check of the conversion
table and NOT NULL in one pass inside SQLite, the text of a row checked at once for NUL and
UTF-8 (`scanners` runs it over a whole backup)."""

from __future__ import annotations

from itertools import groupby
from typing import Any, NamedTuple

from runbook.columns.conversions import invalid_utf8
from runbook.columns.expressions import has_nul, not_utf8
from runbook.columns.plan import ColumnPlan
from runbook.columns.rules import misfit_kind
from runbook.columns.types import NUL_OR_NOT_UTF8
from runbook.core import source as sqlite_source
from runbook.core.source import quote_ident
from runbook.engine.findings import Findings, shorten

Source = Any  # a source connection: the standard module's (sqlite3) or apsw's
_ROW_CHECKS = {"invalid_utf8": not_utf8, "nul_character": has_nul}  # made per row, in Python


def _checks(
    plans: list[ColumnPlan],
) -> tuple[list[tuple[ColumnPlan, str, str]], dict[str, tuple[ColumnPlan, set[str]]]]:
    """Every value check of the conversion table and NOT NULL as (column, kind, predicate), but
    the plain UTF-8 and NUL checks of text, which are kept apart as the columns they are for with
    their kinds: the text of a row is checked at once, in one Python call (a call per value held
    the GIL, and SQLite's instr() and a Python decode per value cost more than one per row:
    measured on 120k rows of five 490-byte Korean texts)."""
    found, by_row = [], {}
    for plan in plans:
        col = quote_ident(plan.column)
        if not plan.nullable:
            found.append((plan, "null_in_not_null", f"{col} IS NULL"))
        for kind, predicate in plan.rule.checks(col, plan.kind):
            if kind in _ROW_CHECKS and predicate == _ROW_CHECKS[kind](col):
                by_row.setdefault(plan.column, (plan, set()))[1].add(kind)
            else:
                found.append((plan, kind, f"{col} IS NOT NULL AND ({predicate})"))
    return found, by_row


def _joined_text(plans: list[ColumnPlan]) -> str:
    """SQL for a row's text, its columns joined by newlines (an ASCII byte between them, so no
    two halves make a character; the check of the whole is the check of each)."""
    return " || char(10) || ".join(
        f"CASE typeof({quote_ident(p.column)}) WHEN 'text' THEN {quote_ident(p.column)} ELSE '' END"
        for p in plans
    )


def _row_text_check(plans: list[ColumnPlan]) -> str:
    """SQL true when some text of the row holds a NUL or is not UTF-8 (one Python call)."""
    return f"coalesce({NUL_OR_NOT_UTF8}(CAST({_joined_text(plans)} AS BLOB)), 0)"


def _text_findings(value: object, kinds: set[str]) -> list[str]:
    """The row-checked kinds a text value (its bytes) fails."""
    if not isinstance(value, bytes):
        return []
    failed = ["nul_character"] if "nul_character" in kinds and b"\x00" in value else []
    return failed + (["invalid_utf8"] if "invalid_utf8" in kinds and invalid_utf8(value) else [])


# a row range's text, joined in SQLite, checked in one Python call: a scanning process holds it
# about four times over (SQLite's string, Python's bytes and str, the allocator's slack; wide
# scale 1, a process's peak: 4 MiB chunks 44.7 MiB, 256 KiB 27.5, rows checked one by one 31.9),
# and its processes run at step 02's peak of memory; orders of wide scale 1 took 3.0-3.1 s in
# chunks of 256 KiB, 3.1-3.2 s of 1 MiB, 3.2-3.8 s of 4 MiB
TEXT_CHUNK_BYTES = 256 << 10
MAX_FLAGGED = 64  # flagged chunks named in the row check; more: every row of the range checked


class Chunked(NamedTuple):
    """What the chunk pass found in a rowid range: the chunks whose text holds a NUL or is not
    UTF-8, and the rowids with a failed value check (None: too many to name)."""

    text: list[tuple[int, int]]
    rowids: list[int] | None


MAX_FLAGGED_ROWS = 1000  # rowids named in the detail query; more: the range's rows filtered


def _chunk_pass(
    conn: Source,
    table: str,
    texts: list[ColumnPlan],
    masks: list[str],
    bounds: tuple[int, int],
) -> Chunked:
    """The range `bounds` read once in rowid chunks: each chunk's text joined by SQLite
    (group_concat) and checked in one Python call, and the rowids whose value checks failed
    listed beside it, so a clean range needs no second query and a clean chunk no call per
    row (measured, 1M rows of one short text column: 0.9 s called per row, 0.4 s; the chunk
    check and the values scan in one pass instead of two, wide scale 1's temperature logs:
    0.85 -> 0.72 s). Long text too, a chunk then holding fewer rows (measured on 2 vCPUs
    where a Python call costs three times what it did when long text was checked per row:
    orders of wide scale 1, 2.4 kB a row, 3.0-3.1 s against 3.7-4.3 s per row; of standard
    scale 1, 380 bytes a row, 0.69-0.87 s against 0.99-1.01 s)."""
    joined = _joined_text(texts)
    low, high = bounds
    average = conn.execute(  # the rows of a chunk: its text about TEXT_CHUNK_BYTES
        f"SELECT avg(length(CAST(({joined}) AS BLOB))) FROM "
        f"(SELECT * FROM {quote_ident(table)} WHERE rowid >= {low} LIMIT 256)"
    ).fetchone()[0]
    step = max(16, min(8192, int(TEXT_CHUNK_BYTES / max(average or 1, 1))))
    failed = " OR ".join(f"({m}) <> 0" for m in masks) or "0"
    sql = (  # and its rows, and where the next chunk starts: the next rowid there is
        f"SELECT {NUL_OR_NOT_UTF8}(CAST(group_concat({joined}, char(10)) AS BLOB)), "
        f"group_concat(CASE WHEN {failed} THEN rowid END), count(*), (SELECT rowid FROM "
        f"{quote_ident(table)} WHERE rowid > ?2 ORDER BY rowid LIMIT 1) "
        f"FROM {quote_ident(table)} WHERE rowid BETWEEN ?1 AND ?2"
    )
    # the end of a chunk of `step` rows where rowids are sparse (an epoch in milliseconds, or
    # random 64-bit keys): walked in the rowid b-tree, so a chunk holds rows, not one each
    by_rows = (
        f"SELECT coalesce((SELECT rowid FROM {quote_ident(table)} WHERE rowid BETWEEN ?1 AND ?2 "
        f"ORDER BY rowid LIMIT 1 OFFSET {step - 1}), ?2)"
    )
    text: list[tuple[int, int]] = []
    rowids: list[int] | None = []
    start: int | None = low
    sparse = False
    while start is not None and start <= high:
        if sparse:
            end = conn.execute(by_rows, (start, high)).fetchone()[0]
        else:
            end = min(start + step - 1, high)
        bad_text, bad_rows, rows, following = conn.execute(sql, (start, end)).fetchone()
        sparse = sparse or rows < step // 2
        if bad_text:
            text.append((start, end))
        if bad_rows and rowids is not None:
            rowids += map(int, str(bad_rows).split(","))
            if len(rowids) > MAX_FLAGGED_ROWS:
                rowids = None
        start = following
    return Chunked(text, rowids)


def _after_chunks(row_check: str, chunked: Chunked | None) -> tuple[str, str]:
    """The row text check restricted to the chunks that failed, and the rows to read again
    (their rowids, those chunks; '' for every row of the range) after a chunk pass."""
    if chunked is None or len(chunked.text) > MAX_FLAGGED:
        return row_check, ""
    inside = " OR ".join(f"rowid BETWEEN {a} AND {b}" for a, b in chunked.text)
    restricted = f"CASE WHEN {inside} THEN {row_check} ELSE 0 END" if inside else "0"
    if chunked.rowids is None:
        return restricted, ""
    flagged = [inside] if inside else []
    if chunked.rowids:
        flagged.append(f"rowid IN ({', '.join(map(str, chunked.rowids))})")
    return restricted, " OR ".join(flagged)


MASK_BITS = 60  # checks per bit mask column (SQLite integers are 64-bit)


def _mask(checks: list[tuple[ColumnPlan, str, str]]) -> str:
    """SQL for the bit mask of the failed checks (bit i: checks[i]); a column's checks are
    evaluated only for values its conversion's `fits` does not accept (measured on 1M rows:
    a DATETIME column's checks 8 s, with the gate 1 s)."""
    terms = []
    for _, group in groupby(enumerate(checks), key=lambda item: item[1][0].column):
        listed = list(group)
        plan = listed[0][1][0]
        bits = " + ".join(f"CASE WHEN {p} THEN {1 << bit} ELSE 0 END" for bit, (_, _, p) in listed)
        fits = plan.rule.fits
        if fits is None:
            terms.append(bits)
        else:
            terms.append(
                f"CASE WHEN {fits(quote_ident(plan.column), plan.kind)} THEN 0 ELSE {bits} END"
            )
    return " + ".join(terms)


def scan_values(
    conn: Source,
    table: sqlite_source.Table,
    plans: list[ColumnPlan],
    found: Findings | Recorded,
    only: str = "",
    bounds: tuple[int, int] | None = None,
) -> None:
    """Every value check of the conversion table and NOT NULL, in one pass over the rows `only`
    selects (all when empty): each row's failed checks as bits of a few masks, and whether its
    text holds a NUL or is not UTF-8, only the rows with a bit set coming back to Python
    (measured: one pass instead of one query per check). With the rowid `bounds` of those
    rows and short text, the range is read once in chunks first (`_chunk_pass`): then only
    the rows it flagged are read again, their text checked per row only in a chunk that
    failed."""
    checks, by_row = _checks(plans)
    if not checks and not by_row:
        return
    texts = [plan for plan, _ in by_row.values()]
    key_names = list(table.primary_key) or ["rowid"]
    masks = [_mask(checks[start : start + MASK_BITS]) for start in range(0, len(checks), MASK_BITS)]
    where = [only] if only else []
    if texts:
        chunked = None if bounds is None else _chunk_pass(conn, table.name, texts, masks, bounds)
        if chunked is not None and not chunked.text and chunked.rowids == []:
            return  # every row of the range passed every check
        row_check, flagged = _after_chunks(_row_text_check(texts), chunked)
        masks.append(row_check)
        where += [flagged] if flagged else []
    identity = table.row_identity if table.rowid else f"CAST({table.row_identity} AS BLOB)"
    shown = [*(quote_ident(n) for n in key_names), *(quote_ident(p.column) for p in plans)]
    named = ", ".join(f"{m} AS m{i}" for i, m in enumerate(masks))
    filtered = f" WHERE {' AND '.join(f'({w})' for w in where)}" if where else ""
    sql = (
        f"SELECT * FROM (SELECT {identity}, {', '.join(map(_exact, shown))}, {named} "
        f"FROM {quote_ident(table.name)}{filtered}) "
        f"WHERE {' OR '.join(f'm{i} <> 0' for i in range(len(masks)))}"
    )
    position = {p.column: len(key_names) + i for i, p in enumerate(plans)}  # in `shown`
    width = 1 + 2 * len(shown)
    for row in conn.execute(sql):
        identity = row[0] if table.rowid else _read("text", row[0])
        stored = row[2:width:2]  # text as its bytes, what the row-checked text is checked on
        exact = [_read(kind, value) for kind, value in zip(row[1:width:2], stored, strict=True)]
        pk = dict(zip(key_names, exact[: len(key_names)], strict=True))
        stored_texts = [stored[position[plan.column]] for plan, _ in by_row.values()]
        failed = _failed(checks, by_row, row[width:], stored_texts)
        for plan, kind in sorted(failed, key=lambda item: position[item[0].column]):
            value = exact[position[plan.column]]
            kind = misfit_kind(kind, value)
            found.add(table.name, identity, pk, plan.column, kind, shorten(value))


def _failed(
    checks: list[tuple[ColumnPlan, str, str]],
    by_row: dict[str, tuple[ColumnPlan, set[str]]],
    masks: tuple,
    texts: list[object],
) -> list[tuple[ColumnPlan, str]]:
    """The (column, kind) checks a row failed, from its masks (the row's text check last, when
    it has row-checked columns) and the stored values of those columns."""
    value_masks = masks[:-1] if by_row else masks
    failed = [
        checks[i * MASK_BITS + bit][:2]
        for i, mask in enumerate(value_masks)
        for bit in range(MASK_BITS)
        if mask >> bit & 1
    ]
    if by_row and masks[-1]:
        for (plan, kinds), value in zip(by_row.values(), texts, strict=True):
            failed += [(plan, kind) for kind in _text_findings(value, kinds)]
    return failed


def _exact(column: str) -> str:
    """SQL of a value as its type and a value either SQLite driver returns as it is stored:
    text as its bytes (apsw decodes text strictly, and a value that is not UTF-8 is what the
    scan must be able to report)."""
    kind = f"typeof({column})"
    return f"{kind}, CASE {kind} WHEN 'text' THEN CAST({column} AS BLOB) ELSE {column} END"


def _read(kind: str, value: Any) -> Any:
    """A value selected by `_exact` as the standard module returns it (`decode_text`)."""
    return sqlite_source.decode_text(value) if kind == "text" else value


class Recorded(list):
    """The findings of one range, in order, added to the whole scan's when all are done."""

    def add(self, *finding: Any) -> None:
        self.append(finding)
