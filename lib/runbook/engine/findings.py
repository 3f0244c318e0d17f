"""What a preflight found: the misfit rows per table, counted per (table, column, kind), the
first of them kept for display, each named by its key."""

from __future__ import annotations

from typing import Any

from runbook.core import source as sqlite_source
from runbook.core.source import quote_ident

MAX_LISTED = 10_000  # findings kept in preflight results; counts always cover every value


def shorten(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Findings:
    """Misfit rows per table (by rowid, or by the primary key's text in a WITHOUT ROWID table:
    `Table.row_identity`), with the first MAX_LISTED findings kept for display."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[Any, list[str]]] = {}  # table → row → [column, kind]
        self.counts: dict[tuple[str, str, str], int] = {}
        self.listed: list[dict[str, Any]] = []

    def add(self, table: str, rowid: Any, pk: dict, column: str, kind: str, value: str) -> None:
        self.counts[(table, column, kind)] = self.counts.get((table, column, kind), 0) + 1
        finding = {"table": table, "pk": pk, "column": column, "kind": kind, "value": value}
        self.rows.setdefault(table, {}).setdefault(rowid, [column, kind])
        if len(self.listed) < MAX_LISTED:
            self.listed.append(finding)


def key_select(table: sqlite_source.Table) -> tuple[list[str], str]:
    """The key a finding names (the primary key, else the rowid), and the SQL selecting the
    row's identity followed by that key."""
    names = list(table.primary_key) or ["rowid"]
    return names, ", ".join([table.row_identity] + [quote_ident(n) for n in names])
