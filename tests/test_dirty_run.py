"""A database with every kind of misfit, through the runbook command: the default policy stops
before a row is written and names the misfits; the reject policy loads every other row
identically and accounts for each rejected one. A WAL-mode source keeps its un-checkpointed
rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from commands import runbook
from dirty_source import make_dirty_source
from fingerprint import fingerprint

from runbook.core.target import Target, connect


def target_counts(target: Target, tables: list[str]) -> dict[str, int]:
    with connect(target) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_stop_then_reject(one_target: Target, tmp_path: Path) -> None:
    source = tmp_path / "dispatch.db"
    expected = make_dirty_source(source)
    env = {"DATABASE_URL": one_target.url}

    before = fingerprint(one_target)
    stopped = runbook("run", str(source), "--run-dir", str(tmp_path / "stop"), env=env)
    text = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0
    assert "FAILED at step schema" in text
    assert "problems in" in text and "nothing was written" in text
    assert "clients {'id': 5} column code: too_long" in text
    with sqlite3.connect(source) as lite:
        tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        census = {t: lite.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    assert fingerprint(one_target) == before  # no table, no ledger: exactly as it was

    run_dir = tmp_path / "reject"
    done = runbook(
        "run", str(source), "--run-dir", str(run_dir), "--on-bad-rows", "reject", env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(x) for x in (run_dir / "rejects.jsonl").read_text().splitlines()]
    got: dict[str, set[int]] = {}
    for line in lines:
        got.setdefault(line["table"], set()).add(line["pk"]["id"])
        assert set(line) >= {"table", "pk", "column", "kind", "reason", "row"}
    assert got == expected  # exactly the misfits and their dependents, no more
    loaded = target_counts(one_target, tables)
    assert loaded == {t: census[t] - len(expected.get(t, ())) for t in tables}
    verified = json.loads((run_dir / "verify.json").read_text())
    assert verified["verdict"] == "PASS"
    per_table = ", ".join(f"{t} {len(ids)}" for t, ids in sorted(expected.items()))
    assert f"PASS with {len(lines)} rows rejected (see rejects.jsonl): {per_table}." in (
        done.stdout
    )
    assert {t["table"]: t["rejected_rows"] for t in verified["tables"] if t["rejected_rows"]} == {
        t: len(ids) for t, ids in expected.items()
    }
    moved = json.loads((run_dir / "transfer.json").read_text())["tables"]
    assert {t["table"]: t["rejected"] for t in moved if t["rejected"]} == {
        t: len(ids) for t, ids in expected.items()
    }
    texts = {step: (run_dir / f"{step}.ipynb").read_text() for step in ("03_transfer", "04_verify")}
    assert f"{len(lines)} rows rejected" in texts["03_transfer"]
    assert f"{len(lines)} rows rejected (see rejects.jsonl)" in texts["04_verify"]


CRASHING_WRITER = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA wal_autocheckpoint = 0")
db.executemany(
    "INSERT INTO audit_events (user_id, entity, entity_id, action, payload, occurred_at) "
    "VALUES (1, 'order', ?, 'UPDATE', '{}', '2026-03-03 09:00:00.000001')",
    [(i,) for i in range(250)],
)
os._exit(0)
"""


def test_a_wal_source_migrates_with_its_uncheckpointed_rows(one_target: Target, tmp_path) -> None:
    from coldchain.sample import generate

    source = tmp_path / "dispatch.db"
    generate(source, scale=0.002, seed=5)
    with sqlite3.connect(source) as lite:
        before = lite.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(source)], check=True)
    assert Path(f"{source}-wal").stat().st_size > 0
    done = runbook(
        "run", str(source), "--run-dir", str(tmp_path / "run"), env={"DATABASE_URL": one_target.url}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert target_counts(one_target, ["audit_events"]) == {"audit_events": before + 250}
