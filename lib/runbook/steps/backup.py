"""Step 01: a consistent, verified copy of the source before anything else happens."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.engine.snapshot import describe_copy, flush_to_disk, online_copy


def snapshot(
    source: str | Path,
    run: RunFolder,
    wait_seconds: float = 60.0,
    *,
    after_census: Callable[[Path, dict], None] | None = None,
) -> dict[str, Any]:
    """Copy the source under one read transaction (`online_copy`: in WAL mode with SQLite's
    online backup API, which sees committed `-wal` content, unlike `cp`), then check the copy
    and record its hash, counts and sizes in `backup.json`; `after_census` is called with the
    copy and its counts and sizes as soon as they are known (the notebook draws its charts of
    them meanwhile: `charts.draw_backup_ahead`)."""
    source_path = sqlite_source.check_file(source)
    started = datetime.now(UTC)
    online_copy(source_path, run.backup_path, wait_seconds, flush=False)
    with ThreadPoolExecutor(1, thread_name_prefix="flush") as pool:
        flushed = pool.submit(flush_to_disk, run.backup_path)  # while the copy is read
        result = describe_copy(source_path, run.backup_path, after_census)
        flushed.result()
    result["started_at"] = started.isoformat(timespec="seconds")
    if not result["row_counts"]:
        raise RunbookError(
            f"the source {source_path.name} holds no tables",
            fix="check that this is the application's database file and not an empty one",
        )
    run.write("backup", result)
    return result


def require_sound(backup: dict[str, Any]) -> None:
    """Stop when the copy failed SQLite's integrity check: a corrupt file proves nothing."""
    if backup["integrity_check"] != ["ok"]:
        first = "; ".join(backup["integrity_check"][:3])
        raise RunbookError(
            f"PRAGMA integrity_check failed on the backup: {first}",
            fix="restore the source from a good backup or repair it (sqlite3 .recover) first",
        )


def key_facts(backup: dict[str, Any]) -> dict[str, Any]:
    """What the audit record must show of the backup."""
    return {
        "source file": backup["source_name"],
        "backup sha256": backup["sha256"],
        "integrity_check": ", ".join(backup["integrity_check"][:3]),
        "foreign_key_check problems": len(backup["foreign_key_check"]),
        "tables": len(backup["row_counts"]),
        "rows": sum(backup["row_counts"].values()),
    }


def summary(backup: dict[str, Any]) -> str:
    """One line for the verdict."""
    return (
        f"backup sha256 {backup['sha256']} holds {sum(backup['row_counts'].values())} rows "
        f"in {len(backup['row_counts'])} tables; integrity ok."
    )
