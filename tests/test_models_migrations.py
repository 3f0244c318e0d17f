"""The coldchain models and Alembic migrations, on a real PostgreSQL database.

``fresh_database_url`` (from conftest) is a ``postgresql://`` URL of a new, empty database.
"""

from __future__ import annotations

import datetime as dt
import io
import sqlite3
from collections.abc import Iterator
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coldchain import models
from coldchain.migrations import MIGRATIONS_DIR, alembic_config
from coldchain.models import Base
from coldchain.sample import SCHEMA_PATH


def _psycopg(url: str) -> str:
    """SQLAlchemy URL for psycopg 3 from a bare postgresql:// URL."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    """Engine on the fresh, empty database."""
    eng = create_engine(_psycopg(fresh_database_url))
    yield eng
    eng.dispose()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    """The fresh database after ``alembic upgrade head`` on a caller-owned connection."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "head")
    return engine


@pytest.fixture(scope="module")
def sqlite_schema() -> Iterator[sqlite3.Connection]:
    """In-memory SQLite database made from the application's schema, for comparison."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA_PATH.read_text(encoding="utf-8"))
    yield conn
    conn.close()


def _diff(engine: Engine) -> list:
    """Differences between the database and the models, as Alembic autogenerate sees them."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


# ----------------------------------------------------------------------------- configuration


def test_alembic_config_needs_no_ini_file() -> None:
    """The Config is built in code: script location, connection, psycopg URL, escaped '%'."""
    marker = object()
    url = "postgresql://u:" + "p%40ss" + "@h:5432/db"  # built here: no password-bearing literal
    cfg = alembic_config(connection=marker, url=url)  # type: ignore[arg-type]
    assert cfg.config_file_name is None
    assert cfg.get_main_option("script_location") == str(MIGRATIONS_DIR)
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert cfg.attributes["connection"] is marker
    assert cfg.get_main_option("sqlalchemy.url") == "postgresql+psycopg://u:" + "p%40ss@h:5432/db"
    assert "connection" not in alembic_config().attributes


def test_offline_mode_renders_the_ddl() -> None:
    """``--sql`` mode renders the schema without connecting, cycle closed by ALTER TABLE."""
    cfg = alembic_config(url="postgresql://nobody@localhost:1/none")
    cfg.output_buffer = io.StringIO()
    command.upgrade(cfg, "head", sql=True)
    sql = cfg.output_buffer.getvalue()
    assert "CREATE TABLE temperature_logs" in sql
    assert "ALTER TABLE drivers ADD CONSTRAINT drivers_current_vehicle_id_fkey" in sql
    assert "ON DELETE CASCADE" in sql
    assert "JSONB" in sql and "DOUBLE PRECISION" in sql and " REAL" not in sql


def test_models_cover_every_table_of_the_sqlite_schema(sqlite_schema: sqlite3.Connection) -> None:
    """Every SQLite table has a model, and no model exists without a table."""
    tables = {
        r[0] for r in sqlite_schema.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert set(Base.metadata.tables) == tables
    assert models.TemperatureLog.__table__.name == "temperature_logs"


# ----------------------------------------------------------------------------- upgrade


def test_upgrade_head_matches_the_models_exactly(migrated: Engine) -> None:
    """After upgrade head, autogenerate (compare_type=True) finds no difference at all."""
    assert _diff(migrated) == []
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"


def test_upgrade_from_url_is_silent(fresh_database_url: str, capfd: pytest.CaptureFixture) -> None:
    """env.py makes its own engine from the URL and writes nothing to stdout or stderr."""
    command.upgrade(alembic_config(url=fresh_database_url), "head")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    eng = create_engine(_psycopg(fresh_database_url))
    try:
        assert _diff(eng) == []
    finally:
        eng.dispose()


@pytest.mark.parametrize(
    ("table", "column", "data_type", "length", "precision", "scale"),
    [
        ("users", "is_active", "boolean", None, None, None),
        ("users", "username", "character varying", 50, None, None),
        ("users", "created_at", "timestamp without time zone", None, None, None),
        ("clients", "pickup_window_start", "time without time zone", None, None, None),
        ("clients", "notes", "text", None, None, None),
        ("drivers", "license_expiry", "date", None, None, None),
        ("orders", "weight_kg", "numeric", None, 10, 2),
        ("orders", "items", "jsonb", None, None, None),
        ("dispatches", "route_geometry", "jsonb", None, None, None),
        ("dispatch_routes", "stop_type", "character varying", 10, None, None),
        ("temperature_logs", "temperature_c", "double precision", None, 53, None),
        ("temperature_logs", "sensor_id", "character varying", 40, None, None),
        ("temperature_logs", "id", "integer", None, 32, 0),
        ("audit_events", "payload", "jsonb", None, None, None),
    ],
)
def test_catalog_column_types(
    migrated: Engine,
    table: str,
    column: str,
    data_type: str,
    length: int | None,
    precision: int | None,
    scale: int | None,
) -> None:
    """information_schema shows the intended PostgreSQL types (never 4-byte real)."""
    with migrated.connect() as conn:
        row = conn.execute(
            text(
                "SELECT data_type, character_maximum_length, numeric_precision, numeric_scale"
                " FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = :t AND column_name = :c"
            ),
            {"t": table, "c": column},
        ).one()
    assert tuple(row) == (data_type, length, precision, scale)


def test_no_real_and_no_timezone_columns(migrated: Engine) -> None:
    """No column is float4, timestamptz or json: FLOAT, DATETIME and JSON map one way only."""
    with migrated.connect() as conn:
        found = conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'public' AND data_type IN"
                " ('real', 'timestamp with time zone', 'json', 'time with time zone')"
            )
        ).all()
    assert found == []


def test_primary_keys_are_serial(migrated: Engine) -> None:
    """Every id is an integer primary key backed by its own sequence (SERIAL)."""
    with migrated.connect() as conn:
        for table in Base.metadata.tables:
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}
            ).scalar()
            assert seq == f"public.{table}_id_seq"


def test_columns_follow_the_sqlite_schema(
    migrated: Engine, sqlite_schema: sqlite3.Connection
) -> None:
    """Same columns, in the same order, with the same NOT NULL, as the SQLite schema."""
    with migrated.connect() as conn:
        for table in Base.metadata.tables:
            expected = [
                (name, bool(notnull or pk))
                for _cid, name, _type, notnull, _default, pk in sqlite_schema.execute(
                    f"PRAGMA table_info({table})"
                )
            ]
            actual = [
                (name, nullable == "NO")
                for name, nullable in conn.execute(
                    text(
                        "SELECT column_name, is_nullable FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND table_name = :t"
                        " ORDER BY ordinal_position"
                    ),
                    {"t": table},
                )
            ]
            assert actual == expected, table


def test_keys_and_indexes_follow_the_sqlite_schema(migrated: Engine) -> None:
    """Indexes (same names), unique constraints and foreign keys match the SQLite schema."""
    pg = inspect(migrated)
    lite_engine = create_engine("sqlite://")
    with lite_engine.connect() as conn:
        conn.connection.driver_connection.executescript(SCHEMA_PATH.read_text(encoding="utf-8"))
    lite = inspect(lite_engine)
    for table in Base.metadata.tables:
        pg_indexes = {
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in pg.get_indexes(table)
            if not i.get("duplicates_constraint")
        }
        lite_indexes = {
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in lite.get_indexes(table)
        }
        assert pg_indexes == lite_indexes, table
        assert {tuple(u["column_names"]) for u in pg.get_unique_constraints(table)} == {
            tuple(u["column_names"]) for u in lite.get_unique_constraints(table)
        }, table

        def fks(insp: object, t: str = table) -> set[tuple]:
            return {
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    (f.get("options") or {}).get("ondelete"),
                )
                for f in insp.get_foreign_keys(t)  # type: ignore[attr-defined]
            }

        assert fks(pg) == fks(lite), table


def test_constraint_names_are_postgres_defaults(migrated: Engine) -> None:
    """The named constraints equal what PostgreSQL itself picks for unnamed ones."""
    unnamed = MetaData(schema="default_names")
    for table in Base.metadata.sorted_tables:
        table.to_metadata(unnamed)
    for table in unnamed.tables.values():
        for constraint in table.constraints:
            constraint.name = None
    query = text(
        "SELECT c.conrelid::regclass::text, c.contype,"
        " array_agg(a.attname::text ORDER BY k.ord), c.conname"
        " FROM pg_constraint c"
        " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
        " WHERE c.connamespace = CAST(:schema AS regnamespace)"
        " GROUP BY c.oid, c.conrelid, c.contype, c.conname"
    )
    with migrated.begin() as conn:
        conn.execute(text("CREATE SCHEMA default_names"))
        unnamed.create_all(conn)
        ours = {
            (t.rsplit(".", 1)[-1], kind, tuple(cols)): name
            for t, kind, cols, name in conn.execute(query, {"schema": "public"})
            if not t.endswith("alembic_version")
        }
        theirs = {
            (t.rsplit(".", 1)[-1], kind, tuple(cols)): name
            for t, kind, cols, name in conn.execute(query, {"schema": "default_names"})
        }
        conn.execute(text("DROP SCHEMA default_names CASCADE"))
    assert ours == theirs
    assert ours[("dispatch_routes", "u", ("dispatch_id", "sequence"))] == (
        "dispatch_routes_dispatch_id_sequence_key"
    )


def test_cycle_foreign_keys_and_cascade_in_catalog(migrated: Engine) -> None:
    """Both sides of the drivers <-> vehicles cycle exist; routes cascade with dispatches."""
    with migrated.connect() as conn:
        rows = dict(
            conn.execute(
                text(
                    "SELECT conname, confdeltype FROM pg_constraint WHERE contype = 'f' AND conname"
                    " IN ('drivers_current_vehicle_id_fkey', 'vehicles_home_driver_id_fkey',"
                    " 'dispatch_routes_dispatch_id_fkey', 'dispatch_routes_order_id_fkey')"
                )
            ).all()
        )
    assert rows == {
        "drivers_current_vehicle_id_fkey": "a",
        "vehicles_home_driver_id_fkey": "a",
        "dispatch_routes_dispatch_id_fkey": "c",
        "dispatch_routes_order_id_fkey": "a",
    }


def test_models_round_trip_cycle_cascade_and_constraints(migrated: Engine) -> None:
    """Rows go in via the models; the cycle closes, CASCADE deletes routes, keys are enforced."""
    now = dt.datetime(2026, 3, 2, 6, 0, 0, 123456)
    with Session(migrated) as session:
        user = models.User(
            username="minjun.kim",
            email="minjun.kim@hanbitlogis.co.kr",
            hashed_password="$2b$12$" + "a" * 53,
            full_name="김민준",
            role="DRIVER",
            is_active=True,
            created_at=now,
        )
        client = models.Client(
            code="CL-00001",
            name="(주)한빛냉장",
            address="서울특별시 강남구 테헤란로 1",
            pickup_window_start=dt.time(5, 30),
            is_active=True,
            created_at=now,
            notes='문 앞에 놓아주세요\n경비실 "연락"\t\\',
        )
        session.add_all([user, client])
        session.flush()
        driver = models.Driver(
            user_id=user.id,
            name="김민준",
            phone="010-1234-5678",
            license_number="11-24-123456-01",
            status="AVAILABLE",
            created_at=now,
        )
        session.add(driver)
        session.flush()
        vehicle = models.Vehicle(
            code="VH-0001",
            plate_number="82가1234",
            vehicle_type="1톤 냉동탑차",
            capacity_kg=1000.0,
            capacity_pallets=2,
            temp_zone="FROZEN",
            min_temp=-25.0,
            max_temp=-18.0,
            home_driver_id=driver.id,
            status="ACTIVE",
            created_at=now,
        )
        session.add(vehicle)
        session.flush()
        driver.current_vehicle_id = vehicle.id
        order = models.Order(
            order_number="ORD-20260302-000001",
            client_id=client.id,
            pickup_address=client.address,
            delivery_address="경기도 성남시 분당구 판교역로 2",
            temp_zone="FROZEN",
            weight_kg=Decimal("1234.5"),
            pallet_count=1,
            requested_delivery_at=now,
            status="ASSIGNED",
            priority=3,
            is_urgent=False,
            items=[{"sku": "FR-1001", "name": "냉동 만두 1kg", "qty": 3}],
            created_at=now,
        )
        dispatch = models.Dispatch(
            dispatch_number="DSP-20260302-0001",
            vehicle_id=vehicle.id,
            driver_id=driver.id,
            dispatch_date=now.date(),
            status="PLANNED",
            route_geometry={"type": "LineString", "coordinates": [[127.0, 37.5]]},
            created_at=now,
        )
        session.add_all([order, dispatch])
        session.flush()
        for sequence, stop_type in ((1, "PICKUP"), (2, "DELIVERY")):
            session.add(
                models.DispatchRoute(
                    dispatch_id=dispatch.id,
                    order_id=order.id,
                    sequence=sequence,
                    stop_type=stop_type,
                    is_completed=False,
                )
            )
        session.commit()
        dispatch_id, vehicle_id = dispatch.id, vehicle.id

    with migrated.connect() as conn:
        cycle = conn.execute(
            text(
                "SELECT count(*) FROM drivers d JOIN vehicles v"
                " ON d.current_vehicle_id = v.id AND v.home_driver_id = d.id"
            )
        ).scalar()
        assert cycle == 1
        back = conn.execute(text("SELECT weight_kg, items, created_at FROM orders")).one()
        assert back == (
            Decimal("1234.50"),
            [{"sku": "FR-1001", "name": "냉동 만두 1kg", "qty": 3}],
            now,
        )

    # Duplicate stop sequence, dangling keys: PostgreSQL refuses them.
    bad_statements = [
        "INSERT INTO dispatch_routes (dispatch_id, order_id, sequence, stop_type, is_completed)"
        f" VALUES ({dispatch_id}, 1, 1, 'PICKUP', false)",
        f"UPDATE vehicles SET home_driver_id = 999 WHERE id = {vehicle_id}",
        "UPDATE drivers SET current_vehicle_id = 999",
    ]
    for statement in bad_statements:
        with pytest.raises(IntegrityError), migrated.begin() as conn:
            conn.execute(text(statement))

    with migrated.begin() as conn:
        conn.execute(text("DELETE FROM dispatches WHERE id = :id"), {"id": dispatch_id})
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dispatch_routes")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM orders")).scalar() == 1


# ----------------------------------------------------------------------------- downgrade


def test_downgrade_base_removes_everything_and_upgrade_again(migrated: Engine) -> None:
    """downgrade base leaves only alembic_version (no tables, no sequences); upgrade redoes it."""
    with migrated.begin() as conn:
        command.downgrade(alembic_config(connection=conn), "base")
    with migrated.connect() as conn:
        assert inspect(conn).get_table_names() == ["alembic_version"]
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 0
        sequences = conn.execute(
            text("SELECT count(*) FROM pg_sequences WHERE schemaname = 'public'")
        ).scalar()
        assert sequences == 0
    with migrated.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "head")
    assert _diff(migrated) == []
