"""The reject ledger: every source row that could not be loaded, with its reason and the whole
original row, exactly recoverable, in `<run>/rejects.jsonl` (one JSON object a line)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runbook import source as sqlite_source
from runbook.preflight import REASONS
from runbook.run import RunFolder
from runbook.source import quote_ident

LEDGER = "rejects.jsonl"


def encode_value(value: Any) -> Any:
    """A SQLite value as JSON that gives back the same value: bytes as base64, text that is not
    UTF-8 as its bytes in base64, non-finite floats tagged."""
    if isinstance(value, bytes):
        return {"blob_base64": base64.b64encode(value).decode()}
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # surrogates: bytes that were not UTF-8
            raw = value.encode("utf-8", "surrogateescape")
            return {"text_bytes_base64": base64.b64encode(raw).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"real": repr(value)}
    return value


def decode_value(value: Any) -> Any:
    """The SQLite value an encoded ledger value stands for (the inverse of `encode_value`)."""
    if isinstance(value, dict):
        if "blob_base64" in value:
            return base64.b64decode(value["blob_base64"])
        if "text_bytes_base64" in value:
            return base64.b64decode(value["text_bytes_base64"]).decode("utf-8", "surrogateescape")
        if "real" in value:
            return float(value["real"])
    return value


def rejected_rowids(preflight: dict[str, Any]) -> dict[str, list[int]]:
    """Rowids of the rows that are not loaded, per table."""
    return {table: [r[0] for r in rows] for table, rows in preflight.get("rejected", {}).items()}


def ledger_lines(backup: Path, preflight: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One ledger entry per rejected row, read from the backup in rowid order."""
    conn = sqlite_source.open_readonly(backup)
    try:
        tables = {t.name: t for t in sqlite_source.reflect(conn)}
        for table_name, entries in preflight.get("rejected", {}).items():
            table = tables[table_name]
            problems = {rowid: (column, kind) for rowid, column, kind in entries}
            columns = ", ".join(quote_ident(c) for c in table.column_names)
            cursor = conn.execute(
                f"SELECT rowid, {columns} FROM {quote_ident(table_name)} "
                f"WHERE rowid IN (SELECT value FROM json_each(?)) ORDER BY rowid",
                [json.dumps(list(problems))],
            )
            for rowid, *values in cursor:
                row = dict(zip(table.column_names, values, strict=True))
                column, kind = problems[rowid]
                keys = table.primary_key or ("rowid",)
                yield {
                    "table": table_name,
                    "pk": {k: encode_value(row.get(k, rowid)) for k in keys},
                    "column": column,
                    "kind": kind,
                    "reason": REASONS.get(kind, kind),
                    "row": {name: encode_value(value) for name, value in row.items()},
                }
    finally:
        conn.close()


def write_ledger(run: RunFolder, preflight: dict[str, Any]) -> dict[str, int]:
    """Write `rejects.jsonl` for this run (atomically) and return rejected rows per table."""
    path = run.path / LEDGER
    partial = path.with_suffix(".jsonl.partial")
    counts: dict[str, int] = {}
    with partial.open("w", encoding="utf-8") as handle:
        for entry in ledger_lines(run.backup_path, preflight):
            handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
            counts[entry["table"]] = counts.get(entry["table"], 0) + 1
    partial.replace(path)
    return counts


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Entries of a ledger (or of a corrected copy of one), values decoded."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        entry["row"] = {k: decode_value(v) for k, v in entry["row"].items()}
        entry["line"] = number
        entries.append(entry)
    return entries


REINSERTED = "reinserted.db"


def reinserted_keys(run: RunFolder, key_columns: dict[str, str]) -> dict[str, list[int]]:
    """Keys of the rows re-inserted by `reinsert`, for the tables given (table → key column)."""
    path = run.path / REINSERTED
    if not path.exists():
        return {}
    conn = sqlite_source.open_readonly(path)
    try:
        present = set(sqlite_source.table_names(conn)) & set(key_columns)
        return {
            table: [
                key
                for (key,) in conn.execute(
                    f"SELECT {quote_ident(key_columns[table])} FROM {quote_ident(table)}"
                )
            ]
            for table in present
        }
    finally:
        conn.close()


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


def reinsert(run: RunFolder, target: Any, corrected: Path) -> dict[str, int]:
    """Load rejected rows the operator has corrected (a copy of rejects.jsonl with fixed `row`
    values): every corrected row is checked by the same conversion rules first, and nothing is
    written unless all fit; then they are loaded in one transaction, parents first, sequences
    moved past them, and kept in `reinserted.db` so that 04_verify accounts for them."""
    import sqlite3

    from runbook.errors import RunbookError
    from runbook.preflight import scan_rows
    from runbook.schema import by_table, plans_from
    from runbook.target import connect
    from runbook.transfer import copy_line_sql, load_order, set_sequences

    done = run.path / REINSERTED
    if done.exists():
        raise RunbookError(
            "rows were already re-inserted for this run",
            where=run.name,
            fix="put every correction into one file, or migrate again into a fresh target",
        )
    ledger = {
        (e["table"], json.dumps(e["pk"], sort_keys=True)) for e in read_ledger(run.path / LEDGER)
    }
    entries = read_ledger(corrected)
    strangers = [
        e for e in entries if (e["table"], json.dumps(e["pk"], sort_keys=True)) not in ledger
    ]
    if strangers:
        first = strangers[0]
        raise RunbookError(
            f"line {first['line']} ({first['table']} {first['pk']}) is not a rejected row of "
            "this run; nothing was written",
            fix="re-insert only lines of this run's rejects.jsonl (values corrected, keys kept)",
        )
    plans = by_table(plans_from(run.read("schema")))
    tables = [t for t in dict.fromkeys(e["table"] for e in entries)]
    partial = run.path / (REINSERTED + ".partial")
    partial.unlink(missing_ok=True)
    work = sqlite3.connect(partial)
    try:
        sqlite_source.register_functions(work)
        for statement in _source_ddl(run.backup_path, tables):
            work.execute(statement)
        for entry in entries:
            columns = list(entry["row"])
            marks = ", ".join("?" for _ in columns)
            names = ", ".join(quote_ident(c) for c in columns)
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
        order = load_order(sqlite_source.reflect(work))
        work.text_factory = bytes
        counts: dict[str, int] = {}
        with connect(target) as conn:
            for table in [t for t in order if t in tables]:
                table_plans = plans[table]
                columns = ", ".join(quote_ident(p.pg_column) for p in table_plans)
                pg_table = quote_ident(table_plans[0].pg_table)
                with conn.cursor().copy(f"COPY {pg_table} ({columns}) FROM STDIN") as copy:
                    for (line,) in work.execute(copy_line_sql(table, table_plans)):
                        copy.write(line)
                        counts[table] = counts.get(table, 0) + 1
            set_sequences(conn, [plans[t][0].pg_table for t in tables])  # commits
    except Exception as exc:
        work.close()
        partial.unlink(missing_ok=True)
        import psycopg

        if isinstance(exc, psycopg.Error):
            message = str(exc).strip().splitlines()[0]
            raise RunbookError(
                f"the corrected rows could not be loaded: {message}; nothing was written",
                fix="a corrected row refers to a row that is not in the target: re-insert its "
                "parent in the same file, or correct the reference",
            ) from None
        raise
    work.close()
    partial.replace(done)
    return counts
