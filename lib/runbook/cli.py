"""The `runbook` command: parse the command line, run what it asks, and print any failure as the
one sentence of its RunbookError (exit 2); the steps themselves run as notebooks
(`record.runner`)."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from runbook.core import parameters
from runbook.core.errors import RunbookError
from runbook.core.readiness import check_ready
from runbook.core.run import BULK_STEPS, STEPS, RunFolder, new_run_name, runs_root
from runbook.core.target import (
    Target,
    create_database,
    drop_database,
    embedded_target,
    mask_text,
    project_home,
    resolve_target,
    server_version,
    stop_embedded,
)

DEMO_SCALE = 0.02
DEMO_DATABASE = "coldchain_demo"
DEMO_URL_ENV = "RUNBOOK_DEMO_DATABASE_URL"
DEMO_TRAFFIC = 300  # rows the demo's application writes before the sync, and before the cutover
REPORT_HELP = "hide code in the HTML exports (reviewer's view); the .ipynb keeps everything"


def _parse_steps(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STEPS]
    if unknown or not chosen:
        raise RunbookError(
            f"unknown step(s) {unknown or text!r}", fix=f"choose from {', '.join(STEPS)}"
        )
    return [s for s in STEPS if s in chosen]


def run(args: argparse.Namespace) -> int:
    """`runbook run`: the chosen steps into a new run folder (or --run-dir)."""
    from runbook.record.runner import run_steps

    if args.run_dir is None and args.steps != ",".join(BULK_STEPS):
        raise RunbookError(
            "--steps without --run-dir has no earlier results to work on",
            fix="pass --run-dir of the run whose steps you want to repeat",
        )
    steps = _parse_steps(args.steps)
    if "cutover" in steps:
        if steps != ["cutover"]:
            raise RunbookError(
                "the cutover runs alone, once the bulk run passed and the application stopped",
                fix="runbook run SOURCE --steps cutover --run-dir BULK_RUN (or runbook cutover)",
            )
        return cutover(args)
    run_dir = args.run_dir or runs_root() / new_run_name()
    chosen = parameters.from_options(
        args, source_db=str(args.source.resolve()), run_dir=str(run_dir.resolve())
    )
    return run_steps(steps, chosen, runs_root(), report=args.report)


def _bulk_folder(run_dir: Path | None) -> Path:
    if run_dir is None or not (run_dir / "verify.json").is_file():
        raise RunbookError(
            f"{run_dir or 'no run folder given'}: not the folder of a bulk run that verified",
            fix="pass --run-dir of the bulk migration (runbook run) whose target to catch up",
        )
    return run_dir


def sync(args: argparse.Namespace) -> int:
    """`runbook sync`: catch the target up with the live source, the application running."""
    from runbook.record.runner import load_dotenv, refresh_manifest
    from runbook.steps.sync import summary
    from runbook.steps.sync import sync as catch_up

    run_dir = _bulk_folder(args.run_dir)
    load_dotenv(args.database_url_env)
    target = resolve_target("", args.database_url_env)
    check_ready(target)
    record = catch_up(RunFolder(run_dir), args.source, target, args.on_bad_rows)
    print("\n".join(summary(record)))
    refresh_manifest(run_dir)
    return 0


def cutover(args: argparse.Namespace) -> int:
    """`runbook cutover`: notebook 05 into a run folder of its own, linked to the bulk run."""
    from runbook.record.runner import run_steps

    stopped_at = datetime.now(UTC).isoformat(timespec="milliseconds")  # the window begins
    bulk = _bulk_folder(args.run_dir)
    folder = getattr(args, "cutover_dir", None) or runs_root() / new_run_name()
    chosen = parameters.from_options(
        args,
        source_db=str(args.source.resolve()),
        run_dir=str(folder.resolve()),
        bulk_run_dir=str(bulk.resolve()),
        stopped_at=stopped_at,
    )
    return run_steps(["cutover"], chosen, runs_root(), report=args.report)


def demo(scale: float, seed: int, report: bool = False) -> int:
    """Sample database into `data/`, a fresh database on the embedded server; the four steps on
    a copy of the sample that the demo's application keeps writing to, a sync, the cutover."""
    from coldchain.sample import generate
    from coldchain.traffic import Traffic
    from runbook.record.runner import run_steps

    data = project_home() / "data"
    data.mkdir(exist_ok=True)
    sample = data / f"sample-scale{scale:g}-seed{seed}.db"
    if not sample.exists():
        counts = generate(sample, scale=scale, seed=seed)
        print(f"Sample database {sample.name}: {sum(counts.values())} rows")
    live = data / "demo-live.db"  # the demo application's database: the traffic writes here
    for leftover in (live, Path(f"{live}-wal"), Path(f"{live}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(sample, live)
    server: Target = embedded_target()
    admin = server.with_database("postgres")
    drop_database(admin, DEMO_DATABASE)
    create_database(admin, DEMO_DATABASE)
    os.environ[DEMO_URL_ENV] = server.with_database(DEMO_DATABASE).url
    bulk = (runs_root() / new_run_name()).resolve()
    chosen = parameters.RunParameters.checked(
        {"source_db": str(live.resolve()), "run_dir": str(bulk), "database_url_env": DEMO_URL_ENV}
    )
    code = run_steps(list(BULK_STEPS), chosen, runs_root(), report=report)
    for command in ("sync", "cutover") if code == 0 else ():
        traffic = Traffic(live, seed=seed + len(command))
        try:
            written = sum(traffic.run(DEMO_TRAFFIC).values())
        finally:
            traffic.close()
        print(f"\nThe application wrote {written} rows since; runbook {command}:")
        arguments = [command, str(live), "--run-dir", str(bulk), "--database-url-env"]
        code = COMMANDS[command](build_parser().parse_args([*arguments, DEMO_URL_ENV]))
        if code:
            break
    return code


def reinsert(run_dir: Path, corrected: Path, env_var: str = "DATABASE_URL") -> int:
    """Check and load corrected rejected rows into the run's target."""
    from runbook.record.runner import load_dotenv
    from runbook.steps.reinsert import reinsert as load_corrected

    load_dotenv(env_var)
    target = resolve_target("", env_var)
    check_ready(target)
    counts = load_corrected(RunFolder(run_dir), target, corrected)
    for table, count in counts.items():
        print(f"{table:<20} {count:>8} corrected rows re-inserted")
    print(f"Now re-verify: runbook run SOURCE --steps verify --run-dir {run_dir}")
    return 0


def audit_run(run_dir: Path) -> int:
    """Re-hash a run and its chain; 0 when nothing changed, 1 naming what did."""
    from runbook.record.audit import audit, report

    result = audit(run_dir)
    print(report(result, run_dir))
    return 0 if result.passed else 1


def sample(out: Path, scale: float, seed: int, profile: str = "standard") -> int:
    """Write a deterministic sample database of a profile's shape and print its rows per table."""
    from coldchain.sample import PROFILES, generate

    if not (scale > 0 and scale < float("inf")):
        raise RunbookError(f"--scale {scale:g} is not a positive number", fix="e.g. --scale 0.1")
    if profile not in PROFILES:
        raise RunbookError(
            f"--profile {profile} is not a profile", fix=f"one of {', '.join(PROFILES)}"
        )
    if out.exists():
        raise RunbookError(
            f"{out} exists; a sample never overwrites a file",
            fix="give a path that does not exist yet, or remove the file first",
        )
    try:
        counts = generate(out, scale=scale, seed=seed, profile=profile)
    except OSError as exc:
        raise RunbookError(
            f"the sample could not be written to {out}: {exc.strerror or exc}",
            fix="give a path in a folder that exists and that you can write to",
        ) from None
    for table, count in counts.items():
        print(f"{table:<20} {count:>10}")
    return 0


def server(action: str) -> int:
    """Start, stop or show the embedded PostgreSQL."""
    if action == "stop":
        print("stopped" if stop_embedded() else "not running")
    else:
        target = embedded_target()
        print(f"{target.display}: {server_version(target)}")
    return 0


def index(runs: Path | None) -> int:
    """Rewrite index.html of a runs folder."""
    from runbook.record.index import write_index

    print(write_index(runs or runs_root()))
    return 0


def _sample_parser(sub: argparse._SubParsersAction) -> None:
    """The `sample` command's options."""
    sample_cmd = sub.add_parser("sample", help="write a deterministic sample SQLite database")
    sample_cmd.add_argument("out", type=Path)
    sample_cmd.add_argument("--scale", type=float, default=0.01, help="1 ≈ 1M temperature logs")
    sample_cmd.add_argument("--seed", type=int, default=42)
    sample_cmd.add_argument(
        "--profile",
        default="standard",
        help="shape of the data: standard (ours) or wide (2.4x the orders, long JSON and text)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runbook", description="Migrate the Cold Chain Dispatch System to PostgreSQL."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    _sample_parser(sub)

    run_cmd = sub.add_parser("run", help="run the four steps with papermill and archive the run")
    run_cmd.add_argument("source", type=Path, help="the application's SQLite database")
    run_cmd.add_argument("--run-dir", type=Path, help="run folder (default runs/<UTC time>-<id>/)")
    run_cmd.add_argument("--steps", default=",".join(BULK_STEPS), help="comma-separated subset")
    parameters.add_options(run_cmd, steps=STEPS)
    run_cmd.add_argument("--report", action="store_true", help=REPORT_HELP)

    sync_cmd = sub.add_parser(
        "sync", help="while the application runs: carry its changes since the last snapshot over"
    )
    sync_cmd.add_argument("source", type=Path, help="the application's live SQLite database")
    sync_cmd.add_argument("--run-dir", type=Path, help="the bulk run's folder", required=True)
    parameters.add_options(sync_cmd, names=("database_url_env", "on_bad_rows"))

    cut = sub.add_parser(
        "cutover", help="the application stopped: last sync, verify, smoke test (notebook 05)"
    )
    cut.add_argument("source", type=Path, help="the application's SQLite database, stopped")
    cut.add_argument("--run-dir", type=Path, help="the bulk run's folder", required=True)
    cut.add_argument("--cutover-dir", type=Path, help="run folder of the cutover (default new)")
    parameters.add_options(cut, steps=("cutover",))
    cut.add_argument("--report", action="store_true", help=REPORT_HELP)

    demo_cmd = sub.add_parser(
        "demo", help="sample + embedded PostgreSQL: the four steps, a sync, the cutover"
    )
    demo_cmd.add_argument("--scale", type=float, default=DEMO_SCALE)
    demo_cmd.add_argument("--seed", type=int, default=42)
    demo_cmd.add_argument("--report", action="store_true", help=REPORT_HELP)

    audit = sub.add_parser(
        "audit", help="re-hash a run's files and the chain of manifests back to the first run"
    )
    audit.add_argument("run_dir", type=Path, metavar="RUN_DIR")

    fix = sub.add_parser(
        "reinsert", help="load rejected rows after correcting them in a copy of rejects.jsonl"
    )
    fix.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    fix.add_argument("corrected", type=Path, metavar="CORRECTED.jsonl")
    fix.add_argument("--database-url-env", default="DATABASE_URL")

    index_cmd = sub.add_parser("index", help="rewrite index.html of a runs folder")
    index_cmd.add_argument("runs", type=Path, nargs="?", help="runs folder (default runs/)")

    server_cmd = sub.add_parser("server", help="the embedded PostgreSQL under .runbook/")
    server_cmd.add_argument("action", choices=["start", "stop", "status"])
    return parser


COMMANDS = {
    "run": run,
    "sync": sync,
    "cutover": cutover,
    "demo": lambda a: demo(a.scale, a.seed, a.report),
    "sample": lambda a: sample(a.out, a.scale, a.seed, a.profile),
    "reinsert": lambda a: reinsert(a.run_dir, a.corrected, a.database_url_env),
    "audit": lambda a: audit_run(a.run_dir),
    "index": lambda a: index(a.runs),
    "server": lambda a: server(a.action),
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RunbookError as exc:
        print(f"runbook: {mask_text(str(exc))}", file=sys.stderr)
        return 2


def entry() -> None:
    """The `runbook` command: `main`, then the exit handlers, then the process ends without
    tearing down the interpreter, which only frees what papermill, jupyter_client and ZeroMQ
    left (measured: 0.13-0.15 s at the end of every `runbook run`, the operator waiting)."""
    code = 1  # main raised: Python's own status for an uncaught exception

    def end_now() -> None:  # registered first, so it runs after every other exit handler
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    atexit.register(end_now)
    try:
        code = main()
    except SystemExit as stop:  # argparse's --help and usage errors: the status Python gives
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        raise
    except KeyboardInterrupt:  # the status a shell expects of a command stopped by Ctrl-C
        code = 130
        raise
    sys.exit(code)


if __name__ == "__main__":
    entry()
