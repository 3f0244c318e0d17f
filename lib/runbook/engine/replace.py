"""--replace-target: save what the target holds into the run folder (pg_dump, or a COPY export
where no pg_dump fits the server), then drop only the tables this migration would create."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.target import (
    Target,
    connect,
    mask_text,
    qualified,
    session_url,
    with_parameters,
)
from runbook.engine.ledger import LEDGER_TABLES, schema_tables

DUMP_NAME = "target-before.dump"
EXPORT_FOLDER = "target-before"


def _tools(name: str) -> list[str]:
    """The copies of a PostgreSQL client tool at hand: the embedded server's, then the system's."""
    candidates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from pgserver._commands import POSTGRES_BIN_PATH

            candidates.append(str(POSTGRES_BIN_PATH / name))
        except ImportError:
            pass
    if shutil.which(name):
        candidates.append(shutil.which(name))
    return candidates


def _speaks_tls(tool: str) -> bool:
    """Whether the libpq beside this tool was built with TLS (the embedded server's is not):
    asked to require TLS on a socket that does not exist, one without says so before connecting."""
    pg_dump = str(Path(tool).with_name("pg_dump"))
    try:
        out = subprocess.run(
            [pg_dump, "--schema-only", "--dbname=host=/nonexistent-runbook-probe sslmode=require"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except OSError:
        return False
    return "not compiled in" not in out.stderr


def pg_tool(name: str, server_major: int, tls: bool = False) -> str | None:
    """A PostgreSQL client tool (pg_dump, pg_restore) at least as new as the server (pg_dump
    refuses newer servers) and, for a target reached over TLS, one that speaks TLS (sslmode is
    honoured; a dump never goes in clear)."""
    for path in _tools(name):
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
        except OSError:
            continue
        version = re.search(r"\(PostgreSQL\) (\d+)", out.stdout)
        if version and int(version.group(1)) >= server_major and (not tls or _speaks_tls(path)):
            return path
    return None


def url_without_password(target: Target) -> tuple[str, dict[str, str]]:
    """A client tool's URL (the session URL: TLS parameters and session settings) without the
    password, which goes in PGPASSWORD: never on the command line, where `ps` shows it."""
    url = with_parameters(session_url(target.url), {}, drop=("password",))
    parts = urlsplit(url)
    env = dict(os.environ)
    if target.password:
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}@{host}" if user else host)
        env["PGPASSWORD"] = target.password
    return urlunsplit(parts), env


def save_target(run: RunFolder, target: Target) -> dict[str, Any]:
    """Keep a restorable copy of everything the target holds before it is replaced: pg_dump, or
    a COPY export of each table where no pg_dump fits (too old, or without TLS for a target
    reached over TLS)."""
    with connect(target) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
        tls = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        tls = bool(tls.fetchone()[0])
        tables = schema_tables(conn)
    pg_dump = pg_tool("pg_dump", major, tls)
    if pg_dump:
        url, env = url_without_password(target)
        out = run.path / DUMP_NAME
        done = subprocess.run(
            [pg_dump, "--format=custom", f"--file={out}", f"--dbname={url}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
        if done.returncode != 0:
            message = mask_text(done.stderr.strip(), target.password or "")
            raise RunbookError(
                f"pg_dump of the target failed: {message}",
                where=target.display,
                fix="fix the cause, or save the target yourself, before replacing it",
            )
        return {"method": "pg_dump", "file": out.name, "tables": tables}
    folder = run.path / EXPORT_FOLDER
    folder.mkdir(exist_ok=True)
    with connect(target) as conn:
        for name in tables:
            with (
                (folder / f"{name}.copy").open("wb") as handle,
                conn.cursor().copy(f"COPY {qualified(conn, name)} TO STDOUT") as copy,
            ):
                for block in copy:
                    handle.write(block)
    return {"method": "copy export", "file": folder.name, "tables": tables}


def drop_application_tables(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """Drop the tables this migration creates (and its own bookkeeping) from the schema it goes
    into, nothing else, in the caller's transaction (step 02 commits it only when the whole
    step succeeds)."""
    dropped = []
    present = schema_tables(conn)
    for name in [*tables, "alembic_version"]:
        if name in present:
            conn.execute(f"DROP TABLE {qualified(conn, name)} CASCADE")
            dropped.append(name)
    for name in reversed(LEDGER_TABLES):
        conn.execute(f"DROP TABLE IF EXISTS {qualified(conn, name)}")
    return dropped


SAVED_RECORD = "target-saved.json"


def save_if_replacing(run: RunFolder, target: Target, replace_target: bool) -> dict[str, Any]:
    """Step 01's part of --replace-target: save the target and record that it was saved."""
    import json

    if not replace_target:
        return {"method": "none (the target is not being replaced)", "tables": {}}
    saved = save_target(run, target)
    (run.path / SAVED_RECORD).write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
    return saved


def require_saved(run: RunFolder) -> dict[str, Any]:
    """The record of step 01's save; replacing a target that was not saved is refused."""
    import json

    record = run.path / SAVED_RECORD
    if not record.is_file():
        raise RunbookError(
            "replace_target is set, but step 01 did not save the target in this run folder",
            where=run.name,
            fix="run 01_backup with replace_target=True first (it saves the target with pg_dump)",
        )
    return json.loads(record.read_text())


def describe(saved: dict[str, Any]) -> dict[str, Any]:
    """Key facts of step 01's save of the target, for the notebook."""
    if "file" not in saved:
        return {"target replaced": "no (a target that holds data is refused)"}
    return {
        "target replaced": "yes: saved before anything is dropped",
        "saved with": saved["method"],
        "saved to": saved["file"],
        "tables saved": len(saved["tables"]),
        "restore with": restore_hint(saved),
    }


def restore_hint(saved: dict[str, Any]) -> str:
    """How to put the saved target back, for the notebook and the README."""
    if saved["method"] == "pg_dump":
        return f"pg_restore --clean --dbname=<target> {saved['file']}"
    return f"COPY each table back from {saved['file']}/<table>.copy"


def saved_path(run: RunFolder, saved: dict[str, Any]) -> Path:
    return run.path / saved["file"]
