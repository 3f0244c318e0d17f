"""Where a step's wall time goes, as the manifest records it: the kernel's start, the cells
before the library call (imports, the session), the library call itself (cells tagged
`library-call`), what the notebook shows after it, and the HTML export (`export`)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

LIBRARY_CALL = "library-call"  # the tag of the cells that do a step's work


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def step_parts(notebook: Path, started: datetime, seconds: float) -> dict[str, float]:
    """Seconds of each part of a step, from the cell times papermill writes into the executed
    notebook: kernel_start (until the first cell ran), setup (cells before the library call),
    library_call, display (the cells after it) and other (papermill's writes, the kernel's
    shutdown); the export is added when it is done."""
    cells = [
        cell
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        if cell["cell_type"] == "code" and cell["metadata"].get("papermill", {}).get("start_time")
    ]
    if not cells:
        return {"kernel_start": seconds}
    tagged = [LIBRARY_CALL in cell["metadata"].get("tags", []) for cell in cells]
    first = tagged.index(True) if any(tagged) else len(cells)
    spent = [float(cell["metadata"]["papermill"].get("duration") or 0) for cell in cells]
    parts = {
        "kernel_start": (
            _at(cells[0]["metadata"]["papermill"]["start_time"]) - started
        ).total_seconds(),
        "setup": sum(spent[:first]),
        "library_call": sum(s for s, t in zip(spent, tagged, strict=True) if t),
        "display": sum(s for s, t in zip(spent[first:], tagged[first:], strict=True) if not t),
    }
    parts["other"] = seconds - sum(parts.values())
    return {name: round(max(value, 0.0), 2) for name, value in parts.items()}
