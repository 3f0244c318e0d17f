"""SQLite triggers as lines of reflect mode's objects table: never created (COPY would fire
them during the load, and their semantics are the application's to confirm), always listed
with their SQL, and with a PL/pgSQL equivalent where the body is plain SQL (INSERT, UPDATE,
DELETE, SELECT, RAISE(ABORT, …)); step 02 has PostgreSQL check that the suggestion compiles."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from runbook.columns import sqltext
from runbook.columns.inference import short_name
from runbook.core.source import quote_ident

TableShape = Any  # runbook.columns.reflect.TableShape (which imports this module)

_NAME = r'"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`|[^\s(]+'
_HEADER = re.compile(
    rf"""^\s*CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})
    \s+(?:(?P<timing>BEFORE|AFTER|INSTEAD\s+OF)\s+)?
    (?P<event>DELETE|INSERT|UPDATE(?:\s+OF\s+(?P<columns>.+?))?)
    \s+ON\s+(?P<table>{_NAME})(?:\s+FOR\s+EACH\s+ROW)?(?:\s+WHEN\s+(?P<when>.+))?\s*$""",
    re.I | re.S | re.X,
)
_RAISE = re.compile(
    r"^SELECT\s+RAISE\s*\(\s*(?:ABORT|FAIL|ROLLBACK)\s*,\s*('(?:[^']|'')*')\s*\)"
    r"(?:\s+WHERE\s+(.+))?$",
    re.I | re.S,
)


def _unquoted(name: str) -> str:
    return sqltext.name_of(sqltext.tokens(name)[0]) if name else name


def _statement(sql: str, rename: Any) -> str | None:
    """One body statement in PL/pgSQL; None where it has no plain equivalent."""
    raised = _RAISE.match(sql)
    if raised and raised.group(2):  # SELECT RAISE(ABORT, '…') WHERE condition
        condition = sqltext.postgres(raised.group(2), rename)
        return f"IF {condition} THEN\n        RAISE EXCEPTION {raised.group(1)};\n    END IF"
    if raised:
        return f"RAISE EXCEPTION {raised.group(1)}"
    if re.search(r"\bRAISE\s*\(", sql, re.I):
        return None  # RAISE(IGNORE), or RAISE inside an expression
    rewritten = sqltext.postgres(sql, rename)
    if re.match(r"SELECT\b", rewritten, re.I):
        return "PERFORM" + rewritten[len("SELECT") :]
    return rewritten


def suggestion(sql: str, shapes: dict[str, TableShape], rename: Any) -> tuple[str | None, str]:
    """(the PL/pgSQL function and trigger equivalent to a SQLite trigger, or None; why)."""
    head, body = sqltext.body_after(sql, "BEGIN")
    header = _HEADER.match(head)
    if not header or not re.search(r"\bEND\s*;?\s*$", body, re.I):
        return None, "its header is not one this runbook reads"
    table = next(
        (s for n, s in shapes.items() if n.lower() == _unquoted(header["table"]).lower()), None
    )
    if table is None:
        return None, "it is on a view or a table that is not migrated"
    timing = " ".join((header["timing"] or "BEFORE").upper().split())
    inner = re.sub(r"\bEND\s*;?\s*$", "", body, flags=re.I)
    converted = [_statement(s, rename) for s in sqltext.split_text(inner, ";") if s]
    if None in converted or not converted:
        return None, "its body uses RAISE(IGNORE) or RAISE inside an expression"
    event = header["event"].split()[0].upper()
    returned = "NULL" if timing == "AFTER" else ("OLD" if event == "DELETE" else "NEW")
    name = _unquoted(header["name"])
    function = quote_ident(short_name(f"{name.lower()}_trigger"))
    of = f" OF {sqltext.postgres(header['columns'], rename)}" if header["columns"] else ""
    when = f" WHEN ({sqltext.postgres(header['when'], rename)})" if header["when"] else ""
    lines = "\n".join(f"    {c};" for c in converted)
    return (
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$\nBEGIN\n"
        f"{lines}\n    RETURN {returned};\nEND\n$body$;\n"
        f"CREATE TRIGGER {quote_ident(short_name(name.lower()))} {timing} {event}{of} "
        f"ON {quote_ident(table.target)} FOR EACH ROW{when} EXECUTE FUNCTION {function}()"
    ), "suggested PL/pgSQL"


def trigger_objects(
    conn: sqlite3.Connection, shapes: dict[str, TableShape], rename: Any
) -> list[dict[str, Any]]:
    """Each trigger as a listed line with its SQL, and a suggestion where the body is plain."""
    found = []
    for name, table, sql in conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid"
    ):
        suggested, why = suggestion(sql, shapes, rename)
        here = {"kind": "trigger", "table": table, "name": name, "sql": sql, "outcome": "listed"}
        if suggested:
            why = (
                "not created (COPY would fire it during the load); its PL/pgSQL equivalent is "
                "in schema.json (suggestion)"
            )
            found.append(here | {"why": why, "suggestion": suggested})
        else:
            found.append(here | {"why": f"not created, and no suggestion: {why}"})
    return found
