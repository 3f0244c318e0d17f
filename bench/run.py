"""Benchmark of the runbook against its peers, per database shape and scale, on one machine in
one run.

For each shape (`standard`: ours; `wide`: another operator's, `runbook sample --profile wide`)
and scale: generate the sample (cached under --data-dir), then on the same local PostgreSQL
server measure

- `psql \\copy` of CSV exported by the `sqlite3` CLI into the Alembic schema without its
  secondary indexes and foreign keys (the export not counted), then the same index / unique
  constraint / foreign key build, sequences and ANALYZE in one psql session (`peers`);
- pgloader with its defaults, when installed (its own schema, indexes and foreign keys);
- DuckDB (bench/requirements.txt, installed into the venv on first use): `INSERT INTO` the
  Alembic schema with sqlite_all_varchar, the same build, and our verification of what it
  loaded (its fidelity);
- our transfer() and verify() calls (`ours`), with rows/s and MB/s per table;
- the whole `runbook run` (four notebooks in their kernels), with each step's seconds as its
  manifest records them.

Each method starts on a quiet server (`settle`: the earlier methods' databases dropped, a
checkpoint, no autovacuum worker running). Wall seconds, ratios and the peak RSS of each whole
process tree (`measure`) are printed as tables and written as JSON, markdown and a chart under
bench/results/ (`report`), with the machine's load average before and after each case: the
machine may be shared, so figures are noisy. Only local servers are used (127.0.0.1, localhost
or a unix socket).

    .venv/bin/python bench/run.py                      # both shapes, scales 1 and 3
    .venv/bin/python bench/run.py --shapes wide --scales 1 --methods ours,run
    .venv/bin/python bench/run.py --scales 1 --methods cutover
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "lib"))

from cutover import bench_cutover  # noqa: E402
from measure import load_average, machine  # noqa: E402
from ours import bench_ours, bench_whole_run, prepare_run  # noqa: E402
from peers import bench_copy, bench_duckdb, bench_pgloader, fresh  # noqa: E402
from report import chart, markdown  # noqa: E402

from runbook.core import source as sqlite_source  # noqa: E402
from runbook.core.target import Target, connect, drop_database  # noqa: E402

RESULTS = HERE / "results"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
DATABASES = ("bench_copy", "bench_pgloader", "bench_duckdb", "bench_ours", "bench_run")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["standard", "wide"])
    parser.add_argument("--scales", nargs="+", default=["1", "3"])
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--workers", type=int, default=0, help="0: the transfer's default")
    parser.add_argument(
        "--methods",
        default="copy,pgloader,duckdb,ours,run",
        help="of copy,pgloader,duckdb,ours,run,cutover (bulk run while writing, sync, cutover)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "runbook-bench"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; fastest kept")
    parser.add_argument("--merge", action="store_true", help="keep the other cases of latest.json")
    parser.add_argument(
        "--pgloader-max-scale", type=float, default=3, help="skip pgloader above this scale"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    host = urlsplit(args.url).hostname or ""
    if host not in LOCAL_HOSTS and not host.startswith("/"):
        parser.error(f"the benchmark only uses local servers, not {host!r}")
    return args


def ensure_duckdb(notes: list[str]) -> None:
    """DuckDB and its two extensions into this venv (bench only), unless already there."""
    try:
        import duckdb_extensions  # noqa: F401
    except ImportError:
        requirements = str(HERE / "requirements.txt")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-r", requirements],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            notes.append(
                f"DuckDB could not be installed, its rows are skipped: {done.stderr[-300:]}"
            )


def sample_of(args: argparse.Namespace, shape: str, scale: str) -> Path:
    """The cached sample of a shape and scale, generated on first use."""
    from coldchain.sample import generate

    sample = args.data_dir / f"sample-{shape}-scale{scale}-seed{args.seed}.db"
    if not sample.exists():
        print(f"{shape} {scale}: generating {sample} …", flush=True)
        # written under another name first: a bench stopped while generating leaves no
        # half-written sample that the next run would take for a whole one
        partial = sample.with_name(sample.name + ".partial")
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)
        generate(partial, scale=float(scale), seed=args.seed, profile=shape)
        partial.replace(sample)
    return sample


def attempt(args, methods, sample: Path, work: Path, admin: Target, label: str, notes) -> dict:
    """One run of each method on one sample; a method that fails is noted and the others go on
    (the server may be shared: a connection ended by somebody else must not lose the run)."""
    found: dict = {}
    scale = float(label.split()[1])

    def pgloader() -> dict | None:
        if scale <= args.pgloader_max_scale and shutil.which("pgloader"):
            return bench_pgloader(sample, admin)
        return None

    def duckdb() -> dict | None:
        return bench_duckdb(*prepare_run(sample, work, admin, "bench_duckdb"), args.workers or None)

    def ours() -> dict:
        return bench_ours(*prepare_run(sample, work, admin, "bench_ours"), args.workers or None)

    steps = {
        "copy": ("psql \\copy", lambda: bench_copy(sample, work, admin)),
        "pgloader": ("pgloader", pgloader),
        "duckdb": ("DuckDB", duckdb),
        "ours": ("runbook transfer() and verify()", ours),
        "run": ("runbook run, four notebooks", lambda: bench_whole_run(sample, work, admin)),
    }
    for method, (title, call) in steps.items():
        if method not in methods:
            continue
        settle(admin)
        print(f"{label}: {title} …", flush=True)
        try:
            measured = call()
        except Exception as exc:  # noqa: BLE001 - noted in the results, the bench goes on
            notes.append(f"{label}: {title} failed: {str(exc)[-400:]}")
            print(notes[-1], flush=True)
            continue
        if measured:
            found[method] = measured
    return found


def settle(admin: Target, limit_seconds: float = 120.0) -> None:
    """Start each method on a quiet server, as the first one does: the databases the methods
    before it loaded dropped (their figures are taken; otherwise autovacuum works on their
    freshly loaded tables during the next method: measured at standard scale 1, a whole run
    right after pgloader took 17.5 s and 26 core-seconds, on a quiet server 15.0-16.0 s and
    23-25), their dirty pages written (CHECKPOINT), and no autovacuum worker left running;
    waited for, at most `limit_seconds`."""
    for name in DATABASES:
        drop_database(admin, name)
    with connect(admin, autocommit=True) as conn:
        # a role that may not checkpoint (not a superuser): the server's own checkpoints come
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
        deadline = time.monotonic() + limit_seconds
        busy = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        while conn.execute(busy).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.2)


def fastest(runs: list[dict]) -> dict:
    """Of repeated runs, each method's fastest (its peak memory the largest seen)."""
    best: dict = {}
    for method in {m for r in runs for m in r}:
        measured = [r[method] for r in runs if r.get(method)]
        if not measured:
            continue

        def seconds(m: dict) -> float:
            return (
                m["total"]["seconds"]
                if "total" in m
                else m.get("seconds", 0)
                or sum(m[s]["seconds"] for s in ("transfer", "verify") if s in m)
            )

        best[method] = min(measured, key=seconds)
    return best


def case(args, methods, admin: Target, shape: str, scale: str, notes: list[str]) -> dict:
    """Every method on one shape and scale; the fastest of --repeat runs kept, all recorded."""
    sample = sample_of(args, shape, scale)
    conn = sqlite_source.open_readonly(sample)
    rows = sum(sqlite_source.row_counts(conn).values())
    conn.close()
    entry: dict = {"shape": shape, "scale": scale, "rows": rows, "bytes": sample.stat().st_size}
    entry["load_before"] = load_average()
    work = args.data_dir / f"work-{shape}-scale{scale}"
    work.mkdir(exist_ok=True)
    runs = []
    for n in range(args.repeat):
        label = f"{shape} {scale}" + (f" (run {n + 1} of {args.repeat})" if args.repeat > 1 else "")
        runs.append(attempt(args, methods, sample, work, admin, label, notes))
    entry.update(fastest(runs))
    entry["runs"] = runs
    if "cutover" in methods:
        print(f"{shape} {scale}: bulk run while writing, sync, cutover …", flush=True)
        target = fresh(admin, "bench_cutover")
        entry["cutover"] = bench_cutover(sample, work / "cutover", target.url, ROOT / "lib")
        drop_database(admin, "bench_cutover")
    entry["load_after"] = load_average()
    for name in DATABASES:
        drop_database(admin, name)
    return entry


def write(args: argparse.Namespace, result: dict, stamp: str, earlier: dict) -> None:
    """latest.json (with the `earlier` run's other cases, with --merge), the run's stamped copy,
    markdown, chart."""
    args.out.mkdir(parents=True, exist_ok=True)
    latest = args.out / "latest.json"
    kept = {k: e for k, e in earlier.get("cases", {}).items() if k not in result["cases"]}
    if kept:
        result = {**result, "cases": {**kept, **result["cases"]}}
        result["notes"] = result["notes"] + [
            f"{k}: from the run of {earlier['started_at']}" for k in kept
        ]
    text = json.dumps(result, indent=1, ensure_ascii=False)
    (args.out / f"bench-{stamp}.json").write_text(text + "\n")
    latest.write_text(text + "\n")
    (args.out / "latest.md").write_text(markdown(result) + "\n")
    chart(result, args.out / "latest.png")


def main() -> int:
    args = parse()
    methods = set(args.methods.split(","))
    admin = Target(args.url, "external", "bench")
    with connect(admin) as conn:
        server = "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    latest = args.out / "latest.json"
    earlier = json.loads(latest.read_text()) if args.merge and latest.exists() else {}
    result = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "server": server,
        "notes": [],
        "cases": {},
    }
    if "pgloader" in methods and not shutil.which("pgloader"):
        result["notes"].append("pgloader is not installed (apt-get install pgloader): skipped")
    if "duckdb" in methods:
        ensure_duckdb(result["notes"])
    for shape in args.shapes:
        for scale in args.scales:
            entry = case(args, methods, admin, shape, scale, result["notes"])
            result["cases"][f"{shape}-{scale}"] = entry
            print(markdown({**result, "cases": {f"{shape}-{scale}": entry}}), flush=True)
            write(args, result, stamp, earlier)  # after every case: a later failure loses nothing
    result["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write(args, result, stamp, earlier)
    print()
    print(f"{result['machine']['cpus']} CPUs ({result['machine']['cpu']}), "
          f"{result['machine']['memory_gib']} GiB, {server}")  # fmt: skip
    for note in result["notes"]:
        print(note)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
