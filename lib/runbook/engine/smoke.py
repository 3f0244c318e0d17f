"""The application's own smoke test on the migrated database: its SQLAlchemy models through
psycopg2 (the application's driver), in one transaction that is rolled back, so nothing stays:
list clients, load recent dispatches with their vehicle (joined) and routes, and insert an
order without an explicit id (the sequence must hand out a fresh one)."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from runbook.core.errors import RunbookError, first_line
from runbook.core.target import Target, libpq_url, mask_text, sqlalchemy_url

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

RECENT_DISPATCHES = 50


def load() -> None:
    """Import what the smoke test runs on (SQLAlchemy, the application's models: 0.4 s here),
    ahead of the test, while the cutover waits for the source to be quiet anyway."""
    import sqlalchemy.orm  # noqa: F401

    import coldchain.models  # noqa: F401


def application_url(target: Target) -> str:
    """The target as the application connects to it: SQLAlchemy with psycopg2 (TLS parameters
    and all), with the runbook's session settings, so a migration role's low timeouts do not
    end the smoke test."""
    return sqlalchemy_url("postgresql+psycopg2://" + libpq_url(target.url)[len("postgresql://") :])


def _insert_order(session: Session) -> tuple[int, int]:
    """An order inserted the way the application does (no id given); (its id, the largest id
    before it)."""
    import sqlalchemy as sa

    from coldchain.models import Client, Order

    before = session.scalar(sa.select(sa.func.max(Order.id))) or 0
    client_id = session.scalar(sa.select(Client.id).order_by(Client.id).limit(1))
    now = datetime.now().replace(microsecond=0)
    order = Order(
        order_number=f"SMOKE-{now:%Y%m%d%H%M%S}",
        client_id=client_id,
        pickup_address="smoke test (rolled back)",
        delivery_address="smoke test (rolled back)",
        temp_zone="CHILLED",
        weight_kg=Decimal("1.00"),
        pallet_count=1,
        requested_delivery_at=now,
        status="PENDING",
        priority=0,
        is_urgent=False,
        created_at=now,
    )
    session.add(order)
    session.flush()
    return order.id, before


def smoke_test(target: Target) -> dict[str, Any]:
    """Run the application's queries and an insert in a transaction that is rolled back;
    raises a RunbookError when one fails or the new order's id is not above the largest.
    SQLAlchemy is imported here, not with the module: inside the freeze window it is loaded
    beside the quiet check (`load`)."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session, joinedload, selectinload

    from coldchain.models import Client, Dispatch

    engine = sa.create_engine(application_url(target), poolclass=sa.pool.NullPool)
    clock = time.perf_counter()
    facts: dict[str, Any] = {"driver": "psycopg2"}
    try:
        with Session(engine) as session:
            facts["clients"] = session.scalar(sa.select(sa.func.count()).select_from(Client))
            facts["clients listed"] = len(session.scalars(sa.select(Client).limit(20)).all())
            dispatches = (
                session.scalars(
                    sa.select(Dispatch)
                    .options(joinedload(Dispatch.vehicle), selectinload(Dispatch.routes))
                    .order_by(Dispatch.dispatch_date.desc(), Dispatch.id.desc())
                    .limit(RECENT_DISPATCHES)
                )
                .unique()
                .all()
            )
            facts["dispatches loaded"] = len(dispatches)
            facts["with vehicle"] = sum(d.vehicle is not None for d in dispatches)
            facts["route stops"] = sum(len(d.routes) for d in dispatches)
            facts["new order id"], facts["largest id before"] = _insert_order(session)
            session.rollback()
    except sa.exc.SQLAlchemyError as exc:
        message = mask_text(first_line(getattr(exc, "orig", None) or exc), target.password or "")
        raise RunbookError(
            f"the application's smoke test failed: {message}",
            where=target.display,
            fix="do not switch the application over; the error names what the application "
            "would meet",
        ) from None
    finally:
        engine.dispose()
    facts["seconds"] = round(time.perf_counter() - clock, 3)
    if facts["new order id"] <= facts["largest id before"]:
        raise RunbookError(
            f"the orders sequence handed out {facts['new order id']}, not above the largest id "
            f"{facts['largest id before']}",
            where=target.display,
            fix="set the sequence past max(id) (SELECT setval(...)) before switching over",
        )
    return facts
