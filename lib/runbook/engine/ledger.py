"""The runbook's own bookkeeping inside the target (tables `runbook_loads`, `runbook_ranges`,
`runbook_syncs` and `runbook_rejected` beside the application's, in the schema the migration
goes into, so a role that may create objects only there can keep it): which backup this target
is being loaded from, which key ranges of which tables are complete, which catch-up syncs were
applied since (each in the transaction that applied it) and which source rows are held back as
rejected. It is what lets a re-run tell its own earlier work from data somebody else put there.
Names are qualified by the session's current schema, so a table of the same name elsewhere on
the search_path is never taken for it."""

from __future__ import annotations

from typing import Any

import psycopg

from runbook.core.errors import RunbookError
from runbook.core.source import quote_ident
from runbook.core.target import Target, connect, current_schema

LEDGER_TABLES = ("runbook_loads", "runbook_ranges", "runbook_syncs", "runbook_rejected")
DDL = """
CREATE TABLE IF NOT EXISTS {loads} (
    backup_sha256 text PRIMARY KEY,
    source_name text NOT NULL,
    schema_mode text NOT NULL,
    tables text[] NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'schema',
    dropped jsonb
);
CREATE TABLE IF NOT EXISTS {ranges} (
    backup_sha256 text NOT NULL REFERENCES {loads} ON DELETE CASCADE,
    table_name text NOT NULL,
    range_start bigint NOT NULL,
    range_end bigint NOT NULL,
    rows bigint NOT NULL,
    checksum text,
    attempt integer NOT NULL,
    status text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (backup_sha256, table_name, range_start)
);
CREATE TABLE IF NOT EXISTS {syncs} (
    backup_sha256 text NOT NULL REFERENCES {loads} ON DELETE CASCADE,
    number integer NOT NULL,
    base_sha256 text NOT NULL,
    snapshot_sha256 text NOT NULL,
    kind text NOT NULL,
    changes jsonb NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (backup_sha256, number)
);
CREATE TABLE IF NOT EXISTS {rejected} (
    backup_sha256 text NOT NULL REFERENCES {loads} ON DELETE CASCADE,
    table_name text NOT NULL,
    source_rowid bigint NOT NULL,
    problem jsonb NOT NULL,
    PRIMARY KEY (backup_sha256, table_name, source_rowid)
);
"""


def _tables(conn: psycopg.Connection) -> tuple[str, str, str, str]:
    """The ledger's tables, qualified: (loads, ranges, syncs, rejected)."""
    schema = quote_ident(current_schema(conn))
    return tuple(f"{schema}.{name}" for name in LEDGER_TABLES)  # type: ignore[return-value]


def ensure(conn: psycopg.Connection) -> None:
    """Create the ledger's tables if missing (idempotent)."""
    loads, ranges, syncs, rejected = _tables(conn)
    conn.execute(DDL.format(loads=loads, ranges=ranges, syncs=syncs, rejected=rejected))


def schema_tables(conn: psycopg.Connection) -> dict[str, int]:
    """Tables of the current schema with their exact row counts."""
    schema = current_schema(conn)
    names = [
        name
        for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema]
        )
    ]
    return {
        name: conn.execute(
            f"SELECT count(*) FROM {quote_ident(schema)}.{quote_ident(name)}"
        ).fetchone()[0]
        for name in names
    }


def claimed(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The load recorded in this target, if any: backup sha256, source, mode, tables."""
    loads = _tables(conn)[0]
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [loads])
    if not exists.fetchone()[0]:
        return None
    row = conn.execute(
        f"SELECT backup_sha256, source_name, schema_mode, tables FROM {loads}"
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("backup_sha256", "source_name", "schema_mode", "tables"), row, strict=True))


def require_ours_or_empty(
    conn: psycopg.Connection,
    target: Target,
    tables: list[str],
    backup_sha256: str,
    allowed: tuple[str, ...] = (),
    keep_foreign: bool = False,
) -> dict[str, Any] | None:
    """Refuse a target that holds tables or rows this migration did not put there, listing
    what is there; return the earlier load of the same backup when the target holds one (so
    the run continues it)."""
    present = schema_tables(conn)
    earlier = claimed(conn)
    allowed = (*allowed, *LEDGER_TABLES)
    ours = earlier is not None and earlier["backup_sha256"] == backup_sha256
    if earlier is not None and not ours:
        raise RunbookError(
            f"the target holds a migration of another source ({earlier['source_name']}, backup "
            f"sha256 {earlier['backup_sha256'][:12]}…); nothing was written",
            where=target.display,
            fix="migrate into an empty database, or use --replace-target to drop the "
            "application's tables first (after a backup of the target)",
        )
    foreign = {
        name: rows
        for name, rows in present.items()
        if name not in tables and name not in allowed and not keep_foreign
    }
    filled = {name: rows for name, rows in present.items() if name in tables and rows}
    problems = [f"{name} ({rows} rows, not part of this schema)" for name, rows in foreign.items()]
    if not ours:
        problems += [f"{name} ({rows} rows)" for name, rows in filled.items()]
    if problems:
        raise RunbookError(
            f"the target already holds data this run did not put there: {', '.join(problems)}; "
            "nothing was written",
            where=target.display,
            fix="migrate into an empty database, or use --replace-target to drop the "
            "application's tables first (after a backup of the target)",
        )
    return earlier if ours else None


def claim(
    conn: psycopg.Connection, backup_sha256: str, source_name: str, mode: str, tables: list[str]
) -> None:
    """Record that this target is being loaded from this backup (the first write of step 02,
    in its transaction)."""
    ensure(conn)
    conn.execute(
        f"INSERT INTO {_tables(conn)[0]} (backup_sha256, source_name, schema_mode, tables) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (backup_sha256) DO NOTHING",
        [backup_sha256, source_name, mode, tables],
    )


# --- the transfer's key ranges: planned once, each marked complete in the transaction that
# loads it, so a crash leaves every range either wholly loaded and recorded, or neither


def start_attempt(conn: psycopg.Connection, backup_sha256: str) -> int:
    """Count one more transfer attempt on this load and return its number."""
    ensure(conn)
    row = conn.execute(
        f"UPDATE {_tables(conn)[0]} SET attempts = attempts + 1, status = 'loading' "
        "WHERE backup_sha256 = %s RETURNING attempts",
        [backup_sha256],
    ).fetchone()
    if row is None:
        raise RunbookError(
            "the target has no record of step 02 for this backup",
            fix="run 02_schema for this run first",
        )
    conn.commit()
    return row[0]


def record_dropped(conn: psycopg.Connection, backup_sha256: str, dropped: dict) -> None:
    """Keep the definitions of what the load drops (indexes, keys) in the target itself, so a
    re-run from any run folder can rebuild them."""
    conn.execute(
        f"UPDATE {_tables(conn)[0]} SET dropped = %s WHERE backup_sha256 = %s",
        [psycopg.types.json.Jsonb(dropped), backup_sha256],
    )
    conn.commit()


def load_state(conn: psycopg.Connection, backup_sha256: str) -> dict[str, Any]:
    """Status, dropped definitions and ranges (planned or complete) of this backup's load."""
    ensure(conn)
    loads, ranges_table = _tables(conn)[:2]
    row = conn.execute(
        f"SELECT status, dropped, attempts FROM {loads} WHERE backup_sha256 = %s",
        [backup_sha256],
    ).fetchone()
    ranges = conn.execute(
        f"SELECT table_name, range_start, range_end, rows, status, attempt "
        f"FROM {ranges_table} WHERE backup_sha256 = %s "
        "ORDER BY table_name, range_start",
        [backup_sha256],
    ).fetchall()
    keys = ("table", "start", "end", "rows", "status", "attempt")
    return {
        "status": row[0] if row else None,
        "dropped": row[1] if row else None,
        "attempts": row[2] if row else 0,
        "ranges": [dict(zip(keys, r, strict=True)) for r in ranges],
    }


def plan_ranges(conn: psycopg.Connection, backup_sha256: str, ranges: list[tuple]) -> None:
    """Record the ranges the load will consist of: (table, start, end, expected rows)."""
    ranges_table = _tables(conn)[1]
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {ranges_table} (backup_sha256, table_name, range_start, "
            "range_end, rows, attempt, status) VALUES (%s, %s, %s, %s, %s, 0, 'planned') "
            "ON CONFLICT DO NOTHING",
            [(backup_sha256, *r) for r in ranges],
        )
    conn.commit()


def complete_range_sql(conn: psycopg.Connection) -> str:
    """The statement a loader runs in the transaction that loads a range, marking it complete
    (parameters: rows, attempt, backup sha256, table, range start)."""
    return (
        f"UPDATE {_tables(conn)[1]} SET status = 'complete', rows = %s, attempt = %s, "
        "loaded_at = now() WHERE backup_sha256 = %s AND table_name = %s AND range_start = %s"
    )


def finish(conn: psycopg.Connection, backup_sha256: str) -> None:
    """The load is complete: indexes and keys are back."""
    conn.execute(
        f"UPDATE {_tables(conn)[0]} SET status = 'complete', dropped = NULL "
        "WHERE backup_sha256 = %s",
        [backup_sha256],
    )
    conn.commit()


def ranges_by_attempt(target: Target, backup_sha256: str) -> list[dict[str, Any]]:
    """Which ranges of which tables were loaded in which attempt (for 04_verify)."""
    with connect(target) as conn:
        if claimed(conn) is None:
            return []
        return load_state(conn, backup_sha256)["ranges"]


# --- catch-up syncs: each recorded in the transaction that applies it -------------------------


def applied_syncs(conn: psycopg.Connection, backup_sha256: str) -> list[dict[str, Any]]:
    """The syncs applied to this load, in order: number, base and snapshot sha256, kind
    ("sync" or "cutover"), the changes (counts and keys per table), when."""
    ensure(conn)
    rows = conn.execute(
        f"SELECT number, base_sha256, snapshot_sha256, kind, changes, applied_at "
        f"FROM {_tables(conn)[2]} WHERE backup_sha256 = %s ORDER BY number",
        [backup_sha256],
    ).fetchall()
    keys = ("number", "base_sha256", "snapshot_sha256", "kind", "changes", "applied_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def record_sync(conn: psycopg.Connection, backup_sha256: str, sync: dict[str, Any]) -> None:
    """Record a sync in the caller's transaction (the one that applies it)."""
    conn.execute(
        f"INSERT INTO {_tables(conn)[2]} (backup_sha256, number, base_sha256, "
        "snapshot_sha256, kind, changes) VALUES (%s, %s, %s, %s, %s, %s)",
        [
            backup_sha256,
            sync["number"],
            sync["base_sha256"],
            sync["snapshot_sha256"],
            sync["kind"],
            psycopg.types.json.Jsonb(sync["changes"]),
        ],
    )


def held_back(conn: psycopg.Connection, backup_sha256: str) -> dict[str, dict[int, Any]]:
    """The source rows a sync holds back as rejected, per table: rowid → problem."""
    ensure(conn)
    held: dict[str, dict[int, Any]] = {}
    for table, rowid, problem in conn.execute(
        f"SELECT table_name, source_rowid, problem FROM {_tables(conn)[3]} "
        "WHERE backup_sha256 = %s",
        [backup_sha256],
    ):
        held.setdefault(table, {})[rowid] = problem
    return held


def hold_back(
    conn: psycopg.Connection,
    backup_sha256: str,
    added: dict[str, dict[int, Any]],
    released: dict[str, list[int]],
) -> None:
    """Update the rows held back, in the caller's transaction: rows newly rejected, and rows
    no longer rejected (applied after all, or deleted in the source)."""
    with conn.cursor() as cursor:
        cursor.executemany(
            f"DELETE FROM {_tables(conn)[3]} WHERE backup_sha256 = %s AND table_name = %s "
            "AND source_rowid = %s",
            [(backup_sha256, t, r) for t, rowids in released.items() for r in rowids],
        )
        cursor.executemany(
            f"INSERT INTO {_tables(conn)[3]} VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (backup_sha256, table_name, source_rowid) DO UPDATE SET problem = "
            "EXCLUDED.problem",
            [
                (backup_sha256, t, r, psycopg.types.json.Jsonb(p))
                for t, rows in added.items()
                for r, p in rows.items()
            ],
        )


def lock_syncs(conn: psycopg.Connection, backup_sha256: str, target: Target) -> None:
    """Hold this load's sync lock for the session (a session advisory lock, released when the
    connection closes): two syncs, or a sync and a cutover, never run at once."""
    got = conn.execute(
        "SELECT pg_try_advisory_lock(hashtext('runbook sync ' || %s))", [backup_sha256]
    ).fetchone()[0]
    conn.commit()
    if not got:
        raise RunbookError(
            "another sync or cutover of this migration is running against the target",
            where=target.display,
            fix="wait for it to end (or stop it), then run the same command again",
        )


def write_counters(conn: psycopg.Connection, tables: list[str]) -> dict[str, list[int]]:
    """Per table: rows inserted, updated and deleted since the server's statistics began, and
    its file node (a TRUNCATE or rewrite changes it): what the cutover compares to prove that
    nobody else wrote to the target since the runbook last did. This backend's own counts are
    flushed first where the server can (PostgreSQL 15+)."""
    if conn.info.server_version >= 150000:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.commit()
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute(
        "SELECT s.relname, s.n_tup_ins, s.n_tup_upd, s.n_tup_del, c.relfilenode "
        "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
        "WHERE s.schemaname = current_schema() AND s.relname = ANY(%s)",
        [tables],
    ).fetchall()
    conn.commit()
    return {name: [ins, upd, dele, node] for name, ins, upd, dele, node in rows}
