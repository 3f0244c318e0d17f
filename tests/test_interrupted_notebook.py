"""A notebook stopped halfway (its kernel killed, as a restart in JupyterLab does) and run again
from the top gives the same result as one uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import papermill
from test_resume import (
    kill_tree,
    one_range_held,
    planned_ranges,
    wait_for_ranges,
)

from coldchain.sample import generate
from runbook.core.target import connect
from runbook.record.reference import fresh_database

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, out: Path) -> None:
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out / f"{name}.ipynb"),
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
    )


def test_transfer_notebook_killed_halfway_then_run_from_the_top(tmp_path, monkeypatch) -> None:
    source = tmp_path / "dispatch.db"
    generate(source, scale=0.03, seed=33)
    out = tmp_path / "executed"
    out.mkdir()
    with fresh_database("runbook_interrupted") as target:
        env = {
            "RUNBOOK_SOURCE": str(source),
            "RUNBOOK_RUN_DIR": str(tmp_path / "run"),
            "DATABASE_URL": target.url,
            "RUNBOOK_SPLIT_ROWS": "4000",
            "RUNBOOK_PROGRESS": "text",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        execute("01_backup", out)
        execute("02_schema", out)
        code = (
            "import papermill, sys; papermill.execute_notebook(sys.argv[1], sys.argv[2], "
            "kernel_name='python3', cwd=sys.argv[3], progress_bar=False)"
        )
        transfer = partial(
            subprocess.Popen,
            [
                sys.executable,
                "-c",
                code,
                str(NOTEBOOKS / "03_transfer.ipynb"),
                str(out / "03_killed.ipynb"),
                str(NOTEBOOKS),
            ],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # every other range loaded, that one loading: the kernel dies in the transfer cell
        with one_range_held(target, transfer) as halfway:
            wait_for_ranges(target, halfway, planned_ranges(target) - 1)
            kill_tree(halfway)

        execute("03_transfer", out)  # run again from the top
        execute("04_verify", out)
        verify = json.loads((tmp_path / "run" / "verify.json").read_text())
        assert verify["verdict"] == "PASS"
        attempts = {r["attempt"] for r in verify["ranges"]}
        assert attempts == {1, 2}  # some ranges loaded before the kill, the rest after
        census = json.loads((tmp_path / "run" / "backup.json").read_text())["row_counts"]
        with connect(target) as conn:
            for table, rows in census.items():
                assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == rows
