"""Users of the application (admins, dispatchers, drivers) and the people behind driver records."""

from __future__ import annotations

import datetime as dt
import random

from coldchain.sample.formats import ts
from coldchain.sample.korean import person
from coldchain.sample.timeline import BASE_TIME, COMPANY_START, HISTORY_START, moment
from coldchain.sample.vocabulary import BCRYPT_ALPHABET
from coldchain.sample.world import World

#: (created, sequence, role, Korean name, romanized name) of one person.
Person = tuple[dt.datetime, int, str, str, str]
#: (user id or None, created, Korean name) of one driver, as fleet.drivers() takes it.
DriverPerson = tuple[int | None, dt.datetime, str]


def users(world: World) -> tuple[list[tuple], list[DriverPerson]]:
    """User rows (most drivers have an account) and the drivers, oldest first."""
    rng = world.rng("people")
    people, driver_people = _persons(world, rng)
    with_account = {p[1] for p in driver_people if rng.random() < 0.92}
    with_account.add(driver_people[0][1])
    taken: set[str] = set()
    rows: list[tuple] = []
    user_of: dict[int, int] = {}
    for created, seq, role, ko, en in sorted(people):
        if role == "DRIVER" and seq not in with_account:
            continue
        uid = len(rows) + 1
        user_of[seq] = uid
        rows.append(_user(world, rng, uid, _unique(en, taken), role, ko, created))
    # The newest account has not logged in yet.
    rows[-1] = (*rows[-1][:-1], None)
    drivers = [(user_of.get(seq), created, ko) for created, seq, _role, ko, _en in driver_people]
    drivers.sort(key=lambda d: d[1])
    return rows, drivers


def _persons(world: World, rng: random.Random) -> tuple[list[Person], list[Person]]:
    """Everyone who works for the operator, and the drivers among them."""
    cutoff = HISTORY_START - dt.timedelta(days=1)
    people: list[Person] = []
    for i in range(world.size.admins):
        created = moment(rng, COMPANY_START, COMPANY_START + dt.timedelta(days=20))
        ko, en = person(rng)
        people.append((created, len(people), "ADMIN", ko, "admin" if i == 0 else en))
    for _ in range(world.size.dispatchers):
        created = moment(rng, COMPANY_START, cutoff)
        people.append((created, len(people), "DISPATCHER", *person(rng)))
    driver_people: list[Person] = []
    for _ in range(world.size.drivers):
        created = moment(rng, COMPANY_START + dt.timedelta(days=10), cutoff)
        driver_people.append((created, len(people), "DRIVER", *person(rng)))
        people.append(driver_people[-1])
    return people, driver_people


def _unique(base: str, taken: set[str]) -> str:
    """``base``, or ``base2``, ``base3``... whichever is not taken yet (and take it)."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    taken.add(name)
    return name


def _user(
    world: World,
    rng: random.Random,
    uid: int,
    name: str,
    role: str,
    ko: str,
    created: dt.datetime,
) -> tuple:
    """One user row; staff are remembered for created_by and acknowledgement columns."""
    if role == "DRIVER":
        domain = rng.choice(("naver.com", "gmail.com", "daum.net", "kakao.com"))
    else:
        domain = "hanbitlogis.co.kr"
        world.staff.append(uid)
        if role == "DISPATCHER":
            world.dispatchers.append(uid)
    world.user_ids.append(uid)
    hashed = "$2b$12$" + "".join(rng.choice(BCRYPT_ALPHABET) for _ in range(53))
    active = role == "ADMIN" or rng.random() < 0.95
    last_login = None
    if rng.random() < 0.9:
        last_login = moment(rng, max(created, BASE_TIME - dt.timedelta(days=60)), BASE_TIME)
    full_name = None if rng.random() < 0.03 else ko
    return (
        uid,
        name,
        f"{name}@{domain}",
        hashed,
        full_name,
        role,
        int(active),
        ts(created),
        ts(last_login),
    )
