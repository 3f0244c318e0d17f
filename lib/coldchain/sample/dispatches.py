"""Dispatches and their routes: each truck's trip from the depot, its stops and its times.

``trip(world, index)`` is a pure function of (seed, index), so the dispatch row, its route stops
and its temperature logs all describe the same journey.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from coldchain.sample.formats import day, json_text, ts
from coldchain.sample.timeline import BASE_TIME, micro, moment
from coldchain.sample.vocabulary import CANCEL_REASONS
from coldchain.sample.world import Dispatch, World


@dataclass(slots=True)
class Stop:
    """One pickup or delivery of a trip: where, how far from the last stop, and when."""

    order_id: int
    stop_type: str
    lat: float
    lng: float
    km: float
    eta: dt.datetime
    arrived: dt.datetime | None
    departed: dt.datetime | None


@dataclass(slots=True)
class Trip:
    """A dispatch's journey: its stops, length, end, and (time, lat, lng) of where it was."""

    stops: list[Stop]
    total_km: float
    end: dt.datetime | None
    waypoints: list[tuple[dt.datetime, float, float]]


def km_between(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in kilometres."""
    p = math.pi / 180.0
    h = (
        math.sin((lat2 - lat1) * p / 2.0) ** 2
        + math.cos(lat1 * p) * math.cos(lat2 * p) * math.sin((lng2 - lng1) * p / 2.0) ** 2
    )
    return 12742.0 * math.asin(math.sqrt(h))


def trip(world: World, index: int) -> Trip:
    """The route of one dispatch: pickups, then deliveries, with planned and actual times."""
    plan = world.dispatches[index]
    rng = world.rng(f"trip:{index}")
    lat, lng = plan.vehicle.depot
    deliveries = list(plan.orders)
    rng.shuffle(deliveries)
    legs = [("PICKUP", o) for o in plan.orders] + [("DELIVERY", o) for o in deliveries]
    planned, actual = plan.planned_start, plan.actual_start
    waypoints = [] if actual is None else [(actual, lat, lng)]
    stops: list[Stop] = []
    total = 0.0
    for stop_type, order_id in legs:
        if stop_type == "PICKUP":
            s_lat, s_lng = world.client_geo[world.o_client[order_id - 1] - 1]
        else:
            s_lat, s_lng = world.o_lat[order_id - 1], world.o_lng[order_id - 1]
        km = km_between(lat, lng, s_lat, s_lng) * rng.uniform(1.15, 1.4) + 0.4
        total += km
        drive = dt.timedelta(hours=km / rng.uniform(28, 48))
        service = dt.timedelta(minutes=rng.uniform(8, 30))
        planned += drive
        eta = planned
        planned += service
        arrived = departed = None
        if actual is not None:
            actual += drive * rng.uniform(0.9, 1.35)
            arrived = actual
            actual += service * rng.uniform(0.8, 1.6)
            departed = actual
            waypoints.append((arrived, s_lat, s_lng))
            waypoints.append((departed, s_lat, s_lng))
        stops.append(Stop(order_id, stop_type, s_lat, s_lng, km, eta, arrived, departed))
        lat, lng = s_lat, s_lng
    back = km_between(lat, lng, *plan.vehicle.depot) * rng.uniform(1.15, 1.4) + 0.4
    total += back
    end = None
    if actual is not None:
        end = actual + dt.timedelta(hours=back / rng.uniform(35, 60)) + micro(rng)
        waypoints.append((end, *plan.vehicle.depot))
        if plan.status != "COMPLETED":
            end = None
    return Trip(stops, total, end, waypoints)


def dispatches(world: World) -> Iterator[tuple]:
    """Dispatch rows with totals, optimizer score and route geometry."""
    rng = world.rng("dispatches")
    p_audit = min(1.0, 0.35 * world.size.audit / (2.5 * len(world.dispatches)))
    for index, plan in enumerate(world.dispatches):
        did = index + 1
        route = trip(world, index)
        geometry = None
        if plan.status != "CANCELLED" and rng.random() < 0.9:
            coords = [plan.vehicle.depot] + [(s.lat, s.lng) for s in route.stops]
            coords.append(plan.vehicle.depot)
            geometry = {
                "type": "LineString",
                "coordinates": [[round(g, 6), round(a, 6)] for a, g in coords],
            }
        weight = round(sum(world.o_weight[o - 1] for o in plan.orders), 2)
        if rng.random() < p_audit:
            _audit(world, rng, plan, did, route)
        distance = None
        if plan.status != "CANCELLED" or rng.random() < 0.5:
            distance = round(route.total_km, 2)
        yield (
            did,
            plan.number,
            plan.vehicle.id,
            plan.driver_id,
            day(plan.date),
            plan.status,
            distance,
            weight if rng.random() < 0.95 else None,
            round(rng.uniform(0.62, 0.98), 4) if rng.random() < 0.85 else None,
            ts(plan.planned_start),
            ts(plan.actual_start),
            ts(route.end),
            json_text(geometry),
            plan.created_by,
            ts(plan.created_at),
        )


def _audit(world: World, rng: random.Random, plan: Dispatch, did: int, route: Trip) -> None:
    """Audit events of a dispatch: its creation and each status change it went through."""
    payload: dict = {
        "dispatch_number": plan.number,
        "vehicle_id": plan.vehicle.id,
        "order_ids": plan.orders,
    }
    world.audit.append((plan.created_at, plan.created_by, "dispatch", did, "CREATE", payload))
    if plan.actual_start is not None:
        payload = {"status": {"from": "PLANNED", "to": "IN_PROGRESS"}}
        world.audit.append((plan.actual_start, None, "dispatch", did, "STATUS_CHANGE", payload))
    if route.end is not None:
        payload = {
            "status": {"from": "IN_PROGRESS", "to": "COMPLETED"},
            "distance_km": round(route.total_km, 1),
        }
        world.audit.append((route.end, None, "dispatch", did, "STATUS_CHANGE", payload))
    if plan.status == "CANCELLED":
        when = moment(rng, plan.created_at, plan.planned_start)
        payload = {
            "status": {"from": "PLANNED", "to": "CANCELLED"},
            "reason": rng.choice(CANCEL_REASONS),
        }
        world.audit.append((when, plan.created_by, "dispatch", did, "STATUS_CHANGE", payload))


def routes(world: World) -> Iterator[tuple]:
    """Route stops, numbered 1..n within each dispatch."""
    rng = world.rng("routes")
    route_id = 0
    for index, plan in enumerate(world.dispatches):
        for sequence, stop in enumerate(trip(world, index).stops, start=1):
            route_id += 1
            arrived = (
                stop.arrived if stop.arrived is not None and stop.arrived <= BASE_TIME else None
            )
            completed = arrived is not None
            if completed and plan.status == "COMPLETED" and rng.random() < 0.02:
                arrived = None  # driver forgot to tap "arrived"; the stop is still done
            eta = stop.eta
            if plan.status == "CANCELLED" and rng.random() < 0.5:
                eta = None
            km = round(stop.km, 2)
            if (sequence == 1 and rng.random() < 0.1) or (
                plan.status == "CANCELLED" and rng.random() < 0.5
            ):
                km = None
            yield (
                route_id,
                index + 1,
                stop.order_id,
                sequence,
                stop.stop_type,
                ts(eta),
                ts(arrived),
                km,
                int(completed),
            )
