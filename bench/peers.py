"""The peers our transfer is measured against, on the same server in the same run: `psql \\copy`
of CSV plus the same index/FK build, pgloader with its defaults, and DuckDB's copy into the
Alembic schema (with our verification run on what it loaded: its fidelity)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from measure import measure

from runbook.core import source as sqlite_source
from runbook.core.run import RunFolder
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect, create_database, drop_database
from runbook.engine.constraints import INDEX_MEMORY, foreign_keys, secondary_indexes

HERE = Path(__file__).resolve().parent


def fresh(admin: Target, name: str) -> Target:
    """A new empty database `name` on the admin's server."""
    drop_database(admin, name)
    create_database(admin, name)
    return admin.with_database(name)


def psql(target: Target, *args: str) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.url, *args]


def source_tables(sample: Path) -> list[sqlite_source.Table]:
    conn = sqlite_source.open_readonly(sample)
    try:
        return sqlite_source.reflect(conn)
    finally:
        conn.close()


def strip(target: Target, names: list[str]) -> tuple[list[dict], list[dict]]:
    """Drop the secondary indexes, unique constraints and foreign keys of the Alembic schema
    (as our transfer does before its load); their definitions, for `build_sql`."""
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
    return fks, indexes


def build_sql(tables: list[sqlite_source.Table], fks: list[dict], indexes: list[dict]) -> str:
    """The build a careful operator scripts after a data-only load, in one session: indexes,
    unique constraints, foreign keys, sequences past the largest key, ANALYZE."""
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
    return "\n".join(statements) + "\n"


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


def _data_and_build(data: dict, built: dict) -> dict:
    data.pop("stdout")
    built.pop("stdout")
    total = {
        "seconds": data["seconds"] + built["seconds"],
        "peak_rss_mib": max(data["peak_rss_mib"], built["peak_rss_mib"]),
    }
    return {"data": data, "build": built, "total": total}


def bench_copy(sample: Path, work: Path, admin: Target) -> dict:
    """psql \\copy of the CSV into the Alembic schema stripped of secondary indexes and foreign
    keys; then the same build our transfer does (`build_sql`)."""
    from runbook.steps import schema

    tables = source_tables(sample)
    csv_dir = work / "csv"
    exported = export_csv(sample, tables, csv_dir)
    target = fresh(admin, "bench_copy")
    schema.upgrade(target)
    fks, indexes = strip(target, [t.name for t in tables])
    load = work / "copy.sql"
    load.write_text(
        "\n".join(
            f"\\copy {quote_ident(t.name)} ({', '.join(quote_ident(c.name) for c in t.columns)}) "
            f"FROM '{csv_dir / (t.name + '.csv')}' WITH (FORMAT csv)"
            for t in tables
        )
        + "\n"
    )
    build = work / "build.sql"
    build.write_text(build_sql(tables, fks, indexes))
    data = measure(psql(target, "-f", str(load)))
    built = measure(psql(target, "-f", str(build)))
    return {"export": exported, **_data_and_build(data, built)}


SMALLER_BATCHES = "prefetch rows = 10000"  # pgloader's default 100000 rows a batch


def bench_pgloader(sample: Path, admin: Target) -> dict | None:
    """pgloader with its defaults (its own schema, indexes and foreign keys); when its Lisp heap
    runs out (wide rows: 100,000 of them a batch), again with smaller batches, noted as such
    (`options`); None when absent."""
    if not shutil.which("pgloader"):
        return None
    for options in ([], ["--with", SMALLER_BATCHES]):
        target = fresh(admin, "bench_pgloader")
        parts = urlsplit(target.url)
        url = f"postgresql://{parts.username or 'postgres'}@{parts.hostname or '127.0.0.1'}:"
        url += f"{parts.port or 5432}/{target.database}"
        try:
            measured = measure(["pgloader", *options, f"sqlite://{sample}", url])
        except RuntimeError as exc:
            if options or "Heap exhausted" not in str(exc):
                raise
            continue
        measured.pop("stdout")
        return measured | {"options": " ".join(options[1:])}
    return None


def fidelity(run: RunFolder, target: Target, fks: list[dict], workers: int | None) -> dict:
    """Our step 04 on what a peer loaded: verdict, the tables whose content differs, the rows
    it names per table (at most 50 each) and the columns they differ in."""
    from runbook.engine import constraints
    from runbook.steps import verify

    with connect(target) as conn:  # what our transfer records; the peer's build set them
        sequences = constraints.set_sequences(
            conn, [t.name for t in source_tables(run.backup_path)], {}
        )
    run.write("transfer", {"status": "complete", "foreign_keys": fks, "sequences": sequences})
    result = verify.verify(run, target, workers=workers)
    differing = {}
    for table in result["tables"]:
        if table["source_checksum"] != table["target_checksum"] or table["differences"]:
            columns = sorted({d["column"] for d in table["differences"] if "column" in d})
            differing[table["table"]] = {
                "rows_named": len(table["differences"]),
                "columns": columns,
            }
    return {
        "verdict": result["verdict"],
        "failures": len(result["failures"]),
        "differing": differing,
        "first_failures": result["failures"][:5],
    }


def bench_duckdb(run: RunFolder, target: Target, workers: int | None) -> dict | None:
    """DuckDB (`duckdb_load.py`: sqlite_scanner with sqlite_all_varchar, postgres_scanner)
    INSERTs every table into the Alembic schema made by our step 02 (in `run`'s database),
    stripped of secondary indexes and foreign keys; then the same build as \\copy's; then our
    verification on the result. None when duckdb is not installed."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return None
    tables = source_tables(run.backup_path)
    fks, indexes = strip(target, [t.name for t in tables])
    columns = {t.name: [c.name for c in t.columns] for t in tables}
    load = [sys.executable, str(HERE / "duckdb_load.py"), str(run.backup_path), target.url]
    data = measure([*load, json.dumps(columns)])
    build = run.path / "duckdb-build.sql"
    build.write_text(build_sql(tables, fks, indexes))
    built = measure(psql(target, "-f", str(build)))
    measured = _data_and_build(data, built)
    measured["fidelity"] = fidelity(run, target, fks, workers)
    return measured
