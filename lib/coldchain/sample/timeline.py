"""The sample's clock: the fixed snapshot moment, its history, and random instants within it.

Every time is relative to ``BASE_TIME`` so the same (scale, seed) always gives the same file.
"""

from __future__ import annotations

import datetime as dt
import random

#: "Now" of the sample (naive local time, Asia/Seoul, as the application stores it).
BASE_TIME = dt.datetime(2026, 3, 2, 6, 0, 0)
HISTORY_DAYS = 120
HISTORY_START = dt.datetime.combine(
    BASE_TIME.date() - dt.timedelta(days=HISTORY_DAYS + 5), dt.time(0, 0)
)
COMPANY_START = dt.datetime(2023, 9, 4, 9, 0, 0)


def moment(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """A random instant in [start, end) with microseconds."""
    span = int((end - start).total_seconds() * 1_000_000)
    return start + dt.timedelta(microseconds=rng.randrange(max(span, 1)))


def micro(rng: random.Random) -> dt.timedelta:
    """A random sub-second offset, so stored microseconds are rarely zero."""
    return dt.timedelta(microseconds=rng.randrange(1, 1_000_000))


def past(rng: random.Random, value: dt.datetime, floor: dt.datetime) -> dt.datetime:
    """``value`` if it already happened at BASE_TIME, else a random instant before it."""
    if value <= BASE_TIME:
        return value
    return moment(rng, min(floor, BASE_TIME), BASE_TIME)
