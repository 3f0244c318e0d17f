"""Run state: the run folder each step writes its JSON results into and later steps read."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.core.errors import RunbookError
from runbook.core.target import project_home

BACKUP_NAME = "source-backup.db"
STEPS = ("backup", "schema", "transfer", "verify", "cutover")  # in order; notebook 0N_<step>
BULK_STEPS = STEPS[:4]  # a migration run; the cutover is a run of its own, linked to one
STEP_RESULTS = {step: f"{step}.json" for step in STEPS}


def notebook_name(step: str) -> str:
    """`01_backup`, `02_schema`, …: the notebook of a step, by its place in STEPS."""
    return f"{STEPS.index(step) + 1:02d}_{step}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (flat memory at any size)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def new_run_name(now: datetime | None = None) -> str:
    """`<UTC time>-<short id>`, sortable by time and unique."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunFolder:
    """One run of the runbook: `runs/<UTC time>-<short id>/` with each step's results."""

    path: Path
    why: str = field(default="", compare=False)  # how this folder was chosen, said in notebooks

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def backup_path(self) -> Path:
        """The snapshot of the source that steps 02–04 read."""
        return self.path / BACKUP_NAME

    def has(self, step: str) -> bool:
        return (self.path / STEP_RESULTS[step]).is_file()

    def write(self, step: str, result: dict[str, Any]) -> Path:
        """Store a step's result as JSON (written atomically: a crash leaves the old file)."""
        target = self.path / STEP_RESULTS[step]
        partial = target.with_suffix(".json.partial")
        partial.write_text(
            json.dumps(result, indent=1, ensure_ascii=False, default=str, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        os.replace(partial, target)
        return target

    def read(self, step: str) -> dict[str, Any]:
        """A result written by an earlier step, or a RunbookError naming the step to run first."""
        source = self.path / STEP_RESULTS[step]
        if not source.is_file():
            raise RunbookError(
                f"step {step!r} has not completed in run folder {self.name}",
                fix=f"run notebook {notebook_name(step)} for this run first",
            )
        return json.loads(source.read_text(encoding="utf-8"))


def archived(path: Path) -> bool:
    """A folder of the `runbook` command: it has a manifest, or papermill has begun writing the
    executed notebooks into it (an interactive session keeps its notebooks in notebooks/)."""
    return (path / "manifest.json").exists() or any(path.glob("*.ipynb"))


def runs_root() -> Path:
    """Where runs are archived: RUNBOOK_RUNS or `runs/` of the project."""
    return Path(os.environ.get("RUNBOOK_RUNS") or project_home() / "runs")


def open_run(run_dir: str = "", *, create: bool = False, needs: str = "") -> RunFolder:
    """The run folder a notebook works in: the parameter, else RUNBOOK_RUN_DIR, else the most
    recent unfinished run of an interactive session (no verify result yet, and not archived by
    the `runbook` command: an archived run is an audit record, never written into by hand), else
    (when every such run is finished) the most recent one holding the `needs` step's result, so
    a step can be repeated, else a new one when `create` is set. `why` says which it was."""
    chosen = run_dir or os.environ.get("RUNBOOK_RUN_DIR", "")
    why = "the run_dir parameter" if run_dir else "from RUNBOOK_RUN_DIR"
    if chosen:
        path = Path(chosen)
        if not path.is_dir():
            if not create:
                raise RunbookError(
                    f"run folder {chosen} does not exist",
                    fix="run 01_backup first, or pass the run folder of an earlier step",
                )
            path.mkdir(parents=True)
        return RunFolder(path, why)
    root = runs_root()
    interactive = sorted(
        (p for p in root.glob("*/") if p.is_dir() and not archived(p)), reverse=True
    )
    unfinished = [p for p in interactive if not (p / STEP_RESULTS["verify"]).exists()]
    if unfinished and not (create and (unfinished[0] / STEP_RESULTS["backup"]).exists()):
        return RunFolder(
            unfinished[0], "the most recent unfinished run; set run_dir to choose another"
        )
    finished = [p for p in interactive if needs and (p / STEP_RESULTS[needs]).exists()]
    if finished and not create:
        return RunFolder(
            finished[0],
            "every run is finished: the most recent one, to repeat this step; "
            "set run_dir to choose another",
        )
    if not create:
        raise RunbookError(
            f"no unfinished run under {root.name}/", fix="run 01_backup first to start a run"
        )
    path = root / new_run_name()
    path.mkdir(parents=True)
    return RunFolder(path, f"a new run under {root.name}/; steps 02-04 will continue it")


def open_cutover(run_dir: str = "") -> RunFolder:
    """The run folder of a cutover, always its own: the parameter, else RUNBOOK_CUTOVER_DIR,
    else a new one under the runs folder."""
    chosen = run_dir or os.environ.get("RUNBOOK_CUTOVER_DIR", "")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        why = "the run_dir parameter" if run_dir else "from RUNBOOK_CUTOVER_DIR"
        return RunFolder(Path(chosen), why)
    path = runs_root() / new_run_name()
    path.mkdir(parents=True)
    return RunFolder(path, f"a new run under {runs_root().name}/ for the cutover")


def bulk_run_folder(bulk_run_dir: str = "") -> RunFolder:
    """The bulk run a cutover finishes: the parameter, else RUNBOOK_BULK_RUN_DIR, else the
    most recent run of the runs folder whose verification passed."""
    chosen = bulk_run_dir or os.environ.get("RUNBOOK_BULK_RUN_DIR", "")
    if chosen:
        return RunFolder(
            Path(chosen),
            "the bulk_run_dir parameter" if bulk_run_dir else "from RUNBOOK_BULK_RUN_DIR",
        )
    for path in sorted(runs_root().glob("*/"), reverse=True):
        verified = path / STEP_RESULTS["verify"]
        if (
            verified.is_file()
            and json.loads(verified.read_text(encoding="utf-8")).get("verdict") == "PASS"
        ):
            return RunFolder(
                path, "the most recent run that verified; set bulk_run_dir to choose another"
            )
    raise RunbookError(
        f"no run under {runs_root().name}/ has verified: nothing to cut over",
        fix="run the bulk migration to a PASS first (runbook run), or pass bulk_run_dir",
    )


def default_source(source_db: str = "") -> Path:
    """The source database: the parameter, else RUNBOOK_SOURCE, else the demo sample."""
    chosen = source_db or os.environ.get("RUNBOOK_SOURCE", "")
    return Path(chosen) if chosen else project_home() / "data" / "sample.db"
