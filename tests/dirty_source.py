"""A cold-chain database holding every kind of misfit SQLite lets an application store, with the
rows each misfit must reject (itself and every row that depends on it), computed by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coldchain.sample import generate

# (table, column, SQL value expression, expected kind); each hits the row with the smallest id
# that is not yet corrupted, so every misfit sits in its own row
CORRUPTIONS = [
    ("orders", "weight_kg", "0.1 + 0.2", "too_precise"),
    ("orders", "items", '\'{"sku": "냉동만두", \'', "invalid_json"),
    ("orders", "priority", str(2**40), "integer_overflow"),
    ("orders", "is_urgent", "'yes'", "not_boolean"),
    ("orders", "pallet_count", "'12.3D0'", "wrong_type"),
    ("orders", "requested_delivery_at", "1627303906", "epoch_in_datetime"),
    ("orders", "weight_kg", "123456789.5", "numeric_overflow"),
    ("clients", "notes", "'문 앞' || char(0) || '경비실'", "nul_character"),
    ("clients", "name", "CAST(X'28C1D629C7D1BAFBB3C3C0E5' AS TEXT)", "invalid_utf8"),
    ("clients", "updated_at", "'2026-03-02T06:00:00+09:00'", "datetime_with_offset"),
    ("clients", "pickup_window_start", "'25:00'", "unparseable_time"),
    ("clients", "code", "'CL-' || printf('%030d', 7)", "too_long"),
    ("dispatches", "dispatch_date", "'2026-02-30'", "unparseable_date"),
    ("dispatch_routes", "eta", "'10/03/2026 14:00'", "unparseable_datetime"),
    ("dispatch_routes", "arrived_at", "''", "empty_string"),
    ("temperature_logs", "temperature_c", "'warm'", "wrong_type"),
    ("temperature_logs", "vehicle_id", "99999", "orphan_foreign_key"),
    ("audit_events", "payload", "'not json at all'", "invalid_json"),
]

# child table, its foreign key column, parent table (the application's foreign keys that can
# make a row depend on a rejected one, restricted to the tables corrupted above)
DEPENDENCIES = [
    ("orders", "client_id", "clients"),
    ("dispatch_routes", "order_id", "orders"),
    ("dispatch_routes", "dispatch_id", "dispatches"),
    ("temperature_logs", "dispatch_id", "dispatches"),
    ("temperature_alerts", "dispatch_id", "dispatches"),
    ("temperature_alerts", "log_id", "temperature_logs"),
]


def make_dirty_source(path: Path) -> dict[str, set[int]]:
    """Write the database; return the ids every table must reject."""
    generate(path, scale=0.002, seed=11)
    rejected: dict[str, set[int]] = {}
    with sqlite3.connect(path) as lite:
        for table, column, expression, _ in CORRUPTIONS:
            taken = rejected.get(table, set())
            row_id = lite.execute(
                f"SELECT min(id) FROM {table} WHERE id NOT IN ({','.join(map(str, taken)) or 0})"
            ).fetchone()[0]
            lite.execute(f"UPDATE {table} SET {column} = {expression} WHERE id = ?", [row_id])
            rejected.setdefault(table, set()).add(row_id)
        changed = True
        while changed:
            changed = False
            for child, column, parent in DEPENDENCIES:
                parents = rejected.get(parent, set())
                if not parents:
                    continue
                ids = {
                    r[0]
                    for r in lite.execute(
                        f"SELECT id FROM {child} WHERE {column} IN ({','.join(map(str, parents))})"
                    )
                }
                if not ids <= rejected.get(child, set()):
                    rejected.setdefault(child, set()).update(ids)
                    changed = True
    return rejected
