"""A reflected schema made real in the target, inside step 02's one transaction: the tables
first (PostgreSQL refusing one stops the step, nothing written), then every other object under
its own savepoint, so one PostgreSQL refuses is listed with PostgreSQL's reason instead of
stopping the run; views retried until none more can be made (a view may read another);
suggestions (triggers, full-text indexes) checked the same way and never kept."""

from __future__ import annotations

from typing import Any

import psycopg

from runbook.core.errors import RunbookError, first_line
from runbook.engine.constraints import catalog_names

TABLES = ("table", "virtual table")
# the order objects are made in: a column's type and collation before the indexes and keys on it
ORDER = ("generated column", "collation", "default", "check", "index", "foreign key", "sequence")


def _attempt(conn: psycopg.Connection, statements: list[str], *, keep: bool = True) -> str | None:
    """Run statements under a savepoint (undone unless `keep`); None when they ran, else
    PostgreSQL's reason (and they are undone)."""
    conn.execute("SAVEPOINT runbook_object")
    try:
        for statement in statements:
            conn.execute(statement)
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        conn.execute("ROLLBACK TO SAVEPOINT runbook_object")
        return first_line(exc)
    conn.execute(("RELEASE" if keep else "ROLLBACK TO") + " SAVEPOINT runbook_object")
    return None


def _make(conn: psycopg.Connection, line: dict[str, Any]) -> str | None:
    """Make one object by the first of its alternatives PostgreSQL accepts; the line says
    which, or why it is listed instead. Returns PostgreSQL's last reason when none ran."""
    alternatives = line.pop("alternatives", None) or [{"why": line["why"], "ddl": line["ddl"]}]
    fallback = line.pop("fallback", None)
    error = None
    for alternative in alternatives:
        error = _attempt(conn, alternative["ddl"])
        if error is None:
            line.update(outcome="translated", why=alternative["why"], ddl=alternative["ddl"])
            return None
    line.update(
        outcome="listed",
        why=f"{fallback or line['why']}: PostgreSQL refused it ({error}); left out",
        ddl=[],
    )
    return error


def _tables(conn: psycopg.Connection, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        for statement in line.get("ddl") or []:
            try:
                conn.execute(statement)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                raise RunbookError(
                    f"PostgreSQL refused the table reflected from {line['name']}: "
                    f"{first_line(exc)}; nothing was written",
                    where=line["name"],
                    fix="report this with the table's CREATE statement (schema.json holds the "
                    "DDL); or migrate a copy of the source without this table",
                ) from None


def _views(conn: psycopg.Connection, views: list[dict[str, Any]]) -> None:
    """Make every view PostgreSQL accepts, retrying the rest while any new one succeeds."""
    pending = [v for v in views if v["outcome"] == "translated"]
    while pending:
        failed = []
        for view in pending:
            if _attempt(conn, view["ddl"]) is None:
                view["made"] = True
            else:
                failed.append(view)
        if len(failed) == len(pending):
            break
        pending = failed
    for view in views:
        if view["outcome"] == "translated" and not view.pop("made", False):
            _make(conn, view)  # records PostgreSQL's reason, and lists it


def _check_suggestions(conn: psycopg.Connection, lines: list[dict[str, Any]]) -> None:
    """A suggestion is kept only where PostgreSQL accepts it (tried, then undone)."""
    for line in lines:
        if line.get("suggestion"):
            error = _attempt(conn, [line["suggestion"]], keep=False)
            if error:
                line["why"] += f"; the suggestion PostgreSQL refused ({error}) is left out"
                line["refused_suggestion"] = line.pop("suggestion")


def create(conn: psycopg.Connection, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make every translated object of a reflected schema on an open transaction; returns the
    objects table with each outcome decided by PostgreSQL (translated, or listed with why)."""
    lines = [dict(line) for line in found]
    _tables(conn, [line for line in lines if line["kind"] in TABLES])
    for kind in ORDER:
        for line in lines:
            if (
                line["kind"] == kind
                and line["outcome"] == "translated"
                and (line.get("ddl") or line.get("alternatives"))
            ):
                _make(conn, line)
    _views(conn, [line for line in lines if line["kind"] == "view"])
    _check_suggestions(conn, lines)
    return lines


def present(conn: psycopg.Connection, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects table of a schema an earlier run of step 02 made (the same backup): each
    translated object is looked up in the target's catalog, and listed where it is absent."""
    names = catalog_names(conn)
    columns = {
        (table, column): (collation, type_text, has_default)
        for table, column, collation, type_text, has_default in conn.execute(
            "SELECT c.relname, a.attname, co.collname, format_type(a.atttypid, a.atttypmod), "
            "a.atthasdef FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
            "WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0"
        )
    }
    lines = [dict(line) for line in found]
    for line in lines:
        alternatives = line.pop("alternatives", None)
        fallback = line.pop("fallback", None)
        if line["outcome"] != "translated":
            continue
        if "column" in line and alternatives:  # a collation: ICU, or citext
            collation, type_text, _ = columns.get(tuple(line["column"]), (None, "", False))
            citext = type_text == "citext"
            chosen = [a for a in alternatives if ("citext" in a["why"]) == citext]
            made = bool(chosen) and (citext or collation == "nocase")
            why = chosen[0]["why"] if made else line["why"]
        elif "column" in line:  # a default
            made, why = columns.get(tuple(line["column"]), (None, "", False))[2], line["why"]
        else:
            made, why = line.get("pg_name") in names or not line.get("pg_name"), line["why"]
        if made:
            line["why"] = why
        else:
            line.update(
                outcome="listed",
                why=f"{fallback or line['why']}: not in the target "
                "(made by an earlier run of step 02 without it)",
            )
    return lines
