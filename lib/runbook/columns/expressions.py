"""The SQL of each conversion, per target type: the misfit checks (predicates SQLite evaluates,
so the preflight runs inside SQLite), the COPY text rendering, what SQLite computes for binary
COPY (`wire`), and the canonical text as a pair of expressions, one per engine."""

from __future__ import annotations

from runbook.columns.types import (
    INVALID_UTF8,
    PYTHON_REPR,
    Check,
    SqlPair,
    TargetType,
    Wire,
    copy_escape,
)

# --- misfit checks and COPY text ---------------------------------------------------------------

INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def integer_checks(col: str, target: TargetType) -> list[Check]:
    low, high = INT_RANGES[target.base]
    return [
        ("wrong_type", f"typeof({col}) <> 'integer'"),
        ("integer_overflow", f"typeof({col}) = 'integer' AND {col} NOT BETWEEN {low} AND {high}"),
    ]


def numeric_checks(col: str, target: TargetType) -> list[Check]:
    checks = [("wrong_type", f"typeof({col}) NOT IN ('integer', 'real')")]
    checks.append(
        (
            "too_precise",
            f"typeof({col}) = 'real' AND CAST(printf('%!.15g', {col}) AS REAL) <> {col}",
        )
    )
    if len(target.modifiers) == 2:
        precision, scale = target.modifiers
        checks.append(("too_precise", f"typeof({col}) = 'real' AND round({col}, {scale}) <> {col}"))
        checks.append(
            (
                "numeric_overflow",
                f"typeof({col}) IN ('integer', 'real') "
                f"AND abs({col}) >= 1e{precision - scale} - 0.5e-{scale}",
            )
        )
    return checks


def datetime_checks(col: str, target: TargetType) -> list[Check]:
    shape = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]*"
    day = f"substr({col}, 1, 10)"
    offset = (
        f"({col} GLOB '*[0-9][+-][0-9][0-9]:[0-9][0-9]' "
        f"OR {col} GLOB '*[0-9][+-][0-9][0-9][0-9][0-9]' OR {col} GLOB '*[0-9]Z')"
    )
    return [
        ("empty_string", f"{col} = ''"),
        ("epoch_in_datetime", f"typeof({col}) IN ('integer', 'real')"),
        ("datetime_with_offset", f"typeof({col}) = 'text' AND {col} GLOB '{shape}' AND {offset}"),
        (
            "unparseable_datetime",
            f"typeof({col}) NOT IN ('integer', 'real') AND {col} <> '' AND NOT ({col} GLOB "
            f"'{shape}' AND {offset}) AND ({col} NOT GLOB '{shape}' "
            f"OR julianday({col}) IS NULL OR date(julianday({day})) IS NOT {day} "
            f"OR length({col}) NOT IN (16, 19, 21, 22, 23, 24, 25, 26) OR {day} < '0001')",
        ),
    ]


def date_checks(col: str, target: TargetType) -> list[Check]:
    return [
        ("empty_string", f"{col} = ''"),
        (
            "unparseable_date",
            f"{col} <> '' AND (typeof({col}) <> 'text' OR date(julianday({col})) IS NOT {col} "
            f"OR +{col} < '0001')",
        ),
    ]


def time_checks(col: str, target: TargetType) -> list[Check]:
    shape = "[0-2][0-9]:[0-5][0-9]*"
    return [
        ("empty_string", f"{col} = ''"),
        (
            "unparseable_time",
            f"{col} <> '' AND (typeof({col}) <> 'text' OR {col} NOT GLOB '{shape}' "
            f"OR time({col}) IS NULL OR length({col}) NOT IN (5, 8, 10, 11, 12, 13, 14, 15))",
        ),
    ]


def not_utf8(col: str) -> str:
    """The UTF-8 check of a column's text, one predicate for every conversion: the preflight
    finds it and makes it, with `has_nul`, once per row for all such columns (a Python call)."""
    return f"typeof({col}) = 'text' AND {INVALID_UTF8}(CAST({col} AS BLOB))"


def has_nul(col: str) -> str:
    """The NUL check of a column's text (made per row with `not_utf8` by the preflight)."""
    return f"typeof({col}) = 'text' AND instr({col}, char(0)) > 0"


def text_checks(col: str, target: TargetType) -> list[Check]:
    checks = [
        ("wrong_type", f"typeof({col}) <> 'text'"),
        ("nul_character", has_nul(col)),
        ("invalid_utf8", not_utf8(col)),
    ]
    if target.base in ("character varying", "character") and target.modifiers:
        checks.append(
            ("too_long", f"typeof({col}) = 'text' AND length({col}) > {target.modifiers[0]}")
        )
    return checks


def json_checks(col: str, target: TargetType) -> list[Check]:
    # JSON declares NUMERIC affinity in SQLite: a bare JSON number is stored as a number
    return [
        ("wrong_type", f"typeof({col}) NOT IN ('text', 'integer', 'real')"),
        ("invalid_utf8", not_utf8(col)),
        ("invalid_json", f"typeof({col}) = 'text' AND NOT json_valid({col})"),
        ("nul_character", f"typeof({col}) = 'text' AND instr({col}, '\\u0000') > 0"),
    ]


def _shortest_real(col: str) -> str:
    """SQL for the shortest decimal text that gives back the same double (Python's repr)."""
    return f"{PYTHON_REPR}({col})"


def json_render(col: str, target: TargetType) -> str:
    return f"CASE typeof({col}) WHEN 'real' THEN {_shortest_real(col)} ELSE {copy_escape(col)} END"


def boolean_checks(col: str, target: TargetType) -> list[Check]:
    return [
        (
            "not_boolean",
            f"NOT ({col} IN (0, 1) OR lower(CAST({col} AS TEXT)) "
            f"IN ('0', '1', 't', 'f', 'true', 'false'))",
        )
    ]


def float_checks(col: str, target: TargetType) -> list[Check]:
    return [("wrong_type", f"typeof({col}) NOT IN ('integer', 'real')")]


def bytes_checks(col: str, target: TargetType) -> list[Check]:
    return [("wrong_type", f"typeof({col}) <> 'blob'")]


def boolean_render(col: str, target: TargetType) -> str:
    return (
        f"CASE WHEN {col} IN (1, '1') OR lower({col}) IN ('t', 'true') THEN 't' "
        f"WHEN {col} IN (0, '0') OR lower({col}) IN ('f', 'false') THEN 'f' "
        f"ELSE {copy_escape(col)} END"
    )


def numeric_render(col: str, target: TargetType) -> str:
    return (
        f"CASE typeof({col}) WHEN 'real' THEN printf('%!.15g', {col}) ELSE {copy_escape(col)} END"
    )


EXACT_PRINTF_LIMIT = "1e50"  # SQLite's printf is exact below this magnitude (measured: 1e102)


def float_render(col: str, target: TargetType) -> str:
    # 17 significant digits round-trip a double (CAST AS TEXT keeps only 15); above 1e102
    # SQLite's printf loses the last digit, so huge values take Python's exact repr instead
    return (
        f"CASE WHEN typeof({col}) <> 'real' THEN {copy_escape(col)} "
        f"WHEN abs({col}) < {EXACT_PRINTF_LIMIT} THEN printf('%!.17g', {col}) "
        f"ELSE {PYTHON_REPR}({col}) END"
    )


# --- binary COPY: what SQLite computes per column, for psycopg's C dumpers to pack -------------
# Binary COPY carries no type per field, so a timestamp goes as the int8 of its microseconds
# since 2000-01-01 (its binary form), a date as the int4 of its days, a time as the int8 of its
# microseconds, jsonb as its version byte 1 and the text.

_EPOCH_2000 = 946_684_800  # unix time of 2000-01-01 00:00:00, PostgreSQL's epoch
_INTEGER_WIRE = {"smallint": "int2", "integer": "int4", "bigint": "int8"}


def integer_wire(col: str, target: TargetType) -> Wire:
    return col, _INTEGER_WIRE[target.base]


def float_wire(col: str, target: TargetType) -> Wire:
    return col, "float4" if target.base == "real" else "float8"


def text_wire(col: str, target: TargetType) -> Wire:
    # text's binary form is its UTF-8 bytes: SQLite hands them over as a BLOB and psycopg's C
    # bytea dumper sends them as they are (no decode to str and encode back per value)
    return f"CAST({col} AS BLOB)", "bytea"


def bytes_wire(col: str, target: TargetType) -> Wire:
    return col, "bytea"


def json_wire(col: str, target: TargetType) -> Wire:
    text = f"CASE typeof({col}) WHEN 'real' THEN {PYTHON_REPR}({col}) ELSE {col} END"
    return f"CAST({'char(1) || ' if target.base == 'jsonb' else ''}{text} AS BLOB)", "bytea"


def boolean_wire(col: str, target: TargetType) -> Wire:
    # 0 and 1 directly; any other spelling as the conversion's own rendering decides
    return (
        f"CASE {col} WHEN 1 THEN 1 WHEN 0 THEN 0 ELSE ({boolean_render(col, target)}) = 't' END",
        "bool",
    )


def numeric_wire(col: str, target: TargetType) -> Wire:
    return numeric_render(col, target), "numeric"


NUMERIC_BINARY_DIGITS = 8  # integer digits (two base-10000 groups) of numeric_binary_wire


def numeric_binary_wire(col: str, target: TargetType) -> Wire | None:
    """numeric(p, s) with at most 8 integer digits and 4 decimals packed by SQLite in
    numeric's binary form (ndigits, weight, sign, dscale, then base-10000 digits: two for the
    integer part, one for the fraction), for a reader whose SQLite has unhex() (3.41+); None
    for other numerics. The preflight admits only integers and reals that have at most s
    decimals and fit p, so the value times 10^s rounds to the exact integer of its digits."""
    if len(target.modifiers) != 2:
        return None
    precision, scale = target.modifiers
    if not (0 <= scale <= 4 and precision - scale <= NUMERIC_BINARY_DIGITS):
        return None
    units = f"CAST(round(abs({col}) * {10**scale}) AS INTEGER)"
    whole, fraction = f"({units} / {10**scale})", f"({units} % {10**scale})"
    sign = f"CASE WHEN {col} < 0 THEN 16384 ELSE 0 END"
    digits = [f"{whole} / 10000", f"{whole} % 10000"]
    if scale:
        digits.append(f"{fraction} * {10 ** (4 - scale)}")
    header = f"{len(digits)}, 1, {sign}, {scale}"
    packed = f"unhex(printf('{'%04x' * (4 + len(digits))}', {header}, {', '.join(digits)}))"
    return f"CASE WHEN {col} IS NOT NULL THEN {packed} END", "bytea"


def timestamp_wire(col: str, target: TargetType) -> Wire:
    # 'YYYY-MM-DD HH:MM[:SS[.f…]]' (space or T; the preflight admits nothing else): whole
    # seconds by unixepoch() of the first 19 characters, the fraction padded to 6 digits
    return (
        f"(unixepoch(substr({col}, 1, 19)) - {_EPOCH_2000}) * 1000000 "
        f"+ CAST(substr({col} || '000000', 21, 6) AS INTEGER)",
        "int8",
    )


def date_wire(col: str, target: TargetType) -> Wire:
    return f"CAST(julianday({col}) - 2451544.5 AS INTEGER)", "int4"


def time_wire(col: str, target: TargetType) -> Wire:
    return (
        f"(CAST(substr({col}, 1, 2) AS INTEGER) * 3600 + CAST(substr({col}, 4, 2) AS INTEGER) * 60 "
        f"+ CAST(substr({col}, 7, 2) AS INTEGER)) * 1000000 "
        f"+ CAST(substr({col} || '000000', 10, 6) AS INTEGER)",
        "int8",
    )


# --- the canonical text in SQL, the same on both engines ----------------------------------------
# Dates and times as PostgreSQL prints them with DateStyle ISO (verify's reader sets it); times
# with the fraction of a second without trailing zeros (measured: 3x cheaper than to_char), and
# timestamps with all six digits of it.


def _or_null(pair: SqlPair, nullable: bool) -> SqlPair:
    """NULL as 'N' on both sides; a NOT NULL target column holds no NULL (the preflight refused
    them in the source)."""
    if not nullable:
        return pair
    return f"coalesce({pair[0]}, 'N')", f"coalesce({pair[1]}, 'N')"


def integer_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    return _or_null((s, f"{p}::text"), nullable) if nullable else (s, p)  # concat_ws casts ints


def boolean_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    source = f"CASE {s} WHEN 1 THEN 't' WHEN 0 THEN 'f' ELSE ({boolean_render(s, target)}) END"
    return _or_null((source, f"CASE WHEN {p} THEN 't' WHEN NOT {p} THEN 'f' END"), nullable)


def timestamp_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # 'YYYY-MM-DD HH:MM:SS.ffffff', as the application (SQLAlchemy) writes it: such a source
    # value is its own canonical text (measured: 3x cheaper in SQLite than reformatting every
    # value; GLOB is the cheapest test of the form); other spellings get the 'T' replaced and
    # the seconds and fraction filled in, and the server pads its own output to six digits
    source = (
        f"CASE WHEN {s} GLOB '????-??-?? ??:??:??.??????' THEN {s} "
        f"ELSE replace({s}, 'T', ' ') || substr(':00.000000', length({s}) - 15) END"
    )
    return _or_null((source, f"{p}::text || substr('.000000', length({p}::text) - 18)"), nullable)


def date_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    return _or_null((s, f"{p}::text"), nullable)


def time_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    source = (
        f"CASE length({s}) WHEN 8 THEN {s} WHEN 5 THEN {s} || ':00' "
        f"ELSE rtrim(rtrim({s}, '0'), '.') END"
    )
    return _or_null((source, f"{p}::text"), nullable)


def text_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # the length in front keeps a '|' inside the text from shifting the row's fields; in bytes,
    # which both engines know without reading the text (UTF-8 on both: a UTF-16 source is
    # refused), where a count of characters walks it (measured, 120k rows of three 490-byte
    # Korean texts: 0.21 s of the server's side)
    return _or_null(
        (f"length(CAST({s} AS BLOB)) || ':' || {s}", f"octet_length({p}) || ':' || {p}"),
        nullable,
    )


def bytes_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # SQLite's hex(NULL) is '', not NULL
    return (
        f"CASE WHEN {s} IS NULL THEN 'N' ELSE lower(hex({s})) END",
        f"coalesce(encode({p}, 'hex'), 'N')",
    )


def numeric_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # the decimal it denotes, without trailing zeros
    source = f"CASE typeof({s}) WHEN 'real' THEN printf('%.15g', {s}) ELSE CAST({s} AS TEXT) END"
    return _or_null((source, f"trim_scale({p})::text"), nullable)
