"""Values SQLite holds as distinct but PostgreSQL holds as equal under a unique key (a DATETIME
written with 'T' and with a space, 1 and '1' in an untyped column): the preflight finds every
such row before anything is written, instead of the index build failing after the load."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from commands import runbook

from runbook.core.target import Target, connect

READINGS = [  # (id, sensor, taken_at): 1, 2 and 4 are one key once converted; 3 and 5 are not
    (1, "FZ-01", "2025-11-03 09:00:00"),
    (2, "FZ-01", "2025-11-03T09:00:00"),
    (3, "FZ-02", "2025-11-03 09:00:00"),
    (4, "FZ-01", "2025-11-03 09:00:00.000000"),
    (5, "FZ-01", "2025-11-03 09:00:01"),
]
LABELS = [(1, 7), (2, "7"), (3, 8)]  # (id, code): an untyped column keeps 7 and '7' apart


def make_source(path: Path) -> None:
    with sqlite3.connect(path) as lite:
        lite.executescript(
            """
            CREATE TABLE readings (
                id INTEGER PRIMARY KEY, sensor VARCHAR(20) NOT NULL, taken_at DATETIME NOT NULL,
                UNIQUE (sensor, taken_at)
            );
            CREATE TABLE labels (id INTEGER PRIMARY KEY, code UNIQUE);
            """
        )
        lite.executemany("INSERT INTO readings VALUES (?, ?, ?)", READINGS)
        lite.executemany("INSERT INTO labels VALUES (?, ?)", LABELS)


def test_keys_equal_once_converted_stop_the_run_before_a_row_is_written(
    one_target: Target, tmp_path: Path
) -> None:
    source = tmp_path / "readings.db"
    make_source(source)
    env = {"DATABASE_URL": one_target.url}
    stopped = runbook(
        "run", str(source), "--schema", "reflect", "--run-dir", str(tmp_path / "stop"), env=env
    )
    text = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0
    assert "FAILED at step schema" in text and "nothing was written" in text, text
    assert "readings {'id': 1} column sensor, taken_at: duplicate_after_conversion" in text, text
    with connect(one_target) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name IN ('readings', 'labels')"
        ).fetchall()
        for (table,) in tables:
            assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == 0

    run_dir = tmp_path / "reject"
    done = runbook(
        "run",
        str(source),
        "--schema",
        "reflect",
        "--run-dir",
        str(run_dir),
        "--on-bad-rows",
        "reject",
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rejected = [json.loads(x) for x in (run_dir / "rejects.jsonl").read_text().splitlines()]
    got = {(r["table"], r["pk"]["id"], r["kind"]) for r in rejected}
    assert got == {
        ("readings", 1, "duplicate_after_conversion"),
        ("readings", 2, "duplicate_after_conversion"),
        ("readings", 4, "duplicate_after_conversion"),
        ("labels", 1, "duplicate_after_conversion"),
        ("labels", 2, "duplicate_after_conversion"),
    }
    assert {r["row"]["taken_at"] for r in rejected if r["table"] == "readings"} == {
        "2025-11-03 09:00:00",
        "2025-11-03T09:00:00",
        "2025-11-03 09:00:00.000000",
    }  # each original value, as SQLite held it
    with connect(one_target) as conn:
        assert conn.execute("SELECT id FROM readings ORDER BY id").fetchall() == [(3,), (5,)]
        assert conn.execute("SELECT id, code FROM labels").fetchall() == [(3, "8")]
    assert json.loads((run_dir / "verify.json").read_text())["verdict"] == "PASS"
