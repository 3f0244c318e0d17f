"""Korean text of the sample: people's names, phone numbers, road addresses and typed notes."""

from __future__ import annotations

import random

from coldchain.sample.profiles import Wording
from coldchain.sample.vocabulary import (
    DISTRICTS,
    GIVEN_NAMES,
    NOTE_JOINERS,
    SURNAMES,
    WIDE_BUILDINGS,
    WIDE_DIRECTIONS,
    WIDE_FLOORS,
    WIDE_NEIGHBOURHOODS,
    WIDE_WINGS,
)

_SURNAME_WEIGHTS = [s[2] for s in SURNAMES]


def person(rng: random.Random) -> tuple[str, str]:
    """A Korean full name and its romanized ``given.surname`` form."""
    surname = rng.choices(SURNAMES, weights=_SURNAME_WEIGHTS)[0]
    given = rng.choice(GIVEN_NAMES)
    return surname[0] + given[0], f"{given[1]}.{surname[1]}"


def mobile(rng: random.Random) -> str:
    """A Korean mobile number, 010-XXXX-XXXX."""
    return f"010-{rng.randrange(2000, 10000)}-{rng.randrange(10000):04d}"


def landline(rng: random.Random, district: str) -> str:
    """A landline number with the area code of the district."""
    if district.startswith("서울"):
        return f"02-{rng.randrange(200, 10000)}-{rng.randrange(10000):04d}"
    area = "032" if district.startswith("인천") else "031"
    return f"{area}-{rng.randrange(200, 1000)}-{rng.randrange(10000):04d}"


def address(rng: random.Random) -> tuple[str, str, float, float]:
    """A road-name address in Seoul, Gyeonggi or Incheon, with its district and position."""
    district, lat, lng, streets = rng.choice(DISTRICTS)
    street = f"{district} {rng.choice(streets)} {rng.randrange(1, 400)}"
    if rng.random() < 0.15:
        street += f"-{rng.randrange(1, 30)}"
    lat += rng.uniform(-0.025, 0.025)
    lng += rng.uniform(-0.03, 0.03)
    return street, district, lat, lng


def with_directions(rng: random.Random, street: str, wording: Wording) -> str:
    """``street`` as is, or (with an address limit) followed by its building, dock and drivers'
    directions, up to a random length between 60 characters under the limit and the limit."""
    limit = wording.address_limit
    if limit is None:
        return street
    target = rng.randrange(limit - 60, limit + 1)
    dock = f"{rng.choice(WIDE_WINGS)} {rng.choice(WIDE_FLOORS)} {rng.randrange(1, 25)}번 도크"
    # At most 77 characters so far (longest street, suffix, building and dock), below any target.
    out = f"{street} ({rng.choice(WIDE_NEIGHBOURHOODS)}, {rng.choice(WIDE_BUILDINGS)}) {dock}"
    for direction in rng.sample(WIDE_DIRECTIONS, len(WIDE_DIRECTIONS)):
        if len(out) + 2 + len(direction) <= target:
            out += ", " + direction
    return out


def note(rng: random.Random, wording: Wording) -> str:
    """Korean free text as dispatchers type it: newlines, tabs, quotes, backslashes."""
    phrases = rng.sample(wording.phrases, rng.choice(wording.phrases_per_note))
    out = phrases[0]
    for phrase in phrases[1:]:
        out += rng.choice(NOTE_JOINERS) + phrase
    return out
