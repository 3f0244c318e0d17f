"""Running the steps as the audit record: each step's notebook executed with papermill into the
run folder (its parameters injected, checked against what the notebook declares), exported to
HTML, and the whole run summed up in `manifest.json` and the runs index."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.core.errors import RunbookError
from runbook.core.parameters import RunParameters
from runbook.core.readiness import check_ready
from runbook.core.run import notebook_name
from runbook.core.source import check_file
from runbook.core.target import mask_text, read_dotenv, resolve_target
from runbook.record.export import Exports, export_html, export_into  # noqa: F401 (API)
from runbook.record.index import INDEX, write_index
from runbook.record.kernels import (
    KERNEL_ARGUMENTS,
    NOTEBOOKS,
    after_library_call,
    fresh_namespace,
    kernel_groups,
    kernel_starter,
    kill_kernel,
    notebook_path,
    start_kernel,
    stop_kernel,
)
from runbook.record.lazy import collector_paused
from runbook.record.manifest import verdict, write_manifest
from runbook.record.parts import step_parts


def require_declared(steps: list[str], parameters: RunParameters) -> None:
    """Every parameter a step takes must be declared by its notebook: one that is not would be
    dropped silently by papermill (a notebook of another version of the runbook)."""
    import papermill

    for step in steps:
        declared = papermill.inspect_notebook(str(notebook_path(step)))
        missing = sorted(set(parameters.for_step(step)) - set(declared))
        if missing:
            raise RunbookError(
                f"notebook {notebook_name(step)} does not declare the parameter(s) "
                f"{', '.join(missing)}; nothing was run",
                where=f"notebooks/{notebook_path(step).name}",
                fix="use the notebooks of this runbook version (make notebooks regenerates them)",
            )


def _failure(exc: Exception, secrets: tuple[str, ...]) -> str:
    """The sentence an operator reads of a failed notebook: a RunbookError's own; anything else
    with its type, since it is a bug (the notebook holds the traceback either way)."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        text = exc.evalue if exc.ename == "RunbookError" else f"{exc.ename}: {exc.evalue}"
    else:  # the kernel died or could not start
        text = f"{type(exc).__name__}: {exc}"
    return mask_text(text, *secrets)


def execute_step(
    step: str,
    run_dir: Path,
    parameters: dict[str, Any],
    secrets: tuple[str, ...] = (),
    *,
    report: bool = False,
    exports: Exports | None = None,
    kernel: Any = None,
    on_library_call: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Run one notebook with papermill into the run folder and export it (`report`: code hidden
    in the HTML), in the background when `exports` is given (`Exports.finish` completes the
    record), on `kernel` when one was started for it (`start_kernel`, its namespace emptied by
    `fresh_namespace`); never raises for a failing notebook, the outcome says what failed;
    `on_library_call` is awaited when the step's library call has returned."""
    import papermill

    from runbook.record.engine import ENGINE  # registers it with papermill

    output = run_dir / f"{notebook_name(step)}.ipynb"
    started = datetime.now(UTC)
    clock = time.perf_counter()
    record: dict[str, Any] = {"step": step, "notebook": output.name}
    client_options: dict[str, Any] = {} if kernel is None else {"km": kernel}
    if on_library_call is not None:
        client_options["on_cell_executed"] = after_library_call(on_library_call)
    try:
        papermill.execute_notebook(
            str(notebook_path(step)),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            engine_name=ENGINE,
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            log_output=False,
            extra_arguments=KERNEL_ARGUMENTS,
            # every cell has finished (the notebook is written): a graceful shutdown would
            # only wait for the kernel to tidy up (measured: 0.7-1.2 s per step)
            shutdown_kernel="immediate",
            **client_options,
        )
        record["outcome"] = "passed"
    except Exception as exc:  # noqa: BLE001 - a failed notebook is an outcome to record
        record["outcome"] = "failed"
        record["error"] = _failure(exc, secrets)
    record["started_at"] = started.isoformat(timespec="seconds")
    record["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    record["seconds"] = round(time.perf_counter() - clock, 2)
    if output.exists():
        record["parts"] = step_parts(output, started, record["seconds"])
        if exports is None:
            export_into(record, output, report)
        else:
            exports.submit(record, output, report)
    return record


def load_dotenv(env_var: str) -> None:
    """Make a `.env` value visible to the notebook kernels (read only; nothing is written)."""
    dotenv = Path.cwd() / ".env"
    if not os.environ.get(env_var) and dotenv.is_file():
        value = read_dotenv(dotenv).get(env_var)
        if value:
            os.environ[env_var] = value


# the optional format checkers jsonschema imports when installed (jupyter_events' extras): the
# notebook schema nbformat validates against uses no "format" keyword, and its default validator
# is fastjsonschema; measured, the IRI grammar 0.9 s and 15 MiB, the others 0.08 s and 3.6 MiB
FORMAT_CHECKERS = (
    "rfc3987_syntax",
    "rfc3339_validator",
    "rfc3986_validator",
    "isoduration",
    "fqdn",
    "webcolors",
    "uri_template",
    "jsonpointer",
)


def without_format_checkers() -> None:
    """Keep jsonschema's optional format checkers out of this process: nbformat validates
    notebooks with it, but no format, and the IRI checker (rfc3987_syntax) builds a grammar
    when imported (the largest part of the 105 MiB this process held through a run)."""
    if "jsonschema" not in sys.modules:
        for name in FORMAT_CHECKERS:
            sys.modules.setdefault(name, None)  # None: `import` raises ImportError


def update_index(run_dir: Path, runs_root: Path) -> None:
    """Refresh `index.html` of the runs folder (the run folder's parent) when it is the project's
    runs folder or already has an index; a run elsewhere leaves its parent alone."""
    root = run_dir.resolve().parent
    if root == runs_root.resolve() or (root / INDEX).exists():
        print(f"Index:      {write_index(root)}")


def _execute_all(
    steps: list[str],
    parameters: RunParameters,
    secrets: tuple[str, ...],
    report: bool,
    kernels: dict[int, Any],
) -> list[dict[str, Any]]:
    """Execute the steps in order until one fails, each HTML export made while the next step
    runs, on the kernels of their groups (`kernel_groups`; a later step of a group on a fresh
    namespace, a step whose kernel is gone on one papermill starts), each group's kernel
    killed after its last step (`run_steps` tidies up after it)."""
    records: list[dict[str, Any]] = []
    run_dir = Path(parameters.run_dir)
    groups = kernel_groups(steps)
    with Exports(secrets) as exports:
        if steps:
            exports.warm(notebook_path(steps[0]), report)
        for index, group in enumerate(groups):
            for step in group:
                kernel = kernels.get(index)
                if kernel is not None and step != group[0] and not fresh_namespace(kernel):
                    stop_kernel(kernels.pop(index))
                    kernel = None
                later = None
                if step == group[-1] and index + 1 < len(groups):
                    later = kernel_starter(kernels, index + 1, groups[index + 1])
                record = execute_step(
                    step, run_dir, parameters.for_step(step), secrets, report=report,
                    exports=exports, kernel=kernel, on_library_call=later,
                )  # fmt: skip
                records.append(record)
                print(f"  {step:<9} {record['outcome']:<7} {record['seconds']:>8.1f} s")
                if record["outcome"] != "passed":
                    print(f"Step {step} failed: {record.get('error', 'see the notebook')}")
                    break
            if index in kernels:  # papermill stops only the kernels it started; ours are
                kill_kernel(kernels[index])  # killed now and tidied up by run_steps at the end
            if records[-1]["outcome"] != "passed":
                break
    for record in records:  # an export that failed in the background fails its step
        if record["outcome"] != "passed" and record.get("error", "").startswith("the notebook ran"):
            print(f"Step {record['step']} failed: {record['error']}")
    return records


def run_steps(
    steps: list[str], parameters: RunParameters, runs_root: Path, *, report: bool = False
) -> int:
    """Execute the chosen steps into the run folder (`parameters.run_dir`), write the manifest
    and the runs index, print a summary; the exit status is 0 only when every step passed.
    The target and the notebooks' parameters are checked before step 01 starts."""
    without_format_checkers()
    load_dotenv(parameters.database_url_env)
    target = resolve_target("", parameters.database_url_env)
    if target.kind == "embedded":  # let the kernels find the same server and database
        os.environ.setdefault("RUNBOOK_EMBEDDED_DATABASE", target.database)
    else:  # the kernels run in notebooks/: the URL they get names its files by absolute paths
        os.environ[parameters.database_url_env] = target.url
    secrets = (target.password or "",)
    os.environ["RUNBOOK_PROGRESS"] = "text"  # the kernels print progress lines, no widgets
    # the first group's kernel starts while the checks run and papermill loads (the collector
    # paused meanwhile, as in the kernels: `lazy.collector_paused`)
    kernels = {0: start_kernel(kernel_groups(steps)[0])} if steps else {}
    try:
        with collector_paused():
            ready = check_ready(target)  # fails here, before step 01, when the target is wrong
            import papermill  # noqa: F401 - loaded now, not when step 01 starts

            from runbook.record import engine  # noqa: F401 - papermill's engine of the run
        server = ready.version
        require_declared(steps, parameters)
        if "backup" in steps:
            check_file(parameters.source_db)
        run_dir = Path(parameters.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        print(f"Run folder: {run_dir}")
        print(f"Target:     {target.display} ({server})")
        if not gc.get_freeze_count():  # the modules imported so far (once a process: a
            gc.freeze()  # second run's garbage stays collectable); the collector walks the rest
        records = _execute_all(steps, parameters, secrets, report, kernels)
    finally:
        for kernel in kernels.values():  # killed after its steps, or started for steps that
            stop_kernel(kernel)  # did not run
    if parameters.bulk_run_dir:  # the cutover's catch-up added its records to the bulk run
        refresh_manifest(Path(parameters.bulk_run_dir))
    manifest = write_manifest(
        run_dir,
        parameters=parameters.as_dict(),
        target_display=target.display,
        server=server,
        target_session=ready.record(),
        steps=records,
        started_at=started,
        html_view="report" if report else "full",
    )
    update_index(run_dir, runs_root)
    failed = [r for r in records if r["outcome"] != "passed"]
    if failed:
        print(f"FAILED at step {failed[0]['step']}; the notebooks in {run_dir} show where.")
        return 1
    print(f"{verdict(manifest, steps)}. Manifest: {run_dir / 'manifest.json'}")
    return 0


def refresh_manifest(run_dir: Path) -> None:
    """Rewrite a run's manifest after its folder changed outside a step (a sync added its
    records and snapshot): same parameters and steps, new file hashes, the version it replaces
    listed, so `runbook audit` sees a re-run, not tampering. A run without a manifest (steps
    run in JupyterLab) has no archive to refresh."""
    if not (run_dir / "manifest.json").exists():
        return
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    write_manifest(
        run_dir,
        parameters=manifest["parameters"],
        target_display=manifest["target"],
        server=manifest["target_server"],
        steps=[],
        started_at=manifest["started_at"],
        html_view=manifest.get("html_view", "full"),
    )
