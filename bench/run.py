"""Benchmark of step 03 (transfer) and 04 (verify) against the anchors, on one machine, one run.

For each scale: generate the sample database (cached under --data-dir), then on the same local
PostgreSQL server measure

- `psql \\copy` of CSV exported by the `sqlite3` CLI into the Alembic schema without its
  secondary indexes and foreign keys (data only; the CSV export itself is not counted), then
  the same index / unique constraint / foreign key build, sequences and ANALYZE, in one psql
  session (what a careful operator would script);
- pgloader with its defaults (when installed; `apt-get install pgloader`), which creates its own
  schema, indexes and foreign keys;
- our transfer (`runbook.steps.transfer.transfer`) and verification (`runbook.steps.verify.verify`);
- the whole `runbook run` (all four notebooks in their kernels, as an operator runs them).

Wall seconds, rows/s, ratios and the peak RSS of each whole process tree (summed over the
processes, polled from /proc every 20 ms) are printed as a table and written as JSON and a chart
under bench/results/. Only local servers are used (127.0.0.1, localhost or a unix socket).

    .venv/bin/python bench/run.py --scales 1 3
    .venv/bin/python bench/run.py --scales 10 --methods ours,copy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from cutover import bench_cutover  # noqa: E402

from runbook.core import source as sqlite_source  # noqa: E402
from runbook.core.run import RunFolder  # noqa: E402
from runbook.core.source import quote_ident  # noqa: E402
from runbook.core.target import Target, connect, create_database, drop_database  # noqa: E402
from runbook.engine.constraints import INDEX_MEMORY, foreign_keys, secondary_indexes  # noqa: E402
from runbook.steps import backup, schema  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


# --- measuring a process tree ---------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, summed."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _rss_kib(current)
        stack += _children(current)
    return total


def measure(command: list[str], **kwargs) -> dict:
    """Run a command; wall seconds and the peak RSS (MiB) of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kib(process.pid))
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out, err = process.communicate()
    done.set()
    poller.join()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(
            f"{' '.join(command[:3])}… failed ({process.returncode}): {err.decode()[-2000:]}"
        )
    return {"seconds": seconds, "peak_rss_mib": round(peak / 1024, 1), "stdout": out.decode()}


# --- the methods ----------------------------------------------------------------------------


def fresh(admin: Target, name: str) -> Target:
    drop_database(admin, name)
    create_database(admin, name)
    return admin.with_database(name)


def psql(target: Target, *args: str) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.url, *args]


def prepare_run(sample: Path, work: Path, admin: Target, name: str) -> tuple[RunFolder, Target]:
    """Steps 01 and 02 (not timed): backup of the sample and the Alembic schema in a fresh db."""
    run = RunFolder(work / f"run-{name}")
    if run.path.exists():
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True)
    backup.snapshot(sample, run)
    target = fresh(admin, name)
    schema.prepare(run, target)
    return run, target


def bench_ours(run: RunFolder, target: Target, workers: int | None) -> dict:
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from runbook.steps import transfer, verify\n"
        "from runbook.core.run import RunFolder\n"
        "from runbook.core.target import Target\n"
        "run = RunFolder(Path(sys.argv[1]))\n"
        "target = Target(sys.argv[2], 'external', 'bench')\n"
        "workers = int(sys.argv[4]) if sys.argv[4] != '0' else None\n"
        "started = time.perf_counter()\n"
        "if sys.argv[3] == 'transfer':\n"
        "    result = transfer.transfer(run, target, workers=workers)\n"
        "    extra = {'phases': result['phases'], 'workers': result['workers']}\n"
        "else:\n"
        "    result = verify.verify(run, target, workers=workers)\n"
        "    assert result['verdict'] == 'PASS', result['failures']\n"
        "    extra = {'verdict': result['verdict']}\n"
        "print(json.dumps({'inner_seconds': time.perf_counter() - started, **extra}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib"), "TQDM_DISABLE": "1"}
    results = {}
    for step in ("transfer", "verify"):
        command = [sys.executable, "-c", code, str(run.path), target.url, step, str(workers or 0)]
        measured = measure(command, env=env)
        inner = json.loads(measured.pop("stdout").strip().splitlines()[-1])
        measured["seconds"] = inner.pop("inner_seconds")  # the call, without interpreter start
        results[step] = measured | inner
    return results


def bench_whole_run(sample: Path, work: Path, admin: Target) -> dict:
    """`runbook run` of the sample into a fresh database: the four notebooks executed by
    papermill in their kernels (backup, schema, transfer, verification, HTML export, manifest),
    as an operator runs them; wall seconds and the peak memory of the whole run, kernels and
    worker processes included."""
    target = fresh(admin, "bench_run")
    folder = work / "run-notebooks"
    if folder.exists():
        shutil.rmtree(folder)
    runbook = str(Path(sys.executable).with_name("runbook"))
    command = [runbook, "run", str(sample), "--run-dir", str(folder)]
    command += ["--database-url-env", "BENCH_TARGET_URL"]
    env = {**os.environ, "BENCH_TARGET_URL": target.url, "TQDM_DISABLE": "1"}
    measured = measure(command, env=env, cwd=ROOT)
    measured.pop("stdout")
    verdict = json.loads((folder / "verify.json").read_text())["verdict"]
    if verdict != "PASS":
        raise RuntimeError(f"runbook run ended in {verdict}")
    return measured


def export_csv(sample: Path, tables: list[sqlite_source.Table], folder: Path) -> dict:
    """CSV files by the sqlite3 CLI (the anchor's "pre-exported CSV"; not counted)."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for table in tables:
        columns = ", ".join(quote_ident(c.name) for c in table.columns)
        with open(folder / f"{table.name}.csv", "wb") as out:
            subprocess.run(
                ["sqlite3", "-readonly", "-csv", str(sample),
                 f"SELECT {columns} FROM {quote_ident(table.name)}"],
                stdout=out,
                check=True,
            )  # fmt: skip
    return {"seconds": time.perf_counter() - started}


def bench_copy(sample: Path, work: Path, admin: Target) -> dict:
    """psql \\copy of the CSV into the Alembic schema stripped of secondary indexes and foreign
    keys; then the same build our transfer does (indexes, unique constraints, foreign keys,
    sequences, ANALYZE), statement by statement in one session."""
    conn = sqlite_source.open_readonly(sample)
    try:
        tables = sqlite_source.reflect(conn)
    finally:
        conn.close()
    csv_dir = work / "csv"
    exported = export_csv(sample, tables, csv_dir)
    run = RunFolder(work / "run-copy")
    if run.path.exists():
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True)
    backup.snapshot(sample, run)
    target = fresh(admin, "bench_copy")
    schema.upgrade(target)
    names = [t.name for t in tables]
    with connect(target) as pg:
        fks = foreign_keys(pg, names)
        indexes = secondary_indexes(pg, names)
        for fk in fks:
            pg.execute(f"ALTER TABLE {quote_ident(fk['table'])} DROP CONSTRAINT {fk['name']}")
        for index in indexes:
            if index["constraint"]:
                pg.execute(
                    f"ALTER TABLE {quote_ident(index['table'])} "
                    f"DROP CONSTRAINT {index['constraint']}"
                )
            else:
                pg.execute(f"DROP INDEX {index['name']}")
        pg.commit()
    load = work / "copy.sql"
    load.write_text(
        "\n".join(
            f"\\copy {quote_ident(t.name)} ({', '.join(quote_ident(c.name) for c in t.columns)}) "
            f"FROM '{csv_dir / (t.name + '.csv')}' WITH (FORMAT csv)"
            for t in tables
        )
        + "\n"
    )
    statements = [f"SET maintenance_work_mem = '{INDEX_MEMORY}';"]
    for index in indexes:
        statements.append(index["definition"] + ";")
        if index["constraint"]:
            statements.append(
                f"ALTER TABLE {quote_ident(index['table'])} ADD CONSTRAINT "
                f"{index['constraint']} UNIQUE USING INDEX {index['name']};"
            )
    statements += [
        f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT {fk['name']} {fk['definition']};"
        for fk in fks
    ]
    statements += [
        f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
        f"coalesce(max(id), 1), max(id) IS NOT NULL) FROM {quote_ident(t.name)};"
        for t in tables
        if "id" in [c.name for c in t.columns]
    ]
    statements.append("ANALYZE;")
    build = work / "build.sql"
    build.write_text("\n".join(statements) + "\n")
    data = measure(psql(target, "-f", str(load)))
    built = measure(psql(target, "-f", str(build)))
    data.pop("stdout")
    built.pop("stdout")
    return {
        "export": exported,
        "data": data,
        "build": built,
        "total": {
            "seconds": data["seconds"] + built["seconds"],
            "peak_rss_mib": max(data["peak_rss_mib"], built["peak_rss_mib"]),
        },
    }


def bench_pgloader(sample: Path, admin: Target) -> dict | None:
    if not shutil.which("pgloader"):
        return None
    target = fresh(admin, "bench_pgloader")
    parts = urlsplit(target.url)
    url = f"postgresql://{parts.username or 'postgres'}@{parts.hostname or '127.0.0.1'}:"
    url += f"{parts.port or 5432}/{target.database}"
    measured = measure(["pgloader", f"sqlite://{sample}", url])
    measured.pop("stdout")
    return measured


# --- report ---------------------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as handle:
        mem_kib = int(handle.readline().split()[1])
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def rows_of(result: dict, scale: str) -> list[dict]:
    """Table rows of one scale: method, seconds, rows/s, ratios, peak RSS."""
    entry = result["scales"][scale]
    rows = entry["rows"]
    copy_total = entry["copy"]["total"]["seconds"] if entry.get("copy") else None
    pgloader = entry["pgloader"]["seconds"] if entry.get("pgloader") else None
    lines = []

    def add(name: str, measured: dict | None) -> None:
        if not measured:
            return
        seconds = measured["seconds"]
        lines.append(
            {
                "scale": scale,
                "method": name,
                "seconds": round(seconds, 2),
                "rows_per_second": round(rows / seconds),
                "vs_copy_build": round(seconds / copy_total, 2) if copy_total else None,
                "vs_pgloader": round(seconds / pgloader, 2) if pgloader else None,
                "peak_rss_mib": measured["peak_rss_mib"],
            }
        )

    if entry.get("copy"):
        add("psql \\copy (data only)", entry["copy"]["data"])
        add("psql \\copy + index/FK build", entry["copy"]["total"])
    add("pgloader (defaults)", entry.get("pgloader"))
    if entry.get("ours"):
        add("runbook transfer", entry["ours"]["transfer"])
        add("runbook verify", entry["ours"]["verify"])
    add("runbook run (4 notebooks)", entry.get("run"))
    return lines


def markdown(result: dict) -> str:
    header = (
        "| scale | rows | method | seconds | rows/s | × \\copy+build | × pgloader | peak RSS MiB |"
    )
    lines = [header, "|---|---:|---|---:|---:|---:|---:|---:|"]
    for scale in result["scales"]:
        rows = result["scales"][scale]["rows"]
        for r in rows_of(result, scale):
            lines.append(
                f"| {scale} | {rows:,} | {r['method']} | {r['seconds']:.2f} | "
                f"{r['rows_per_second']:,} | {r['vs_copy_build'] or '–'} | "
                f"{r['vs_pgloader'] or '–'} | {r['peak_rss_mib']:.0f} |"
            )
    return "\n".join(lines) + cutover_markdown(result)


def cutover_markdown(result: dict) -> str:
    """The cutover's table: the bulk run while the application writes, against the window."""
    measured = {s: e["cutover"] for s, e in result["scales"].items() if e.get("cutover")}
    if not measured:
        return ""
    lines = [
        "",
        "",
        "| scale | bulk run while writing s | rows changed | sync s | cutover command s | "
        "freeze window s | window / bulk | forecast s | independent check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scale, c in measured.items():
        lines.append(
            f"| {scale} | {c['bulk']['seconds']:.1f} | {c['cutover']['changes']:,} "
            f"({c['rows_changed_share']:.0%}) | {c['sync']['seconds']:.1f} | "
            f"{c['cutover']['command_seconds']:.1f} | {c['cutover']['window_seconds']:.1f} | "
            f"{c['window_share_of_bulk']:.1%} | {c['forecast_catch_up_seconds']:.1f} | "
            f"{c['independent_check']} |"
        )
    return "\n".join(lines)


def chart(result: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scales = list(result["scales"])
    methods: list[str] = []
    for scale in scales:
        for r in rows_of(result, scale):
            if r["method"] not in methods:
                methods.append(r["method"])
    fig = Figure(figsize=(10, 1.2 + 0.5 * len(methods) * len(scales)))
    FigureCanvasAgg(fig)
    ax_time, ax_mem = fig.subplots(1, 2, sharey=True)
    labels, seconds, memory = [], [], []
    for scale in scales:
        for r in rows_of(result, scale):
            labels.append(f"scale {scale}: {r['method']}")
            seconds.append(r["seconds"])
            memory.append(r["peak_rss_mib"])
    positions = list(range(len(labels)))
    ax_time.barh(positions, seconds, color="tab:blue")
    ax_time.set_yticks(positions, labels)
    ax_time.invert_yaxis()
    ax_time.set_xlabel("seconds (lower is better)")
    ax_mem.barh(positions, memory, color="tab:orange")
    ax_mem.axvline(300, color="red", linestyle="--", linewidth=1)
    ax_mem.set_xlabel("peak RSS of the process tree, MiB (limit 300)")
    fig.suptitle(f"SQLite → PostgreSQL, {result['machine']['cpus']} CPUs, {result['server']}")
    fig.tight_layout()
    fig.savefig(path, dpi=96)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["1", "3"])
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--workers", type=int, default=0, help="0: the transfer's default")
    parser.add_argument(
        "--methods",
        default="copy,pgloader,ours,run,cutover",
        help="run: the whole `runbook run`; cutover: bulk run while writing, sync, cutover",
    )
    default_data = Path(tempfile.gettempdir()) / "runbook-bench"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; fastest kept")
    parser.add_argument(
        "--merge", action="store_true", help="keep the other scales of bench/results/latest.json"
    )
    parser.add_argument("--repeat-max-scale", type=float, default=3, help="scales above run once")
    parser.add_argument(
        "--pgloader-max-scale",
        type=float,
        default=3,
        help="skip pgloader above this scale (it needs ~0.9 GiB at scale 3)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    host = urlsplit(args.url).hostname or ""
    if host not in LOCAL_HOSTS and not host.startswith("/"):
        parser.error(f"the benchmark only uses local servers, not {host!r}")
    methods = set(args.methods.split(","))
    admin = Target(args.url, "external", "bench")
    with connect(admin) as conn:
        server = "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "server": server,
        "notes": [],
        "scales": {},
    }
    if "pgloader" in methods and not shutil.which("pgloader"):
        note = "pgloader is not installed (apt-get install pgloader); its rows are skipped"
        print(note)
        result["notes"].append(note)
    from coldchain.sample import generate

    for scale in args.scales:
        sample = args.data_dir / f"sample-scale{scale}-seed{args.seed}.db"
        if not sample.exists():
            print(f"scale {scale}: generating {sample} …", flush=True)
            generate(sample, scale=float(scale), seed=args.seed)
        conn = sqlite_source.open_readonly(sample)
        rows = sum(sqlite_source.row_counts(conn).values())
        conn.close()
        entry: dict = {"rows": rows, "bytes": sample.stat().st_size}
        work = args.data_dir / f"work-scale{scale}"
        work.mkdir(exist_ok=True)
        repeat = args.repeat if float(scale) <= args.repeat_max_scale else 1
        runs: dict[str, list] = {"copy": [], "pgloader": [], "ours": [], "run": []}
        for attempt in range(repeat):
            label = f" (run {attempt + 1} of {repeat})" if repeat > 1 else ""
            if "copy" in methods:
                print(f"scale {scale}: psql \\copy{label} …", flush=True)
                runs["copy"].append(bench_copy(sample, work, admin))
            if "pgloader" in methods and float(scale) > args.pgloader_max_scale:
                if attempt == 0:
                    note = f"scale {scale}: pgloader skipped (above --pgloader-max-scale)"
                    print(note)
                    result["notes"].append(note)
            elif "pgloader" in methods and shutil.which("pgloader"):
                print(f"scale {scale}: pgloader{label} …", flush=True)
                try:
                    runs["pgloader"].append(bench_pgloader(sample, admin))
                except RuntimeError as exc:
                    entry["pgloader_error"] = str(exc)[-500:]
                    result["notes"].append(f"scale {scale}: pgloader failed: {str(exc)[-200:]}")
            if "ours" in methods:
                print(f"scale {scale}: runbook transfer and verify{label} …", flush=True)
                run, target = prepare_run(sample, work, admin, "bench_ours")
                runs["ours"].append(bench_ours(run, target, args.workers or None))
            if "run" in methods:
                print(f"scale {scale}: runbook run, four notebooks{label} …", flush=True)
                runs["run"].append(bench_whole_run(sample, work, admin))
            if "cutover" in methods and attempt == 0:
                print(f"scale {scale}: bulk run while writing, sync, cutover …", flush=True)
                target = fresh(admin, "bench_cutover")
                entry["cutover"] = bench_cutover(sample, work / "cutover", target.url, ROOT / "lib")
        # the machine may be shared: of repeated runs, each method's fastest is kept (its
        # peak memory is the largest seen); every run is in "runs"
        if runs["copy"]:
            entry["copy"] = min(runs["copy"], key=lambda r: r["total"]["seconds"])
        if runs["pgloader"]:
            entry["pgloader"] = min(runs["pgloader"], key=lambda r: r["seconds"])
            entry["pgloader"]["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs["pgloader"])
        if runs["ours"]:
            best = {
                step: min((r[step] for r in runs["ours"]), key=lambda m: m["seconds"])
                for step in ("transfer", "verify")
            }
            for step in best:
                best[step] = dict(best[step])
                best[step]["peak_rss_mib"] = max(r[step]["peak_rss_mib"] for r in runs["ours"])
            entry["ours"] = best
        if runs["run"]:
            entry["run"] = dict(min(runs["run"], key=lambda r: r["seconds"]))
            entry["run"]["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs["run"])
        entry["runs"] = runs
        result["scales"][scale] = entry
        for name in ("bench_copy", "bench_pgloader", "bench_ours", "bench_run", "bench_cutover"):
            drop_database(admin, name)
        print(markdown({**result, "scales": {scale: entry}}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    latest = args.out / "latest.json"
    if args.merge and latest.exists():  # scales measured earlier (and not now) are kept
        earlier = json.loads(latest.read_text())
        kept = {s: e for s, e in earlier["scales"].items() if s not in result["scales"]}
        if kept:
            result["scales"] = dict(
                sorted({**kept, **result["scales"]}.items(), key=lambda item: float(item[0]))
            )
            result["notes"] += [
                f"scale {s}: from the run of {earlier['started_at']}" for s in kept
            ] + [
                n
                for n in earlier.get("notes", [])
                if n.split(":")[0] in {f"scale {s}" for s in kept}
            ]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(result, indent=1)
    (args.out / f"bench-{stamp}.json").write_text(text + "\n")
    (args.out / "latest.json").write_text(text + "\n")
    (args.out / "latest.md").write_text(markdown(result) + "\n")
    chart(result, args.out / "latest.png")
    print()
    print(f"{result['machine']['cpus']} CPUs ({result['machine']['cpu']}), "
          f"{result['machine']['memory_gib']} GiB, {server}")  # fmt: skip
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
