"""Values as SQLAlchemy stores them on SQLite, so the sample looks like the application wrote it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def ts(value: dt.datetime | None) -> str | None:
    """DATETIME text exactly as SQLAlchemy writes it on SQLite (always six fraction digits)."""
    return None if value is None else value.isoformat(" ", "microseconds")


def day(value: dt.date | None) -> str | None:
    """DATE text as SQLAlchemy writes it on SQLite."""
    return None if value is None else value.isoformat()


def clock(value: dt.time | None) -> str | None:
    """TIME text as SQLAlchemy writes it on SQLite (always six fraction digits)."""
    return None if value is None else value.isoformat("microseconds")


def json_text(value: Any) -> str | None:
    """JSON text as SQLAlchemy's default serializer (json.dumps, ensure_ascii) writes it."""
    return None if value is None else json.dumps(value)
