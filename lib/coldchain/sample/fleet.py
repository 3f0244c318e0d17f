"""The fleet: refrigerated trucks with Korean plates, and the drivers who mostly drive their own."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from coldchain.sample.formats import day, ts
from coldchain.sample.korean import mobile
from coldchain.sample.people import DriverPerson
from coldchain.sample.timeline import BASE_TIME, COMPANY_START, HISTORY_START, moment
from coldchain.sample.vocabulary import (
    DEPOTS,
    PLATE_COMMERCIAL,
    PLATE_PRIVATE,
    PLATE_REGIONS,
    VEHICLE_TYPES,
    ZONE_CLIMATE,
    ZONES,
)
from coldchain.sample.world import Vehicle, World

_TYPE_WEIGHTS = [t[4] for t in VEHICLE_TYPES]


def vehicles(world: World) -> list[tuple]:
    """Vehicle rows; most trucks have a home driver (the vehicles -> drivers side of the cycle)."""
    rng = world.rng("vehicles")
    plates: set[str] = set()
    rows = []
    for vid in range(1, world.size.vehicles + 1):
        if vid <= 3:  # every temperature zone has at least one truck
            kind = next(t for t in VEHICLE_TYPES if t[3] == ZONES[vid - 1])
        else:
            kind = rng.choices(VEHICLE_TYPES, _TYPE_WEIGHTS)[0]
        vtype, capacity, pallets, zone, _ = kind
        plate = _plate(rng, plates)
        status = "ACTIVE"
        if vid > 3:
            status = rng.choices(("ACTIVE", "MAINTENANCE", "RETIRED"), (90, 7, 3))[0]
        min_temp, max_temp = ZONE_CLIMATE[zone][:2]
        sensor = f"TK-{rng.randrange(100000, 1000000)}-CH{rng.randrange(1, 3)}"
        vehicle = Vehicle(
            id=vid,
            zone=zone,
            capacity_kg=capacity,
            pallets=pallets,
            min_temp=min_temp,
            max_temp=max_temp,
            depot=rng.choice(DEPOTS),
            status=status,
            sensor_id=sensor if rng.random() < 0.97 else None,
            has_humidity=rng.random() < 0.85,
            home_driver=vid if (vid == 1 or rng.random() < 0.92) else None,
        )
        world.vehicles.append(vehicle)
        inspected = None
        if rng.random() < 0.9:
            inspected = BASE_TIME.date() - dt.timedelta(days=rng.randrange(1, 365))
        created = moment(rng, COMPANY_START, HISTORY_START)
        rows.append(
            (
                vid,
                f"VH-{vid:04d}",
                plate,
                vtype,
                capacity,
                pallets,
                zone,
                min_temp,
                max_temp,
                vehicle.home_driver,
                status,
                day(inspected),
                ts(created),
            )
        )
    return rows


def _plate(rng: random.Random, plates: set[str]) -> str:
    """A licence plate not in ``plates`` (commercial 바/사/아/자 plates, or private ones)."""
    while True:
        style = rng.random()
        digits = f"{rng.randrange(10000):04d}"
        if style < 0.55:
            plate = (
                f"{rng.choice(PLATE_REGIONS)}{rng.randrange(80, 98)}"
                f"{rng.choice(PLATE_COMMERCIAL)}{digits}"
            )
        elif style < 0.8:
            plate = f"{rng.randrange(80, 98)}{rng.choice(PLATE_PRIVATE)}{digits}"
        else:
            plate = f"{rng.randrange(800, 980)}{rng.choice(PLATE_PRIVATE)}{digits}"
        if plate not in plates:
            plates.add(plate)
            return plate


def drivers(world: World, people: list[DriverPerson]) -> Iterator[tuple]:
    """Driver rows; most drive their home vehicle (the drivers -> vehicles side of the cycle)."""
    rng = world.rng("drivers")
    licences: set[str] = set()
    spare_vehicles = [v.id for v in world.vehicles if v.home_driver is None]
    for did, (user_id, created, name) in enumerate(people, start=1):
        licence = _licence(rng, licences)
        expiry = None
        if rng.random() < 0.95:
            expiry = BASE_TIME.date() + dt.timedelta(days=rng.randrange(-20, 3650))
        vehicle: int | None = None
        if did <= world.size.vehicles and world.vehicles[did - 1].home_driver == did:
            vehicle = did if rng.random() < 0.95 else None
        elif spare_vehicles and rng.random() < 0.6:
            vehicle = rng.choice(spare_vehicles)
        if vehicle is None:
            status = rng.choice(("OFF_DUTY", "OFF_DUTY", "ON_LEAVE", "AVAILABLE"))
        else:
            status = rng.choice(("ON_DUTY", "ON_DUTY", "AVAILABLE", "OFF_DUTY"))
        yield (
            did,
            user_id,
            name,
            mobile(rng),
            licence,
            day(expiry),
            status,
            vehicle,
            ts(created + dt.timedelta(seconds=rng.uniform(5, 900))),
        )


def _licence(rng: random.Random, licences: set[str]) -> str:
    """A driving licence number not in ``licences`` (and take it)."""
    while True:
        licence = (
            f"{rng.randrange(11, 29)}-{rng.randrange(90, 125) % 100:02d}-"
            f"{rng.randrange(1_000_000):06d}-{rng.randrange(100):02d}"
        )
        if licence not in licences:
            licences.add(licence)
            return licence
