"""`runbook sync`: while the application still runs, carry the changes it made since the
snapshot the target holds over to the target (`engine.catchup`), as often as wanted; each sync
measures what the cutover will cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook.core.run import RunFolder
from runbook.core.source import check_file
from runbook.core.target import Target
from runbook.engine import catchup


def sync(run: RunFolder, source: Path, target: Target, on_bad_rows: str = "stop") -> dict:
    """One sync: snapshot, delta, preflight, apply in one transaction, record; with the
    forecast of the cutover's cost."""
    check_file(source)
    record = catchup.catch_up(run, source, target, on_bad_rows, kind="sync")
    record["forecast"] = catchup.forecast(run)
    return record


def summary(record: dict[str, Any]) -> list[str]:
    """What the operator reads after a sync: per table and kind, the time, the forecast."""
    lines = [f"Sync {record['number']}: snapshot {record['snapshot_sha256'][:12]}…"]
    for name, entry in record["changes"]["tables"].items():
        lines.append(
            f"  {name:<20} {entry['inserted']:>8} inserted {entry['updated']:>8} updated "
            f"{entry['deleted']:>8} deleted {entry['rejected']:>6} held back"
        )
    seconds = record["seconds"]
    lines.append(
        f"  {record['changes']['total']} changes in {sum(seconds.values()):.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in seconds.items())}); "
        f"{record['pages']['changed']} of {record['pages']['compared']} pages changed"
    )
    if record.get("unique_indexes_rebuilt"):
        rebuilt = ", ".join(record["unique_indexes_rebuilt"])
        lines.append(f"  unique values moved between rows: {rebuilt} rebuilt in the transaction")
    if record["preflight"]["rows"]:
        lines.append(f"  {record['preflight']['rows']} rows held back (see sync/rejects-*.jsonl)")
    if record.get("forecast"):
        lines.append(f"Forecast: {record['forecast']['sentence']}.")
    return lines
