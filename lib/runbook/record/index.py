"""`runs/index.html`: one page listing every archived run (time, source, masked target, steps,
verdict, rows, duration) with links to each notebook's HTML export; readable offline."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from runbook.core.target import mask_text
from runbook.record.chain import archived_runs, read_manifest

INDEX = "index.html"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .6em; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.passed { color: #176f2c; font-weight: 600; } .failed { color: #b00020; font-weight: 600; }
.incomplete { color: #8a6d00; font-weight: 600; }
a.step { margin-right: .6em; white-space: nowrap; } code { font-size: 12px; }
"""
VERDICTS = {"passed": "PASS", "failed": "FAIL", "incomplete": "incomplete"}


def _rows(run_dir: Path) -> int | None:
    try:
        backup = json.loads((run_dir / "backup.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return sum(backup.get("row_counts", {}).values())


def _seconds(manifest: dict[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(manifest["started_at"])
        end = datetime.fromisoformat(manifest["ended_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def run_entry(run_dir: Path) -> dict[str, Any]:
    """What the index shows of one run (all text masked)."""
    manifest = read_manifest(run_dir) or {}
    source = Path(str((manifest.get("parameters") or {}).get("source_db") or "")).name
    return {
        "run": run_dir.name,
        "started_at": manifest.get("started_at") or "",
        "source": source,
        "source_sha256": manifest.get("source_sha256") or "",
        "target": mask_text(str(manifest.get("target") or "")),
        "server": manifest.get("target_server") or "",
        "steps": [
            {
                "step": s.get("step", "?"),
                "outcome": s.get("outcome", "?"),
                "html": s["html"] if (run_dir / str(s.get("html") or "-")).is_file() else None,
            }
            for s in manifest.get("steps", [])
        ],
        "outcome": manifest.get("outcome", "incomplete"),
        "rows": _rows(run_dir),
        "seconds": _seconds(manifest),
    }


def render(entries: list[dict[str, Any]], title: str) -> str:
    """The index page for `entries` (newest first)."""
    rows = []
    for e in entries:
        steps = " ".join(
            (
                f'<a class="step {escape(s["outcome"])}" href="{escape(e["run"])}/'
                f'{escape(s["html"])}">{escape(s["step"])}</a>'
                if s["html"]
                else f'<span class="step {escape(s["outcome"])}">{escape(s["step"])}</span>'
            )
            for s in e["steps"]
        )
        seconds = "" if e["seconds"] is None else f"{e['seconds']:.0f} s"
        rows.append(
            "<tr>"
            f"<td>{escape(e['started_at'].replace('T', ' '))}<br>"
            f'<a href="{escape(e["run"])}/manifest.json"><code>{escape(e["run"])}</code></a></td>'
            f"<td>{escape(e['source'])}<br><code>{escape(e['source_sha256'][:12])}</code></td>"
            f"<td>{escape(e['target'])}<br>{escape(e['server'])}</td>"
            f"<td>{steps}</td>"
            f'<td class="{escape(e["outcome"])}">{VERDICTS.get(e["outcome"], e["outcome"])}</td>'
            f'<td class="num">{"" if e["rows"] is None else e["rows"]}</td>'
            f'<td class="num">{seconds}</td>'
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="7">no archived runs yet</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>{len(entries)} run(s), newest first. Each step links to its executed notebook (HTML export);
check a run with <code>runbook audit RUN_DIR</code> before relying on it.</p>
<table id="runs">
<thead><tr><th>time (UTC) · run</th><th>source · sha256</th><th>target</th><th>steps</th>
<th>verdict</th><th>rows</th><th>duration</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""


def write_index(root: Path, title: str = "Migration runbook: archived runs") -> Path:
    """Write `root/index.html` listing every run under `root` that has a manifest."""
    entries = [run_entry(folder) for folder in reversed(archived_runs(root))]
    path = root / INDEX
    path.write_text(render(entries, title), encoding="utf-8")
    return path
