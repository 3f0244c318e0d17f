"""The deterministic sample SQLite database: exact schema, clean values, SQLAlchemy's formats."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from commands import runbook
from migration import migrate

import coldchain
from coldchain.sample import BASE_TIME, PROFILES, SCHEMA_PATH, TABLES, generate
from runbook.core.target import Target

SHARED_SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "coldchain" / "sqlite_schema.sql"
HANGUL = re.compile("[가-힣]")
DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
TIME_GLOB = "[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]"
DATETIME_GLOB = f"{DATE_GLOB} {TIME_GLOB}"
# Columns that record something that already happened when the snapshot was taken.
PAST_COLUMNS = {
    "created_at",
    "updated_at",
    "last_login_at",
    "actual_start_at",
    "completed_at",
    "arrived_at",
    "recorded_at",
    "raised_at",
    "acknowledged_at",
    "resolved_at",
    "occurred_at",
}


def _sha256(path: Path) -> str:
    """Hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _columns(conn: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
    """(table, column, declared type) of every column of the sample."""
    for table in TABLES:
        for _cid, name, declared, *_ in conn.execute(f"PRAGMA table_info({table})"):
            yield table, name, declared


def _ddl(conn: sqlite3.Connection) -> list[tuple]:
    """The schema as SQLite stores it."""
    return conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    ).fetchall()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A sample at scale 0.01 and the counts generate() reported."""
    path = tmp_path_factory.mktemp("sample") / "dispatch.db"
    return path, generate(path, scale=0.01, seed=42)


@pytest.fixture(scope="module")
def wide_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A sample of the wide profile at scale 0.01 and the counts generate() reported."""
    path = tmp_path_factory.mktemp("wide") / "dispatch.db"
    return path, generate(path, scale=0.01, seed=42, profile="wide")


@pytest.fixture(params=PROFILES)
def db(
    request: pytest.FixtureRequest, sample: tuple[Path, dict[str, int]]
) -> Iterator[sqlite3.Connection]:
    """Read-only connection to the module's sample of each profile (the checks hold for all)."""
    path = sample[0] if request.param == "standard" else request.getfixturevalue("wide_sample")[0]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    yield conn
    conn.close()


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_other_seed_differs(
    sample: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    """Same (scale, seed) -> same sha256; another seed -> another file."""
    again = tmp_path / "again.db"
    other = tmp_path / "other.db"
    assert generate(again, scale=0.01, seed=42) == sample[1]
    generate(other, scale=0.01, seed=43)
    assert _sha256(again) == _sha256(sample[0])
    assert _sha256(other) != _sha256(sample[0])


def test_identical_bytes_in_another_process(
    sample: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    """No dependence on hash randomization or process state: a new interpreter agrees."""
    path = tmp_path / "subprocess.db"
    lib = str(Path(coldchain.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": lib}
    code = "import sys; from coldchain.sample import generate; generate(sys.argv[1], 0.01, 42)"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)
    assert _sha256(path) == _sha256(sample[0])


def test_refuses_an_existing_file(tmp_path: Path) -> None:
    """A sample never overwrites anything, not even an empty file."""
    path = tmp_path / "dispatch.db"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        generate(path)
    assert path.read_bytes() == b"precious"


def test_rejects_a_non_positive_scale(tmp_path: Path) -> None:
    """scale must be a positive number; nothing is written otherwise."""
    with pytest.raises(ValueError):
        generate(tmp_path / "zero.db", scale=0)
    assert not (tmp_path / "zero.db").exists()


# ----------------------------------------------------------------------------- schema and counts


def test_schema_is_exactly_the_application_schema(db: sqlite3.Connection) -> None:
    """sqlite_master of the sample equals that of a database made from the shared schema."""
    if not SHARED_SCHEMA.is_file():
        pytest.skip(f"application schema not found beside the checkout: {SHARED_SCHEMA}")
    reference = sqlite3.connect(":memory:")
    reference.executescript(SHARED_SCHEMA.read_text(encoding="utf-8"))
    assert _ddl(db) == _ddl(reference)
    assert SCHEMA_PATH.read_bytes() == SHARED_SCHEMA.read_bytes()
    reference.close()


@pytest.mark.parametrize("db", ["standard"], indirect=True)
def test_counts_are_real_and_every_table_is_filled(
    sample: tuple[Path, dict[str, int]], db: sqlite3.Connection
) -> None:
    """generate() reports true counts; every table has rows; temperature_logs dominates."""
    counts = sample[1]
    assert list(counts) == list(TABLES)
    for table in TABLES:
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == counts[table] > 0
    others = [n for table, n in counts.items() if table != "temperature_logs"]
    assert counts["temperature_logs"] > max(others)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not Path(f"{sample[0]}-journal").exists()


def test_counts_grow_with_scale(sample: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    """Doubling the scale never shrinks a table and grows the big ones."""
    small = sample[1]
    bigger = generate(tmp_path / "bigger.db", scale=0.02, seed=42)
    assert all(bigger[t] >= small[t] for t in TABLES)
    for table in ("orders", "dispatches", "dispatch_routes", "temperature_logs", "audit_events"):
        assert bigger[table] > small[table] * 1.5, table


# ----------------------------------------------------------------------------- integrity


def test_foreign_keys_all_resolve(db: sqlite3.Connection) -> None:
    """PRAGMA foreign_key_check finds no orphan; the file is intact."""
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_every_foreign_key_column_is_populated(db: sqlite3.Connection) -> None:
    """Each foreign-key column holds values, so a migration exercises every reference."""
    for table in TABLES:
        for fk in db.execute(f"PRAGMA foreign_key_list({table})").fetchall():
            column = fk[3]
            filled = db.execute(
                f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL"
            ).fetchone()[0]
            assert filled > 0, f"{table}.{column}"


def test_drivers_vehicles_cycle_is_populated(db: sqlite3.Connection) -> None:
    """Most drivers drive their home vehicle: both sides of the cycle are filled."""
    drivers = db.execute("SELECT count(*) FROM drivers").fetchone()[0]
    mutual = db.execute(
        "SELECT count(*) FROM drivers d JOIN vehicles v"
        " ON d.current_vehicle_id = v.id AND v.home_driver_id = d.id"
    ).fetchone()[0]
    assert mutual > drivers / 2


def test_nullable_columns_hold_some_nulls(db: sqlite3.Connection) -> None:
    """Optional data is sometimes missing, as in a real database."""
    for table, column in [
        ("users", "last_login_at"),
        ("clients", "notes"),
        ("orders", "special_instructions"),
        ("orders", "items"),
        ("dispatches", "driver_id"),
        ("temperature_logs", "dispatch_id"),
        ("temperature_logs", "humidity_pct"),
        ("temperature_alerts", "acknowledged_at"),
        ("audit_events", "payload"),
    ]:
        nulls = db.execute(f"SELECT count(*) FROM {table} WHERE {column} IS NULL").fetchone()[0]
        assert nulls > 0, f"{table}.{column}"


def test_routes_are_numbered_and_pick_up_before_delivering(db: sqlite3.Connection) -> None:
    """Stops are 1..n per dispatch; each order is picked up before it is delivered."""
    gaps = db.execute(
        "SELECT count(*) FROM (SELECT dispatch_id, min(sequence) AS lo, max(sequence) AS hi,"
        " count(*) AS n FROM dispatch_routes GROUP BY dispatch_id)"
        " WHERE lo != 1 OR hi != n"
    ).fetchone()[0]
    assert gaps == 0
    wrong = db.execute(
        "SELECT count(*) FROM dispatch_routes p JOIN dispatch_routes d"
        " ON p.dispatch_id = d.dispatch_id AND p.order_id = d.order_id"
        " WHERE p.stop_type = 'PICKUP' AND d.stop_type = 'DELIVERY' AND p.sequence > d.sequence"
    ).fetchone()[0]
    assert wrong == 0
    assert db.execute(
        "SELECT count(*) FROM orders o JOIN dispatch_routes r ON r.order_id = o.id"
        " JOIN dispatches d ON d.id = r.dispatch_id JOIN vehicles v ON v.id = d.vehicle_id"
        " WHERE o.temp_zone != v.temp_zone"
    ).fetchone() == (0,)


def test_alerts_point_at_their_reading(db: sqlite3.Connection) -> None:
    """An alert's log is a reading of the same vehicle, and TEMP_* alerts quote its value."""
    mismatched = db.execute(
        "SELECT count(*) FROM temperature_alerts a JOIN temperature_logs l ON l.id = a.log_id"
        " WHERE l.vehicle_id != a.vehicle_id"
        " OR (a.alert_type LIKE 'TEMP_%' AND a.observed_c != l.temperature_c)"
    ).fetchone()[0]
    assert mismatched == 0
    outside = db.execute(
        "SELECT count(*) FROM temperature_alerts a JOIN vehicles v ON v.id = a.vehicle_id"
        " WHERE a.alert_type = 'TEMP_HIGH' AND a.observed_c <= v.max_temp"
    ).fetchone()[0]
    assert outside == 0


# ------------------------------------------------------------------------- values fit their types


def test_varchar_values_fit_their_length(db: sqlite3.Connection) -> None:
    """Every VARCHAR(n) value has at most n characters and is text."""
    checked = 0
    for table, column, declared in _columns(db):
        match = re.fullmatch(r"VARCHAR\((\d+)\)", declared)
        if not match:
            continue
        longest, non_text = db.execute(
            f"SELECT max(length({column})), sum(typeof({column}) NOT IN ('text', 'null'))"
            f" FROM {table}"
        ).fetchone()
        assert longest <= int(match.group(1)), f"{table}.{column}"
        assert non_text == 0, f"{table}.{column}"
        checked += 1
    assert checked > 30


def test_temporal_text_is_in_sqlalchemy_format(db: sqlite3.Connection) -> None:
    """DATETIME 'YYYY-MM-DD HH:MM:SS.ffffff', DATE 'YYYY-MM-DD', TIME 'HH:MM:SS.ffffff'."""
    globs = {"DATETIME": DATETIME_GLOB, "DATE": DATE_GLOB, "TIME": TIME_GLOB}
    parse = {
        "DATETIME": dt.datetime.fromisoformat,
        "DATE": dt.date.fromisoformat,
        "TIME": dt.time.fromisoformat,
    }
    with_micros = total = 0
    for table, column, declared in _columns(db):
        if declared not in globs:
            continue
        bad = db.execute(
            f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL"
            f" AND (typeof({column}) != 'text' OR {column} NOT GLOB ?)",
            (globs[declared],),
        ).fetchone()[0]
        assert bad == 0, f"{table}.{column}"
        for (value,) in db.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
            parsed = parse[declared](value)
            if declared == "DATETIME":
                total += 1
                with_micros += parsed.microsecond != 0
                if column in PAST_COLUMNS:
                    assert parsed <= BASE_TIME, f"{table}.{column} {value}"
    assert with_micros > total / 2


def test_booleans_are_integers_0_or_1(db: sqlite3.Connection) -> None:
    """BOOLEAN columns hold only the integers 0 and 1, and both occur."""
    seen: set[int] = set()
    for table, column, declared in _columns(db):
        if declared != "BOOLEAN":
            continue
        values = db.execute(f"SELECT DISTINCT typeof({column}), {column} FROM {table}").fetchall()
        assert set(values) <= {("integer", 0), ("integer", 1)}, f"{table}.{column}"
        seen.update(v for _, v in values)
    assert seen == {0, 1}


def test_json_columns_hold_ascii_json_text(db: sqlite3.Connection) -> None:
    """JSON columns parse, and are json.dumps output (ASCII, Korean escaped as \\uXXXX)."""
    escaped_korean = False
    for table, column, declared in _columns(db):
        if declared != "JSON":
            continue
        for (value,) in db.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
            assert isinstance(value, str) and value.isascii()
            parsed = json.loads(value)
            assert json.dumps(parsed) == value
            escaped_korean = escaped_korean or "\\u" in value
    assert escaped_korean


def test_numbers_are_stored_as_sqlalchemy_writes_them(db: sqlite3.Connection) -> None:
    """NUMERIC(10,2) has at most two decimals; FLOAT is real; coordinates lie in Korea."""
    for table, column, declared in _columns(db):
        if declared == "NUMERIC(10, 2)":
            for (value,) in db.execute(f"SELECT {column} FROM {table} WHERE {column} NOT NULL"):
                assert isinstance(value, int | float) and round(value, 2) == value
                assert abs(value) < 10**8
        elif declared == "FLOAT":
            kinds = {k for (k,) in db.execute(f"SELECT DISTINCT typeof({column}) FROM {table}")}
            assert kinds <= {"real", "null"}, f"{table}.{column}"
    fractional = db.execute(
        "SELECT count(*) FROM temperature_logs WHERE temperature_c != round(temperature_c)"
    ).fetchone()[0]
    assert fractional > 0
    lat = db.execute("SELECT min(latitude), max(latitude) FROM temperature_logs").fetchone()
    lng = db.execute("SELECT min(longitude), max(longitude) FROM temperature_logs").fetchone()
    assert 36.5 < lat[0] <= lat[1] < 38.2 and 126.3 < lng[0] <= lng[1] < 127.8
    zones = db.execute(
        "SELECT temp_zone, min(min_temp), max(max_temp) FROM vehicles GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert zones == [("AMBIENT", 10.0, 25.0), ("CHILLED", 0.0, 5.0), ("FROZEN", -25.0, -18.0)]


def test_korean_text_with_awkward_characters(db: sqlite3.Connection) -> None:
    """Names, addresses and notes are Korean; free text has newlines, tabs, quotes, backslashes."""
    for table, column in [
        ("users", "full_name"),
        ("clients", "name"),
        ("clients", "address"),
        ("drivers", "name"),
        ("vehicles", "plate_number"),
        ("vehicles", "vehicle_type"),
        ("orders", "delivery_address"),
        ("temperature_alerts", "message"),
    ]:
        query = f"SELECT {column} FROM {table} WHERE {column} NOT NULL"
        values = [v for (v,) in db.execute(query)]
        assert values and all(HANGUL.search(v) for v in values), f"{table}.{column}"
    free_text = "".join(
        v
        for (v,) in db.execute(
            "SELECT notes FROM clients WHERE notes NOT NULL"
            " UNION ALL SELECT special_instructions FROM orders WHERE special_instructions NOT NULL"
        )
    )
    for char in ("\n", "\t", "\\", '"', "'"):
        assert char in free_text, repr(char)
    assert HANGUL.search(free_text)


# ----------------------------------------------------------------------------- the wide profile


def _average(path: Path, expression: str, table: str = "orders") -> float:
    """avg(expression) over a table of a sample."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT avg({expression}) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_unknown_profile_is_refused_naming_the_allowed_ones(tmp_path: Path) -> None:
    """profile is one of PROFILES; anything else is a ValueError and nothing is written."""
    assert PROFILES == ("standard", "wide")
    with pytest.raises(ValueError, match="standard, wide"):
        generate(tmp_path / "narrow.db", profile="narrow")
    assert not (tmp_path / "narrow.db").exists()


def test_wide_profile_is_deterministic_and_standard_is_the_default(
    sample: tuple[Path, dict[str, int]], wide_sample: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    """Same (scale, seed, profile) -> same bytes; profile="standard" is what generate() writes."""
    again = tmp_path / "wide.db"
    assert generate(again, scale=0.01, seed=42, profile="wide") == wide_sample[1]
    assert _sha256(again) == _sha256(wide_sample[0]) != _sha256(sample[0])
    standard = tmp_path / "standard.db"
    generate(standard, scale=0.01, seed=42, profile="standard")
    assert _sha256(standard) == _sha256(sample[0])


def test_wide_profile_has_more_orders_per_temperature_log(
    sample: tuple[Path, dict[str, int]], wide_sample: tuple[Path, dict[str, int]]
) -> None:
    """2.4x the orders on 1.2x the readings; 80% of orders dispatched (two stops each)."""
    standard, wide = sample[1], wide_sample[1]
    assert all(wide[t] >= standard[t] > 0 for t in TABLES)
    assert wide["orders"] >= 2 * standard["orders"]
    per_log = {n: c["orders"] / c["temperature_logs"] for n, c in (("s", standard), ("w", wide))}
    assert per_log["w"] > 1.6 * per_log["s"]
    assert 1.5 < wide["dispatch_routes"] / wide["orders"] < 1.7
    assert wide["temperature_logs"] > max(n for t, n in wide.items() if t != "temperature_logs")


def test_wide_order_items_are_long_json_lists(wide_sample: tuple[Path, dict[str, int]]) -> None:
    """orders.items carries about 490 bytes per order, of varying length, with detailed lines."""
    path = wide_sample[0]
    per_order = _average(path, "coalesce(length(CAST(items AS BLOB)), 0)")
    assert 440 < per_order < 540, per_order
    assert _average(path, "length(items) > 700") > 0.02  # some long lists...
    assert _average(path, "length(items) < 300") > 0.05  # ...and some short ones
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    first = json.loads(conn.execute("SELECT items FROM orders WHERE items NOT NULL").fetchone()[0])
    conn.close()
    assert {"sku", "name", "qty", "unit", "temp_range", "lot", "expiry"} <= set(first[0])
    assert HANGUL.search(first[0]["name"])


def test_wide_text_is_longer_but_fits_its_limits(
    sample: tuple[Path, dict[str, int]], wide_sample: tuple[Path, dict[str, int]]
) -> None:
    """Addresses run near (never over) VARCHAR(255); instructions are several sentences."""
    for table, column in [
        ("orders", "pickup_address"),
        ("orders", "delivery_address"),
        ("clients", "address"),
    ]:
        standard = _average(sample[0], f"length({column})", table)
        wide = _average(wide_sample[0], f"length({column})", table)
        assert wide > 4 * standard, column
        assert _average(wide_sample[0], f"length({column}) BETWEEN 150 AND 255", table) == 1
    standard = _average(sample[0], "length(special_instructions)")
    assert _average(wide_sample[0], "length(special_instructions)") > 2.5 * standard
    assert _average(wide_sample[0], "special_instructions IS NOT NULL") > 0.7


def test_wide_sample_by_the_command_migrates_and_verifies(
    one_target: Target, tmp_path: Path
) -> None:
    """`runbook sample --profile wide` writes the wide shape (long JSON goods, ~2 orders per
    10 readings), and steps 01-04 on it end in a verification PASS with every row loaded."""
    path = tmp_path / "wide.db"
    done = runbook(
        "sample", str(path), "--profile", "wide", "--scale", "0.004", "--seed", "3", env={}
    )
    assert done.returncode == 0, done.stderr
    printed = dict(line.split() for line in done.stdout.splitlines())
    counts = {t: int(n) for t, n in printed.items()}
    assert counts["orders"] / counts["temperature_logs"] > 0.08
    assert 440 < _average(path, "coalesce(length(CAST(items AS BLOB)), 0)") < 540
    run = migrate(path, tmp_path / "run", one_target)
    loaded = {t["table"]: t["rows"] for t in run.read("transfer")["tables"]}
    assert loaded == counts


def test_unknown_profile_on_the_command_line_is_refused(tmp_path: Path) -> None:
    """The command names the profiles it knows and writes nothing."""
    done = runbook("sample", str(tmp_path / "x.db"), "--profile", "narrow", env={})
    assert done.returncode == 2
    assert "standard, wide" in done.stderr
    assert not (tmp_path / "x.db").exists()
