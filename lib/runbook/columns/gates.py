"""The preflight's gates, one per conversion: SQL that is true for the common, well-formed
value, which then passes every misfit check of the conversion (`expressions`) without them
being evaluated (measured on 1M values: a DATETIME column's checks 8 s, with its gate 1 s);
the checks run only for the values a gate does not accept. tests/test_preflight.py holds each
gate to that: no value it accepts fails a check."""

from __future__ import annotations

from runbook.columns.expressions import INT_RANGES
from runbook.columns.types import TargetType


def integer_fits(col: str, target: TargetType) -> str:
    """An integer in the target type's range passes every integer check."""
    low, high = INT_RANGES[target.base]
    return f"typeof({col}) = 'integer' AND {col} BETWEEN {low} AND {high}"


def datetime_fits(col: str, target: TargetType) -> str:
    """'YYYY-MM-DD HH:MM:SS[.f…]' of a real date and time passes every datetime check: its
    first 19 characters come back through a Julian day (no offset moved it, no February 30th
    rolled over: datetime() of the text itself gives February 30th back as it is in the
    standard module's SQLite 3.40, where apsw's 3.54 rolls it over; a number or a blob never
    equals text) and a fraction of up to 6 digits or nothing follows. The fraction is read
    by one GLOB where it has all 6 digits, as SQLAlchemy writes it (26 characters, '.' 20th,
    a digit last: SQLite parsed the rest, and an offset it reads takes 6 characters), by
    length and position tests otherwise (measured on 1M values: 0.28 s above reading them
    with those tests alone, 0.24 s with the GLOB first; the checks with their offset GLOBs
    and two date parses 1.03 s); the checks run only for the rest. Year 0000, which SQLite
    counts and PostgreSQL does not, is left to the checks."""
    raw = f"CAST({col} AS BLOB)"  # byte positions: no counting of characters
    suffix = (
        f"length({raw}) <= 26 AND substr({raw}, 20, 1) IN (x'', x'2e') "
        f"AND substr({raw}, -1) BETWEEN x'30' AND x'39'"
    )
    return (
        f"datetime(julianday({col})) = substr({col}, 1, 19) "
        f"AND ({col} GLOB '???????????????????.?????[0-9]' OR {suffix}) AND +{col} >= '0001'"
    )


def date_fits(col: str, target: TargetType) -> str:
    """'YYYY-MM-DD' of a real day (it comes back unchanged through a Julian day number; date()
    alone keeps February 30th) from year 0001 on passes the checks."""
    return f"typeof({col}) = 'text' AND date(julianday({col})) = {col} AND +{col} >= '0001'"


def time_fits(col: str, target: TargetType) -> str:
    """'HH:MM:SS' of a real time of day (SQLite's time() gives it back) passes the checks."""
    return f"typeof({col}) = 'text' AND time({col}) = {col}"


def text_fits(col: str, target: TargetType) -> str:
    """Text within the column's limit (its bytes, else its characters) passes every check but
    NUL and UTF-8, which the preflight makes per row in Python at memchr and decode speed
    (measured on 1M values: 0.43 s checked one by one; on 120k rows of 490-byte Korean text,
    instr(NUL) 0.08 s and length() 0.06 s per column)."""
    if target.base in ("character varying", "character") and target.modifiers:
        limit = target.modifiers[0]
        return (
            f"typeof({col}) = 'text' "
            f"AND (length(CAST({col} AS BLOB)) <= {limit} OR length({col}) <= {limit})"
        )
    return f"typeof({col}) = 'text'"


def json_fits(col: str, target: TargetType) -> str:
    """A JSON number, or valid JSON text without an escaped NUL (JSON spells it only as a
    lowercase \\u0000), passes every check but the UTF-8 one (made per row)."""
    return (
        f"(typeof({col}) IN ('integer', 'real') OR typeof({col}) = 'text' AND json_valid({col}) "
        f"AND instr({col}, '\\u0000') = 0)"
    )


def boolean_fits(col: str, target: TargetType) -> str:
    """0 and 1 (what SQLAlchemy writes) pass the boolean check (and NOT NULL) without the text
    comparisons (measured on 1M values, a query 0.120-0.124 -> 0.105-0.108 s; reading 0.11 s)."""
    return f"{col} IN (0, 1)"


def float_fits(col: str, target: TargetType) -> str:
    """A number passes the float check (and NOT NULL): between the infinities, as no text or
    blob is (SQLite orders them after every number; the unary + keeps a text column's affinity
    from making the bounds text), two comparisons where typeof() made a string (measured on 1M
    values, a query 0.174-0.176 -> 0.136-0.137 s; reading them 0.11 s)."""
    return f"+{col} BETWEEN -9e999 AND 9e999"
