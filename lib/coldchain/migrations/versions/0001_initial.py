"""Initial schema: every table of the Cold Chain Dispatch System.

Revision ID: 0001
Revises:
Create Date: 2026-03-02 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create all tables, keys and indexes (drivers <-> vehicles cycle closed by ALTER)."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("email", sa.String(length=120), nullable=False),
        sa.Column("hashed_password", sa.String(length=255), nullable=False),
        sa.Column("full_name", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("users_pkey")),
        sa.UniqueConstraint("username", name=op.f("users_username_key")),
        sa.UniqueConstraint("email", name=op.f("users_email_key")),
    )

    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("business_number", sa.String(length=20), nullable=True),
        sa.Column("contact_name", sa.String(length=50), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("latitude", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("longitude", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("pickup_window_start", sa.Time(), nullable=True),
        sa.Column("pickup_window_end", sa.Time(), nullable=True),
        sa.Column("required_temp_min", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("required_temp_max", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("clients_pkey")),
    )
    op.create_index(op.f("ix_clients_code"), "clients", ["code"], unique=True)

    op.create_table(
        "drivers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("license_number", sa.String(length=30), nullable=False),
        sa.Column("license_expiry", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("current_vehicle_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("drivers_pkey")),
        sa.UniqueConstraint("license_number", name=op.f("drivers_license_number_key")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("drivers_user_id_fkey")),
    )

    op.create_table(
        "vehicles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("plate_number", sa.String(length=20), nullable=False),
        sa.Column("vehicle_type", sa.String(length=20), nullable=False),
        sa.Column("capacity_kg", postgresql.DOUBLE_PRECISION(), nullable=False),
        sa.Column("capacity_pallets", sa.Integer(), nullable=False),
        sa.Column("temp_zone", sa.String(length=20), nullable=False),
        sa.Column("min_temp", postgresql.DOUBLE_PRECISION(), nullable=False),
        sa.Column("max_temp", postgresql.DOUBLE_PRECISION(), nullable=False),
        sa.Column("home_driver_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_inspection_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("vehicles_pkey")),
        sa.ForeignKeyConstraint(
            ["home_driver_id"], ["drivers.id"], name=op.f("vehicles_home_driver_id_fkey")
        ),
    )
    op.create_index(op.f("ix_vehicles_code"), "vehicles", ["code"], unique=True)
    op.create_index(op.f("ix_vehicles_plate_number"), "vehicles", ["plate_number"], unique=True)

    # Close the drivers <-> vehicles cycle now that both tables exist.
    op.create_foreign_key(
        op.f("drivers_current_vehicle_id_fkey"),
        "drivers",
        "vehicles",
        ["current_vehicle_id"],
        ["id"],
    )

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_number", sa.String(length=30), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("pickup_address", sa.String(length=255), nullable=False),
        sa.Column("delivery_address", sa.String(length=255), nullable=False),
        sa.Column("delivery_latitude", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("delivery_longitude", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("temp_zone", sa.String(length=20), nullable=False),
        sa.Column("weight_kg", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("pallet_count", sa.Integer(), nullable=False),
        sa.Column("requested_pickup_at", sa.DateTime(), nullable=True),
        sa.Column("requested_delivery_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("is_urgent", sa.Boolean(), nullable=False),
        sa.Column("special_instructions", sa.Text(), nullable=True),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("orders_pkey")),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("orders_client_id_fkey")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("orders_created_by_id_fkey")
        ),
    )
    op.create_index(op.f("ix_orders_order_number"), "orders", ["order_number"], unique=True)
    op.create_index(op.f("ix_orders_client_id"), "orders", ["client_id"], unique=False)
    op.create_index(op.f("ix_orders_status"), "orders", ["status"], unique=False)

    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dispatch_number", sa.String(length=30), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("driver_id", sa.Integer(), nullable=True),
        sa.Column("dispatch_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_distance_km", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("total_weight_kg", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("optimization_score", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("planned_start_at", sa.DateTime(), nullable=True),
        sa.Column("actual_start_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("route_geometry", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("dispatches_pkey")),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name=op.f("dispatches_vehicle_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["driver_id"], ["drivers.id"], name=op.f("dispatches_driver_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("dispatches_created_by_id_fkey")
        ),
    )
    op.create_index(
        op.f("ix_dispatches_dispatch_number"), "dispatches", ["dispatch_number"], unique=True
    )
    op.create_index(
        op.f("ix_dispatches_dispatch_date"), "dispatches", ["dispatch_date"], unique=False
    )

    op.create_table(
        "dispatch_routes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("stop_type", sa.String(length=10), nullable=False),
        sa.Column("eta", sa.DateTime(), nullable=True),
        sa.Column("arrived_at", sa.DateTime(), nullable=True),
        sa.Column("distance_from_prev_km", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("is_completed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("dispatch_routes_pkey")),
        sa.UniqueConstraint(
            "dispatch_id", "sequence", name=op.f("dispatch_routes_dispatch_id_sequence_key")
        ),
        sa.ForeignKeyConstraint(
            ["dispatch_id"],
            ["dispatches.id"],
            name=op.f("dispatch_routes_dispatch_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("dispatch_routes_order_id_fkey")
        ),
    )

    op.create_table(
        "temperature_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("temperature_c", postgresql.DOUBLE_PRECISION(), nullable=False),
        sa.Column("humidity_pct", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("door_open", sa.Boolean(), nullable=False),
        sa.Column("latitude", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("longitude", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("sensor_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("temperature_logs_pkey")),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name=op.f("temperature_logs_vehicle_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["dispatch_id"], ["dispatches.id"], name=op.f("temperature_logs_dispatch_id_fkey")
        ),
    )
    op.create_index(
        "ix_temperature_logs_vehicle_recorded",
        "temperature_logs",
        ["vehicle_id", "recorded_at"],
        unique=False,
    )

    op.create_table(
        "temperature_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=True),
        sa.Column("log_id", sa.Integer(), nullable=True),
        sa.Column("alert_type", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("threshold_c", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("observed_c", postgresql.DOUBLE_PRECISION(), nullable=True),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("temperature_alerts_pkey")),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name=op.f("temperature_alerts_vehicle_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["dispatch_id"],
            ["dispatches.id"],
            name=op.f("temperature_alerts_dispatch_id_fkey"),
        ),
        sa.ForeignKeyConstraint(
            ["log_id"], ["temperature_logs.id"], name=op.f("temperature_alerts_log_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["users.id"],
            name=op.f("temperature_alerts_acknowledged_by_id_fkey"),
        ),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("entity", sa.String(length=30), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("audit_events_pkey")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("audit_events_user_id_fkey")),
    )


def downgrade() -> None:
    """Drop everything upgrade() created, in reverse order (cycle opened first)."""
    op.drop_table("audit_events")
    op.drop_table("temperature_alerts")
    op.drop_index("ix_temperature_logs_vehicle_recorded", table_name="temperature_logs")
    op.drop_table("temperature_logs")
    op.drop_table("dispatch_routes")
    op.drop_index(op.f("ix_dispatches_dispatch_date"), table_name="dispatches")
    op.drop_index(op.f("ix_dispatches_dispatch_number"), table_name="dispatches")
    op.drop_table("dispatches")
    op.drop_index(op.f("ix_orders_status"), table_name="orders")
    op.drop_index(op.f("ix_orders_client_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_order_number"), table_name="orders")
    op.drop_table("orders")
    op.drop_constraint(op.f("drivers_current_vehicle_id_fkey"), "drivers", type_="foreignkey")
    op.drop_index(op.f("ix_vehicles_plate_number"), table_name="vehicles")
    op.drop_index(op.f("ix_vehicles_code"), table_name="vehicles")
    op.drop_table("vehicles")
    op.drop_table("drivers")
    op.drop_index(op.f("ix_clients_code"), table_name="clients")
    op.drop_table("clients")
    op.drop_table("users")
