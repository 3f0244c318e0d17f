"""The one table of column conversions, used by every step.

For each target type, a `Conversion` says how a SQLite value is rendered as COPY text (a SQL
expression SQLite evaluates in C), what SQLite computes for binary COPY (`wire`), which SQLite
values do not fit (SQL predicates, so the preflight scan runs inside SQLite), and the canonical
text both engines' values map to, so checksums compare across engines: in Python (`canonical`)
and, where SQL can say it, as a pair of expressions, one per engine (`sql_canonical`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from runbook.errors import RunbookError

NULL_COPY = "'\\N'"  # SQL literal of COPY's NULL marker
# SQL functions registered on every source connection (see `sql_functions`)
PYTHON_REPR = "runbook_repr_real"
INVALID_UTF8 = "runbook_invalid_utf8"


def copy_escape(expr: str) -> str:
    """SQL that escapes text for COPY's text format (backslash, newline, carriage return, tab)."""
    return (
        f"replace(replace(replace(replace({expr}, '\\', '\\\\'), char(10), '\\n'), "
        f"char(13), '\\r'), char(9), '\\t')"
    )


@dataclass(frozen=True)
class TargetType:
    """A PostgreSQL column type as `format_type` prints it, split into base name and modifiers."""

    text: str

    @property
    def base(self) -> str:
        return re.sub(r"\(.*\)", "", self.text).strip()

    @property
    def modifiers(self) -> tuple[int, ...]:
        match = re.search(r"\(([\d,\s]+)\)", self.text)
        return tuple(int(p) for p in match.group(1).split(",")) if match else ()


Check = tuple[str, str]  # (misfit kind, SQL predicate true when a non-null value does not fit)
# (SQLite expression, the type whose binary COPY dumper packs its value)
Wire = tuple[str, str]
# (SQLite expression, PostgreSQL expression) giving the same text for the same value
SqlPair = tuple[str, str]


@dataclass(frozen=True)
class Conversion:
    """How one kind of SQLite value becomes one PostgreSQL type, and how both are compared."""

    name: str
    rule: str
    render: Callable[[str, TargetType], str]
    checks: Callable[[str, TargetType], list[Check]]
    canonical: Callable[[Any], str]
    target_select: Callable[[str], str] = lambda col: col  # how verify reads the target column
    # binary COPY: what SQLite computes from the source column (None: text COPY only)
    wire: Callable[[str, TargetType], Wire] | None = None
    # the canonical text in SQL on both engines, from (source column, target column, type,
    # nullable); None where only Python says it (or the value is a double, compared bit for bit)
    sql_canonical: Callable[[str, str, TargetType, bool], SqlPair] | None = None


def _kind_error(value: Any) -> str:
    return f"<unconvertible {type(value).__name__} {value!r}>"


# --- canonical forms: one text per value, whichever engine it came from -------------------------


def canonical_integer(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _kind_error(value)


_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}


def canonical_boolean(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    text = str(value).strip().lower() if isinstance(value, int | str) else None
    if text in _TRUE:
        return "t"
    if text in _FALSE:
        return "f"
    return _kind_error(value)


def canonical_float(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return repr(float(value))
    return _kind_error(value)


def canonical_numeric(value: Any) -> str:
    """Decimal value without trailing zeros: a float means its shortest repr (what it denotes)."""
    if isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        return _kind_error(value)
    if number.is_nan():
        return "NaN"
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def canonical_timestamp(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return _kind_error(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat(sep=" ", timespec="microseconds")
    return _kind_error(value)


def canonical_date(value: Any) -> str:
    if isinstance(value, str) and len(value) == 10:
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return _kind_error(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return _kind_error(value)


def canonical_time(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError:
            return _kind_error(value)
    if isinstance(value, time) and value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    return _kind_error(value)


def _json_text(node: Any) -> str:
    """Canonical JSON text: keys sorted, numbers as exact normalized decimals, no spaces."""
    if isinstance(node, dict):
        items = (
            f"{json.dumps(key, ensure_ascii=False)}:{_json_text(node[key])}" for key in sorted(node)
        )
        return "{" + ",".join(items) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_json_text(item) for item in node) + "]"
    if isinstance(node, Decimal):
        return canonical_numeric(node)
    return json.dumps(node, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """Keys sorted, numbers as exact decimals, no insignificant spacing (jsonb re-orders keys)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return canonical_numeric(value)  # a bare JSON number SQLite stored as a number
    if not isinstance(value, str):
        return _kind_error(value)
    try:
        parsed = json.loads(value, parse_float=Decimal, parse_int=Decimal)
    except ValueError:
        return _kind_error(value)
    return _json_text(parsed)


def canonical_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _kind_error(value)


def canonical_text_from_any(value: Any) -> str:
    """Text as is, an integer as its digits, a real as its shortest exact repr."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str) and not isinstance(value, bool):
        return str(value)
    return _kind_error(value)


def canonical_bytes(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return _kind_error(value)


# --- the conversions ----------------------------------------------------------------------------

_INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def _integer_checks(col: str, target: TargetType) -> list[Check]:
    low, high = _INT_RANGES[target.base]
    return [
        ("wrong_type", f"typeof({col}) <> 'integer'"),
        ("integer_overflow", f"typeof({col}) = 'integer' AND {col} NOT BETWEEN {low} AND {high}"),
    ]


def _numeric_checks(col: str, target: TargetType) -> list[Check]:
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


def _datetime_checks(col: str, target: TargetType) -> list[Check]:
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
            f"OR length({col}) NOT IN (16, 19, 21, 22, 23, 24, 25, 26))",
        ),
    ]


def _date_checks(col: str, target: TargetType) -> list[Check]:
    return [
        ("empty_string", f"{col} = ''"),
        (
            "unparseable_date",
            f"{col} <> '' AND (typeof({col}) <> 'text' OR date(julianday({col})) IS NOT {col})",
        ),
    ]


def _time_checks(col: str, target: TargetType) -> list[Check]:
    shape = "[0-2][0-9]:[0-5][0-9]*"
    return [
        ("empty_string", f"{col} = ''"),
        (
            "unparseable_time",
            f"{col} <> '' AND (typeof({col}) <> 'text' OR {col} NOT GLOB '{shape}' "
            f"OR time({col}) IS NULL OR length({col}) NOT IN (5, 8, 10, 11, 12, 13, 14, 15))",
        ),
    ]


def _text_checks(col: str, target: TargetType) -> list[Check]:
    checks = [
        ("wrong_type", f"typeof({col}) <> 'text'"),
        ("nul_character", f"typeof({col}) = 'text' AND instr({col}, char(0)) > 0"),
        ("invalid_utf8", f"typeof({col}) = 'text' AND {INVALID_UTF8}(CAST({col} AS BLOB))"),
    ]
    if target.base in ("character varying", "character") and target.modifiers:
        checks.append(
            ("too_long", f"typeof({col}) = 'text' AND length({col}) > {target.modifiers[0]}")
        )
    return checks


def _json_checks(col: str, target: TargetType) -> list[Check]:
    # JSON declares NUMERIC affinity in SQLite: a bare JSON number is stored as a number
    return [
        ("wrong_type", f"typeof({col}) NOT IN ('text', 'integer', 'real')"),
        ("invalid_utf8", f"typeof({col}) = 'text' AND {INVALID_UTF8}(CAST({col} AS BLOB))"),
        ("invalid_json", f"typeof({col}) = 'text' AND NOT json_valid({col})"),
        ("nul_character", f"typeof({col}) = 'text' AND instr(lower({col}), '\\u0000') > 0"),
    ]


def _shortest_real(col: str) -> str:
    """SQL for the shortest decimal text that gives back the same double (Python's repr)."""
    return f"{PYTHON_REPR}({col})"


def _json_render(col: str, target: TargetType) -> str:
    return f"CASE typeof({col}) WHEN 'real' THEN {_shortest_real(col)} ELSE {copy_escape(col)} END"


def _boolean_checks(col: str, target: TargetType) -> list[Check]:
    return [
        (
            "not_boolean",
            f"NOT ({col} IN (0, 1) OR lower(CAST({col} AS TEXT)) "
            f"IN ('0', '1', 't', 'f', 'true', 'false'))",
        )
    ]


def _float_checks(col: str, target: TargetType) -> list[Check]:
    return [("wrong_type", f"typeof({col}) NOT IN ('integer', 'real')")]


def _bytes_checks(col: str, target: TargetType) -> list[Check]:
    return [("wrong_type", f"typeof({col}) <> 'blob'")]


def _boolean_render(col: str, target: TargetType) -> str:
    return (
        f"CASE WHEN {col} IN (1, '1') OR lower({col}) IN ('t', 'true') THEN 't' "
        f"WHEN {col} IN (0, '0') OR lower({col}) IN ('f', 'false') THEN 'f' "
        f"ELSE {copy_escape(col)} END"
    )


def _numeric_render(col: str, target: TargetType) -> str:
    return (
        f"CASE typeof({col}) WHEN 'real' THEN printf('%!.15g', {col}) ELSE {copy_escape(col)} END"
    )


EXACT_PRINTF_LIMIT = "1e50"  # SQLite's printf is exact below this magnitude (measured: 1e102)


def _float_render(col: str, target: TargetType) -> str:
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


def _integer_wire(col: str, target: TargetType) -> Wire:
    return col, _INTEGER_WIRE[target.base]


def _float_wire(col: str, target: TargetType) -> Wire:
    return col, "float4" if target.base == "real" else "float8"


def _text_wire(col: str, target: TargetType) -> Wire:
    return col, "text"


def _bytes_wire(col: str, target: TargetType) -> Wire:
    return col, "bytea"


def _json_wire(col: str, target: TargetType) -> Wire:
    text = f"CASE typeof({col}) WHEN 'real' THEN {PYTHON_REPR}({col}) ELSE {col} END"
    return (f"char(1) || {text}" if target.base == "jsonb" else f"CAST({text} AS TEXT)"), "text"


def _boolean_wire(col: str, target: TargetType) -> Wire:
    # 0 and 1 directly; any other spelling as the conversion's own rendering decides
    return (
        f"CASE {col} WHEN 1 THEN 1 WHEN 0 THEN 0 ELSE ({_boolean_render(col, target)}) = 't' END",
        "bool",
    )


def _numeric_wire(col: str, target: TargetType) -> Wire:
    return _numeric_render(col, target), "numeric"


def _timestamp_wire(col: str, target: TargetType) -> Wire:
    # 'YYYY-MM-DD HH:MM[:SS[.f…]]' (space or T; the preflight admits nothing else): whole
    # seconds by unixepoch() of the first 19 characters, the fraction padded to 6 digits
    return (
        f"(unixepoch(substr({col}, 1, 19)) - {_EPOCH_2000}) * 1000000 "
        f"+ CAST(substr({col} || '000000', 21, 6) AS INTEGER)",
        "int8",
    )


def _date_wire(col: str, target: TargetType) -> Wire:
    return f"CAST(julianday({col}) - 2451544.5 AS INTEGER)", "int4"


def _time_wire(col: str, target: TargetType) -> Wire:
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


def _integer_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    return _or_null((s, f"{p}::text"), nullable) if nullable else (s, p)  # concat_ws casts ints


def _boolean_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    source = f"CASE {s} WHEN 1 THEN 't' WHEN 0 THEN 'f' ELSE ({_boolean_render(s, target)}) END"
    return _or_null((source, f"CASE WHEN {p} THEN 't' WHEN NOT {p} THEN 'f' END"), nullable)


def _timestamp_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # 'YYYY-MM-DD HH:MM:SS.ffffff', as the application (SQLAlchemy) writes it: such a source
    # value is its own canonical text (measured: 3x cheaper in SQLite than reformatting every
    # value; GLOB is the cheapest test of the form); other spellings get the 'T' replaced and
    # the seconds and fraction filled in, and the server pads its own output to six digits
    source = (
        f"CASE WHEN {s} GLOB '????-??-?? ??:??:??.??????' THEN {s} "
        f"ELSE replace({s}, 'T', ' ') || substr(':00.000000', length({s}) - 15) END"
    )
    return _or_null((source, f"{p}::text || substr('.000000', length({p}::text) - 18)"), nullable)


def _date_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    return _or_null((s, f"{p}::text"), nullable)


def _time_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    source = (
        f"CASE length({s}) WHEN 8 THEN {s} WHEN 5 THEN {s} || ':00' "
        f"ELSE rtrim(rtrim({s}, '0'), '.') END"
    )
    return _or_null((source, f"{p}::text"), nullable)


def _text_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # the length in front keeps a '|' inside the text from shifting the row's fields
    return _or_null((f"length({s}) || ':' || {s}", f"length({p}) || ':' || {p}"), nullable)


def _bytes_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # SQLite's hex(NULL) is '', not NULL
    return (
        f"CASE WHEN {s} IS NULL THEN 'N' ELSE lower(hex({s})) END",
        f"coalesce(encode({p}, 'hex'), 'N')",
    )


def _numeric_sql(s: str, p: str, target: TargetType, nullable: bool) -> SqlPair:
    # the decimal it denotes, without trailing zeros
    source = f"CASE typeof({s}) WHEN 'real' THEN printf('%.15g', {s}) ELSE CAST({s} AS TEXT) END"
    return _or_null((source, f"trim_scale({p})::text"), nullable)


CONVERSIONS: dict[str, Conversion] = {
    "integer": Conversion(
        "integer",
        "integer as is; anything else, or out of range for the target, is a misfit",
        lambda col, t: copy_escape(col),
        _integer_checks,
        canonical_integer,
        wire=_integer_wire,
        sql_canonical=_integer_sql,
    ),
    "boolean": Conversion(
        "boolean",
        "0/1, '0'/'1', 't'/'f', 'true'/'false' (any case) → boolean",
        _boolean_render,
        _boolean_checks,
        canonical_boolean,
        wire=_boolean_wire,
        sql_canonical=_boolean_sql,
    ),
    "float": Conversion(
        "float8",
        "REAL/FLOAT → double precision with all 17 significant digits (exact, never 4-byte real)",
        _float_render,
        _float_checks,
        canonical_float,
        wire=_float_wire,
    ),
    "numeric": Conversion(
        "numeric",
        "number → numeric; values needing more decimals than the scale, or too large, are misfits",
        _numeric_render,
        _numeric_checks,
        canonical_numeric,
        wire=_numeric_wire,
        sql_canonical=_numeric_sql,
    ),
    "timestamp": Conversion(
        "iso-datetime",
        "ISO text 'YYYY-MM-DD HH:MM[:SS[.ffffff]]' (space or T) → timestamp, to the microsecond",
        lambda col, t: copy_escape(col),
        _datetime_checks,
        canonical_timestamp,
        wire=_timestamp_wire,
        sql_canonical=_timestamp_sql,
    ),
    "date": Conversion(
        "iso-date",
        "ISO text 'YYYY-MM-DD' → date",
        lambda col, t: copy_escape(col),
        _date_checks,
        canonical_date,
        wire=_date_wire,
        sql_canonical=_date_sql,
    ),
    "time": Conversion(
        "iso-time",
        "ISO text 'HH:MM[:SS[.ffffff]]' → time",
        lambda col, t: copy_escape(col),
        _time_checks,
        canonical_time,
        wire=_time_wire,
        sql_canonical=_time_sql,
    ),
    "json": Conversion(
        "json-text",
        "JSON text → jsonb; invalid JSON or \\u0000 is a misfit (compared key-sorted)",
        _json_render,
        _json_checks,
        canonical_json,
        target_select=lambda col: f"{col}::text",
        wire=_json_wire,
    ),
    "text": Conversion(
        "text",
        "UTF-8 text as is; longer than the limit (in characters) or holding NUL is a misfit",
        lambda col, t: copy_escape(col),
        _text_checks,
        canonical_text,
        wire=_text_wire,
        sql_canonical=_text_sql,
    ),
    "text-from-any": Conversion(
        "text-from-any",
        "text as is, numbers as their exact decimal text (a column whose data is mixed)",
        lambda col, t: (
            f"CASE typeof({col}) WHEN 'real' THEN {PYTHON_REPR}({col}) ELSE {copy_escape(col)} END"
        ),
        lambda col, t: [
            ("wrong_type", f"typeof({col}) = 'blob'"),
            ("nul_character", f"typeof({col}) = 'text' AND instr({col}, char(0)) > 0"),
            ("invalid_utf8", f"typeof({col}) = 'text' AND {INVALID_UTF8}(CAST({col} AS BLOB))"),
        ],
        canonical_text_from_any,
    ),
    "bytes": Conversion(
        "blob-hex",
        "BLOB → bytea, byte for byte",
        lambda col, t: f"'\\\\x' || hex({col})",
        _bytes_checks,
        canonical_bytes,
        wire=_bytes_wire,
        sql_canonical=_bytes_sql,
    ),
}

_BY_TARGET_BASE = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "boolean": "boolean",
    "double precision": "float",
    "real": "float",
    "numeric": "numeric",
    "timestamp without time zone": "timestamp",
    "date": "date",
    "time without time zone": "time",
    "jsonb": "json",
    "json": "json",
    "character varying": "text",
    "character": "text",
    "text": "text",
    "bytea": "bytes",
}


def conversion_for(
    target_type: str, options: tuple[str, ...] = (), *, where: str = "", name: str = ""
) -> Conversion:
    """The conversion that loads a SQLite value into a column of `target_type` (or the one
    `name`d, where a column needs another than its type's default), with the operator's
    explicit extra rules (`runbook.rules`) applied first."""
    base = TargetType(target_type).base
    try:
        conversion = CONVERSIONS.get(name) or CONVERSIONS[_BY_TARGET_BASE[base]]
    except KeyError:
        raise RunbookError(
            f"no conversion is defined for target type {target_type!r}",
            where=where or None,
            fix="add a rule for this type to runbook.conversions or change the target column type",
        ) from None
    if not options:
        return conversion
    from runbook.rules import with_rules

    return with_rules(conversion, options, where=where)


def _repr_real(value: object) -> object:
    return repr(value) if isinstance(value, float) else value


def _invalid_utf8(value: object) -> bool:
    if not isinstance(value, bytes):
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def sql_functions() -> dict[str, tuple[int, Callable]]:
    """Python functions the conversions' SQL calls, by name: (number of arguments, function)."""
    from runbook.rules import RULE_FUNCTION, apply_rules_sql

    return {
        PYTHON_REPR: (1, _repr_real),
        INVALID_UTF8: (1, _invalid_utf8),
        RULE_FUNCTION: (2, apply_rules_sql),
    }
