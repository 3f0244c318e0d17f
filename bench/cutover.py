"""Benchmark of the cutover (method `cutover` of bench/run.py): how long the application must be
stopped, against how long the whole migration takes.

On a copy of the sample: the bulk `runbook run` while a writer process keeps changing the source
(the application's traffic, `coldchain.traffic`); one `runbook sync` (the rehearsal: its
forecast); then a share of the rows changed (1 % by default: inserts, updates, deletes over the
tables); then `runbook cutover`. Reported: the bulk run's seconds, the sync's, the cutover
command's and its freeze window (application stopped → PASS, as cutover.json records it), the
window as a share of the bulk run, the forecast beside it, and an independent check that the
target equals the final snapshot (every segment of every table on both engines)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

WRITER = """
import sys, time
from pathlib import Path
from coldchain.traffic import Traffic
writer, stop = Traffic(sys.argv[1], seed=int(sys.argv[2])), Path(sys.argv[3])
while not stop.exists():
    writer.step()
    time.sleep(0.02)
print(sum(writer.counts.values()), flush=True)
"""


def _runbook(*args: str, target_url: str) -> tuple[float, str]:
    runbook = str(Path(sys.executable).with_name("runbook"))
    env = {**os.environ, "BENCH_TARGET_URL": target_url, "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [runbook, *args, "--database-url-env", "BENCH_TARGET_URL"],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"runbook {args[0]} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return seconds, done.stdout


def _bulk_while_writing(live: Path, work: Path, target_url: str, lib: Path) -> dict:
    """The bulk run with the application's traffic going on meanwhile."""
    stop = work / "stop-writing"
    stop.unlink(missing_ok=True)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(live), "7", str(stop)],
        env={**os.environ, "PYTHONPATH": str(lib)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        seconds, _ = _runbook(
            "run", str(live), "--run-dir", str(work / "bulk"), target_url=target_url
        )
    finally:
        stop.touch()
        written, _ = writer.communicate(timeout=120)
    return {"seconds": round(seconds, 2), "rows_written_meanwhile": int(written or 0)}


def bench_cutover(
    sample: Path, work: Path, target_url: str, lib: Path, share: float = 0.01
) -> dict:
    """The bulk run while writing, a sync, `share` of the rows changed, the cutover. Long
    because it is the benchmark's script, phase after phase, each measured."""
    sys.path.insert(0, str(lib))
    from coldchain.traffic import Traffic
    from runbook.core.run import RunFolder
    from runbook.core.target import Target, connect
    from runbook.engine import catchup, ledger, recheck

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    live = work / "live.db"
    shutil.copyfile(sample, live)
    result = {"bulk": _bulk_while_writing(live, work, target_url, lib)}
    bulk = work / "bulk"
    seconds, out = _runbook("sync", str(live), "--run-dir", str(bulk), target_url=target_url)
    record = catchup.records(RunFolder(bulk))[-1]
    result["sync"] = {"seconds": round(seconds, 2), "changes": record["changes"]["total"]}
    rows = sum(json.loads((bulk / "backup.json").read_text())["row_counts"].values())
    writer = Traffic(live, seed=11)
    writer.run(int(rows * share))
    writer.close()
    changes = sum(writer.counts.values())
    forecast = catchup.forecast(RunFolder(bulk))
    per_change = (record["seconds"]["preflight"] + record["seconds"]["apply"]) / max(
        record["changes"]["total"], 1
    )
    result["forecast_catch_up_seconds"] = round(
        record["seconds"]["snapshot"] + record["seconds"]["delta"] + changes * per_change, 2
    )
    result["forecast"] = forecast["sentence"] if forecast else None
    seconds, out = _runbook("cutover", str(live), "--run-dir", str(bulk), target_url=target_url)
    cut_dir = Path(out.split("Run folder: ")[1].split()[0])
    facts = json.loads((cut_dir / "cutover.json").read_text())
    result["cutover"] = {
        "command_seconds": round(seconds, 2),
        "window_seconds": facts["window_seconds"],
        "changes": sum(
            sum(v[k] for k in ("inserted", "updated", "deleted"))
            for v in facts["final_sync"]["changes"].values()
        ),
        "final_sync_seconds": facts["final_sync"]["seconds"],
        "verification_seconds": facts["verification"]["seconds"],
        "smoke_test_seconds": facts["smoke_test"]["seconds"],
        "target_untouched": facts["target_untouched"],
        "rows_compared": sum(facts["verification"]["rows_compared"].values()),
    }
    result["rows_changed_share"] = share
    result["window_share_of_bulk"] = round(facts["window_seconds"] / result["bulk"]["seconds"], 3)
    target = Target(target_url, "external", "bench")
    final = catchup.bulk_run(RunFolder(bulk)).snapshot_path(facts["final_sync"]["snapshot_sha256"])
    with connect(target) as conn:
        held = ledger.held_back(conn, json.loads((bulk / "backup.json").read_text())["sha256"])
    tables = recheck.recheck_all(
        RunFolder(bulk), target, final, {t: sorted(r) for t, r in held.items()}
    )
    differing = [
        t["table"]
        for t in tables
        if (t["source_checksum"], t["source_rows"]) != (t["target_checksum"], t["target_rows"])
    ]
    result["independent_check"] = "PASS" if not differing else f"FAIL: {', '.join(differing)}"
    return result
