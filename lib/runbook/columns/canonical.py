"""Canonical text of a value in Python: one text per value, whichever engine it came from, so
rows read from SQLite and from PostgreSQL compare equal exactly when they hold the same data
(verification's row-by-row comparison, and values an explicit rule rewrote)."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any


def _kind_error(value: Any) -> str:
    return f"<unconvertible {type(value).__name__} {value!r}>"


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
