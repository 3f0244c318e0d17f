"""Shippers in Seoul and Gyeonggi, with pickup windows and the temperatures their goods need."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from coldchain.sample.formats import clock, ts
from coldchain.sample.korean import address, landline, mobile, note, person, with_directions
from coldchain.sample.timeline import BASE_TIME, COMPANY_START, HISTORY_START, moment
from coldchain.sample.vocabulary import (
    BRANCHES,
    BUILDING_SUFFIXES,
    CLIENT_KINDS,
    CLIENT_PREFIXES,
    TITLES,
    ZONE_CLIMATE,
    ZONES,
)
from coldchain.sample.world import World


def clients(world: World) -> Iterator[tuple]:
    """Client rows; each client's zone, place, address and window are kept for the orders."""
    rng = world.rng("clients")
    for cid in range(1, world.size.clients + 1):
        zone = ZONES[cid - 1] if cid <= 3 else rng.choices(ZONES, (40, 45, 15))[0]
        world.clients_by_zone[zone].append(cid)
        name = _name(rng, zone)
        street, district, lat, lng = address(rng)
        street = with_directions(rng, street + rng.choice(BUILDING_SUFFIXES), world.profile.wording)
        world.client_geo.append((lat, lng))
        world.client_addr.append(street)
        geo_known = rng.random() < 0.96
        start = end = None
        if rng.random() < 0.85:
            start = dt.time(rng.randrange(3, 11), rng.choice((0, 0, 30)))
            end = dt.time(start.hour + rng.randrange(2, 6), start.minute)
        world.client_window.append(start)
        tmin, tmax = ZONE_CLIMATE[zone][:2]
        temps = rng.random() < 0.9
        contact, phone = _contact(rng, district)
        created = moment(rng, COMPANY_START, HISTORY_START)
        updated = moment(rng, created, BASE_TIME) if rng.random() < 0.6 else None
        business_number = None
        if rng.random() < 0.95:
            business_number = (
                f"{rng.randrange(101, 900)}-{rng.randrange(1, 100):02d}-{rng.randrange(100000):05d}"
            )
        notes = note(rng, world.profile.wording) if rng.random() < 0.5 else None
        yield (
            cid,
            f"CL-{cid:05d}",
            name,
            business_number,
            contact,
            phone,
            street,
            round(lat, 6) if geo_known else None,
            round(lng, 6) if geo_known else None,
            clock(start),
            clock(end),
            tmin if temps else None,
            tmax if temps else None,
            notes,
            int(rng.random() < 0.94),
            ts(created),
            ts(updated),
        )


def _name(rng: random.Random, zone: str) -> str:
    """A company name of the kind Korean food shippers have, e.g. ``(주)한빛냉동``."""
    prefix, kind = rng.choice(CLIENT_PREFIXES), rng.choice(CLIENT_KINDS[zone])
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"(주){prefix}{kind}"
    if pattern == 1:
        return f"{prefix}{kind}(주)"
    if pattern == 2:
        return f"{prefix}{kind} {rng.choice(BRANCHES)}센터"
    if pattern == 3:
        return f"농업회사법인 {prefix}{kind}"
    return f"{prefix}{kind}"


def _contact(rng: random.Random, district: str) -> tuple[str | None, str | None]:
    """The contact person (sometimes with a title) and phone number, each sometimes missing."""
    contact = None
    if rng.random() < 0.9:
        contact = person(rng)[0]
        if rng.random() < 0.6:
            contact += " " + rng.choice(TITLES)
    phone = None
    if rng.random() < 0.95:
        phone = landline(rng, district) if rng.random() < 0.6 else mobile(rng)
    return contact, phone
