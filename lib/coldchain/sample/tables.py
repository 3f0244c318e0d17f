"""The application's schema as the sample fills it: its file, its tables and their columns."""

from __future__ import annotations

from pathlib import Path

#: The application's SQLite schema, shipped with the coldchain package (beside this package).
SCHEMA_PATH = Path(__file__).parent.with_name("sqlite_schema.sql")

#: Tables of the schema, in the order they are declared.
TABLES: tuple[str, ...] = (
    "users",
    "clients",
    "drivers",
    "vehicles",
    "orders",
    "dispatches",
    "dispatch_routes",
    "temperature_logs",
    "temperature_alerts",
    "audit_events",
)

#: Columns of each table in the order the row builders yield their values.
COLUMNS: dict[str, str] = {
    "users": "id, username, email, hashed_password, full_name, role, is_active, created_at,"
    " last_login_at",
    "clients": "id, code, name, business_number, contact_name, phone, address, latitude,"
    " longitude, pickup_window_start, pickup_window_end, required_temp_min, required_temp_max,"
    " notes, is_active, created_at, updated_at",
    "drivers": "id, user_id, name, phone, license_number, license_expiry, status,"
    " current_vehicle_id, created_at",
    "vehicles": "id, code, plate_number, vehicle_type, capacity_kg, capacity_pallets, temp_zone,"
    " min_temp, max_temp, home_driver_id, status, last_inspection_date, created_at",
    "orders": "id, order_number, client_id, created_by_id, pickup_address, delivery_address,"
    " delivery_latitude, delivery_longitude, temp_zone, weight_kg, pallet_count,"
    " requested_pickup_at, requested_delivery_at, status, priority, is_urgent,"
    " special_instructions, items, created_at, updated_at",
    "dispatches": "id, dispatch_number, vehicle_id, driver_id, dispatch_date, status,"
    " total_distance_km, total_weight_kg, optimization_score, planned_start_at,"
    " actual_start_at, completed_at, route_geometry, created_by_id, created_at",
    "dispatch_routes": "id, dispatch_id, order_id, sequence, stop_type, eta, arrived_at,"
    " distance_from_prev_km, is_completed",
    "temperature_logs": "id, vehicle_id, dispatch_id, recorded_at, temperature_c, humidity_pct,"
    " door_open, latitude, longitude, sensor_id",
    "temperature_alerts": "id, vehicle_id, dispatch_id, log_id, alert_type, severity, message,"
    " threshold_c, observed_c, raised_at, acknowledged_by_id, acknowledged_at, resolved_at",
    "audit_events": "id, user_id, entity, entity_id, action, payload, occurred_at",
}
