"""Shapes of sample data: the standard operator (ours) and a "wide" one shaped unlike ours.

A profile is only parameters (table sizes, how many orders travel, what goods and free text
look like); the same builders read them, so both shapes share every line of generator code.
"""

from __future__ import annotations

from dataclasses import dataclass

from coldchain.sample.vocabulary import NOTE_PHRASES, PRODUCTS, WIDE_INSTRUCTIONS, WIDE_PRODUCTS


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many rows each part of the world gets (at scale 1, or scaled with ``at``)."""

    admins: int
    dispatchers: int
    vehicles: int
    drivers: int
    clients: int
    dispatches: int
    orders: int
    logs: int
    audit: int

    def at(self, scale: float) -> Sizes:
        """These sizes times ``scale``, with minimums so small samples fill every table."""
        vehicles = max(8, round(self.vehicles * scale))
        return Sizes(
            admins=max(2, round(self.admins * scale)),
            dispatchers=max(3, round(self.dispatchers * scale)),
            vehicles=vehicles,
            drivers=max(vehicles + 2, round(self.drivers * scale)),
            clients=max(20, round(self.clients * scale)),
            dispatches=max(30, round(self.dispatches * scale)),
            orders=max(100, round(self.orders * scale)),
            logs=max(2_000, round(self.logs * scale)),
            audit=max(100, round(self.audit * scale)),
        )


@dataclass(frozen=True, slots=True)
class Goods:
    """How orders list their goods in ``orders.items``."""

    share: float  # orders that list any
    lines: tuple[int, int]  # randrange bounds of lines per order
    catalogue: dict[str, tuple[tuple[str, str], ...]]  # zone -> (name, unit)
    detailed: bool  # lines also carry temperature range, expiry date and origin


@dataclass(frozen=True, slots=True)
class Wording:
    """How long free text runs: notes and instructions, and addresses."""

    phrases: tuple[str, ...]  # what notes are made of
    phrases_per_note: tuple[int, ...]  # drawn uniformly
    instructions_share: float  # orders with special_instructions
    address_limit: int | None  # addresses padded with directions up to this; None: plain


@dataclass(frozen=True, slots=True)
class Profile:
    """One operator's shape of data."""

    name: str
    sizes: Sizes  # at scale 1
    dispatched_share: float  # orders that travel on a dispatch (two route stops each)
    goods: Goods
    wording: Wording


STANDARD = Profile(
    name="standard",
    sizes=Sizes(
        admins=5,
        dispatchers=40,
        vehicles=300,
        drivers=330,
        clients=1000,
        dispatches=15_000,
        orders=50_000,
        logs=1_000_000,
        audit=30_000,
    ),
    dispatched_share=0.93,
    goods=Goods(share=0.9, lines=(1, 4), catalogue=PRODUCTS, detailed=False),
    wording=Wording(
        phrases=NOTE_PHRASES,
        phrases_per_note=(1, 1, 2, 2, 3),
        instructions_share=0.45,
        address_limit=None,
    ),
)

# A wholesale operator: 2.4x our orders and clients but only 1.2x the readings (twice the orders
# per temperature log), 80% of orders dispatched (192k route stops at scale 1), twice our staff,
# fleet, dispatches and audit trail; long JSON goods lists, addresses up to their 255-character
# limit and instructions in whole sentences.
WIDE = Profile(
    name="wide",
    sizes=Sizes(
        admins=10,
        dispatchers=80,
        vehicles=600,
        drivers=660,
        clients=2_400,
        dispatches=30_000,
        orders=120_000,
        logs=1_200_000,
        audit=60_000,
    ),
    dispatched_share=0.8,
    goods=Goods(share=0.99, lines=(1, 4), catalogue=WIDE_PRODUCTS, detailed=True),
    wording=Wording(
        phrases=NOTE_PHRASES + WIDE_INSTRUCTIONS,
        phrases_per_note=(2, 3, 3, 4, 5, 6),
        instructions_share=0.8,
        address_limit=255,
    ),
)

_BY_NAME = {p.name: p for p in (STANDARD, WIDE)}

#: Names ``generate(profile=...)`` accepts.
PROFILES: tuple[str, ...] = tuple(_BY_NAME)


def profile_named(name: str) -> Profile:
    """The profile called ``name``; ValueError naming the allowed ones otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {name!r}") from None
