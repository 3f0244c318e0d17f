"""The `runbook` command: run the four notebooks with papermill and archive the run."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from runbook.errors import RunbookError
from runbook.run import new_run_name, runs_root
from runbook.session import STEPS
from runbook.target import (
    Target,
    check_ready,
    create_database,
    drop_database,
    embedded_target,
    mask_text,
    project_home,
    read_dotenv,
    resolve_target,
    server_version,
    stop_embedded,
)

DEMO_SCALE = 0.02
DEMO_DATABASE = "coldchain_demo"
DEMO_URL_ENV = "RUNBOOK_DEMO_DATABASE_URL"
REPORT_HELP = "hide code in the HTML exports (reviewer's view); the .ipynb keeps everything"


def _parse_steps(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STEPS]
    if unknown or not chosen:
        raise RunbookError(
            f"unknown step(s) {unknown or text!r}", fix=f"choose from {', '.join(STEPS)}"
        )
    return [s for s in STEPS if s in chosen]


def _parse_rules(given: list[str]) -> dict[str, list[str]]:
    """`--rule orders.requested_pickup_at=epoch-seconds` options as {"table.column": [rules]}."""
    rules: dict[str, list[str]] = {}
    for item in given:
        column, sep, names = item.partition("=")
        if not sep or column.count(".") != 1 or not names:
            raise RunbookError(
                f"--rule {item!r} is not of the form TABLE.COLUMN=RULE[,RULE]",
                fix="e.g. --rule orders.requested_pickup_at=epoch-seconds",
            )
        rules.setdefault(column, []).extend(n.strip() for n in names.split(",") if n.strip())
    return rules


def _load_dotenv(env_var: str) -> None:
    """Make a `.env` value visible to the notebook kernels (read only; nothing is written)."""
    dotenv = Path.cwd() / ".env"
    if not os.environ.get(env_var) and dotenv.is_file():
        value = read_dotenv(dotenv).get(env_var)
        if value:
            os.environ[env_var] = value


def run_steps(
    source: Path,
    run_dir: Path | None,
    steps: list[str],
    env_var: str = "DATABASE_URL",
    on_bad_rows: str = "stop",
    report: bool = False,
    schema_mode: str = "alembic",
    column_rules: dict[str, list[str]] | None = None,
    replace_target: bool = False,
) -> int:
    """Execute the chosen steps into a run folder, write the manifest and the runs index, print a
    summary; the exit status is 0 only when every step passed. `report` hides the code in the
    HTML exports (a reviewer's view; the .ipynb keeps everything)."""
    _without_iri_checker()
    from runbook.archive import execute_step, write_manifest

    _load_dotenv(env_var)
    target = resolve_target("", env_var)
    if target.kind == "embedded":  # let the kernels find the same server and database
        os.environ.setdefault("RUNBOOK_EMBEDDED_DATABASE", target.database)
    secrets = (target.password or "",)
    server = check_ready(target)  # fails here, before step 01, when the target is wrong
    if "backup" in steps:
        from runbook.source import check_file

        check_file(source)
    run_dir = run_dir or runs_root() / new_run_name()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    parameters = {
        "source_db": str(source.resolve()),
        "run_dir": str(run_dir.resolve()),
        "database_url_env": env_var,
        "on_bad_rows": on_bad_rows,
        "schema_mode": schema_mode,
        "column_rules": column_rules or {},
        "replace_target": replace_target,
    }
    print(f"Run folder: {run_dir}")
    print(f"Target:     {target.display} ({server})")
    records = []
    for step in steps:
        record = execute_step(step, run_dir, parameters, secrets, report=report)
        records.append(record)
        print(f"  {step:<9} {record['outcome']:<7} {record['seconds']:>8.1f} s")
        if record["outcome"] != "passed":
            print(f"Step {step} failed: {record.get('error', 'see the notebook')}")
            break
    manifest = write_manifest(
        run_dir,
        parameters=parameters,
        target_display=target.display,
        server=server,
        steps=records,
        started_at=started,
        html_view="report" if report else "full",
    )
    _update_index(run_dir)
    failed = [r for r in records if r["outcome"] != "passed"]
    if failed:
        print(f"FAILED at step {failed[0]['step']}; the notebooks in {run_dir} show where.")
        return 1
    verdict = "PASS" if manifest["outcome"] == "passed" else f"steps {', '.join(steps)} passed"
    print(f"{verdict}. Manifest: {run_dir / 'manifest.json'}")
    return 0


def _without_iri_checker() -> None:
    """Keep jsonschema's optional IRI format checker out of this process: nbformat validates
    notebooks with jsonschema, whose schema checks no IRI, and the checker (rfc3987_syntax,
    installed for jupyter_events) builds a grammar when imported (measured: 0.9 s and 15 MiB
    of the 105 MiB this process holds through a run, the largest part of a run's peak)."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # None: `import` raises ImportError


def _update_index(run_dir: Path) -> None:
    """Refresh `index.html` of the runs folder (the run folder's parent) when it is the project's
    runs folder or already has an index; a run elsewhere leaves its parent alone."""
    from runbook.index import INDEX, write_index

    root = run_dir.resolve().parent
    if root == runs_root().resolve() or (root / INDEX).exists():
        print(f"Index:      {write_index(root)}")


def audit_run(run_dir: Path) -> int:
    """Re-hash a run and its chain; 0 when nothing changed, 1 naming what did."""
    from runbook.audit import audit, report

    result = audit(run_dir)
    print(report(result, run_dir))
    return 0 if result.passed else 1


def demo(scale: float, seed: int, report: bool = False) -> int:
    """Sample database into `data/`, a fresh database on the embedded server, all four steps."""
    from coldchain.sample import generate

    data = project_home() / "data"
    data.mkdir(exist_ok=True)
    sample = data / f"sample-scale{scale:g}-seed{seed}.db"
    if not sample.exists():
        counts = generate(sample, scale=scale, seed=seed)
        print(f"Sample database {sample.name}: {sum(counts.values())} rows")
    server: Target = embedded_target()
    admin = server.with_database("postgres")
    drop_database(admin, DEMO_DATABASE)
    create_database(admin, DEMO_DATABASE)
    os.environ[DEMO_URL_ENV] = server.with_database(DEMO_DATABASE).url
    return run_steps(sample, None, list(STEPS), env_var=DEMO_URL_ENV, report=report)


def reinsert(run_dir: Path, corrected: Path, env_var: str = "DATABASE_URL") -> int:
    """Check and load corrected rejected rows into the run's target."""
    from runbook.rejects import reinsert as load_corrected
    from runbook.run import RunFolder

    _load_dotenv(env_var)
    target = resolve_target("", env_var)
    check_ready(target)
    counts = load_corrected(RunFolder(run_dir), target, corrected)
    for table, count in counts.items():
        print(f"{table:<20} {count:>8} corrected rows re-inserted")
    print(f"Now re-verify: runbook run SOURCE --steps verify --run-dir {run_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runbook", description="Migrate the Cold Chain Dispatch System to PostgreSQL."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sample = sub.add_parser("sample", help="write a deterministic sample SQLite database")
    sample.add_argument("out", type=Path)
    sample.add_argument("--scale", type=float, default=0.01, help="1 ≈ 1M temperature logs")
    sample.add_argument("--seed", type=int, default=42)

    run = sub.add_parser("run", help="run the four steps with papermill and archive the run")
    run.add_argument("source", type=Path, help="the application's SQLite database")
    run.add_argument("--run-dir", type=Path, help="run folder (default runs/<UTC time>-<id>/)")
    run.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset")
    run.add_argument(
        "--database-url-env",
        default="DATABASE_URL",
        help="environment variable holding the target URL (never pass the URL itself)",
    )
    run.add_argument(
        "--on-bad-rows",
        default="stop",
        choices=["stop", "reject"],
        help="stop (default): nothing is written when rows do not fit; reject: load the rest "
        "and list those rows in rejects.jsonl",
    )
    run.add_argument(
        "--schema",
        default="alembic",
        choices=["alembic", "reflect"],
        help="alembic (default): the application's migrations; reflect: built from the SQLite "
        "file (any SQLite database)",
    )
    run.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="TABLE.COLUMN=RULE[,RULE]",
        help="an explicit conversion rule for one column (empty-as-null, datetime-offset, "
        "epoch-seconds, epoch-milliseconds, cp949); repeat for more columns",
    )
    run.add_argument(
        "--replace-target",
        action="store_true",
        help="save the target (pg_dump) into the run folder, then drop and recreate only the "
        "tables this migration creates",
    )
    run.add_argument("--report", action="store_true", help=REPORT_HELP)

    demo_cmd = sub.add_parser("demo", help="sample + embedded PostgreSQL + all four steps")
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

    index = sub.add_parser("index", help="rewrite index.html of a runs folder")
    index.add_argument("runs", type=Path, nargs="?", help="runs folder (default runs/)")

    server = sub.add_parser("server", help="the embedded PostgreSQL under .runbook/")
    server.add_argument("action", choices=["start", "stop", "status"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sample":
            from coldchain.sample import generate

            counts = generate(args.out, scale=args.scale, seed=args.seed)
            for table, count in counts.items():
                print(f"{table:<20} {count:>10}")
            return 0
        if args.command == "run":
            if args.run_dir is None and args.steps != ",".join(STEPS):
                raise RunbookError(
                    "--steps without --run-dir has no earlier results to work on",
                    fix="pass --run-dir of the run whose steps you want to repeat",
                )
            return run_steps(
                args.source,
                args.run_dir,
                _parse_steps(args.steps),
                args.database_url_env,
                args.on_bad_rows,
                args.report,
                schema_mode=args.schema,
                column_rules=_parse_rules(args.rule),
                replace_target=args.replace_target,
            )
        if args.command == "demo":
            return demo(args.scale, args.seed, args.report)
        if args.command == "reinsert":
            return reinsert(args.run_dir, args.corrected, args.database_url_env)
        if args.command == "audit":
            return audit_run(args.run_dir)
        if args.command == "index":
            from runbook.index import write_index

            print(write_index(args.runs or runs_root()))
            return 0
        if args.action == "stop":
            print("stopped" if stop_embedded() else "not running")
        else:
            target = embedded_target()
            print(f"{target.display}: {server_version(target)}")
        return 0
    except RunbookError as exc:
        print(f"runbook: {mask_text(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
