"""A bulk migration by the library (as the notebooks call it, without their kernels), and the
content a fresh migration of a file gives: for tests that need a migrated target quickly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fingerprint import data_fingerprint

from coldchain.models import Base
from runbook.core.run import RunFolder
from runbook.core.target import Target
from runbook.record.reference import fresh_database
from runbook.steps import backup, schema, transfer, verify

TABLES = list(Base.metadata.tables)


def migrate(source: Path, folder: Path, target: Target) -> RunFolder:
    """Steps 01-04 into `folder` (created), ending with a verification PASS."""
    run = RunFolder(folder)
    folder.mkdir(parents=True)
    backup.snapshot(source, run)
    schema.prepare(run, target)
    transfer.transfer(run, target, workers=2)
    assert verify.verify(run, target, workers=2)["verdict"] == "PASS"
    return run


def fresh_content(source: Path, folder: Path) -> dict:
    """The content (per table) a full migration of the source file gives."""
    copy = folder / "final-copy.db"
    copy.unlink(missing_ok=True)
    with sqlite3.connect(source) as live, sqlite3.connect(copy) as into:
        live.backup(into)
    with fresh_database("runbook_fresh") as target:
        migrate(copy, folder / f"fresh-{copy.stat().st_mtime_ns}", target)
        return data_fingerprint(target, TABLES)
