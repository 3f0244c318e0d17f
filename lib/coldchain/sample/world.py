"""The sample's world while it is built: its profile and sizes, random streams, what tables share.

Later tables reuse what earlier ones decided (vehicles' zones, clients' places, the dispatch
plan, each order's weight and position); alerts and audit events are collected on the way.
"""

from __future__ import annotations

import datetime as dt
import random
from array import array
from dataclasses import dataclass, field

from coldchain.sample.profiles import Profile
from coldchain.sample.vocabulary import ZONES


@dataclass(slots=True)
class Vehicle:
    """A truck as later tables need it: zone, capacity, climate limits, depot and sensor."""

    id: int
    zone: str
    capacity_kg: float
    pallets: int
    min_temp: float
    max_temp: float
    depot: tuple[float, float]
    status: str
    sensor_id: str | None
    has_humidity: bool
    home_driver: int | None = None


@dataclass(slots=True)
class Dispatch:
    """One planned dispatch: day, truck, driver, status, times and the orders it carries."""

    number: str
    vehicle: Vehicle
    driver_id: int | None
    date: dt.date
    status: str
    planned_start: dt.datetime
    actual_start: dt.datetime | None
    created_at: dt.datetime
    created_by: int | None
    n_orders: int
    orders: list[int] = field(default_factory=list)


class World:
    """Everything the row builders share while one sample is generated."""

    def __init__(self, scale: float, seed: int, profile: Profile) -> None:
        self.seed = seed
        self.profile = profile
        self.size = profile.sizes.at(scale)
        self.staff: list[int] = []
        self.dispatchers: list[int] = []
        self.user_ids: list[int] = []
        self.vehicles: list[Vehicle] = []
        self.client_geo: list[tuple[float, float]] = []
        self.client_addr: list[str] = []
        self.client_window: list[dt.time | None] = []
        self.clients_by_zone: dict[str, list[int]] = {zone: [] for zone in ZONES}
        self.dispatches: list[Dispatch] = []
        self.order_plan: list[tuple[dt.datetime, int]] = []
        self.o_client = array("i")
        self.o_lat = array("d")
        self.o_lng = array("d")
        self.o_weight = array("d")
        self.alerts: list[tuple] = []
        self.audit: list[tuple] = []

    def rng(self, name: str) -> random.Random:
        """An independent, reproducible random stream for one part of the world."""
        return random.Random(f"coldchain:{self.seed}:{name}")
