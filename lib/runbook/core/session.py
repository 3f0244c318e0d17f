"""The first cell of every notebook: which run folder, which source and which target this step
works on, shown without secrets or machine paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runbook.core.readiness import check_ready
from runbook.core.run import (
    STEPS,
    RunFolder,
    default_source,
    notebook_name,
    open_cutover,
    open_run,
)
from runbook.core.target import Target, resolve_target


@dataclass(frozen=True)
class Step:
    """What one notebook works on."""

    name: str
    run: RunFolder
    source: Path
    target: Target
    server: str


def begin(
    step: str,
    run_dir: str = "",
    source_db: str = "",
    target_url: str = "",
    database_url_env: str = "DATABASE_URL",
) -> Step:
    """Resolve the run folder (created by step 01), the source and the target, check that the
    target answers, and print the three so the audit record says what this step worked on."""
    index = STEPS.index(step)
    if step == "cutover":  # a run of its own, linked to the bulk run it finishes
        run = open_cutover(run_dir)
    else:
        run = open_run(run_dir, create=index == 0, needs=STEPS[index - 1] if index else "")
    source = default_source(source_db)
    target = resolve_target(target_url, database_url_env)
    server = check_ready(target).version
    print(f"Step:       {notebook_name(step)}")
    print(f"Run folder: {run.name} ({run.why})" if run.why else f"Run folder: {run.name}")
    print(f"Source:     {source.name}")
    print(f"Target:     {target.display} ({server})")
    return Step(step, run, source, target, server)


def verdict(step: Step, summary: str) -> None:
    """Print the one-line verdict that ends each notebook."""
    print(f"{notebook_name(step.name)}: PASS. {summary}")
