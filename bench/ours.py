"""Our side of the bench: the transfer and verification functions in their own process, and the
whole `runbook run` (four notebooks) with the seconds of each step as its manifest records
them."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from measure import measure
from peers import fresh

from runbook.core.run import RunFolder
from runbook.core.target import Target
from runbook.steps import backup, schema

ROOT = Path(__file__).resolve().parents[1]

_CALL = """
import json, sys, time
from pathlib import Path
from runbook.steps import transfer, verify
from runbook.core.run import RunFolder
from runbook.core.target import Target
run = RunFolder(Path(sys.argv[1]))
target = Target(sys.argv[2], 'external', 'bench')
workers = int(sys.argv[4]) if sys.argv[4] != '0' else None
started = time.perf_counter()
if sys.argv[3] == 'transfer':
    result = transfer.transfer(run, target, workers=workers)
    extra = {'phases': result['phases'], 'workers': result['workers'], 'tables': result['tables']}
else:
    result = verify.verify(run, target, workers=workers)
    assert result['verdict'] == 'PASS', result['failures']
    extra = {'verdict': result['verdict']}
print(json.dumps({'inner_seconds': time.perf_counter() - started, **extra}))
"""


def prepare_run(sample: Path, work: Path, admin: Target, name: str) -> tuple[RunFolder, Target]:
    """Steps 01 and 02 (not timed): backup of the sample and the Alembic schema in a fresh db."""
    run = RunFolder(work / f"run-{name}")
    if run.path.exists():
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True)
    backup.snapshot(sample, run)
    target = fresh(admin, name)
    schema.prepare(run, target)
    return run, target


def per_table(tables: list[dict]) -> dict[str, dict]:
    """rows/s and MB/s of each table's COPY, from the transfer's own record (bytes sent over
    the seconds from its first chunk's start to its last chunk's end)."""
    return {
        t["table"]: {
            "rows": t["rows"],
            "mb": round(t["bytes"] / 1e6, 1),
            "seconds": t["seconds"],
            "rows_per_second": t["rows_per_second"],
            "mb_per_second": round(t["bytes"] / 1e6 / t["seconds"], 1) if t["seconds"] else None,
        }
        for t in tables
    }


def preflight_by_conversion(run: RunFolder) -> dict[str, dict]:
    """The preflight's values scan per conversion: every table scanned in this process through
    apsw as the step scans, one core, with only the columns of that conversion (their checks,
    their NOT NULL, their text's NUL and UTF-8 row check), so each figure includes reading the
    rows once more; beside it, what the step's whole scan cost (schema.json, all columns, in its
    worker processes)."""
    import time

    from runbook.columns.conversions import open_fast_source
    from runbook.columns.plan import by_table, plans_from
    from runbook.core import source as sqlite_source
    from runbook.engine.values import Recorded, scan_values

    plans = plans_from(run.read("schema"))
    tables = sqlite_source.tables_of(run.backup_path)
    conn = open_fast_source(run.backup_path)  # the SQLite the step scans with
    measured: dict[str, dict] = {}
    try:
        for conversion in sorted({p.conversion for p in plans}):
            chosen = [p for p in plans if p.conversion == conversion]
            clock, found = time.perf_counter(), Recorded()
            for name, table_plans in by_table(chosen).items():
                scan_values(conn, tables[name], table_plans, found)
            measured[conversion] = {
                "columns": len(chosen),
                "seconds": round(time.perf_counter() - clock, 3),
                "findings": len(found),
            }
    finally:
        conn.close()
    return measured


def bench_ours(run: RunFolder, target: Target, workers: int | None) -> dict:
    """transfer() and verify() each in a process of its own: the call's seconds (without the
    interpreter's start), the process tree's peak memory, phases and per-table speed; and the
    preflight's cost per conversion."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib"), "TQDM_DISABLE": "1"}
    results = {}
    for step in ("transfer", "verify"):
        command = [sys.executable, "-c", _CALL, str(run.path), target.url, step, str(workers or 0)]
        measured = measure(command, env=env)
        inner = json.loads(measured.pop("stdout").strip().splitlines()[-1])
        measured["seconds"] = inner.pop("inner_seconds")  # the call, without interpreter start
        if "tables" in inner:
            inner["tables"] = per_table(inner["tables"])
        results[step] = measured | inner
    results["preflight"] = preflight_by_conversion(run)
    results["preflight_scan"] = run.read("schema")["preflight"]["seconds"]
    return results


def bench_whole_run(sample: Path, work: Path, admin: Target) -> dict:
    """`runbook run` of the sample into a fresh database: the four notebooks executed by
    papermill in their kernels (backup, schema, transfer, verification, HTML export, manifest),
    as an operator runs them; wall seconds, the peak memory of the whole run (kernels and
    worker processes included) and each step's record from manifest.json."""
    target = fresh(admin, "bench_run")
    folder = work / "run-notebooks"
    if folder.exists():
        shutil.rmtree(folder)
    runbook = str(Path(sys.executable).with_name("runbook"))
    command = [runbook, "run", str(sample), "--run-dir", str(folder)]
    command += ["--database-url-env", "BENCH_TARGET_URL"]
    env = {**os.environ, "BENCH_TARGET_URL": target.url, "TQDM_DISABLE": "1"}
    measured = measure(command, env=env, cwd=ROOT)
    measured.pop("stdout")
    verdict = json.loads((folder / "verify.json").read_text())["verdict"]
    if verdict != "PASS":
        raise RuntimeError(f"runbook run ended in {verdict}")
    manifest = json.loads((folder / "manifest.json").read_text())
    measured["steps"] = {
        s["step"]: {k: v for k, v in s.items() if isinstance(v, int | float)}
        | {"parts": s.get("parts", {})}
        for s in manifest["steps"]
    }
    transfer = json.loads((folder / "transfer.json").read_text())
    measured["transfer_tables"] = per_table(transfer["tables"])
    return measured
