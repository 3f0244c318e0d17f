"""How one table's rows are hashed on both engines: its row shape. Each engine builds the
canonical text of a row in SQL, in C: integers as decimal text, booleans as t/f, timestamps as
'YYYY-MM-DD HH:MM:SS.ffffff' (as the application writes them, so SQLite passes such a value
through), dates, times, text with its length in front (so no separator is ambiguous), NULL as
its own marker. Doubles are compared bit for bit: PostgreSQL's `float8send` and the source value
packed as an IEEE double. JSON is canonicalized in Python on the source side and printed by the
server (`jsonb::text`) on the target side; columns whose canonical form needs Python on both
sides (numeric, explicit rules) put their table in row mode."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from runbook.columns.plan import ColumnPlan
from runbook.core.source import quote_ident
from runbook.engine import digest
from runbook.engine.digest import SEGMENT

# a value canonicalized in Python (JSON) costs the source side about 50 times one that SQLite
# renders (measured: 15-50 us against 0.4 us per value on 2 vCPUs)
PYTHON_VALUE_COST = 50


def _sql_canonical(plan: ColumnPlan) -> tuple[str, str] | None:
    """(SQLite expression, PostgreSQL expression) giving the same non-NULL text for the same
    value (the conversion table's `sql_canonical`), or None where the canonical form needs
    Python (or the value is a double)."""
    if not plan.plain or not plan.rule.sql_canonical:
        return None
    s, p = quote_ident(plan.column), quote_ident(plan.pg_column)
    return plan.rule.sql_canonical(s, p, plan.kind, plan.nullable)


def _is_double(plan: ColumnPlan) -> bool:
    return plan.plain and plan.kind.base == "double precision"


@dataclass
class Shape:
    """How one table's rows are hashed on both engines."""

    table: str
    target: str
    plans: list[ColumnPlan]
    key: tuple[str, ...]
    integer_key: bool
    width: int = SEGMENT  # keys per segment (`digest.width`), the same on both engines

    def __post_init__(self) -> None:
        self.texts = [(p, _sql_canonical(p)) for p in self.plans]
        self.texts = [(p, pair) for p, pair in self.texts if pair is not None]
        self.doubles = [p for p in self.plans if _is_double(p)]
        self.jsonb = [
            p for p in self.plans if p.plain and p.kind.base == "jsonb"
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

    def key_column(self, side: int) -> str:
        """The quoted integer key column on one side (0: SQLite, 1: PostgreSQL)."""
        plan = next(p for p in self.plans if p.column == self.key[0])
        return quote_ident(plan.column if side == 0 else plan.pg_column)

    def _segment(self, side: int) -> str:
        return f"{self.key_column(side)} / {self.width}" if self.integer_key else "0"

    def _order(self, side: int) -> str:
        return f" ORDER BY {self.key_column(side)}" if self.integer_key else ""

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
        key, table = self.key_column(0), quote_ident(self.table)
        also = f" AND ({where})" if where else ""
        return (
            f"SELECT min({key}) FROM {table} WHERE {key} >= ?{also}",
            f"SELECT {', '.join(self._source_columns())} FROM {table} "
            f"WHERE {key} BETWEEN ? AND ?{also} ORDER BY {key}",
        )

    def _target_columns(self) -> list[str]:
        """The row's canonical text, its doubles, and the values canonicalized in Python, as
        the server gives them (the same shape as `_source_columns`)."""
        doubles = [f"coalesce({quote_ident(p.pg_column)}, 0)::float8" for p in self.doubles]
        python = [f"{quote_ident(p.pg_column)}::text" for p in self.jsonb]
        python += [p.rule.target_select(quote_ident(p.pg_column)) for p in self.python]
        return [self._text(1), *doubles, *python]

    def target_sql(self, where: str = "") -> str:
        """Row mode: the rows to hash in Python, each with its segment, in key order."""
        where = f" WHERE {where}" if where else ""
        columns = ", ".join([self._segment(1), *self._target_columns()])
        return f"SELECT {columns} FROM {quote_ident(self.target)}{where}{self._order(1)}"

    def keyed_sql(self, side: int, where: str) -> str:
        """The rows `where` selects, each with its primary key first, then its canonical
        columns: for comparing rows one by one (`hasher(side).row_bytes` of the rest)."""
        by_column = {p.column: p for p in self.plans}
        keys = [quote_ident(k if side == 0 else by_column[k].pg_column) for k in self.key] or [
            "rowid"
        ]
        columns = self._source_columns() if side == 0 else self._target_columns()
        table = quote_ident(self.table if side == 0 else self.target)
        return f"SELECT {', '.join(keys + columns)} FROM {table} WHERE {where}"

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
        for i in range(len(self.jsonb)):
            json = f'printed."jsonb text {i}"'  # a name no application column has
            data += f" || textsend(coalesce('|' || octet_length({json}) || ':' || {json}, '|N'))"
        also = f" AND ({where})" if where else ""
        # the statements take psycopg parameters (%s): every '%' of their SQL text is doubled
        key, table, data, also = (
            text.replace("%", "%%")
            for text in (self.key_column(1), quote_ident(self.target), data, also)
        )
        rows = table
        if self.jsonb:  # each jsonb printed once a row (OFFSET 0 keeps the planner from
            # copying the expression into both its uses; measured, 120k rows of 490-byte item
            # lists: 0.48 s twice, 0.30 s once)
            texts = ", ".join(
                f'{table}.{quote_ident(p.pg_column)}::text AS "jsonb text {i}"'
                for i, p in enumerate(self.jsonb)
            )
            rows += f", LATERAL (SELECT {texts} OFFSET 0) AS printed"
        rows += f" WHERE {key} BETWEEN %s AND %s{also}"
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
