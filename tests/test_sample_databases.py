"""Every real SQLite database in shared/data/sqlite-samples migrates in reflect mode and verifies,
with its misfit rows in the reject ledger and accounted for (source = target + rejected)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.core.run import RunFolder
from runbook.core.target import Target
from runbook.steps import backup, schema, transfer, verify

SAMPLES = [
    "Chinook_Sqlite.sqlite",
    "Chinook_Sqlite_AutoIncrementPKs.sqlite",
    "storage.sqlite",
    "test_pk.db",
    "bad-utf8.db",
    "type-mismatch.db",
    "collision.db",
]


def migrate(source: Path, target: Target, folder: Path, **options) -> dict:
    run = RunFolder(folder)
    run.path.mkdir()
    backup.snapshot(source, run)
    schema.prepare(run, target, options.get("column_rules"), "reflect")
    transfer.transfer(run, target, "reject", workers=2)
    return verify.verify(run, target)


@pytest.mark.parametrize("name", SAMPLES)
def test_a_sample_database_migrates_and_verifies_in_reflect_mode(
    shared_dir: Path, fresh_target: Target, tmp_path: Path, name: str
) -> None:
    source = shared_dir / "data" / "sqlite-samples" / name
    result = migrate(source, fresh_target, tmp_path / "run")
    assert result["verdict"] == "PASS", result["failures"]
    rejected = sum(t.get("rejected_rows", 0) for t in result["tables"])
    ledger = tmp_path / "run" / "rejects.jsonl"
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    assert len(lines) == rejected
    census = json.loads((tmp_path / "run" / "backup.json").read_text())["row_counts"]
    for table in result["tables"]:  # every source row: in the target or in the ledger
        assert census[table["table"]] == table["target_rows"] + table.get("rejected_rows", 0)
    if name == "bad-utf8.db":  # the one value that is not text goes to the ledger, whole
        assert rejected == 1
        entry = json.loads(lines[0])
        assert entry["table"] == "files" and entry["kind"] == "wrong_type"
        assert "blob_base64" in json.dumps(entry["row"])
    else:
        assert rejected == 0
