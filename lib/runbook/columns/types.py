"""The vocabulary of the conversion table: a target column type, and what one `Conversion` holds
(COPY rendering, binary wire form, misfit checks, canonical forms); no conversion is defined
here, so every module of the column layer can import it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NULL_COPY = "'\\N'"  # SQL literal of COPY's NULL marker
# SQL functions registered on every source connection (`conversions.register_functions`)
PYTHON_REPR = "runbook_repr_real"
INVALID_UTF8 = "runbook_invalid_utf8"
NUL_OR_NOT_UTF8 = "runbook_nul_or_not_utf8"  # the preflight's check of a row's text at once


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
    # the same for a reader whose SQLite is current (the loaders' apsw), where its SQL can pack
    # more in C (unhex); None (or None returned for a type): `wire` serves every reader
    fast_wire: Callable[[str, TargetType], Wire | None] | None = None
    # the canonical text in SQL on both engines, from (source column, target column, type,
    # nullable); None where only Python says it (or the value is a double, compared bit for bit)
    sql_canonical: Callable[[str, str, TargetType, bool], SqlPair] | None = None
    # a cheap SQL predicate true only of values that pass every check (sufficient, not
    # necessary): the preflight evaluates the checks of the values it does not accept
    fits: Callable[[str, TargetType], str] | None = None
