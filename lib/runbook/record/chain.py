"""The chain of run manifests: every run archived in a runs folder records the sha256 of the
manifest of the run archived before it, so a replaced manifest anywhere in the middle breaks the
link its successor recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook.core.run import sha256_file

MANIFEST = "manifest.json"


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The run's manifest, or None when the folder has none (or it is not JSON)."""
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def archived_runs(root: Path) -> list[Path]:
    """Run folders under `root` that hold a manifest, oldest first (by the manifest's start
    time, then by name, which starts with the UTC time for folders the runbook names)."""
    found = []
    for folder in root.iterdir() if root.is_dir() else ():
        manifest = read_manifest(folder) if folder.is_dir() else None
        if manifest is not None:
            found.append((str(manifest.get("started_at") or ""), folder.name, folder))
    return [folder for _, _, folder in sorted(found)]


def previous_link(run_dir: Path, started_at: str) -> dict[str, str] | None:
    """The link a new manifest records: name and manifest sha256 of the latest other run archived
    in the same runs folder (None for the first run there)."""
    earlier = [
        folder
        for folder in archived_runs(run_dir.parent)
        if folder.name != run_dir.name
        and (str(read_manifest(folder).get("started_at") or ""), folder.name)
        <= (started_at, run_dir.name)
    ]
    if not earlier:
        return None
    last = earlier[-1]
    return {"run": last.name, "sha256": sha256_file(last / MANIFEST)}
