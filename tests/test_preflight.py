"""The preflight finds every misfit, orphan and dependent row before anything is written; the
stop policy names them; the reject ledger keeps each rejected row exactly recoverable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from dirty_source import CORRUPTIONS, make_dirty_source

from runbook.columns.plan import ColumnPlan
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.source import decode_text
from runbook.core.target import Target
from runbook.engine.preflight import require_clean, scan
from runbook.engine.rejects import read_ledger, write_ledger
from runbook.steps.schema import column_map


@pytest.fixture
def dirty(tmp_path: Path) -> tuple[Path, dict[str, set[int]]]:
    path = tmp_path / "dirty.db"
    return path, make_dirty_source(path)


@pytest.fixture
def plans(dirty, fresh_target: Target) -> list[ColumnPlan]:
    from runbook.steps.schema import upgrade

    upgrade(fresh_target)
    return column_map(str(dirty[0]), fresh_target)


def rejected_ids(result: dict) -> dict[str, set[int]]:
    return {table: {row[0] for row in rows} for table, rows in result["rejected"].items()}


def test_every_kind_is_found_with_table_key_and_column(dirty, plans) -> None:
    path, expected = dirty
    result = scan(str(path), plans)
    kinds = {(f["table"], f["column"], f["kind"]) for f in result["findings"]}
    for table, column, _, kind in CORRUPTIONS:
        assert (table, column, kind) in kinds
    assert all(set(f["pk"]) == {"id"} for f in result["findings"])
    # exactly the misfit rows and the rows that depend on them, no more
    assert rejected_ids(result) == expected
    assert result["rows"] == sum(len(ids) for ids in expected.values())
    assert any(f["kind"] == "depends_on_rejected" for f in result["findings"])


def test_the_stop_policy_names_the_first_misfits_and_the_count(dirty, plans) -> None:
    result = scan(str(dirty[0]), plans)
    with pytest.raises(RunbookError) as error:
        require_clean(result)
    message = str(error.value)
    first = result["findings"][0]
    assert f"{first['table']} {first['pk']} column {first['column']}" in message
    assert f"{result['total']} problems in {result['rows']} source rows" in message
    assert 'on_bad_rows="reject"' in message
    require_clean(result, "reject")  # the reject policy lets the run go on


def test_the_ledger_holds_every_rejected_row_exactly(dirty, plans, tmp_path: Path) -> None:
    path, expected = dirty
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    path.rename(run.backup_path)
    result = scan(str(run.backup_path), plans)
    counts = write_ledger(run, result)
    assert counts == {table: len(ids) for table, ids in expected.items()}
    entries = read_ledger(run.path / "rejects.jsonl")
    lite = sqlite3.connect(run.backup_path)
    lite.text_factory = decode_text
    for entry in entries:
        columns = list(entry["row"])
        original = lite.execute(
            f"SELECT {', '.join(columns)} FROM {entry['table']} WHERE id = ?", [entry["pk"]["id"]]
        ).fetchone()
        assert tuple(entry["row"].values()) == original  # types and bytes included
        assert entry["reason"] and entry["kind"] and entry["column"]
    invalid = next(e for e in entries if e["kind"] == "invalid_utf8")
    assert (
        invalid["row"]["name"].encode("utf-8", "surrogateescape").decode("cp949") == "(주)한빛냉장"
    )


def test_a_clean_database_has_no_findings(fresh_target: Target, tmp_path: Path) -> None:
    from coldchain.sample import generate
    from runbook.steps.schema import upgrade

    path = tmp_path / "clean.db"
    generate(path, scale=0.002, seed=3)
    upgrade(fresh_target)
    result = scan(str(path), column_map(str(path), fresh_target))
    assert result["total"] == 0 and result["rejected"] == {}
