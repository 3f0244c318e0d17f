"""The audit record of a run: notebooks executed with papermill into the run folder, their HTML
exports, and `manifest.json` with parameters (masked), versions, hashes and outcomes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from runbook.chain import previous_link, sha256_of
from runbook.target import PROJECT_ROOT, mask_text

NOTEBOOKS = PROJECT_ROOT / "notebooks"
NOTEBOOK_FILES = {
    "backup": "01_backup.ipynb",
    "schema": "02_schema.ipynb",
    "transfer": "03_transfer.ipynb",
    "verify": "04_verify.ipynb",
}
KEY_PACKAGES = (
    "papermill",
    "nbconvert",
    "nbformat",
    "pandas",
    "SQLAlchemy",
    "psycopg",
    "psycopg2-binary",
    "apsw",
    "alembic",
    "matplotlib",
    "pgserver",
    "coldchain-migration-runbook",
)


def file_hashes(folder: Path, exclude: tuple[str, ...] = ("manifest.json",)) -> dict[str, str]:
    """sha256 of every file in the run folder, by relative path."""
    from runbook.backup import sha256_file

    return {
        str(path.relative_to(folder)): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in exclude and not path.name.endswith(".partial")
    }


def versions() -> dict[str, str]:
    """Python, key package versions, and the two SQLite libraries that read the source: the
    standard module's (steps 01-03) and apsw's (04's checksums)."""
    import sqlite3

    import apsw

    found = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    found["sqlite (standard module)"] = sqlite3.sqlite_version
    found["sqlite (apsw)"] = apsw.sqlite_lib_version()
    for name in KEY_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit() -> str | None:
    """The project's git commit (with `-dirty` when the tree has changes), if it is a checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


# The lab template without the scripts it loads from a CDN (require.js, MathJax, Mermaid): the
# runbook's notebooks use none of them, and an audit record must not reach out when opened.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def export_html(notebook: Path, *, report: bool = False) -> Path:
    """HTML of an executed notebook (lab template, images inline, no external scripts, injected
    parameters hidden); `report` also hides the code, for reviewers (the .ipynb keeps all)."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        template_name="lab",
        template_file="runbook-offline.html.j2",
        extra_loaders=[DictLoader({"runbook-offline.html.j2": OFFLINE_TEMPLATE})],
        exclude_input=report,
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={"injected-parameters"}, enabled=True), enabled=True
    )
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def execute_step(
    step: str,
    run_dir: Path,
    parameters: dict[str, Any],
    secrets: tuple[str, ...] = (),
    *,
    report: bool = False,
) -> dict[str, Any]:
    """Run one notebook with papermill into the run folder and export it (`report`: code hidden
    in the HTML); never raises for a failing notebook, the outcome says what failed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output = run_dir / NOTEBOOK_FILES[step]
    declared = papermill.inspect_notebook(str(NOTEBOOKS / NOTEBOOK_FILES[step]))
    parameters = {name: value for name, value in parameters.items() if name in declared}
    started = datetime.now(UTC)
    clock = time.perf_counter()
    record: dict[str, Any] = {"step": step, "notebook": output.name}
    os.environ["RUNBOOK_PROGRESS"] = "text"  # the kernel prints progress lines, no widgets
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / NOTEBOOK_FILES[step]),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            log_output=False,
            # the kernel listens on 127.0.0.1 only; its start-up warning that TCP is not
            # encrypted would stand in every run's output (its errors still show)
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
        record["outcome"] = "passed"
    except PapermillExecutionError as exc:
        record["outcome"] = "failed"
        record["error"] = mask_text(f"{exc.ename}: {exc.evalue}", *secrets)
    except Exception as exc:  # the kernel died or could not start: still an outcome to record
        record["outcome"] = "failed"
        record["error"] = mask_text(f"{type(exc).__name__}: {exc}", *secrets)
    record["started_at"] = started.isoformat(timespec="seconds")
    record["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    record["seconds"] = round(time.perf_counter() - clock, 2)
    if output.exists():
        record["html"] = export_html(output, report=report).name
    return record


def write_manifest(
    run_dir: Path,
    *,
    parameters: dict[str, Any],
    target_display: str,
    server: str,
    steps: list[dict[str, Any]],
    started_at: str,
    html_view: str = "full",
) -> dict[str, Any]:
    """`manifest.json`: what ran, on what, with which versions, how it ended, and file hashes.
    Step records of earlier invocations on the same folder are kept (a re-verify adds to them).

    The manifests of the runs in one runs folder form a chain: each records the sha256 of the
    manifest of the run before it (`previous_manifest`, fixed when the run is first archived),
    and a rewritten manifest lists the sha256 of the versions it replaces (`supersedes`), so
    `runbook audit` can tell a re-run from a replaced file."""
    path = run_dir / "manifest.json"
    earlier = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    supersedes = [*earlier.get("supersedes", []), sha256_of(path)] if earlier else []
    previous = earlier.get("previous_manifest") if earlier else previous_link(run_dir, started_at)
    merged = {s["step"]: s for s in earlier.get("steps", [])}
    merged.update({s["step"]: s for s in steps})
    ordered = [merged[s] for s in NOTEBOOK_FILES if s in merged]
    backup = run_dir / "backup.json"
    manifest = {
        "run": run_dir.name,
        "parameters": parameters,
        "target": target_display,
        "target_server": server,
        "versions": versions(),
        "git_commit": git_commit(),
        "source_sha256": (
            json.loads(backup.read_text(encoding="utf-8"))["sha256"] if backup.exists() else None
        ),
        "started_at": earlier.get("started_at", started_at),
        "ended_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "steps": ordered,
        "outcome": (
            "passed"
            if len(ordered) == len(NOTEBOOK_FILES)
            and all(s["outcome"] == "passed" for s in ordered)
            else "failed"
            if any(s["outcome"] == "failed" for s in ordered)
            else "incomplete"
        ),
        "html_view": html_view,
        "files": file_hashes(run_dir),
        "invoked_as": mask_text(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]])),
        "previous_manifest": previous,
        "supersedes": supersedes,
    }
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest
