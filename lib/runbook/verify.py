"""Step 04: source and target hold the same data, proven by content checksums, not just counts.

Every value is mapped to one canonical form on both engines. A table's rows are cut into
primary-key segments (SEGMENT key values each); a segment's checksum is the first 64 bits of
the SHA-256 of its rows' canonical bytes in key order (for a table without an integer key, the
sum of each row's). A segment whose checksums differ is compared row by row in Python with the
conversion table's canonical functions, so every difference is named by table and primary key.

Where the work is done (measured on 2 vCPUs; each choice below made it faster):

- Each engine builds the canonical text of a row in SQL, in C: integers as decimal text,
  booleans as t/f, timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (as the application writes them,
  so SQLite passes such a value through), dates, times, text with its length in front (so no
  separator is ambiguous), NULL as its own marker. Doubles are compared bit for bit:
  PostgreSQL's `float8send` and the source value packed as an IEEE double.
- Both engines walk a table segment by segment (the next key present, then that segment's key
  range by the primary key's index): the server hashes a segment in one aggregate query, its
  rows fed in key order by a sorted subquery on PostgreSQL 15 and older (a segment that then
  differs is hashed again with the ORDER BY inside the aggregate, the order PostgreSQL
  promises, before it counts). The source is read by worker processes (`runbook.digest`)
  through apsw's current SQLite, where rows of SQL text and doubles are joined and hashed by
  C loops and JSON is canonicalized in Python. Columns whose canonical form needs Python on
  both sides (numeric, operator rules) put their table in row mode.
- Both engines are read at the same time: the server's queries on threads, the source on
  `workers` processes, the costliest tables first, a costly table in key ranges; the
  application's queries run beside them.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from runbook import digest, ledger, rejects
from runbook import source as sqlite_source
from runbook.conversions import TargetType, conversion_for
from runbook.digest import FETCH_ROWS, MASK, SEGMENT
from runbook.errors import RunbookError
from runbook.run import RunFolder
from runbook.source import quote_ident
from runbook.target import Target, connect
from runbook.transfer import row_filter
from runbook.workers import default_workers, in_processes

# a table costlier than this (rows x cost per row) is read as key ranges (of whole segments) in
# parallel: 400,000 rows of ten plain columns
SPLIT_COST = 4_000_000
# a value canonicalized in Python (JSON) costs the source side about 50 times one that SQLite
# renders (measured: 15-50 us against 0.4 us per value on 2 vCPUs)
PYTHON_VALUE_COST = 50
MAX_DIFFERENCES = 50  # per table, shown and stored

if TYPE_CHECKING:
    from runbook.schema import ColumnPlan


def _canonical_row(row: tuple, canon: list) -> list[str | None]:
    return [None if value is None else fn(value) for value, fn in zip(row, canon, strict=True)]


# --- the canonical row in SQL, the same text on both engines ------------------------------------


def _sql_canonical(plan: ColumnPlan) -> tuple[str, str] | None:
    """(SQLite expression, PostgreSQL expression) giving the same non-NULL text for the same
    value (the conversion table's `sql_canonical`), or None where the canonical form needs
    Python (or the value is a double)."""
    if not _is_plain(plan) or not plan.rule.sql_canonical:
        return None
    s, p = quote_ident(plan.column), quote_ident(plan.pg_column)
    return plan.rule.sql_canonical(s, p, TargetType(plan.target_type), plan.nullable)


def _is_plain(plan: ColumnPlan) -> bool:
    return not plan.options and plan.rule is conversion_for(plan.target_type)


def _is_double(plan: ColumnPlan) -> bool:
    return (
        not plan.options
        and plan.rule is conversion_for(plan.target_type)
        and TargetType(plan.target_type).base == "double precision"
    )


@dataclass
class _Shape:
    """How one table's rows are hashed on both engines."""

    table: str
    target: str
    plans: list[ColumnPlan]
    key: tuple[str, ...]
    integer_key: bool

    def __post_init__(self) -> None:
        self.texts = [(p, _sql_canonical(p)) for p in self.plans]
        self.texts = [(p, pair) for p, pair in self.texts if pair is not None]
        self.doubles = [p for p in self.plans if _is_double(p)]
        self.jsonb = [
            p for p in self.plans if _is_plain(p) and TargetType(p.target_type).base == "jsonb"
        ]  # canonical text: Python for the source, the server's own jsonb output for the target
        covered = {p.column for p, _ in self.texts} | {p.column for p in self.doubles + self.jsonb}
        self.python = [p for p in self.plans if p.column not in covered]
        self.pack = struct.Struct(">" + "d" * len(self.doubles)).pack
        self.canon = {
            0: [digest.jsonb_text] * len(self.jsonb) + [p.rule.canonical for p in self.python],
            1: [str] * len(self.jsonb) + [p.rule.canonical for p in self.python],
        }

    @property
    def cost_per_row(self) -> int:
        """The relative cost of checksumming one row on the source side, to order the work."""
        plain = len(self.texts) + len(self.doubles)
        return plain + PYTHON_VALUE_COST * (len(self.jsonb) + len(self.python))

    @property
    def row_mode(self) -> bool:
        """True when some column's canonical form is computed in Python on both engines, or
        the table has no integer key to cut it into ordered segments."""
        return bool(self.python) or not self.integer_key

    def _text(self, side: int) -> str:
        """The row's canonical text: values joined by '|' (SQLite: printf, its cheapest way),
        then a NULL flag for each nullable double (a NOT NULL column holds none)."""
        parts = [pair[side] for _, pair in self.texts]
        if side == 0:
            parts += self._null_flags(0)
            if not parts:
                return "char(10)"
            groups = [parts[i : i + 100] for i in range(0, len(parts), 100)]  # printf's limit
            return (
                " || '|' || ".join(
                    f"printf('{'|'.join(['%s'] * len(g))}', {', '.join(g)})" for g in groups
                )
                + " || char(10)"
            )
        parts += self._null_flags(1)
        if not parts:
            return "E'\\n'"
        groups = [parts[i : i + 99] for i in range(0, len(parts), 99)]  # 100 arguments at most
        return " || '|' || ".join(f"concat_ws('|', {', '.join(g)})" for g in groups) + " || E'\\n'"

    def _null_flags(self, side: int) -> list[str]:
        """Which nullable doubles are NULL, as one number per 30 of them (bit i: the i-th is
        NULL): one argument instead of one per column (measured: 1.5k fewer instructions per
        row in SQLite for three)."""
        columns = [
            quote_ident(p.column if side == 0 else p.pg_column) for p in self.doubles if p.nullable
        ]
        cast = "" if side == 0 else "::int"
        return [
            " + ".join(
                f"{1 << i} * ({column} IS NULL){cast}"
                for i, column in enumerate(columns[start : start + 30])
            )
            for start in range(0, len(columns), 30)
        ]

    def _key(self, side: int) -> str:
        plan = next(p for p in self.plans if p.column == self.key[0])
        return quote_ident(plan.column if side == 0 else plan.pg_column)

    def _segment(self, side: int) -> str:
        return f"{self._key(side)} / {SEGMENT}" if self.integer_key else "0"

    def _order(self, side: int) -> str:
        return f" ORDER BY {self._key(side)}" if self.integer_key else ""

    def _source_columns(self) -> list[str]:
        """The row's canonical text (a BLOB where SQL builds every value's canonical form, so it
        reaches Python as the bytes to hash), the doubles (a NOT NULL one as it is), then the
        values canonicalized in Python."""
        text = self._text(0) if self.python else f"CAST({self._text(0)} AS BLOB)"
        doubles = [
            f"coalesce({quote_ident(p.column)}, 0.0)" if p.nullable else quote_ident(p.column)
            for p in self.doubles
        ]
        python = [quote_ident(p.column) for p in self.jsonb + self.python]
        return [text, *doubles, *python]

    def source_sql(self, where: str = "") -> str:
        """All rows, each with its segment first (the table has no integer key)."""
        columns = ", ".join([self._segment(0), *self._source_columns()])
        return (
            f"SELECT {columns} FROM {quote_ident(self.table)}"
            + (f" WHERE {where}" if where else "")
            + self._order(0)
        )

    def source_segment_sql(self, where: str = "") -> tuple[str, str]:
        """(the next key at or above ?, the rows with keys between ? and ? in key order)."""
        key, table = self._key(0), quote_ident(self.table)
        also = f" AND ({where})" if where else ""
        return (
            f"SELECT min({key}) FROM {table} WHERE {key} >= ?{also}",
            f"SELECT {', '.join(self._source_columns())} FROM {table} "
            f"WHERE {key} BETWEEN ? AND ?{also} ORDER BY {key}",
        )

    def target_sql(self, where: str = "") -> str:
        """Row mode: the rows to hash in Python, each with its segment, in key order."""
        where = f" WHERE {where}" if where else ""
        doubles = [f"coalesce({quote_ident(p.pg_column)}, 0)::float8" for p in self.doubles]
        python = [f"{quote_ident(p.pg_column)}::text" for p in self.jsonb]
        python += [p.rule.target_select(quote_ident(p.pg_column)) for p in self.python]
        columns = ", ".join([self._segment(1), self._text(1), *doubles, *python])
        return f"SELECT {columns} FROM {quote_ident(self.target)}{where}{self._order(1)}"

    def target_segment_sql(self, where: str = "", *, ordered: bool = True) -> tuple[str, str]:
        """(the next key at or above %s, the row count and SHA-256 of the canonical bytes of the
        rows with keys between %s and %s in key order, computed by the server). One segment per
        query: a GROUP BY over the table would sort all its rows by segment first (measured:
        1M rows spilled 113 MB to disk, two thirds of the query's time).

        `ordered`: the ORDER BY inside the aggregate, the order PostgreSQL promises. Without it
        the rows reach the aggregate from a subquery sorted by key, the primary key index's own
        order, so PostgreSQL 15 and older skip the aggregate's sort (measured: 10-25 % of the
        server's side). That order is kept in practice but not promised, so only a match is
        taken from it (see `_ordered_again`)."""
        # textsend: the text's bytes in the client encoding, UTF-8 (the session sets it), as
        # convert_to(…, 'UTF8') gives them but without checking the UTF-8 again (measured: 5 %
        # of the server's side)
        data = f"textsend({self._text(1)})"
        for p in self.doubles:
            data += f" || float8send(coalesce({quote_ident(p.pg_column)}, 0)::float8)"
        for p in self.jsonb:
            value = f"{quote_ident(p.pg_column)}::text"
            data += f" || textsend(coalesce('|' || octet_length({value}) || ':' || {value}, '|N'))"
        also = f" AND ({where})" if where else ""
        # the statements take psycopg parameters (%s): every '%' of their SQL text is doubled
        key, table, data, also = (
            text.replace("%", "%%") for text in (self._key(1), quote_ident(self.target), data, also)
        )
        rows = f"{table} WHERE {key} BETWEEN %s AND %s{also}"
        if ordered:
            segment = (
                "SELECT count(*), sha256(string_agg(data, ''::bytea ORDER BY key)) FROM "
                f"(SELECT {key} AS key, {data} AS data FROM {rows}) AS keyed"
            )
        else:
            segment = (
                "SELECT count(*), sha256(string_agg(data, ''::bytea)) FROM "
                f"(SELECT {data} AS data FROM {rows} ORDER BY {key}) AS keyed"
            )
        return f"SELECT min({key}) FROM {table} WHERE {key} >= %s{also}", segment

    def hasher(self, side: int) -> digest.Hasher:
        return digest.Hasher(self.integer_key, len(self.doubles), self.canon[side])

    def sums(self, rows, side: int) -> dict[int, list[int]]:
        return self.hasher(side).sums(rows)


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
    backup: str, shape: _Shape, where: str, start: int = digest.INT64_MIN
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
    }
    if shape.integer_key:
        job["next_key_sql"], job["segment_sql"] = shape.source_segment_sql(where)
    else:
        job["sql"] = shape.source_sql(where)
    return job


def _source_sums(
    backup: str, shape: _Shape, where: str, start: int = digest.INT64_MIN
) -> dict[int, list[int]]:
    return digest.source_sums(_source_job(backup, shape, where, start))


def _server_session(target: Target):
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
    target: Target, shape: _Shape, where: str = "", start: int = digest.INT64_MIN
) -> dict[int, list[int]]:
    with _server_session(target) as conn:
        if not shape.row_mode:
            ordered = conn.info.server_version >= PRESORTED_AGGREGATES
            next_key_sql, segment_sql = shape.target_segment_sql(where, ordered=ordered)
            sums = {}

            def next_key(start: int) -> int | None:
                return conn.execute(next_key_sql, [start]).fetchone()[0]

            for segment, low, high in digest.segments_present(next_key, start):
                count, sha256 = conn.execute(segment_sql, [low, high]).fetchone()
                sums[segment] = [count, digest.digest64(sha256)]
            return sums
        with conn.cursor(name="runbook_verify") as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(shape.target_sql(where))
            return shape.sums(cursor, 1)


def _differing(source: dict[int, list[int]], target_sums: dict[int, list[int]]) -> list[int]:
    """The segments whose [rows, checksum] differ between the engines (or exist on one only),
    in key order."""
    return sorted(
        s for s in source.keys() | target_sums.keys() if source.get(s) != target_sums.get(s)
    )


def _ordered_again(
    target: Target,
    shape: _Shape,
    where: str,
    source: dict[int, list[int]],
    target_sums: dict[int, list[int]],
) -> None:
    """Segments whose checksums differ are hashed again on the server with the order inside the
    aggregate, which PostgreSQL promises, before they count as different: a match from the
    faster query stands (the rows' canonical bytes delimit themselves, so equal bytes are the
    same rows in the same order), a difference is only ever the promised order's."""
    differing = _differing(source, target_sums)
    if shape.row_mode or not differing:
        return
    _, segment_sql = shape.target_segment_sql(where, ordered=True)
    with _server_session(target) as conn:
        for segment in differing:
            count, sha256 = conn.execute(segment_sql, digest.segment_bounds(segment)).fetchone()
            if count:
                target_sums[segment] = [count, digest.digest64(sha256)]
            else:
                target_sums.pop(segment, None)


# --- reading rows one by one, for the segments that differ ---------------------------------------


class _Side:
    """How to read one table's rows from one engine, keyed by primary key."""

    def __init__(self, shape: _Shape) -> None:
        self.table = shape.table
        self.target = shape.target
        self.plans = shape.plans
        self.key = shape.key
        self.key_index = [
            next(i for i, p in enumerate(self.plans) if p.column == k) for k in self.key
        ]
        self.canon = [p.rule.canonical for p in self.plans]
        self.integer_key = shape.integer_key

    def key_of(self, row: tuple) -> tuple:
        return tuple(row[i] for i in self.key_index) if self.key else row


def _source_select(side: _Side, where: str = "") -> str:
    cols = ", ".join(quote_ident(p.column) for p in side.plans)
    return f"SELECT {cols} FROM {quote_ident(side.table)}" + (f" WHERE {where}" if where else "")


def _target_select(side: _Side, where: str = "") -> str:
    cols = ", ".join(p.rule.target_select(quote_ident(p.pg_column)) for p in side.plans)
    return f"SELECT {cols} FROM {quote_ident(side.target)}" + (f" WHERE {where}" if where else "")


def _segment_where(side: _Side, segment: int, column: str) -> str:
    """Rows of one segment (`key / SEGMENT`, which truncates toward zero on both engines)."""
    if not side.integer_key:
        return ""
    col = quote_ident(column)
    if segment > 0:
        return f"{col} >= {segment * SEGMENT} AND {col} < {(segment + 1) * SEGMENT}"
    if segment < 0:
        return f"{col} > {(segment - 1) * SEGMENT} AND {col} <= {segment * SEGMENT}"
    return f"{col} > {-SEGMENT} AND {col} < {SEGMENT}"


def _source_rows(backup: str, sql: str):
    conn = sqlite_source.open_readonly(backup)
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


def _compare(
    backup: str,
    target: Target,
    shape: _Shape,
    where: str,
    source: dict[int, list[int]],
    target_sums: dict[int, list[int]],
) -> dict[str, Any]:
    differing = _differing(source, target_sums)
    differences: list[dict[str, Any]] = []
    side = _Side(shape)
    for segment in differing:
        if len(differences) >= MAX_DIFFERENCES:
            break
        differences += _diff_segment(backup, target, side, segment, where)
    return {
        "table": shape.table,
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


def _integer_key(table: sqlite_source.Table) -> bool:
    if len(table.primary_key) != 1:
        return False
    column = next(c for c in table.columns if c.name == table.primary_key[0])
    return "INT" in column.declared.upper()


def checksums(
    run: RunFolder, target: Target, *, workers: int | None = None
) -> list[dict[str, Any]]:
    """Content checksums of every table on both engines, read at the same time: the server runs
    each table's aggregate query while `workers` processes read the source tables (largest
    first; processes, because threads stepping SQLite hold each other up on the GIL)."""
    from runbook.schema import by_table, plans_from

    schema = run.read("schema")
    plans = by_table(plans_from(schema))
    rejected = {
        table: [r[0] for r in rows]
        for table, rows in schema.get("preflight", {}).get("rejected", {}).items()
    }
    conn = sqlite_source.open_readonly(run.backup_path)
    try:
        tables = {t.name: t for t in sqlite_source.reflect(conn)}
        sizes = {
            name: conn.execute(f"SELECT max(rowid) FROM {quote_ident(name)}").fetchone()[0] or 0
            for name in plans
        }
    finally:
        conn.close()
    workers = workers or default_workers()
    backup = str(run.backup_path)
    shapes = {
        name: _Shape(
            name,
            table_plans[0].pg_table,
            table_plans,
            tables[name].primary_key,
            _integer_key(tables[name]),
        )
        for name, table_plans in plans.items()
    }
    costs = {name: sizes[name] * shapes[name].cost_per_row for name in plans}
    wheres = {name: row_filter(name, rejected) for name in plans}
    # a costly table with an integer key is read as key ranges on both engines (whole segments
    # each, so no segment is split), so that one table does not become the critical path
    parts: list[_Part] = []
    part_cost: dict[str, float] = {}
    for name in plans:
        shape = shapes[name]
        split = shape.integer_key and not shape.python
        pieces = max(1, -(-costs[name] // SPLIT_COST)) if split else 1
        part_cost[name] = costs[name] / pieces
        if pieces <= 1:
            parts.append(_Part(name, wheres[name], ""))
            continue
        width = -(-(sizes[name] + 1) // pieces // SEGMENT) * SEGMENT
        for start in range(0, sizes[name] + 1, width):
            low = "" if start == 0 else f"{{key}} >= {start}"
            high = "" if start + width > sizes[name] else f"{{key}} < {start + width}"
            bounds = " AND ".join(b for b in (low, high) if b)
            source_key = quote_ident(tables[name].primary_key[0])
            target_key = shape._key(1)
            source_where = " AND ".join(
                f"({w})" for w in (bounds.format(key=source_key), wheres[name]) if w
            )
            parts.append(
                _Part(
                    name,
                    source_where,
                    bounds.format(key=target_key),
                    start if start else digest.INT64_MIN,
                )
            )
    parts.sort(key=lambda part: -part_cost[part.table])  # the costliest first: a short tail
    # rows the operator corrected and re-inserted: in the target, but not as in the source, so
    # the comparison leaves them out and accounts for them by count
    reinserted = rejects.reinserted_keys(
        run, {name: shape.key[0] if shape.key else "rowid" for name, shape in shapes.items()}
    )
    for part in parts:
        part.target_where = _without(
            shapes[part.table], reinserted.get(part.table, []), part.target_where
        )
    source_parts: dict[int, dict[int, list[int]]] = {}
    local = {i for i, part in enumerate(parts) if any(p.options for p in shapes[part.table].plans)}
    remote = [
        (i, _source_job(backup, shapes[part.table], part.source_where, part.start))
        for i, part in enumerate(parts)
        if i not in local
    ]
    # the two engines at the same time: the source's processes and the server's queries each
    # have their own pool (in one pool the source waited until the last query had started)
    with (
        ThreadPoolExecutor(max_workers=1) as source_side,
        ThreadPoolExecutor(max_workers=workers) as server_side,
    ):
        sources = source_side.submit(
            in_processes,
            remote,
            workers,
            "runbook.digest:setup",
            (),
            "runbook.digest:source_sums",
            source_parts.__setitem__,
        )
        targets = [
            server_side.submit(
                _target_sums, target, shapes[part.table], part.target_where, part.start
            )
            for part in parts
        ]
        for i in sorted(local):
            part = parts[i]
            source_parts[i] = _source_sums(
                backup, shapes[part.table], part.source_where, part.start
            )
        sources.result()
        source_sums: dict[str, dict[int, list[int]]] = {name: {} for name in plans}
        target_sums: dict[str, dict[int, list[int]]] = {name: {} for name in plans}
        for i, part in enumerate(parts):
            source_sums[part.table].update(source_parts[i])
            target_sums[part.table].update(targets[i].result())
    results = []
    for name in plans:
        target_where = _without(shapes[name], reinserted.get(name, []), "")
        _ordered_again(target, shapes[name], target_where, source_sums[name], target_sums[name])
        result = _compare(
            backup, target, shapes[name], wheres[name], source_sums[name], target_sums[name]
        )
        result["rejected_rows"] = len(rejected.get(name, []))
        result["reinserted_rows"] = len(reinserted.get(name, []))
        result["reinserted_in_target"] = _reinserted_present(
            target, shapes[name], reinserted.get(name)
        )
        results.append(result)
    return results


def _reinserted_present(target: Target, shape: _Shape, keys: list[int] | None) -> int:
    """How many of the re-inserted keys the target holds (all of them, unless altered since)."""
    if not keys:
        return 0
    with connect(target) as conn:
        sql = (
            f"SELECT count(*) FROM {quote_ident(shape.target)} "
            f"WHERE {shape._key(1)} IN ({', '.join(str(int(k)) for k in keys)})"
        )
        return conn.execute(sql).fetchone()[0]


def _without(shape: _Shape, keys: list[int], where: str) -> str:
    """A target-side predicate leaving out the re-inserted keys."""
    if not keys:
        return where
    excluded = f"{shape._key(1)} NOT IN ({', '.join(str(int(k)) for k in keys)})"
    return f"({where}) AND {excluded}" if where else excluded


def foreign_keys(target: Target, expected: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Every foreign key the schema defines is present and validated in the target."""
    with connect(target) as conn:
        present = {
            name: validated
            for name, validated in conn.execute(
                "SELECT conname, convalidated FROM pg_constraint "
                "WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
            )
        }
    return [
        {
            "table": fk["table"],
            "name": fk["name"],
            "present": fk["name"] in present,
            "validated": bool(present.get(fk["name"])),
        }
        for fk in expected
    ]


def sequences(target: Target, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sequence's next value is above the largest key in its column."""
    results = []
    with connect(target) as conn:
        for item in expected:
            last, called = conn.execute(
                f"SELECT last_value, is_called FROM {item['sequence']}"
            ).fetchone()
            top = conn.execute(
                f"SELECT max({quote_ident(item['column'])}) FROM {quote_ident(item['table'])}"
            ).fetchone()[0]
            next_value = last + 1 if called else last
            results.append(
                {
                    "table": item["table"],
                    "column": item["column"],
                    "max": top,
                    "next_value": next_value,
                    "ok": top is None or next_value > top,
                }
            )
    return results


APPLICATION_QUERIES = {
    # {table} is the table on PostgreSQL, and on SQLite the table without its rejected rows
    "orders per client": (
        "SELECT c.code, count(o.id), sum(o.pallet_count) FROM {clients} c "
        "LEFT JOIN {orders} o ON o.client_id = c.id GROUP BY c.code ORDER BY c.code"
    ),
    "dispatches per day": (
        "SELECT dispatch_date, count(*), count(driver_id) FROM {dispatches} d "
        "GROUP BY dispatch_date ORDER BY dispatch_date"
    ),
    "stops per dispatch status": (
        "SELECT d.status, count(r.id), sum(CASE WHEN r.is_completed THEN 1 ELSE 0 END) "
        "FROM {dispatches} d JOIN {dispatch_routes} r ON r.dispatch_id = d.id "
        "GROUP BY d.status ORDER BY d.status"
    ),
    "alerts per severity": (
        "SELECT severity, count(*), count(acknowledged_at) FROM {temperature_alerts} a "
        "GROUP BY severity ORDER BY severity"
    ),
}
_QUERY_TABLES = ("clients", "orders", "dispatches", "dispatch_routes", "temperature_alerts")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def application_queries(run: RunFolder, target: Target) -> list[dict[str, Any]]:
    """A few of the application's own queries, run on both engines, results compared."""
    conn = sqlite_source.open_readonly(run.backup_path)
    results = []
    try:
        with connect(target) as pg:
            rejected = rejects.rejected_rowids(run.read("schema")["preflight"])
            loaded = {
                t: f"(SELECT * FROM {t} WHERE {row_filter(t, rejected)})" if rejected.get(t) else t
                for t in _QUERY_TABLES
            }
            # corrected rows: not compared with the source
            fixed = rejects.reinserted_keys(run, dict.fromkeys(_QUERY_TABLES, "id"))
            pg_tables = {
                t: f"(SELECT * FROM {t} WHERE id NOT IN ({', '.join(map(str, fixed[t]))}))"
                if fixed.get(t)
                else t
                for t in _QUERY_TABLES
            }
            for name, template in APPLICATION_QUERIES.items():
                sql = template.format(**pg_tables)
                left = [[_plain(v) for v in row] for row in conn.execute(template.format(**loaded))]
                right = [[_plain(v) for v in row] for row in pg.execute(sql)]
                results.append(
                    {"query": name, "rows": len(left), "equal": left == right, "sql": sql}
                )
    finally:
        conn.close()
    return results


def verify(run: RunFolder, target: Target, *, workers: int | None = None) -> dict[str, Any]:
    """All checks of step 04 and the verdict; written to `verify.json`."""
    transfer = run.read("transfer")
    schema = run.read("schema")
    # the application's queries run beside the checksums (they read both engines too, and
    # would otherwise add their time to the step's)
    with ThreadPoolExecutor(max_workers=1) as beside:
        asked = schema["mode"] == "alembic"
        pending = beside.submit(application_queries, run, target) if asked else None
        tables = checksums(run, target, workers=workers)
        queries = pending.result() if pending else []
    fks = foreign_keys(target, transfer["foreign_keys"])
    seqs = sequences(target, transfer["sequences"])
    failures = []
    for table in tables:
        if table.get("reinserted_rows") != table.get("reinserted_in_target", 0):
            failures.append(
                f"{table['table']}: {table['reinserted_rows']} corrected rows were re-inserted, "
                f"{table['reinserted_in_target']} are in the target"
            )
        if table["source_rows"] != table["target_rows"]:
            failures.append(
                f"{table['table']}: {table['source_rows']} source rows, "
                f"{table['target_rows']} in the target"
            )
        if table["source_checksum"] != table["target_checksum"]:
            failures.append(f"{table['table']}: content checksum differs")
        for diff in table["differences"]:
            detail = f" column {diff['column']}" if "column" in diff else ""
            failures.append(f"{diff['table']} {diff['pk']}: {diff['problem']}{detail}")
    failures += [
        f"foreign key {fk['name']} missing or not valid" for fk in fks if not fk["validated"]
    ]
    failures += [
        f"sequence of {s['table']}.{s['column']} would hand out {s['next_value']} "
        f"(max is {s['max']})"
        for s in seqs
        if not s["ok"]
    ]
    failures += [f"application query {q['query']!r} differs" for q in queries if not q["equal"]]
    result = {
        "backup_sha256": run.read("backup")["sha256"],
        "verdict": "FAIL" if failures else "PASS",
        "failures": failures,
        "tables": tables,
        "foreign_keys": fks,
        "sequences": seqs,
        "application_queries": queries,
        # which key ranges of which tables each transfer attempt loaded (from the target)
        "ranges": ledger.ranges_by_attempt(target, run.read("backup")["sha256"]),
    }
    run.write("verify", result)
    return result


def raise_on_fail(result: dict[str, Any]) -> str:
    """The verdict line; raises a RunbookError listing the failures when the verdict is FAIL."""
    if result["verdict"] == "PASS":
        rows = sum(t["source_rows"] for t in result["tables"])
        return (
            f"{len(result['tables'])} tables, {rows} rows: counts and content checksums match; "
            f"{len(result['foreign_keys'])} foreign keys valid; sequences and application "
            f"queries agree."
        )
    listed = "; ".join(result["failures"][:20])
    more = len(result["failures"]) - 20
    raise RunbookError(
        f"verification FAILED: {listed}" + (f"; and {more} more" if more > 0 else ""),
        fix="inspect the differences in 04_verify; do not switch the application over",
    )
