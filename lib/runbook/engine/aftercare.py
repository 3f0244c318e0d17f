"""After the cutover, with the application already on PostgreSQL: the post-migration report
(table and index sizes beside the SQLite file's, the connections open on the database, whether
pg_stat_statements is there, statistics fresh, the application's pool against the server's
connection limit) and the first PostgreSQL backup with a restore drill, verified by the same
checksums as the migration."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from runbook.core import source as sqlite_source
from runbook.core.errors import first_line
from runbook.core.target import Target, connect, create_database, drop_database, mask_text
from runbook.engine.replace import pg_tool, url_without_password

# the application's SQLAlchemy pool (the migration guide's settings)
POOL = {"pool_size": 20, "max_overflow": 10, "pool_pre_ping": True}
DUMP_NAME = "target-after.dump"


def sizes(target: Target, final: Path, tables: dict[str, str]) -> list[dict[str, Any]]:
    """Per table: rows and bytes in PostgreSQL (table, indexes) beside the SQLite file's bytes
    (table and its indexes). `tables`: SQLite name → PostgreSQL name."""
    conn = sqlite_source.open_readonly(final)
    try:
        lite = sqlite_source.table_sizes(conn)
    finally:
        conn.close()
    with connect(target) as pg:
        rows = pg.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid) "
            "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
            "AND c.relkind = 'r' AND c.relname = ANY(%s)",
            [list(tables.values())],
        ).fetchall()
    found = {name: (rows_, table, index) for name, rows_, table, index in rows}
    return [
        {
            "table": name,
            "rows (estimate)": found.get(pg_name, (0, 0, 0))[0],
            "PostgreSQL table MiB": round(found.get(pg_name, (0, 0, 0))[1] / 2**20, 2),
            "PostgreSQL indexes MiB": round(found.get(pg_name, (0, 0, 0))[2] / 2**20, 2),
            "SQLite MiB": round(lite.get(name, 0) / 2**20, 2),
        }
        for name, pg_name in tables.items()
    ]


def _statements(conn: psycopg.Connection) -> str:
    """Whether pg_stat_statements is there: installed, preloaded only, or what is missing (a
    role without pg_read_all_settings may not read shared_preload_libraries)."""
    installed, shipped = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'), "
        "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')"
    ).fetchone()
    if installed:
        return "installed"
    try:
        with conn.transaction():
            preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        preload = None
    if preload is not None and "pg_stat_statements" in preload:
        return "preloaded, not installed in this database (CREATE EXTENSION pg_stat_statements)"
    if not shipped:
        return "not available: the server's packages do not include it"
    if preload is None:
        return "not installed; whether it is preloaded, this role may not read"
    return "not available (add it to shared_preload_libraries, then CREATE EXTENSION)"


def server_facts(target: Target, tables: list[str]) -> dict[str, Any]:
    """Connections on the database, pg_stat_statements, the tables' last ANALYZE, and the
    application's pool (pool_size + max_overflow per process) against max_connections."""
    with connect(target) as conn:
        connections = conn.execute(
            "SELECT coalesce(nullif(application_name, ''), '(none)'), state, count(*) "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "GROUP BY 1, 2 ORDER BY 3 DESC"
        ).fetchall()
        statements = _statements(conn)
        limits = conn.execute(
            "SELECT current_setting('max_connections')::int, "
            "current_setting('superuser_reserved_connections')::int"
        ).fetchone()
        analyzed = conn.execute(
            "SELECT relname, greatest(last_analyze, last_autoanalyze) FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname = ANY(%s) ORDER BY relname",
            [tables],
        ).fetchall()
    per_process = POOL["pool_size"] + POOL["max_overflow"]
    usable = limits[0] - limits[1]
    return {
        "connections": [{"application": a, "state": s, "count": n} for a, s, n in connections],
        "pg_stat_statements": statements,
        "analyzed": {name: str(at) if at else "never" for name, at in analyzed},
        "pool": {
            **POOL,
            "connections per application process": per_process,
            "max_connections": limits[0],
            "reserved for superusers": limits[1],
            "application processes that fit": usable // per_process,
            "ok": usable >= per_process,
        },
    }


def backup_drill(folder: Path, target: Target, verify: Any) -> dict[str, Any]:
    """The first PostgreSQL backup (`pg_dump -Fc` into `folder`), restored into a scratch
    database on the same server and checked there by `verify(scratch_target)`, then dropped;
    skipped, with the reason, where the tools or the right to create a database are missing."""
    with connect(target) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
        may_create = conn.execute(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]
        tls = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        tls = bool(tls.fetchone()[0])
    dump, restore = pg_tool("pg_dump", major, tls), pg_tool("pg_restore", major, tls)
    if not (dump and restore):
        needs = f"version {major} or newer" + (" built with TLS" if tls else "")
        return {"skipped": f"no pg_dump/pg_restore of {needs} was found"}
    url, env = url_without_password(target)
    out = folder / DUMP_NAME
    clock = time.perf_counter()
    done = subprocess.run(
        [dump, "--format=custom", f"--file={out}", f"--dbname={url}"],
        capture_output=True, text=True, env=env, timeout=7200,
    )  # fmt: skip
    if done.returncode:
        return {"skipped": "pg_dump failed: " + _masked(done.stderr, target)}
    result: dict[str, Any] = {
        "file": out.name,
        "bytes": out.stat().st_size,
        "dump_seconds": round(time.perf_counter() - clock, 2),
    }
    if not may_create:
        result["restore"] = "skipped: the role may not create a scratch database (CREATEDB)"
        return result
    return result | _restore_drill(out, restore, target, verify)


def _masked(stderr: str, target: Target) -> str:
    """A client tool's complaint, shortened, with the password masked."""
    return mask_text(stderr.strip()[:300], target.password or "")


def _restore_drill(dump: Path, restore: str, target: Target, verify: Any) -> dict[str, Any]:
    """Restore the dump into a scratch database beside the target, verify it there, drop it."""
    result: dict[str, Any] = {}
    scratch_name = f"{target.database}_restore_drill"[:63]
    admin = target.with_database("postgres")
    try:
        drop_database(admin, scratch_name)
        create_database(admin, scratch_name)
        scratch = target.with_database(scratch_name)
        url, env = url_without_password(scratch)
        clock = time.perf_counter()
        restored = subprocess.run(
            [restore, "--no-owner", f"--dbname={url}", str(dump)],
            capture_output=True, text=True, env=env, timeout=7200,
        )  # fmt: skip
        result["restore_seconds"] = round(time.perf_counter() - clock, 2)
        if restored.returncode:
            result["restore"] = "failed: " + _masked(restored.stderr, target)
            return result
        clock = time.perf_counter()
        result["verification"] = verify(scratch)
        result["verify_seconds"] = round(time.perf_counter() - clock, 2)
        result["restore"] = "restored into a scratch database, verified, dropped"
    except Exception as exc:  # noqa: BLE001 - the drill reports, it never fails the cutover
        result["restore"] = f"failed: {mask_text(first_line(exc), target.password or '')}"
    finally:
        drop_database(admin, scratch_name)
    return result
