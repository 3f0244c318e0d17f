"""The plan behind dispatches and orders: which truck drives when, and when each order came in.

Decided before any order or dispatch row is written, so both tables agree with each other.
"""

from __future__ import annotations

import datetime as dt
import random

from coldchain.sample.timeline import BASE_TIME, HISTORY_DAYS, HISTORY_START, micro, moment, past
from coldchain.sample.world import Dispatch, Vehicle, World


def plan(world: World, drivers: list[tuple]) -> None:
    """Decide every dispatch (day, truck, driver, status) and when each order was placed."""
    rng = world.rng("plan")
    today = BASE_TIME.date()
    days = [today + dt.timedelta(days=d) for d in range(1 - HISTORY_DAYS, 2)]
    weights = [
        (0.35 if day.weekday() == 6 else 1.0) * (0.6 if day > today else 1.0) for day in days
    ]
    total = sum(weights)
    history_pool = [v for v in world.vehicles if v.status != "RETIRED"]
    current_pool = [v for v in world.vehicles if v.status == "ACTIVE"]
    spare_drivers = list(range(world.size.vehicles + 1, len(drivers) + 1))
    per_dispatch = (world.size.orders * world.profile.dispatched_share) / world.size.dispatches
    cumulative, done = 0.0, 0
    for day, weight in zip(days, weights, strict=True):
        cumulative += weight
        upto = round(cumulative / total * world.size.dispatches)
        count, done = upto - done, upto
        pool = history_pool if day < today else current_pool
        plans = [
            _dispatch(world, rng, day, vehicle, spare_drivers, per_dispatch)
            for vehicle in rng.sample(pool, min(count, len(pool)))
        ]
        plans.sort(key=lambda p: (p.planned_start, p.vehicle.id))
        for n, dispatch in enumerate(plans, start=1):
            dispatch.number = f"DSP-{day:%Y%m%d}-{n:04d}"
            world.dispatches.append(dispatch)
    _order_times(world, rng)


def _dispatch(
    world: World,
    rng: random.Random,
    day: dt.date,
    vehicle: Vehicle,
    spare_drivers: list[int],
    per_dispatch: float,
) -> Dispatch:
    """One truck's dispatch on ``day`` (numbered later, once the day's dispatches are sorted)."""
    today = BASE_TIME.date()
    planned = dt.datetime.combine(day, dt.time(3, 30)) + dt.timedelta(minutes=5 * rng.randrange(55))
    actual = planned + dt.timedelta(seconds=rng.gauss(240, 480)) + micro(rng)
    if day < today:
        status = "CANCELLED" if rng.random() < 0.04 else "COMPLETED"
    elif day == today and actual <= BASE_TIME - dt.timedelta(minutes=5):
        status = "IN_PROGRESS"
    else:
        status = "PLANNED"
    if status in ("CANCELLED", "PLANNED"):
        actual = None
    if vehicle.home_driver is not None and rng.random() < 0.9:
        driver = vehicle.home_driver
    elif spare_drivers and rng.random() < 0.7:
        driver = rng.choice(spare_drivers)
    else:
        driver = None
    created = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(14, 0)) + dt.timedelta(
        seconds=rng.uniform(0, 6 * 3600)
    )
    created = past(rng, created, BASE_TIME - dt.timedelta(hours=4))
    n_orders = max(1, min(8, round(per_dispatch * rng.uniform(0.4, 1.6))))
    return Dispatch(
        number="",
        vehicle=vehicle,
        driver_id=driver,
        date=day,
        status=status,
        planned_start=planned,
        actual_start=actual,
        created_at=created,
        created_by=rng.choice(world.staff) if rng.random() < 0.95 else None,
        n_orders=n_orders,
    )


def _order_times(world: World, rng: random.Random) -> None:
    """When each order was placed and by which dispatch (if any) it travels; ids follow time."""
    entries: list[tuple[dt.datetime, int, int]] = []  # (created_at, dispatch index | -1/-2, seq)
    for index, dispatch in enumerate(world.dispatches):
        for _ in range(dispatch.n_orders):
            lead = dt.timedelta(hours=rng.uniform(0.5, 72))
            entries.append((dispatch.created_at - lead + micro(rng), index, len(entries)))
    for _ in range(max(10, world.size.orders - len(entries))):
        if rng.random() < 0.6:  # still waiting for a truck
            created = BASE_TIME - dt.timedelta(hours=rng.uniform(0.2, 40))
            entries.append((created + micro(rng), -1, len(entries)))
        else:  # cancelled before it was dispatched
            created = moment(rng, HISTORY_START, BASE_TIME)
            entries.append((created, -2, len(entries)))
    entries.sort()
    world.order_plan = [(created, index) for created, index, _ in entries]
    for order_id, (_created, index) in enumerate(world.order_plan, start=1):
        if index >= 0:
            world.dispatches[index].orders.append(order_id)
