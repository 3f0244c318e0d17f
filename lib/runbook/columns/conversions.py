"""The one table of column conversions, used by every step.

For each target type, a `Conversion` says how a SQLite value is rendered as COPY text (a SQL
expression SQLite evaluates in C), what SQLite computes for binary COPY (`wire`), which SQLite
values do not fit (SQL predicates, so the preflight scan runs inside SQLite), and the canonical
text both engines' values map to, so checksums compare across engines: in Python (`canonical`)
and, where SQL can say it, as a pair of expressions, one per engine (`sql_canonical`). The SQL
pieces live in `expressions`, the Python canonical forms in `canonical`; the operator's
explicit rules (`rules`) are applied on top of a conversion by `with_rules`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runbook.columns import canonical, expressions, gates, rules
from runbook.columns.types import (
    INVALID_UTF8,
    NUL_OR_NOT_UTF8,
    NULL_COPY,
    PYTHON_REPR,
    Check,
    Conversion,
    TargetType,
    copy_escape,
)
from runbook.core.errors import RunbookError
from runbook.core.source import open_readonly, open_readonly_fast

CONVERSIONS: dict[str, Conversion] = {
    "integer": Conversion(
        "integer",
        "integer as is; anything else, or out of range for the target, is a misfit",
        lambda col, t: copy_escape(col),
        expressions.integer_checks,
        canonical.canonical_integer,
        wire=expressions.integer_wire,
        sql_canonical=expressions.integer_sql,
        fits=gates.integer_fits,
    ),
    "boolean": Conversion(
        "boolean",
        "0/1, '0'/'1', 't'/'f', 'true'/'false' (any case) → boolean",
        expressions.boolean_render,
        expressions.boolean_checks,
        canonical.canonical_boolean,
        wire=expressions.boolean_wire,
        sql_canonical=expressions.boolean_sql,
        fits=gates.boolean_fits,
    ),
    "float": Conversion(
        "float8",
        "REAL/FLOAT → double precision with all 17 significant digits (exact, never 4-byte real)",
        expressions.float_render,
        expressions.float_checks,
        canonical.canonical_float,
        wire=expressions.float_wire,
        fits=gates.float_fits,
    ),
    "numeric": Conversion(
        "numeric",
        "number → numeric; values needing more decimals than the scale, or too large, are misfits",
        expressions.numeric_render,
        expressions.numeric_checks,
        canonical.canonical_numeric,
        wire=expressions.numeric_wire,
        fast_wire=expressions.numeric_binary_wire,
        sql_canonical=expressions.numeric_sql,
    ),
    "timestamp": Conversion(
        "iso-datetime",
        "ISO text 'YYYY-MM-DD HH:MM[:SS[.ffffff]]' (space or T) → timestamp, to the microsecond; "
        "year 0001 on (PostgreSQL has no year 0000)",
        lambda col, t: copy_escape(col),
        expressions.datetime_checks,
        canonical.canonical_timestamp,
        wire=expressions.timestamp_wire,
        sql_canonical=expressions.timestamp_sql,
        fits=gates.datetime_fits,
    ),
    "date": Conversion(
        "iso-date",
        "ISO text 'YYYY-MM-DD' → date, year 0001 on",
        lambda col, t: copy_escape(col),
        expressions.date_checks,
        canonical.canonical_date,
        wire=expressions.date_wire,
        sql_canonical=expressions.date_sql,
        fits=gates.date_fits,
    ),
    "time": Conversion(
        "iso-time",
        "ISO text 'HH:MM[:SS[.ffffff]]' → time",
        lambda col, t: copy_escape(col),
        expressions.time_checks,
        canonical.canonical_time,
        wire=expressions.time_wire,
        sql_canonical=expressions.time_sql,
        fits=gates.time_fits,
    ),
    "json": Conversion(
        "json-text",
        "JSON text → jsonb; invalid JSON or \\u0000 is a misfit (compared key-sorted)",
        expressions.json_render,
        expressions.json_checks,
        canonical.canonical_json,
        target_select=lambda col: f"{col}::text",
        wire=expressions.json_wire,
        fits=gates.json_fits,
    ),
    "text": Conversion(
        "text",
        "UTF-8 text as is; longer than the limit (in characters) or holding NUL is a misfit",
        lambda col, t: copy_escape(col),
        expressions.text_checks,
        canonical.canonical_text,
        wire=expressions.text_wire,
        sql_canonical=expressions.text_sql,
        fits=gates.text_fits,
    ),
    "text-from-any": Conversion(
        "text-from-any",
        "text as is, numbers as their exact decimal text (a column whose data is mixed)",
        lambda col, t: (
            f"CASE typeof({col}) WHEN 'real' THEN {PYTHON_REPR}({col}) ELSE {copy_escape(col)} END"
        ),
        lambda col, t: [
            ("wrong_type", f"typeof({col}) = 'blob'"),
            ("nul_character", expressions.has_nul(col)),
            ("invalid_utf8", expressions.not_utf8(col)),
        ],
        canonical.canonical_text_from_any,
    ),
    "bytes": Conversion(
        "blob-hex",
        "BLOB → bytea, byte for byte",
        lambda col, t: f"'\\\\x' || hex({col})",
        expressions.bytes_checks,
        canonical.canonical_bytes,
        wire=expressions.bytes_wire,
        sql_canonical=expressions.bytes_sql,
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
    "citext": "text",  # reflect mode's NOCASE where the server has no ICU collations
    "bytea": "bytes",
}


def conversion_for(
    target_type: str, options: tuple[str, ...] = (), *, where: str = "", name: str = ""
) -> Conversion:
    """The conversion that loads a SQLite value into a column of `target_type` (or the one
    `name`d, where a column needs another than its type's default), with the operator's
    explicit extra rules (`rules`) applied first."""
    base = TargetType(target_type).base
    try:
        conversion = CONVERSIONS.get(name) or CONVERSIONS[_BY_TARGET_BASE[base]]
    except KeyError:
        raise RunbookError(
            f"no conversion is defined for target type {target_type!r}",
            where=where or None,
            fix="add a rule for this type to runbook.columns.conversions, or change the target "
            "column type",
        ) from None
    return with_rules(conversion, options, where=where) if options else conversion


# --- the operator's explicit rules on top of a conversion ---------------------------------------


def check_options(conversion: Conversion, options: tuple[str, ...], where: str = "") -> None:
    """Refuse unknown rules, and rules that do not apply to the column's conversion."""
    for option in options:
        if option not in rules.RULES:
            raise RunbookError(
                f"unknown column rule {option!r}",
                where=where or None,
                fix=f"choose from {', '.join(rules.RULES)}",
            )
        if conversion.name not in rules.RULES[option][1]:
            raise RunbookError(
                f"rule {option!r} does not apply to a column converted by {conversion.name!r}",
                where=where or None,
                fix="remove it from column_rules for this column",
            )


@dataclass(frozen=True)
class RuledCanonical:
    """The canonical form of a value after the rules (a class, so it pickles to the processes
    that compute checksums)."""

    base: Callable[[Any], str]
    options: frozenset[str]

    def __call__(self, value: Any) -> str | None:
        ruled_value = rules.apply_rules(value, self.options)
        return None if ruled_value is None else self.base(ruled_value)


def with_rules(conversion: Conversion, options: tuple[str, ...], *, where: str = "") -> Conversion:
    """The conversion applied to values the rules have rewritten (render, checks, canonical)."""
    check_options(conversion, options, where)
    joined = ",".join(sorted(options))

    def ruled(col: str) -> str:
        return (
            f"{rules.RULE_FUNCTION}(CASE typeof({col}) WHEN 'text' THEN CAST({col} AS BLOB) "
            f"ELSE {col} END, '{joined}')"
        )

    def render(col: str, target: TargetType) -> str:
        return f"coalesce({conversion.render(ruled(col), target)}, {NULL_COPY})"

    def checks(col: str, target: TargetType) -> list[Check]:
        value = ruled(col)
        return [
            (kind, f"{value} IS NOT NULL AND ({sql})")
            for kind, sql in conversion.checks(value, target)
        ]

    described = "; ".join(rules.RULES[o][0] for o in sorted(options))
    return replace(
        conversion,
        name=f"{conversion.name}+{'+'.join(sorted(options))}",
        rule=f"{conversion.rule}; explicit rules: {described}",
        render=render,
        checks=checks,
        canonical=RuledCanonical(conversion.canonical, frozenset(options)),
        wire=None,  # a ruled value goes as the rule's COPY text,
        fast_wire=None,
        sql_canonical=None,  # and is compared in its canonical form from Python
        fits=None,  # the rules' rewritten value is checked in full
    )


# --- the Python functions the conversions' SQL calls, registered on source connections ---------


def _repr_real(value: object) -> object:
    return repr(value) if isinstance(value, float) else value


def invalid_utf8(value: object) -> bool:
    """Bytes that are not UTF-8 (anything else is not checked here)."""
    if not isinstance(value, bytes):
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _nul_or_invalid_utf8(value: object) -> bool:
    """A row's text (its bytes) holding a NUL or not UTF-8; ASCII needs no decoding."""
    if not isinstance(value, bytes) or value.isascii() and b"\x00" not in value:
        return False
    return b"\x00" in value or invalid_utf8(value)


SQL_FUNCTIONS: dict[str, tuple[int, Callable]] = {  # name: (number of arguments, function)
    PYTHON_REPR: (1, _repr_real),
    INVALID_UTF8: (1, invalid_utf8),
    NUL_OR_NOT_UTF8: (1, _nul_or_invalid_utf8),
    rules.RULE_FUNCTION: (2, rules.apply_rules_sql),
}


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the SQL functions the conversion table's SQL calls (exact float text, UTF-8
    check, explicit rules) on a SQLite connection."""
    for name, (arity, function) in SQL_FUNCTIONS.items():
        conn.create_function(name, arity, function, deterministic=True)


def open_fast_source(path: str | Path, wait_seconds: float = 5.0) -> Any:
    """The source read-only through apsw's current SQLite (`source.open_readonly_fast`), with
    the conversions' SQL functions: the loaders' reader of binary COPY rows (measured on the
    wide sample: see engine.loader)."""
    conn = open_readonly_fast(path, wait_seconds)
    for name, (arity, function) in SQL_FUNCTIONS.items():
        conn.create_scalar_function(name, function, arity, deterministic=True)
    return conn


def open_source(path: str | Path, wait_seconds: float = 5.0) -> sqlite3.Connection:
    """The source opened read-only (`source.open_readonly`) with the conversions' SQL functions,
    for every reader that evaluates a conversion's SQL (preflight, loaders, row comparison)."""
    conn = open_readonly(path, wait_seconds)
    register_functions(conn)
    return conn
