"""PostgreSQL models of the Cold Chain Dispatch System, one class per table of sqlite_schema.sql.

Table names, column names, column order, NOT NULL, keys and index names follow the
application's SQLite schema exactly; the types are the PostgreSQL ones the migration
targets (FLOAT -> double precision, JSON -> jsonb, DATETIME -> timestamp without time
zone).  Constraint names follow PostgreSQL's own defaults (``users_pkey``,
``users_username_key``, ``orders_client_id_fkey``) so the catalog looks as if PostgreSQL
had named them.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "NAMING_CONVENTION",
    "AuditEvent",
    "Base",
    "Client",
    "Dispatch",
    "DispatchRoute",
    "Driver",
    "Order",
    "TemperatureAlert",
    "TemperatureLog",
    "User",
    "Vehicle",
]

#: Names PostgreSQL itself would give unnamed constraints (``<table>_<cols>_<suffix>``).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is Alembic's target metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """An application login: admin, dispatcher or driver."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(50), nullable=False, unique=True)
    email: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255), nullable=False)
    full_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    last_login_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Client(Base):
    """A shipper whose goods are picked up, with its pickup window and required temperatures."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(20), nullable=False, index=True, unique=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    business_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    contact_name: Mapped[str | None] = mapped_column(String(50), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    address: Mapped[str] = mapped_column(String(255), nullable=False)
    latitude: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    longitude: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    pickup_window_start: Mapped[datetime.time | None] = mapped_column(Time, nullable=True)
    pickup_window_end: Mapped[datetime.time | None] = mapped_column(Time, nullable=True)
    required_temp_min: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    required_temp_max: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Driver(Base):
    """A truck driver; ``current_vehicle_id`` closes the cycle with ``vehicles.home_driver_id``."""

    __tablename__ = "drivers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(50), nullable=False)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)
    license_number: Mapped[str] = mapped_column(String(30), nullable=False, unique=True)
    license_expiry: Mapped[datetime.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    # drivers <-> vehicles reference each other: this side is added by ALTER TABLE after
    # both tables exist (and dropped before them), so it needs an explicit name.
    current_vehicle_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicles.id", use_alter=True, name="drivers_current_vehicle_id_fkey"),
        nullable=True,
    )
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)


class Vehicle(Base):
    """A refrigerated truck with its temperature zone and allowed temperature range."""

    __tablename__ = "vehicles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(20), nullable=False, index=True, unique=True)
    plate_number: Mapped[str] = mapped_column(String(20), nullable=False, index=True, unique=True)
    vehicle_type: Mapped[str] = mapped_column(String(20), nullable=False)
    capacity_kg: Mapped[float] = mapped_column(DOUBLE_PRECISION, nullable=False)
    capacity_pallets: Mapped[int] = mapped_column(Integer, nullable=False)
    temp_zone: Mapped[str] = mapped_column(String(20), nullable=False)
    min_temp: Mapped[float] = mapped_column(DOUBLE_PRECISION, nullable=False)
    max_temp: Mapped[float] = mapped_column(DOUBLE_PRECISION, nullable=False)
    home_driver_id: Mapped[int | None] = mapped_column(ForeignKey("drivers.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    last_inspection_date: Mapped[datetime.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)


class Order(Base):
    """A transport order of one client, from its pickup address to a delivery address."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_number: Mapped[str] = mapped_column(String(30), nullable=False, index=True, unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), nullable=False, index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    pickup_address: Mapped[str] = mapped_column(String(255), nullable=False)
    delivery_address: Mapped[str] = mapped_column(String(255), nullable=False)
    delivery_latitude: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    delivery_longitude: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    temp_zone: Mapped[str] = mapped_column(String(20), nullable=False)
    weight_kg: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2), nullable=False)
    pallet_count: Mapped[int] = mapped_column(Integer, nullable=False)
    requested_pickup_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    requested_delivery_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    priority: Mapped[int] = mapped_column(Integer, nullable=False)
    is_urgent: Mapped[bool] = mapped_column(Boolean, nullable=False)
    special_instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    items: Mapped[Any | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Dispatch(Base):
    """One vehicle's run on one day, carrying several orders."""

    __tablename__ = "dispatches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dispatch_number: Mapped[str] = mapped_column(
        String(30), nullable=False, index=True, unique=True
    )
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"), nullable=False)
    driver_id: Mapped[int | None] = mapped_column(ForeignKey("drivers.id"), nullable=True)
    dispatch_date: Mapped[datetime.date] = mapped_column(Date, nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    total_distance_km: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    total_weight_kg: Mapped[decimal.Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    optimization_score: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    planned_start_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    actual_start_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    route_geometry: Mapped[Any | None] = mapped_column(JSONB, nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)

    # what the application loads with a dispatch (no columns: the schema is unchanged)
    vehicle: Mapped[Vehicle] = relationship()
    routes: Mapped[list[DispatchRoute]] = relationship(
        back_populates="dispatch", order_by="DispatchRoute.sequence", passive_deletes=True
    )


class DispatchRoute(Base):
    """One stop (pickup or delivery of an order) of a dispatch; deleted with its dispatch."""

    __tablename__ = "dispatch_routes"
    __table_args__ = (UniqueConstraint("dispatch_id", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dispatch_id: Mapped[int] = mapped_column(
        ForeignKey("dispatches.id", ondelete="CASCADE"), nullable=False
    )
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    stop_type: Mapped[str] = mapped_column(String(10), nullable=False)
    eta: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    arrived_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    distance_from_prev_km: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    is_completed: Mapped[bool] = mapped_column(Boolean, nullable=False)

    dispatch: Mapped[Dispatch] = relationship(back_populates="routes")
    order: Mapped[Order] = relationship()


class TemperatureLog(Base):
    """One reading of a vehicle's cargo-space sensor (by far the largest table)."""

    __tablename__ = "temperature_logs"
    __table_args__ = (Index("ix_temperature_logs_vehicle_recorded", "vehicle_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"), nullable=False)
    dispatch_id: Mapped[int | None] = mapped_column(ForeignKey("dispatches.id"), nullable=True)
    recorded_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    temperature_c: Mapped[float] = mapped_column(DOUBLE_PRECISION, nullable=False)
    humidity_pct: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    door_open: Mapped[bool] = mapped_column(Boolean, nullable=False)
    latitude: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    longitude: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    sensor_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class TemperatureAlert(Base):
    """An excursion (too warm, too cold, door open, sensor offline) raised from the logs."""

    __tablename__ = "temperature_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"), nullable=False)
    dispatch_id: Mapped[int | None] = mapped_column(ForeignKey("dispatches.id"), nullable=True)
    log_id: Mapped[int | None] = mapped_column(ForeignKey("temperature_logs.id"), nullable=True)
    alert_type: Mapped[str] = mapped_column(String(20), nullable=False)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    threshold_c: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    observed_c: Mapped[float | None] = mapped_column(DOUBLE_PRECISION, nullable=True)
    raised_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    acknowledged_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEvent(Base):
    """Who did what to which entity, with a JSON payload of the change."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    entity: Mapped[str] = mapped_column(String(30), nullable=False)
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    payload: Mapped[Any | None] = mapped_column(JSONB, nullable=True)
    occurred_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
