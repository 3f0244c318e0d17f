"""Temperature telemetry: each truck's sensor readings and the alerts they raised.

A dispatch's readings start with pre-cooling in the depot's yard, then follow its trip; door
openings at stops warm the box, and rare excursions leave the allowed range and raise alerts.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from coldchain.sample.dispatches import Trip, trip
from coldchain.sample.formats import ts
from coldchain.sample.timeline import BASE_TIME, micro
from coldchain.sample.vocabulary import ZONE_CLIMATE, ZONE_KO
from coldchain.sample.world import Vehicle, World

#: Readings in the yard before a truck leaves (not yet part of its dispatch).
PRECOOL = 4


@dataclass(slots=True)
class _Sensors:
    """What carries over from one dispatch's readings to the next."""

    log_id: int = 0
    first_excursion: bool = True  # the first logging trip always has one excursion


@dataclass(slots=True)
class _Leg:
    """One logging dispatch: its truck, trip, and when and how often its sensor reads."""

    index: int
    vehicle: Vehicle
    trip: Trip
    start: dt.datetime
    step: dt.timedelta
    n: int


def logs(world: World) -> Iterator[tuple]:
    """Temperature log rows of every dispatch that started; alerts are collected on the way."""
    rng = world.rng("logs")
    logging = [i for i, p in enumerate(world.dispatches) if p.actual_start is not None]
    per_trip = max(5.0, (world.size.logs - PRECOOL * len(logging)) / max(1, len(logging)))
    sensors = _Sensors()
    for index in logging:
        leg = _leg(world, rng, index, per_trip)
        yield from _precool(world, rng, leg, sensors)
        gap = _gap(world, rng, leg)
        yield from _on_the_road(world, rng, leg, gap, sensors)


def alerts(world: World) -> Iterator[tuple]:
    """Alert rows, numbered in the order the readings raised them."""
    return ((i, *a) for i, a in enumerate(world.alerts, start=1))


def _leg(world: World, rng: random.Random, index: int, per_trip: float) -> _Leg:
    """How many readings a dispatch gets: ``per_trip`` on average, fewer if still driving."""
    plan = world.dispatches[index]
    route = trip(world, index)
    start = plan.actual_start
    end = route.end or (BASE_TIME - dt.timedelta(seconds=rng.uniform(5, 240)))
    planned_end = route.waypoints[-1][0]
    fraction = min(1.0, (end - start) / (planned_end - start))
    n = max(2, round(per_trip * rng.uniform(0.8, 1.2) * fraction))
    return _Leg(index, plan.vehicle, route, start, (end - start) / n, n)


def _precool(world: World, rng: random.Random, leg: _Leg, sensors: _Sensors) -> Iterator[tuple]:
    """Pre-cooling in the yard before the trip; rarely too slow, which raises an alert."""
    vehicle = leg.vehicle
    _tmin, tmax, setpoint, humidity, _door_warm = ZONE_CLIMATE[vehicle.zone]
    d_lat, d_lng = vehicle.depot
    warm = setpoint + rng.uniform(4, 9)
    slow_precool = rng.random() < 0.02
    for j in range(PRECOOL):
        sensors.log_id += 1
        at = leg.start - (PRECOOL - j) * dt.timedelta(minutes=rng.uniform(6, 9)) + micro(rng)
        temp = setpoint + (warm - setpoint) * math.exp(-0.9 * j) + rng.gauss(0, 0.2)
        temp = round(temp, 2)
        if slow_precool and j == PRECOOL - 1:
            temp = round(tmax + rng.uniform(0.5, 3), 2)
            _temperature_alert(world, rng, vehicle, None, sensors.log_id, temp, at)
        yield (
            sensors.log_id,
            vehicle.id,
            None,
            ts(at),
            temp,
            round(humidity + rng.gauss(0, 3), 1) if vehicle.has_humidity else None,
            int(j == 0),
            round(d_lat + rng.gauss(0, 0.0002), 6),
            round(d_lng + rng.gauss(0, 0.0002), 6),
            vehicle.sensor_id,
        )


def _gap(world: World, rng: random.Random, leg: _Leg) -> tuple[int, int]:
    """Readings [from, to) lost while the sensor was offline (rare, and then alerted)."""
    if not (rng.random() < 0.03 and leg.n > 12):
        return -1, -1
    gap_from = rng.randrange(2, leg.n - 8)
    gap = gap_from, gap_from + rng.randrange(3, 7)
    raised = leg.start + leg.step * gap_from + dt.timedelta(minutes=10) + micro(rng)
    if raised <= BASE_TIME:
        sensor = leg.vehicle.sensor_id or "센서 미등록"
        message = f"온도 센서 통신 두절 10분 이상 ({sensor})"
        alert = (leg.vehicle.id, leg.index + 1, None, "SENSOR_OFFLINE", "MEDIUM", message)
        _raise(world, rng, (*alert, None, None), raised)
    return gap


def _on_the_road(
    world: World, rng: random.Random, leg: _Leg, gap: tuple[int, int], sensors: _Sensors
) -> Iterator[tuple]:
    """Readings along the trip: position between waypoints, doors open at stops, excursions.

    Runs about a million times at scale 1, so its state stays in locals; rare branches call out.
    """
    vehicle, dispatch_id, start, step, n = leg.vehicle, leg.index + 1, leg.start, leg.step, leg.n
    tmin, tmax, setpoint, humidity, door_warm = ZONE_CLIMATE[vehicle.zone]
    gap_from, gap_to = gap
    waypoints, stops = leg.trip.waypoints, [(s.arrived, s.departed) for s in leg.trip.stops]
    last, n_stops, first = len(waypoints) - 1, len(stops), sensors.first_excursion
    log_id, w, s, noise, excursion, excursion_len, peak = sensors.log_id, 0, 0, 0.0, 0, 0, 0.0
    alerted = False
    for i in range(n):
        if gap_from <= i < gap_to:
            continue
        at = start + step * i + dt.timedelta(seconds=rng.uniform(-20, 20))
        at = min(at, BASE_TIME) if i else start
        while w + 1 < last and waypoints[w + 1][0] <= at:
            w += 1
        t0, lat0, lng0 = waypoints[w]
        t1, lat1, lng1 = waypoints[min(w + 1, last)]
        f = 0.0 if t1 <= t0 else min(1.0, max(0.0, (at - t0) / (t1 - t0)))
        while s < n_stops and stops[s][1] < at:
            s += 1
        door = s < n_stops and stops[s][0] <= at and rng.random() < 0.5
        noise = 0.85 * noise + rng.gauss(0, 0.25)
        temp = setpoint + noise
        if door:
            temp += rng.uniform(0.3, door_warm)
        if excursion == 0 and (rng.random() < 0.0042 or (first and i == n // 2)):
            excursion = excursion_len = rng.randrange(3, 9)
            peak, alerted, first = _peak(rng, vehicle), False, False
        if excursion:
            k = excursion_len - excursion + 1
            temp = setpoint + (peak - setpoint) * math.sin(math.pi * k / (excursion_len + 1))
            excursion -= 1
        log_id += 1
        temp = round(temp, 2)
        if not alerted and (temp > tmax or temp < tmin):
            alerted = True
            _temperature_alert(world, rng, vehicle, dispatch_id, log_id, temp, at)
        elif door and rng.random() < 0.004:
            _door_alert(world, rng, (vehicle.id, dispatch_id, log_id), temp, at)
        gps = rng.random() < 0.985
        yield (
            log_id,
            vehicle.id,
            dispatch_id,
            ts(at if at.microsecond else at + micro(rng)),
            temp,
            round(humidity + rng.gauss(0, 2.5), 1) if vehicle.has_humidity else None,
            int(door),
            round(lat0 + (lat1 - lat0) * f + rng.gauss(0, 0.0003), 6) if gps else None,
            round(lng0 + (lng1 - lng0) * f + rng.gauss(0, 0.0003), 6) if gps else None,
            vehicle.sensor_id,
        )
    sensors.log_id, sensors.first_excursion = log_id, first


def _peak(rng: random.Random, vehicle: Vehicle) -> float:
    """The extreme temperature of a new excursion: mostly too warm, sometimes too cold."""
    low = vehicle.zone != "AMBIENT" and rng.random() < 0.12
    return vehicle.min_temp - rng.uniform(0.5, 3) if low else vehicle.max_temp + rng.uniform(0.3, 6)


def _door_alert(
    world: World, rng: random.Random, where: tuple[int, int, int], temp: float, at: dt.datetime
) -> None:
    """A DOOR_OPEN alert five minutes after a reading with the door open (if that has passed)."""
    raised = at + dt.timedelta(minutes=5)
    if raised <= BASE_TIME:
        _raise(
            world,
            rng,
            (*where, "DOOR_OPEN", "LOW", "적재함 도어 5분 이상 개방", None, temp),
            raised,
        )


def _temperature_alert(
    world: World,
    rng: random.Random,
    vehicle: Vehicle,
    dispatch_id: int | None,
    log_id: int,
    observed: float,
    at: dt.datetime,
) -> None:
    """A TEMP_HIGH / TEMP_LOW alert raised by one reading outside the truck's range."""
    high = observed > vehicle.max_temp
    threshold = vehicle.max_temp if high else vehicle.min_temp
    delta = abs(observed - threshold)
    severity = (
        "LOW" if delta < 1 else "MEDIUM" if delta < 3 else "HIGH" if delta < 5 else "CRITICAL"
    )
    zone = ZONE_KO[vehicle.zone]
    if high:
        message = f"{zone} 적재함 온도 상한 초과: {observed:.1f}°C (허용 {threshold:.1f}°C)"
    else:
        message = f"{zone} 적재함 온도 하한 미달: {observed:.1f}°C (허용 {threshold:.1f}°C)"
    raised = min(at + dt.timedelta(seconds=rng.uniform(1, 60)), BASE_TIME)
    kind = "TEMP_HIGH" if high else "TEMP_LOW"
    _raise(
        world,
        rng,
        (vehicle.id, dispatch_id, log_id, kind, severity, message, threshold, observed),
        raised,
    )


def _raise(world: World, rng: random.Random, alert: tuple, raised: dt.datetime) -> None:
    """Collect an alert row (``alert`` holds its columns vehicle_id .. observed_c).

    Who acknowledged it and when it was acknowledged and resolved are drawn here.
    """
    ack_by, ack_at, resolved = _acknowledgement(world, rng, raised)
    world.alerts.append((*alert, ts(raised), ack_by, ts(ack_at), ts(resolved)))


def _acknowledgement(
    world: World, rng: random.Random, raised: dt.datetime
) -> tuple[int | None, dt.datetime | None, dt.datetime | None]:
    """Who acknowledged an alert and when it was acknowledged and resolved (if yet)."""
    ack_by = ack_at = resolved = None
    if rng.random() < 0.88:
        at = raised + dt.timedelta(seconds=rng.uniform(30, 2400))
        if at <= BASE_TIME:
            ack_by, ack_at = rng.choice(world.dispatchers), at
    if rng.random() < 0.9:
        at = (ack_at or raised) + dt.timedelta(seconds=rng.uniform(120, 5400))
        if at <= BASE_TIME:
            resolved = at
    return ack_by, ack_at, resolved
