"""Korean text of the sample: people's names, phone numbers, road addresses and typed notes."""

from __future__ import annotations

import random

from coldchain.sample.vocabulary import (
    DISTRICTS,
    GIVEN_NAMES,
    NOTE_JOINERS,
    NOTE_PHRASES,
    SURNAMES,
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


def note(rng: random.Random) -> str:
    """Korean free text as dispatchers type it: newlines, tabs, quotes, backslashes."""
    phrases = rng.sample(NOTE_PHRASES, rng.choice((1, 1, 2, 2, 3)))
    out = phrases[0]
    for phrase in phrases[1:]:
        out += rng.choice(NOTE_JOINERS) + phrase
    return out
