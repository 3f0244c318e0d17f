"""Small SQLite databases built in a test, and reflect-mode migrations of them (steps 01-04 in
this process), for the tests of any SQLite file."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from runbook.core.run import RunFolder
from runbook.core.target import Target
from runbook.steps import backup, schema, transfer, verify


def build(path: Path, sql: str) -> Path:
    """A SQLite file made by `sql` (a script)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(sql)
        conn.commit()
    return path


def prepared(
    source: Path,
    target: Target,
    folder: Path,
    *,
    on_bad_rows: str = "reject",
    column_rules: dict[str, list[str]] | None = None,
) -> RunFolder:
    """Steps 01 and 02 of a reflect-mode run."""
    run = RunFolder(folder)
    run.path.mkdir()
    backup.snapshot(source, run)
    schema.prepare(run, target, column_rules, "reflect", on_bad_rows=on_bad_rows)
    return run


def migrate(
    source: Path,
    target: Target,
    folder: Path,
    *,
    on_bad_rows: str = "reject",
    column_rules: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Steps 01-04 in reflect mode; the result of 04 (verify.json)."""
    run = prepared(source, target, folder, on_bad_rows=on_bad_rows, column_rules=column_rules)
    transfer.transfer(run, target, on_bad_rows, workers=2)
    return verify.verify(run, target, workers=2)


def objects(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The schema objects step 02 accounted for, by (kind, name)."""
    reflected = json.loads((folder / "schema.json").read_text())["reflected"]
    return {(o["kind"], o["name"]): o for o in reflected["objects"]}


def ledger(folder: Path) -> list[dict[str, Any]]:
    """The reject ledger's entries (empty when nothing was rejected)."""
    path = folder / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def accounted(folder: Path, result: dict[str, Any]) -> None:
    """Every source row of every migrated table is in the target or in the reject ledger."""
    census = json.loads((folder / "backup.json").read_text())["row_counts"]
    assert result["verdict"] == "PASS", result["failures"]
    for table in result["tables"]:
        assert census[table["table"]] == table["source_rows"]
        assert table["source_rows"] == table["target_rows"] + table["rejected_rows"]
    assert sum(t["rejected_rows"] for t in result["tables"]) == len(ledger(folder))
