"""`runbook reinsert`: rejected rows the operator corrected go into the target after all; checked
by the same conversion rules first (nothing is written while one still does not fit), loaded
parents first in one transaction, and kept in `reinserted.db` so that 04_verify accounts for
them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from runbook.columns.conversions import register_functions
from runbook.columns.plan import by_table, copy_line_sql, load_order, plans_from
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError, first_line
from runbook.core.run import RunFolder
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect
from runbook.engine import constraints
from runbook.engine.preflight import scan_rows
from runbook.engine.rejects import LEDGER, REINSERTED, read_ledger


def _source_ddl(backup: Path, tables: list[str]) -> list[str]:
    conn = sqlite_source.open_readonly(backup)
    try:
        return [
            conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [t]
            ).fetchone()[0]
            for t in tables
        ]
    finally:
        conn.close()


def _corrections(run: RunFolder, corrected: Path) -> list[dict[str, Any]]:
    """The corrected entries, each of them a rejected row of this run (keys kept)."""
    if (run.path / REINSERTED).exists():
        raise RunbookError(
            "rows were already re-inserted for this run",
            where=run.name,
            fix="put every correction into one file, or migrate again into a fresh target",
        )

    def key(entry: dict[str, Any]) -> tuple[str, str]:
        return entry["table"], json.dumps(entry["pk"], sort_keys=True)

    rejected = {key(e) for e in read_ledger(run.path / LEDGER)}
    entries = read_ledger(corrected)
    strangers = [e for e in entries if key(e) not in rejected]
    if strangers:
        first = strangers[0]
        raise RunbookError(
            f"line {first['line']} ({first['table']} {first['pk']}) is not a rejected row of "
            "this run; nothing was written",
            fix="re-insert only lines of this run's rejects.jsonl (values corrected, keys kept)",
        )
    return entries


def _stage(work: sqlite3.Connection, run: RunFolder, entries: list[dict], plans: dict) -> None:
    """The corrected rows in a SQLite file of the source's tables, checked by the conversion
    table's rules: a row that cannot be stored, or still does not fit, stops here."""
    tables = list(dict.fromkeys(e["table"] for e in entries))
    register_functions(work)
    for statement in _source_ddl(run.backup_path, tables):
        work.execute(statement)
    for entry in entries:
        names = ", ".join(quote_ident(c) for c in entry["row"])
        marks = ", ".join("?" for _ in entry["row"])
        try:
            work.execute(
                f"INSERT INTO {quote_ident(entry['table'])} ({names}) VALUES ({marks})",
                list(entry["row"].values()),
            )
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise RunbookError(
                f"line {entry['line']} ({entry['table']} {entry['pk']}) cannot be read: {exc}",
                fix="correct the row's values in the file; nothing was written",
            ) from None
    work.commit()
    misfits = scan_rows(work, {t: plans[t] for t in tables})
    if misfits:
        listed = "; ".join(
            f"{m['table']} {m['pk']} column {m['column']}: {m['kind']} {m['value']}"
            for m in misfits[:5]
        )
        raise RunbookError(
            f"{len(misfits)} corrected values still do not fit: {listed}; nothing was written",
            fix="correct these values in the file and run the re-insert again",
        )


def _load(work: sqlite3.Connection, target: Target, tables: list[str], plans: dict) -> dict:
    """COPY the staged rows into the target in one transaction, parents first, and move the
    sequences past them; rows per table."""
    order = load_order(sqlite_source.reflect(work))
    work.text_factory = bytes
    counts: dict[str, int] = {}
    try:
        with connect(target) as conn:
            for table in [t for t in order if t in tables]:
                table_plans = plans[table]
                columns = ", ".join(quote_ident(p.pg_column) for p in table_plans)
                pg_table = quote_ident(table_plans[0].pg_table)
                with conn.cursor().copy(f"COPY {pg_table} ({columns}) FROM STDIN") as copy:
                    for (line,) in work.execute(copy_line_sql(table, table_plans)):
                        copy.write(line)
                        counts[table] = counts.get(table, 0) + 1
            constraints.set_sequences(conn, [plans[t][0].pg_table for t in tables])
    except psycopg.Error as exc:
        raise RunbookError(
            f"the corrected rows could not be loaded: {first_line(exc)}; nothing was written",
            where=target.display,
            fix="a corrected row refers to a row that is not in the target: re-insert its "
            "parent in the same file, or correct the reference",
        ) from None
    return counts


def reinsert(run: RunFolder, target: Target, corrected: Path) -> dict[str, int]:
    """Load rejected rows the operator has corrected (a copy of rejects.jsonl with fixed `row`
    values): every corrected row is checked by the same conversion rules first, and nothing is
    written unless all fit; then they are loaded in one transaction, parents first, sequences
    moved past them, and kept in `reinserted.db` so that 04_verify accounts for them."""
    entries = _corrections(run, corrected)
    plans = by_table(plans_from(run.read("schema")))
    partial = run.path / (REINSERTED + ".partial")
    partial.unlink(missing_ok=True)
    work = sqlite3.connect(partial)
    try:
        _stage(work, run, entries, plans)
        counts = _load(work, target, list(dict.fromkeys(e["table"] for e in entries)), plans)
    except BaseException:
        work.close()
        partial.unlink(missing_ok=True)
        raise
    work.close()
    partial.replace(run.path / REINSERTED)
    return counts
