"""A target holding data this migration did not put there is refused before anything is
written, and left exactly as it was; the same migration may run its steps again."""

from __future__ import annotations

from pathlib import Path

import pytest
from fingerprint import fingerprint

from coldchain.sample import generate
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.target import Target, connect
from runbook.steps import backup, schema


def backed_up(tmp_path: Path, seed: int, name: str) -> RunFolder:
    source = tmp_path / f"{name}.db"
    generate(source, scale=0.002, seed=seed)
    run = RunFolder(tmp_path / name)
    run.path.mkdir()
    backup.snapshot(source, run)
    return run


def test_foreign_tables_with_rows_are_listed_and_nothing_is_written(
    fresh_target: Target, tmp_path: Path
) -> None:
    with connect(fresh_target) as conn:
        conn.execute("CREATE TABLE invoices (id int, total numeric)")
        conn.execute("INSERT INTO invoices VALUES (1, 10), (2, 20)")
        conn.commit()
    before = fingerprint(fresh_target)
    run = backed_up(tmp_path, 1, "run")
    with pytest.raises(RunbookError) as error:
        schema.prepare(run, fresh_target)
    assert "invoices (2 rows, not part of this schema)" in str(error.value)
    assert "nothing was written" in str(error.value)
    assert fingerprint(fresh_target) == before
    assert not run.has("schema")


def test_a_target_loaded_from_another_source_is_refused(fresh_target: Target, tmp_path) -> None:
    schema.prepare(backed_up(tmp_path, 1, "first"), fresh_target)
    before = fingerprint(fresh_target)
    with pytest.raises(RunbookError, match="migration of another source"):
        schema.prepare(backed_up(tmp_path, 2, "second"), fresh_target)
    assert fingerprint(fresh_target) == before


def test_the_same_migration_may_run_step_02_again(fresh_target: Target, tmp_path) -> None:
    run = backed_up(tmp_path, 1, "run")
    first = schema.prepare(run, fresh_target)
    again = schema.prepare(run, fresh_target)
    assert again["columns"] == first["columns"]
    assert again["migration"]["revision_before"] == again["migration"]["revision_after"]


def test_an_unknown_alembic_revision_is_refused(fresh_target: Target, tmp_path) -> None:
    with connect(fresh_target) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
        conn.commit()
    before = fingerprint(fresh_target)
    run = backed_up(tmp_path, 1, "run")
    with pytest.raises(RunbookError, match="not one of this runbook's migrations"):
        schema.prepare(run, fresh_target)
    assert fingerprint(fresh_target) == before
