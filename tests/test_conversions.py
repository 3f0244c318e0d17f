"""The conversion table: values of every type survive render → COPY → read back → canonical on a
real server, valid values are not flagged, and misfits are."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runbook.columns.conversions import TargetType, conversion_for, register_functions
from runbook.columns.plan import ColumnPlan, copy_line_sql
from runbook.core.source import decode_text
from runbook.core.target import Target, connect

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k), inner, max_size=4)
    ),
    max_leaves=12,
)
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
datetimes = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31))

CASES = {
    "integer": ("INTEGER", st.integers(-(2**31), 2**31 - 1)),
    "bigint": ("INTEGER", st.integers(-(2**63), 2**63 - 1)),
    "double precision": (
        "FLOAT",
        st.floats(allow_nan=False) | st.sampled_from([2.36, 0.1 + 0.2, -0.0, 1e-310, 1e308]),
    ),
    "numeric(10,2)": (
        "NUMERIC(10, 2)",
        st.decimals(min_value=-99999999, max_value=99999999, places=2).map(float),
    ),
    "boolean": ("BOOLEAN", st.sampled_from([0, 1, "true", "FALSE", "t", "F", "0", "1"])),
    "timestamp without time zone": (
        "DATETIME",
        st.tuples(datetimes, st.sampled_from([" ", "T"]), st.booleans()).map(
            lambda v: v[0].isoformat(sep=v[1], timespec="microseconds" if v[2] else "seconds")
        ),
    ),
    "date": ("DATE", st.dates(min_value=date(1, 1, 1)).map(date.isoformat)),
    "time without time zone": ("TIME", st.times().map(time.isoformat)),
    "jsonb": (
        "JSON",
        st.tuples(json_values, st.booleans()).map(lambda v: json.dumps(v[0], ensure_ascii=v[1])),
    ),
    "character varying(20)": (
        "VARCHAR(20)",
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
        ),
    ),
    "text": ("TEXT", text),
    "bytea": ("BLOB", st.binary(max_size=64)),
}


def roundtrip(
    target: Target, pg_type: str, declared: str, values: list, options: tuple[str, ...] = ()
) -> dict:
    """Values into SQLite, rendered to COPY, loaded, read back: canonical forms must agree.
    Returns what PostgreSQL holds, by row. bytes values are stored as (non-UTF-8) text."""
    lite = sqlite3.connect(":memory:")
    register_functions(lite)
    lite.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {declared})")
    for key, value in enumerate(values):
        cast = "CAST(? AS TEXT)" if isinstance(value, bytes) and declared != "BLOB" else "?"
        lite.execute(f"INSERT INTO t (id, v) VALUES (?, {cast})", [key, value])
    plans = [
        ColumnPlan("t", "id", "INTEGER", "integer", False, "integer"),
        ColumnPlan("t", "v", declared, pg_type, True, conversion_for(pg_type).name, options),
    ]
    rule = plans[1].rule
    for kind, predicate in rule.checks('"v"', TargetType(pg_type)):
        flagged = lite.execute(
            f'SELECT v FROM t WHERE "v" IS NOT NULL AND ({predicate})'
        ).fetchall()
        assert not flagged, f"valid values flagged as {kind}: {flagged}"
    lite.text_factory = bytes
    data = b"".join(line for (line,) in lite.execute(copy_line_sql("t", plans)))
    lite.text_factory = decode_text
    source = dict(lite.execute("SELECT id, v FROM t"))
    with connect(target) as conn:
        conn.execute(f"CREATE TEMP TABLE t (id integer PRIMARY KEY, v {pg_type})")
        with conn.cursor().copy("COPY t (id, v) FROM STDIN") as copy:
            copy.write(data)
        back = dict(conn.execute(f"SELECT id, {rule.target_select('v')} FROM t"))
    for key, value in source.items():
        if value is None or rule.canonical(value) is None:
            assert back[key] is None
            continue
        expected = rule.canonical(value)
        assert not expected.startswith("<unconvertible"), expected
        assert rule.canonical(back[key]) == expected, (value, back[key])
    return back


@pytest.mark.parametrize("pg_type", list(CASES))
def test_values_survive_copy_and_compare_equal(fresh_target: Target, pg_type: str) -> None:
    declared, values = CASES[pg_type]

    @SETTINGS
    @given(st.lists(values | st.none(), min_size=1, max_size=25))
    def check(batch: list) -> None:
        roundtrip(fresh_target, pg_type, declared, batch)

    check()


def test_float_keeps_every_bit_where_cast_as_text_would_not(fresh_target: Target) -> None:
    roundtrip(
        fresh_target,
        "double precision",
        "FLOAT",
        [2.36, 0.1 + 0.2, 1 / 3, 1.7976931348623025e308, -1.0778627469645175e102, 5e-324],
    )


MISFITS = [
    ("integer", "INTEGER", "12.3D0", "wrong_type"),
    ("integer", "INTEGER", 2**40, "integer_overflow"),
    ("numeric(10,2)", "NUMERIC(10, 2)", 0.1 + 0.2, "too_precise"),
    ("numeric(10,2)", "NUMERIC(10, 2)", 123456789.5, "numeric_overflow"),
    ("boolean", "BOOLEAN", "yes please", "not_boolean"),
    ("timestamp without time zone", "DATETIME", "2024-02-30 10:00:00", "unparseable_datetime"),
    ("timestamp without time zone", "DATETIME", "", "empty_string"),
    ("timestamp without time zone", "DATETIME", 1627303906122, "epoch_in_datetime"),
    (
        "timestamp without time zone",
        "DATETIME",
        "2024-01-01T10:00:00+09:00",
        "datetime_with_offset",
    ),
    ("timestamp without time zone", "DATETIME", "10/03/2024 14:00", "unparseable_datetime"),
    ("date", "DATE", "", "empty_string"),
    ("text", "TEXT", "서울 냉장".encode("cp949"), "invalid_utf8"),
    ("jsonb", "JSON", '{"k": "냉장"}'.encode("cp949"), "invalid_utf8"),
    ("date", "DATE", "2024-13-01", "unparseable_date"),
    ("time without time zone", "TIME", "25:00", "unparseable_time"),
    ("jsonb", "JSON", "{not json", "invalid_json"),
    ("jsonb", "JSON", '{"a": "\\u0000"}', "nul_character"),
    ("character varying(5)", "VARCHAR(5)", "한빛냉장주식", "too_long"),
    ("text", "TEXT", "a\x00b", "nul_character"),
    ("bytea", "BLOB", "text, not bytes", "wrong_type"),
]


@pytest.mark.parametrize(("pg_type", "declared", "value", "kind"), MISFITS)
def test_misfits_are_flagged_with_their_kind(pg_type, declared, value, kind) -> None:
    lite = sqlite3.connect(":memory:")
    register_functions(lite)
    lite.execute(f"CREATE TABLE t (v {declared})")
    if isinstance(value, bytes):  # text holding bytes that are not UTF-8, as legacy apps wrote
        lite.execute("INSERT INTO t VALUES (CAST(? AS TEXT))", [value])
    else:
        lite.execute("INSERT INTO t VALUES (?)", [value])
    found = {
        found_kind
        for found_kind, predicate in conversion_for(pg_type).checks('"v"', TargetType(pg_type))
        if lite.execute(
            f'SELECT count(*) FROM t WHERE "v" IS NOT NULL AND ({predicate})'
        ).fetchone()[0]
    }
    assert kind in found


@pytest.mark.parametrize(
    ("pg_type", "declared", "value"),
    [
        ("timestamp without time zone", "DATETIME", "2026-03-02 06:00:00.123456"),
        ("timestamp without time zone", "DATETIME", "2026-03-02T06:00:00"),
        ("timestamp without time zone", "DATETIME", "2026-03-02 06:00"),
        ("date", "DATE", "2024-02-29"),
        ("time without time zone", "TIME", "23:59:59.999999"),
        ("boolean", "BOOLEAN", "TRUE"),
    ],
)
def test_normal_forms_are_not_misfits(pg_type, declared, value) -> None:
    lite = sqlite3.connect(":memory:")
    register_functions(lite)
    lite.execute(f"CREATE TABLE t (v {declared})")
    lite.execute("INSERT INTO t VALUES (?)", [value])
    for kind, predicate in conversion_for(pg_type).checks('"v"', TargetType(pg_type)):
        sql = f'SELECT count(*) FROM t WHERE "v" IS NOT NULL AND ({predicate})'
        assert lite.execute(sql).fetchone()[0] == 0, kind


@pytest.mark.parametrize(
    ("pg_type", "left", "right"),
    [
        ("numeric(10,2)", 12.5, Decimal("12.50")),
        ("numeric(10,2)", 100, Decimal("100.00")),
        ("boolean", 1, True),
        ("boolean", "false", False),
        ("timestamp without time zone", "2026-03-02T06:00:00", datetime(2026, 3, 2, 6)),
        ("jsonb", '{"b": 1, "a": [1.50, "x"]}', '{"a": [1.5, "x"], "b": 1}'),
        ("double precision", 100.0, 100.0),
    ],
)
def test_canonical_form_agrees_across_engines(pg_type, left, right) -> None:
    canonical = conversion_for(pg_type).canonical
    assert canonical(left) == canonical(right)


@pytest.mark.parametrize(
    ("pg_type", "left", "right"),
    [
        ("numeric(10,2)", 12.5, Decimal("12.51")),
        ("jsonb", '{"a": 1}', '{"a": "1"}'),
        ("jsonb", '{"a": 1}', '{"a": 2}'),
        ("jsonb", '[1.5, {"k": -3}]', '[1.5, {"k": 3}]'),
        ("double precision", 0.1 + 0.2, 0.3),
        ("timestamp without time zone", "2026-03-02 06:00:00.000001", datetime(2026, 3, 2, 6)),
    ],
)
def test_canonical_form_tells_different_values_apart(pg_type, left, right) -> None:
    canonical = conversion_for(pg_type).canonical
    assert canonical(left) != canonical(right)
