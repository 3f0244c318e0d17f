"""Write one sample file: the application's schema, then every table in dependency order."""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from coldchain.sample import audit, clients, dispatches, fleet, orders, people, planning, telemetry
from coldchain.sample.profiles import profile_named
from coldchain.sample.tables import COLUMNS, SCHEMA_PATH, TABLES
from coldchain.sample.world import World


def generate(
    path: str | os.PathLike[str], scale: float = 0.01, seed: int = 42, profile: str = "standard"
) -> dict[str, int]:
    """Write a new sample SQLite database at ``path`` and return its row count per table.

    ``profile`` is the shape of the data (see PROFILES). Refuses to overwrite (FileExistsError):
    a sample must never replace a real database.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    shape = profile_named(profile)
    target = Path(os.fspath(path))
    with open(target, "xb"):  # atomic "create, or fail if it exists"
        pass
    try:
        conn = sqlite3.connect(target, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.executescript("BEGIN;\n" + SCHEMA_PATH.read_text(encoding="utf-8"))
            fill(conn, World(float(scale), seed, shape))
            conn.execute("COMMIT")
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            conn.close()
    except BaseException:
        target.unlink(missing_ok=True)
        Path(f"{target}-journal").unlink(missing_ok=True)
        raise


def fill(conn: sqlite3.Connection, world: World) -> None:
    """Insert every table; each builder relies on what the ones before it decided."""
    users, drivers = people.users(world)
    insert(conn, "users", users)
    insert(conn, "clients", clients.clients(world))
    vehicle_rows = fleet.vehicles(world)  # drivers' current vehicles need the fleet first
    insert(conn, "drivers", fleet.drivers(world, drivers))
    insert(conn, "vehicles", vehicle_rows)
    planning.plan(world, drivers)
    insert(conn, "orders", orders.orders(world))
    insert(conn, "dispatches", dispatches.dispatches(world))
    insert(conn, "dispatch_routes", dispatches.routes(world))
    insert(conn, "temperature_logs", telemetry.logs(world))
    insert(conn, "temperature_alerts", telemetry.alerts(world))
    insert(conn, "audit_events", audit.audit_events(world))


def insert(conn: sqlite3.Connection, table: str, rows: Iterable[tuple]) -> None:
    """Stream rows into one table with executemany."""
    names = [c.strip() for c in COLUMNS[table].split(",")]
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    conn.executemany(sql, rows)
