"""The audit trail: events collected while generating, plus logins and master-data edits."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from coldchain.sample.formats import day, json_text, ts
from coldchain.sample.timeline import BASE_TIME, HISTORY_START, moment
from coldchain.sample.vocabulary import USER_AGENTS
from coldchain.sample.world import World

#: (at, user id, entity, entity id, action, payload) of one audit event.
Event = tuple[dt.datetime, int | None, str, int | None, str, dict | None]


def audit_events(world: World) -> Iterator[tuple]:
    """Audit event rows, numbered by time (ties keep the order they were recorded in)."""
    rng = world.rng("audit")
    events = world.audit
    for _ in range(max(0, world.size.audit - len(events))):
        events.append(_background(world, rng, moment(rng, HISTORY_START, BASE_TIME)))
    order = sorted(range(len(events)), key=lambda i: (events[i][0], i))
    for event_id, i in enumerate(order, start=1):
        at, user_id, entity, entity_id, action, payload = events[i]
        yield (event_id, user_id, entity, entity_id, action, json_text(payload), ts(at))


def _background(world: World, rng: random.Random, at: dt.datetime) -> Event:
    """An event that is not part of an order or dispatch: logins, edits, a report export."""
    kind = rng.random()
    if kind < 0.6:
        uid = rng.choice(world.user_ids)
        ip = f"10.{rng.randrange(10, 40)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        return at, uid, "user", uid, "LOGIN", {"ip": ip, "user_agent": rng.choice(USER_AGENTS)}
    if kind < 0.7:
        uid = rng.choice(world.user_ids)
        return at, uid, "user", uid, "LOGOUT", None
    if kind < 0.8:
        vehicle = rng.choice(world.vehicles)
        payload = {"last_inspection_date": day(at.date()), "result": "합격"}
        return at, rng.choice(world.staff), "vehicle", vehicle.id, "UPDATE", payload
    if kind < 0.9:
        client = rng.randrange(1, world.size.clients + 1)
        fields = rng.sample(["phone", "contact_name", "notes", "pickup_window_start"], 2)
        return at, rng.choice(world.staff), "client", client, "UPDATE", {"fields": fields}
    if kind < 0.95:
        driver = rng.randrange(1, world.size.drivers + 1)
        payload = {"status": {"from": "OFF_DUTY", "to": "ON_DUTY"}}
        return at, rng.choice(world.staff), "driver", driver, "STATUS_CHANGE", payload
    payload = {"format": "xlsx", "rows": rng.randrange(10, 5000), "report": "일일 배차 현황"}
    return at, rng.choice(world.staff), "report", None, "EXPORT", payload
