"""Orders: what each shipper sent where, with its goods, its status and its audit trail."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from coldchain.sample.formats import json_text, ts
from coldchain.sample.korean import address, note, with_directions
from coldchain.sample.profiles import Goods, Wording
from coldchain.sample.timeline import BASE_TIME, micro, past
from coldchain.sample.vocabulary import (
    BRANCHES,
    BUILDING_SUFFIXES,
    CANCEL_REASONS,
    STORES,
    WIDE_ORIGINS,
    WIDE_SHELF_DAYS,
    ZONE_CLIMATE,
    ZONES,
)
from coldchain.sample.world import Dispatch, World

#: Order status that follows from its dispatch's status.
_STATUS_OF_DISPATCH = {
    "COMPLETED": "DELIVERED",
    "CANCELLED": "CANCELLED",
    "IN_PROGRESS": "IN_TRANSIT",
    "PLANNED": "ASSIGNED",
}


def orders(world: World) -> Iterator[tuple]:
    """Order rows; each dispatched order carries goods of its truck's temperature zone."""
    rng = world.rng("orders")
    goods, wording = world.profile.goods, world.profile.wording
    p_audit = min(1.0, 0.4 * world.size.audit / max(1, len(world.order_plan)))
    for oid, (created, index) in enumerate(world.order_plan, start=1):
        dispatch = world.dispatches[index] if index >= 0 else None
        zone, weight, pallets, day, status = _load(rng, dispatch, index, created)
        zone_clients = world.clients_by_zone[zone]
        client = zone_clients[int(len(zone_clients) * rng.random() ** 1.7)]
        world.o_client.append(client)
        window = world.client_window[client - 1]
        requested_pickup = None
        if window is not None and rng.random() < 0.85:
            requested_pickup = dt.datetime.combine(day, window)
        requested_delivery = dt.datetime.combine(
            day, dt.time(rng.randrange(9, 19), rng.choice((0, 30)))
        )
        street, lat, lng = _delivery_address(rng, wording)
        world.o_lat.append(lat)
        world.o_lng.append(lng)
        world.o_weight.append(weight)
        geo_known = rng.random() < 0.97
        priority = rng.choices((1, 2, 3, 4, 5), (5, 15, 55, 15, 10))[0]
        items = _items(rng, zone, created, goods)
        updated = _updated(rng, status, dispatch, created)
        created_by = rng.choice(world.staff) if rng.random() < 0.85 else None
        number = f"ORD-{created:%Y%m%d}-{oid:06d}"
        _audit(world, rng, p_audit, (oid, number, client, status, created, created_by, updated))
        urgent = priority == 1 or rng.random() < 0.03
        yield (
            oid,
            number,
            client,
            created_by,
            world.client_addr[client - 1],
            street,
            round(lat, 6) if geo_known else None,
            round(lng, 6) if geo_known else None,
            zone,
            weight,
            pallets,
            ts(requested_pickup),
            ts(requested_delivery),
            status,
            priority,
            int(urgent),
            note(rng, wording) if rng.random() < wording.instructions_share else None,
            json_text(items),
            ts(created),
            ts(updated),
        )


def _load(
    rng: random.Random, dispatch: Dispatch | None, index: int, created: dt.datetime
) -> tuple[str, float, int, dt.date, str]:
    """Zone, weight, pallets, day and status of an order, from its dispatch if it has one.

    ``index`` -1 is an order still waiting for a truck, -2 one cancelled before dispatch.
    """
    if dispatch is not None:
        fill = rng.uniform(0.35, 0.95) / dispatch.n_orders
        weight = round(dispatch.vehicle.capacity_kg * fill, 2)
        pallets = max(1, round(dispatch.vehicle.pallets * fill))
        status = _STATUS_OF_DISPATCH[dispatch.status]
        return dispatch.vehicle.zone, weight, pallets, dispatch.date, status
    zone = rng.choices(ZONES, (40, 45, 15))[0]
    weight = round(rng.uniform(20, 2500), rng.choice((0, 1, 2)))
    pallets = rng.randrange(1, 5)
    status = "PENDING" if index == -1 else "CANCELLED"
    after = BASE_TIME if status == "PENDING" else created
    day = (after + dt.timedelta(days=rng.randrange(1, 4))).date()
    return zone, weight, pallets, day, status


def _delivery_address(rng: random.Random, wording: Wording) -> tuple[str, float, float]:
    """Where an order goes: a store branch or a building, and its position."""
    street, _district, lat, lng = address(rng)
    if rng.random() < 0.6:
        street += f" {rng.choice(STORES)} {rng.choice(BRANCHES)}점"
    else:
        street += rng.choice(BUILDING_SUFFIXES)
    return with_directions(rng, street, wording), lat, lng


def _items(rng: random.Random, zone: str, created: dt.datetime, goods: Goods) -> list[dict] | None:
    """The goods of an order (JSON), or None when the order lists none."""
    if rng.random() >= goods.share:
        return None
    items = []
    for name, unit in rng.sample(goods.catalogue[zone], rng.randrange(*goods.lines)):
        item = {
            "sku": f"{zone[:2]}-{rng.randrange(1000, 10000)}",
            "name": name,
            "qty": rng.randrange(1, 120),
            "unit": unit,
            "lot": f"L{created:%y%m}-{rng.randrange(1, 1000):03d}",
        }
        if goods.detailed:
            item.update(_details(rng, zone, created))
        items.append(item)
    return items


def _details(rng: random.Random, zone: str, created: dt.datetime) -> dict:
    """What a wholesaler's order lines also carry: temperature range, expiry date and origin."""
    tmin, tmax = ZONE_CLIMATE[zone][:2]
    shelf_life = dt.timedelta(days=rng.randrange(*WIDE_SHELF_DAYS[zone]))
    return {
        "temp_range": f"{tmin:g}~{tmax:g}°C",
        "expiry": (created + shelf_life).date().isoformat(),
        "origin": rng.choice(WIDE_ORIGINS),
    }


def _updated(
    rng: random.Random, status: str, dispatch: Dispatch | None, created: dt.datetime
) -> dt.datetime | None:
    """When the order was last changed (never after BASE_TIME), or None if it never was."""
    if status == "DELIVERED":
        updated = dispatch.planned_start + dt.timedelta(hours=rng.uniform(3, 12))
    elif status in ("ASSIGNED", "IN_TRANSIT"):
        updated = dispatch.created_at + dt.timedelta(seconds=rng.uniform(1, 900))
    elif status == "CANCELLED":
        updated = created + dt.timedelta(hours=rng.uniform(0.2, 30))
    else:
        updated = created + dt.timedelta(minutes=rng.uniform(1, 90))
        updated = updated if rng.random() < 0.3 else None
    if updated is not None:
        updated = past(rng, updated + micro(rng), created)
    return updated


def _audit(world: World, rng: random.Random, p_audit: float, order: tuple) -> None:
    """Audit events of some orders: their creation and, if cancelled, the status change."""
    oid, number, client, status, created, created_by, updated = order
    if rng.random() < p_audit:
        payload = {"order_number": number, "client_id": client, "status": "PENDING"}
        world.audit.append((created, created_by, "order", oid, "CREATE", payload))
    if status == "CANCELLED" and updated is not None and rng.random() < p_audit:
        payload = {
            "status": {"from": "PENDING", "to": "CANCELLED"},
            "reason": rng.choice(CANCEL_REASONS),
        }
        world.audit.append((updated, created_by, "order", oid, "STATUS_CHANGE", payload))
