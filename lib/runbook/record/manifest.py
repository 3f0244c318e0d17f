"""`manifest.json`, the index of a run's audit record: parameters (masked), versions of Python
and the key packages, git commit, source sha256, target server, each step's outcome and
times, and the sha256 of every file of the run; each manifest links the one before it
(`chain`)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from runbook.core.run import BACKUP_NAME, BULK_STEPS, STEPS, RunFolder, sha256_file
from runbook.core.target import PROJECT_ROOT, mask_text
from runbook.record.chain import previous_link

KEY_PACKAGES = (
    "papermill",
    "nbconvert",
    "nbformat",
    "SQLAlchemy",
    "psycopg",
    "psycopg2-binary",
    "apsw",
    "alembic",
    "matplotlib",
    "pgserver",
    "coldchain-migration-runbook",
)


def recorded_hashes(run_dir: Path) -> dict[str, str]:
    """The backup's sha256 as step 01 took it on finishing the copy (backup.json): the manifest
    binds the file steps 02-04 read, so a backup changed after 01 fails `runbook audit`
    (hashing it again here would bless the change); and the run's end does not wait for a
    second hash of it (measured at standard scale 1: 0.35 CPU-s; 1.5 GB at scale 3)."""
    run = RunFolder(run_dir)
    if not run.has("backup"):
        return {}
    backup = run.read("backup")
    return {backup["backup_file"]: backup["sha256"]} if backup.get("sha256") else {}


def file_hashes(
    folder: Path,
    exclude: tuple[str, ...] = ("manifest.json",),
    recorded: dict[str, str] | None = None,
) -> dict[str, str]:
    """sha256 of every file in the run folder, by relative path (`recorded`: taken already)."""
    recorded = recorded or {}
    hashes = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in exclude and not path.name.endswith(".partial"):
            name = str(path.relative_to(folder))
            hashes[name] = recorded.get(name) or sha256_file(path)
    return hashes


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


def _outcome(steps: list[dict[str, Any]]) -> str:
    """passed: every step of the run's kind passed (01-04 for a migration, 05 for a
    cutover); failed: one failed; incomplete otherwise."""
    expected = ["cutover"] if [s["step"] for s in steps] == ["cutover"] else list(BULK_STEPS)
    if [s["step"] for s in steps] == expected and all(s["outcome"] == "passed" for s in steps):
        return "passed"
    return "failed" if any(s["outcome"] == "failed" for s in steps) else "incomplete"


def _finishes(bulk: Path) -> dict[str, Any]:
    """The bulk run a cutover finishes, by name and its manifest's sha256 (a link the audit
    of the bulk run can be checked against)."""
    manifest = bulk / "manifest.json"
    return {
        "run": bulk.name,
        "manifest_sha256": sha256_file(manifest) if manifest.exists() else None,
    }


REJECTS = "rejects.jsonl"  # the reject ledger step 03 writes


def rejected_rows(run_dir: Path) -> dict[str, int]:
    """How many source rows of each table the run put into its reject ledger, not the target."""
    ledger = run_dir / REJECTS
    counts: dict[str, int] = {}
    if ledger.is_file():
        with ledger.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    table = json.loads(line)["table"]
                    counts[table] = counts.get(table, 0) + 1
    return counts


def verdict(manifest: dict[str, Any], steps: list[str]) -> str:
    """The verdict the command prints after `steps` passed: PASS only when the whole run
    passed and no row was rejected; else "PASS with N rows rejected (see rejects.jsonl)" and
    the rows rejected per table."""
    if manifest["outcome"] != "passed":
        return f"steps {', '.join(steps)} passed"
    rejected = manifest.get("rejected_rows") or {}
    if not rejected:
        return "PASS"
    per_table = ", ".join(f"{table} {n}" for table, n in sorted(rejected.items()))
    return f"PASS with {sum(rejected.values())} rows rejected (see {REJECTS}): {per_table}"


def write_manifest(
    run_dir: Path,
    *,
    parameters: dict[str, Any],
    target_display: str,
    server: str,
    steps: list[dict[str, Any]],
    target_session: dict[str, Any] | None = None,
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
    supersedes = [*earlier.get("supersedes", []), sha256_file(path)] if earlier else []
    previous = earlier.get("previous_manifest") if earlier else previous_link(run_dir, started_at)
    merged = {s["step"]: s for s in earlier.get("steps", [])}
    merged.update({s["step"]: s for s in steps})
    ordered = [merged[s] for s in STEPS if s in merged]
    recorded = recorded_hashes(run_dir)  # backup.json, read once
    manifest = {
        "run": run_dir.name,
        "parameters": parameters,
        "target": target_display,
        "target_server": server,
        # TLS (protocol, cipher), the role's attributes, the schema, the session settings
        "target_session": target_session or earlier.get("target_session"),
        "versions": versions(),
        "git_commit": git_commit(),
        "source_sha256": recorded.get(BACKUP_NAME),
        "started_at": earlier.get("started_at", started_at),
        "ended_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "steps": ordered,
        "outcome": _outcome(ordered),
        "rejected_rows": rejected_rows(run_dir),
        "html_view": html_view,
        "files": file_hashes(run_dir, recorded=recorded),
        "invoked_as": mask_text(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]])),
        "previous_manifest": previous,
        "supersedes": supersedes,
    }
    if parameters.get("bulk_run_dir"):  # a cutover: the audit record of the bulk run it finished
        manifest["finishes"] = _finishes(Path(parameters["bulk_run_dir"]))
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest
