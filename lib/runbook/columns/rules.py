"""Explicit extra rules the operator can switch on per column, shown in 02_schema: values SQLite
holds that have one clear meaning in PostgreSQL but are not the column's normal form (an
offset or an epoch in a DATETIME column, '' for "no value", legacy CP949 text). Off by default:
without a rule such a value is a misfit, never converted silently."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

LOCAL_TIMEZONE = "Asia/Seoul"  # the application stores naive local time (schema notes)
RULE_FUNCTION = "runbook_rule"

RULES: dict[str, tuple[str, frozenset[str]]] = {
    "empty-as-null": (
        "'' → NULL (only in columns that allow NULL)",
        frozenset({"iso-datetime", "iso-date", "iso-time", "integer", "float8", "numeric"}),
    ),
    "datetime-offset": (
        f"ISO text with a UTC offset → the same instant as local time {LOCAL_TIMEZONE}",
        frozenset({"iso-datetime"}),
    ),
    "epoch-seconds": (
        f"integer unix epoch (seconds) → local time {LOCAL_TIMEZONE}",
        frozenset({"iso-datetime"}),
    ),
    "epoch-milliseconds": (
        f"integer unix epoch (milliseconds) → local time {LOCAL_TIMEZONE}",
        frozenset({"iso-datetime"}),
    ),
    "date-as-midnight": (
        "a date alone 'YYYY-MM-DD' in a DATETIME column → that day at 00:00:00",
        frozenset({"iso-datetime"}),
    ),
    "cp949": (
        "text that is not UTF-8 decoded as CP949 (legacy Korean, a superset of EUC-KR)",
        frozenset({"text", "json-text"}),
    ),
}
# which misfit kind each rule resolves, so the preflight can suggest it
SUGGESTIONS = {
    "empty_string": "empty-as-null",
    "datetime_with_offset": "datetime-offset",
    "epoch_in_datetime": "epoch-seconds or epoch-milliseconds",
    "invalid_utf8": "cp949",
    "date_in_datetime": "date-as-midnight",
}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def misfit_kind(kind: str, value: Any) -> str:
    """The kind of a misfit as the preflight reports it: a date without a time of day in a
    DATETIME column is its own kind (date-as-midnight resolves it). Told apart for misfits only,
    so a value that fits costs no Python."""
    if kind == "unparseable_datetime" and isinstance(value, str) and _DATE_ONLY.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return kind
        return "date_in_datetime"
    return kind


def column_rule_hint(summary: list[dict[str, Any]]) -> str:
    """The `--rule` of each column whose misfits (the preflight's summary) are all of one kind
    that one rule resolves (e.g. every one a date without a time: date-as-midnight)."""
    kinds: dict[tuple[str, str], set[str]] = {}
    for item in summary:
        kinds.setdefault((item["table"], item["column"]), set()).add(item["kind"])
    rules = [
        f"--rule {table}.{column}={SUGGESTIONS[kind]}"
        for (table, column), found in kinds.items()
        if len(found) == 1
        and (kind := next(iter(found))) in SUGGESTIONS
        and " or " not in SUGGESTIONS[kind]
    ]
    if not rules:
        return ""
    shown = ", ".join(rules[:5]) + (f" and {len(rules) - 5} more" if len(rules) > 5 else "")
    return f"; every misfit of {len(rules)} column(s) is one a rule resolves: {shown}"


def _local(moment: datetime) -> str:
    naive = moment.astimezone(ZoneInfo(LOCAL_TIMEZONE)).replace(tzinfo=None)
    return naive.isoformat(sep=" ", timespec="microseconds")


def apply_rules(value: Any, options: tuple[str, ...] | frozenset[str]) -> Any:
    """The value after the enabled rules; unchanged when no rule applies (or a rule cannot)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            if "cp949" not in options:
                return value
            try:
                return value.decode("cp949")
            except UnicodeDecodeError:
                return value
    if isinstance(value, str) and "cp949" in options and not value.isascii():
        try:  # text read with surrogateescape: invalid UTF-8 bytes kept as surrogates
            raw = value.encode("utf-8", "surrogateescape")
            if raw.decode("utf-8", "replace") != value:
                return raw.decode("cp949")
        except UnicodeError:
            return value
    if value == "" and "empty-as-null" in options:
        return None
    if isinstance(value, str) and "date-as-midnight" in options and _DATE_ONLY.fullmatch(value):
        try:
            return datetime.fromisoformat(value).isoformat(sep=" ")
        except ValueError:
            return value
    if isinstance(value, str) and "datetime-offset" in options:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return _local(moment) if moment.tzinfo is not None else value
    if isinstance(value, int) and not isinstance(value, bool):
        epoch = ZoneInfo("UTC")
        if "epoch-seconds" in options:
            return _local(datetime.fromtimestamp(value, epoch))
        if "epoch-milliseconds" in options:
            seconds, millis = divmod(value, 1000)
            return _local(datetime.fromtimestamp(seconds, epoch) + timedelta(milliseconds=millis))
    return value


def apply_rules_sql(value: Any, options: str) -> Any:
    """`runbook_rule(value, 'rule,rule')` as SQLite calls it."""
    return apply_rules(value, frozenset(options.split(",")))
