"""The application's write traffic on a live SQLite database, for rehearsing a cutover: what the
Cold Chain Dispatch System does all day, in its own storage formats and through SQLite with
foreign keys on (as SQLAlchemy's engine sets them), each operation in its own transaction.

New orders arrive, get planned into new dispatches with their route stops, orders and
dispatches move through their statuses, vehicles report temperatures, cancelled orders and
unstarted dispatches are deleted (a dispatch's stops with it: ON DELETE CASCADE), stops swap
places or are replaced (a unique sequence number moving between rows), a driver changes
vehicles (the drivers ↔ vehicles cycle), and clients update their contacts.
Deterministic for a seed. `misfit()` writes one value that does not fit its column."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

ORDER_STATUSES = ("PENDING", "ASSIGNED", "PICKED_UP", "IN_TRANSIT", "DELIVERED", "CANCELLED")
ZONES = ("FROZEN", "CHILLED", "AMBIENT")
STREETS = ("테헤란로", "올림픽로", "양재대로", "판교역로", "서해안로", "중부대로")


def _ts(moment: dt.datetime) -> str:
    return moment.isoformat(sep=" ", timespec="microseconds")


class Traffic:
    """One writer of the application's traffic against `path`."""

    def __init__(self, path: str | Path, seed: int = 1) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.rng = random.Random(seed)
        self.clock = dt.datetime(2026, 3, 2, 7, 0, 0)
        self.counts: dict[str, int] = {}
        self.planned: list[int] = []  # dispatches this writer planned

    def close(self) -> None:
        self.conn.close()

    def _now(self) -> str:
        self.clock += dt.timedelta(
            seconds=self.rng.randint(1, 40), microseconds=self.rng.randint(0, 999_999)
        )
        return _ts(self.clock)

    def _pick(self, table: str, where: str = "1", recent: int = 2000) -> int | None:
        """A random row among about the most recent `recent` rows matching `where` (traffic is
        mostly on recent rows), or None."""
        top = self.conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
        if top is None:
            return None
        below = self.rng.randint(max(1, top - recent), top)
        row = self.conn.execute(
            f"SELECT id FROM {table} WHERE id <= ? AND {where} ORDER BY id DESC LIMIT 1", [below]
        ).fetchone()
        if row is None:
            row = self.conn.execute(
                f"SELECT id FROM {table} WHERE {where} ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return row[0] if row else None

    def _done(self, kind: str, rows: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + rows

    def _transaction(self, work: Callable[[], None]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            work()
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- operations -----------------------------------------------------------------------------

    def new_order(self) -> int:
        """An order as the application creates it; its id."""
        client = self._pick("clients", recent=10**9)
        now = self._now()
        items = [
            {
                "sku": f"SKU-{self.rng.randint(1000, 9999)}",
                "name": "냉동 만두",
                "qty": self.rng.randint(1, 40),
            }
            for _ in range(self.rng.randint(1, 3))
        ]
        street = self.rng.choice(STREETS)
        cursor = self.conn.execute(
            "INSERT INTO orders (order_number, client_id, created_by_id, pickup_address, "
            "delivery_address, delivery_latitude, delivery_longitude, temp_zone, weight_kg, "
            "pallet_count, requested_pickup_at, requested_delivery_at, status, priority, "
            "is_urgent, special_instructions, items, created_at, updated_at) VALUES "
            "(?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, NULL)",
            [
                f"TR-{self.clock:%Y%m%d}-{self.rng.randint(0, 10**9):09d}",
                client,
                f"서울특별시 강남구 {street} {self.rng.randint(1, 500)}",
                f"경기도 성남시 분당구 {street} {self.rng.randint(1, 500)}",
                round(37.3 + self.rng.random() * 0.4, 6),
                round(126.8 + self.rng.random() * 0.5, 6),
                self.rng.choice(ZONES),
                round(self.rng.uniform(50, 900), 2),
                self.rng.randint(1, 12),
                now,
                _ts(self.clock + dt.timedelta(hours=6)),
                self.rng.randint(0, 3),
                self.rng.random() < 0.1,
                self.rng.choice([None, "도착 전 연락 바랍니다", "하역장 2번 게이트"]),
                json.dumps(items, ensure_ascii=False),
                now,
            ],
        )
        self._done("orders inserted")
        return cursor.lastrowid

    def new_dispatch(self, orders: list[int]) -> int:
        """A dispatch planned for some orders, with a pickup and a delivery stop for each."""
        vehicle = self._pick("vehicles", recent=10**9)
        driver = self._pick("drivers", recent=10**9)
        cursor = self.conn.execute(
            "INSERT INTO dispatches (dispatch_number, vehicle_id, driver_id, dispatch_date, "
            "status, total_distance_km, total_weight_kg, optimization_score, planned_start_at, "
            "actual_start_at, completed_at, route_geometry, created_by_id, created_at) VALUES "
            "(?, ?, ?, ?, 'PLANNED', ?, ?, ?, ?, NULL, NULL, ?, NULL, ?)",
            [
                f"TD-{self.clock:%Y%m%d}-{self.rng.randint(0, 10**9):09d}",
                vehicle,
                driver,
                (self.clock + dt.timedelta(days=1)).date().isoformat(),
                round(self.rng.uniform(10, 120), 2),
                round(self.rng.uniform(100, 5000), 2),
                round(self.rng.random(), 4),
                _ts(self.clock + dt.timedelta(days=1)),
                json.dumps({"type": "LineString", "coordinates": [[127.0, 37.5], [127.1, 37.4]]}),
                self._now(),
            ],
        )
        dispatch = cursor.lastrowid
        self.planned.append(dispatch)
        for number, order in enumerate(orders):
            for offset, kind in ((0, "PICKUP"), (1, "DELIVERY")):
                self.conn.execute(
                    "INSERT INTO dispatch_routes (dispatch_id, order_id, sequence, stop_type, "
                    "eta, arrived_at, distance_from_prev_km, is_completed) "
                    "VALUES (?, ?, ?, ?, ?, NULL, ?, 0)",
                    [
                        dispatch,
                        order,
                        2 * number + offset + 1,
                        kind,
                        self._now(),
                        round(self.rng.uniform(1, 30), 2),
                    ],
                )
                self._done("routes inserted")
        self._done("dispatches inserted")
        return dispatch

    def advance_order(self) -> None:
        """A recent order moves to its next status."""
        order = self._pick("orders", "status NOT IN ('DELIVERED', 'CANCELLED')")
        if order is not None:
            status = self.conn.execute(
                "SELECT status FROM orders WHERE id = ?", [order]
            ).fetchone()[0]
            following = (
                ORDER_STATUSES[min(ORDER_STATUSES.index(status) + 1, 4)]
                if status in ORDER_STATUSES
                else "ASSIGNED"
            )
            self.conn.execute(
                "UPDATE orders SET status = ?, updated_at = ? WHERE id = ?",
                [following, self._now(), order],
            )
            self._done("orders updated")

    def advance_dispatch(self) -> None:
        """A dispatch starts or completes."""
        dispatch = self._pick("dispatches", "status <> 'COMPLETED'")
        if dispatch is not None:
            status = self.conn.execute(
                "SELECT status FROM dispatches WHERE id = ?", [dispatch]
            ).fetchone()[0]
            if status == "PLANNED":
                self.conn.execute(
                    "UPDATE dispatches SET status = 'IN_PROGRESS', actual_start_at = ? "
                    "WHERE id = ?",
                    [self._now(), dispatch],
                )
            else:
                self.conn.execute(
                    "UPDATE dispatches SET status = 'COMPLETED', completed_at = ? WHERE id = ?",
                    [self._now(), dispatch],
                )
                self.conn.execute(
                    "UPDATE dispatch_routes SET is_completed = 1, arrived_at = ? "
                    "WHERE dispatch_id = ?",
                    [self._now(), dispatch],
                )
            self._done("dispatches updated")

    def log_temperatures(self, count: int) -> None:
        """Vehicles report their temperatures (appended)."""
        for _ in range(count):
            vehicle = self._pick("vehicles", recent=10**9)
            self.conn.execute(
                "INSERT INTO temperature_logs (vehicle_id, dispatch_id, recorded_at, "
                "temperature_c, humidity_pct, door_open, latitude, longitude, sensor_id) "
                "VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?)",
                [
                    vehicle,
                    self._now(),
                    round(self.rng.uniform(-22, 8), 2),
                    round(self.rng.uniform(30, 90), 1),
                    self.rng.random() < 0.05,
                    37.5,
                    127.0,
                    f"SN-{vehicle:05d}",
                ],
            )
        self._done("temperature logs inserted", count)

    def cancel_and_delete_order(self) -> None:
        """A pending order is cancelled and deleted, its route stops first."""
        order = self._pick("orders", "status = 'PENDING'")
        if order is not None:
            stops = self.conn.execute(
                "DELETE FROM dispatch_routes WHERE order_id = ?", [order]
            ).rowcount
            self.conn.execute("DELETE FROM orders WHERE id = ?", [order])
            self._done("orders deleted")
            self._done("routes deleted", stops)

    def delete_planned_dispatch(self) -> None:
        """A dispatch planned today and not started is deleted; SQLite deletes its stops
        (ON DELETE CASCADE). Only this writer's own dispatches: no temperature log or alert
        refers to them yet."""
        planned = [
            d
            for d in self.planned
            if self.conn.execute("SELECT status FROM dispatches WHERE id = ?", [d]).fetchone()
            == ("PLANNED",)
        ]
        if planned:
            dispatch = self.rng.choice(planned)
            self.planned.remove(dispatch)
            stops = self.conn.execute(
                "SELECT count(*) FROM dispatch_routes WHERE dispatch_id = ?", [dispatch]
            ).fetchone()[0]
            self.conn.execute("DELETE FROM dispatches WHERE id = ?", [dispatch])
            self._done("dispatches deleted")
            self._done("routes deleted by cascade", stops)

    def _stops(self) -> tuple[int, list[tuple[int, int]]] | None:
        """A planned dispatch of this writer's with 2+ stops: its id and stops (id, sequence)."""
        for dispatch in self.rng.sample(self.planned, len(self.planned)):
            stops = self.conn.execute(
                "SELECT id, sequence FROM dispatch_routes WHERE dispatch_id = ? ORDER BY sequence",
                [dispatch],
            ).fetchall()
            if len(stops) >= 2:
                return dispatch, stops
        return None

    def swap_stops(self) -> None:
        """Two stops of a planned dispatch trade their sequence numbers (unique per dispatch)
        through a free one, as SQLite's unique index needs."""
        found = self._stops()
        if found is not None:
            (a, first), (b, second) = self.rng.sample(found[1], 2)
            update = "UPDATE dispatch_routes SET sequence = ? WHERE id = ?"
            self.conn.executemany(update, [[-1, a], [first, b], [second, a]])
            self._done("routes updated", 2)

    def replace_stop(self) -> None:
        """A dispatcher replaces a stop: it is deleted, and a new stop for another order takes
        its sequence number."""
        found = self._stops()
        order = self._pick("orders", "status = 'PENDING'")
        if found is not None and order is not None:
            dispatch, stops = found
            stop, sequence = self.rng.choice(stops)
            self.conn.execute("DELETE FROM dispatch_routes WHERE id = ?", [stop])
            self.conn.execute(
                "INSERT INTO dispatch_routes (dispatch_id, order_id, sequence, stop_type, eta, "
                "distance_from_prev_km, is_completed) VALUES (?, ?, ?, 'DELIVERY', ?, ?, 0)",
                [dispatch, order, sequence, self._now(), round(self.rng.uniform(1, 30), 2)],
            )
            self._done("routes deleted")
            self._done("routes inserted")

    def reassign_driver(self) -> None:
        """A driver takes over another vehicle: both sides of the drivers ↔ vehicles cycle."""
        driver = self._pick("drivers", recent=10**9)
        vehicle = self._pick("vehicles", recent=10**9)
        self.conn.execute(
            "UPDATE drivers SET current_vehicle_id = ? WHERE id = ?", [vehicle, driver]
        )
        self.conn.execute("UPDATE vehicles SET home_driver_id = ? WHERE id = ?", [driver, vehicle])
        self._done("driver/vehicle reassignments")

    def update_client(self) -> None:
        """A client changes its contact (an old row, anywhere in the table)."""
        client = self._pick("clients", recent=10**9)
        self.conn.execute(
            "UPDATE clients SET phone = ?, updated_at = ? WHERE id = ?",
            [
                f"02-{self.rng.randint(1000, 9999)}-{self.rng.randint(1000, 9999)}",
                self._now(),
                client,
            ],
        )
        self._done("clients updated")

    def user_logs_in(self) -> None:
        """A user signs in: their last login moves."""
        user = self._pick("users", recent=10**9)
        self.conn.execute("UPDATE users SET last_login_at = ? WHERE id = ?", [self._now(), user])
        self._done("users updated")

    def acknowledge_alert(self) -> None:
        """A dispatcher acknowledges a temperature alert."""
        alert = self._pick("temperature_alerts", "acknowledged_at IS NULL", recent=10**9)
        user = self._pick("users", recent=10**9)
        if alert is not None:
            self.conn.execute(
                "UPDATE temperature_alerts SET acknowledged_by_id = ?, acknowledged_at = ? "
                "WHERE id = ?",
                [user, self._now(), alert],
            )
            self._done("alerts updated")

    def audit(self, entity: str, entity_id: int | None) -> None:
        """The audit trail the application keeps of its writes."""
        self.conn.execute(
            "INSERT INTO audit_events (user_id, entity, entity_id, action, payload, occurred_at) "
            "VALUES (?, ?, ?, 'update', ?, ?)",
            [
                self._pick("users", recent=10**9),
                entity,
                entity_id,
                json.dumps({"by": "traffic"}),
                self._now(),
            ],
        )
        self._done("audit events inserted")

    def misfit(self) -> int:
        """An order whose delivery time the application wrote as text that is no time: a
        value that does not fit its column; its id."""
        order = self._pick("orders")
        self.conn.execute(
            "UPDATE orders SET requested_delivery_at = 'tomorrow morning' WHERE id = ?", [order]
        )
        self._done("misfits written")
        return order

    # --- a mix ----------------------------------------------------------------------------------

    def step(self) -> None:
        """One burst of the application's work, in one transaction."""

        def work() -> None:
            orders = [self.new_order() for _ in range(self.rng.randint(1, 3))]
            self.audit("orders", orders[-1])
            if self.rng.random() < 0.5:
                self.new_dispatch(orders)
            for _ in range(3):
                self.advance_order()
            self.advance_dispatch()
            self.log_temperatures(self.rng.randint(5, 20))
            if self.rng.random() < 0.2:
                self.cancel_and_delete_order()
            if self.rng.random() < 0.1:
                self.delete_planned_dispatch()
            if self.rng.random() < 0.05:
                self.reassign_driver()
            if self.rng.random() < 0.1:
                self.update_client()
            if self.rng.random() < 0.1:
                self.user_logs_in()
            if self.rng.random() < 0.1:
                self.acknowledge_alert()
            if self.rng.random() < 0.05:
                self.swap_stops()
            if self.rng.random() < 0.05:
                self.replace_stop()

        self._transaction(work)

    def run(self, rows: int) -> dict[str, int]:
        """Bursts until about `rows` rows were written; what was done, by kind."""
        while sum(self.counts.values()) < rows:
            self.step()
        return dict(self.counts)
