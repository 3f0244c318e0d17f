"""The reject ledger: every source row that could not be loaded, with its reason and the whole
original row, exactly recoverable, in `<run>/rejects.jsonl` (one JSON object a line)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runbook.core import source as sqlite_source
from runbook.core.run import RunFolder
from runbook.core.source import quote_ident
from runbook.engine.preflight import REASONS

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


def ledger_lines(backup: Path, preflight: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One ledger entry per rejected row, read from the backup in rowid (or key) order."""
    conn = sqlite_source.open_readonly(backup)
    try:
        tables = {t.name: t for t in sqlite_source.reflect(conn)}
        for table_name, entries in preflight.get("rejected", {}).items():
            table = tables[table_name]
            problems = {rowid: (column, kind) for rowid, column, kind in entries}
            columns = ", ".join(quote_ident(c) for c in table.column_names)
            identity = table.row_identity  # rowid, or the primary key's text (WITHOUT ROWID)
            cursor = conn.execute(
                f"SELECT {identity}, {columns} FROM {quote_ident(table_name)} "
                f"WHERE {identity} IN (SELECT value FROM json_each(?)) ORDER BY 1",
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
