"""Reflect mode: a PostgreSQL schema from any SQLite file — types by declaration and data,
identifiers that never collide, defaults translated, what cannot be translated reported."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runbook.columns import reflect
from runbook.columns.inference import choose_type, declared_type, target_names, translate_default
from runbook.core.errors import RunbookError
from runbook.core.target import Target, connect
from runbook.engine import ddl


@pytest.mark.parametrize(
    ("declared", "pg_type"),
    [
        ("INTEGER", "bigint"),
        ("int(5)", "bigint"),
        ("intege", "bigint"),
        ("number", "numeric"),
        ("DOUBLE", "double precision"),
        ("REAL", "double precision"),
        ("FLOAT", "double precision"),
        ("NUMERIC(10,2)", "numeric(10,2)"),
        ("NVARCHAR(160)", "character varying(160)"),
        ("CHAR(128)", "character varying(128)"),
        ("TEXT", "text"),
        ("DATETIME", "timestamp without time zone"),
        ("TIMESTAMP", "timestamp without time zone"),
        ("DATE", "date"),
        ("BOOLEAN", "boolean"),
        ("JSON", "jsonb"),
        ("YEAR", "integer"),
        ("LONG", "bigint"),
        ("BLOB", "bytea"),
        ("TINYINT UNSIGNED", "bigint"),
    ],
)
def test_declared_types_map_by_the_conversion_table(declared: str, pg_type: str) -> None:
    assert declared_type(declared) == pg_type


def test_a_declared_type_that_lies_gets_the_type_its_data_needs() -> None:
    pg_type, why, conversion = choose_type("INTEGER", {"integer": 2, "text": 1})
    assert (pg_type, conversion) == ("text", "text-from-any")
    assert "declared INTEGER but the data holds" in why
    assert choose_type("INTEGER", {"integer": 5, "null": 2})[0] == "bigint"
    assert choose_type("", {"blob": 3})[0] == "bytea"
    assert choose_type("YEAR", {"integer": 3, "text": 1})[0] == "text"


def test_names_are_lower_cased_unless_that_collides_and_never_longer_than_63_bytes() -> None:
    names = target_names(["Album", "userId", "userid", "x" * 70 + "a", "x" * 70 + "b"])
    assert names["Album"] == "album"
    assert (names["userId"], names["userid"]) == ("userId", "userid")
    long_a, long_b = names["x" * 70 + "a"], names["x" * 70 + "b"]
    assert long_a != long_b and len(long_a.encode()) <= 63 and len(long_b.encode()) <= 63
    korean = target_names(["냉장" * 20])["냉장" * 20]
    assert len(korean.encode()) <= 63 and korean.encode().decode() == korean


@pytest.mark.parametrize(
    ("default", "pg_type", "expected"),
    [
        ("CURRENT_TIMESTAMP", "timestamp without time zone", "(now() AT TIME ZONE 'UTC')"),
        ("datetime('now')", "timestamp without time zone", "(now() AT TIME ZONE 'UTC')"),
        ("(datetime('now', 'localtime'))", "timestamp without time zone", "LOCALTIMESTAMP"),
        ("0", "boolean", "false"),
        ("'FROZEN'", "text", "'FROZEN'"),
        ("12.5", "numeric", "12.5"),
    ],
)
def test_sqlite_defaults_are_translated(default: str, pg_type: str, expected: str) -> None:
    assert translate_default(default, pg_type)[0] == expected


def test_an_unknown_default_is_reported_not_copied() -> None:
    default, note = translate_default("(random() % 10)", "bigint")
    assert default is None and "not translated" in note


SCHEMA = """
CREATE TABLE "Depot" (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                      opened DATETIME DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE stock (depot_id INTEGER NOT NULL REFERENCES "Depot"(id) ON DELETE CASCADE,
                    sku TEXT NOT NULL, qty INTEGER, "Ämter" TEXT, "ämter" TEXT,
                    status TEXT, PRIMARY KEY (depot_id, sku));
CREATE TABLE readings (celsius REAL, note TEXT);
CREATE INDEX stock_open ON stock (sku) WHERE status = 'open';
CREATE INDEX stock_expr ON stock (lower(sku));
CREATE UNIQUE INDEX depot_name ON "Depot" (name);
"""


def test_the_reflected_schema_is_created_with_keys_indexes_and_objects(
    fresh_target: Target, tmp_path: Path
) -> None:
    path = tmp_path / "any.db"
    with sqlite3.connect(path) as lite:
        lite.executescript(SCHEMA)
    result = reflect.plan(str(path))
    with connect(fresh_target) as conn:
        made = ddl.create(conn, result["objects"])
        conn.commit()
    lines = {(o["kind"], o["name"]): o for o in made}
    assert "expression index" in lines[("index", "stock_expr")]["why"]
    assert lines[("index", "stock_expr")]["outcome"] == "listed"
    with connect(fresh_target) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables == {"depot", "stock", "readings"}
        columns = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'stock'"
            ).fetchall()
        )
        # SQLite folds only ASCII case, so these two are distinct there and would collide lowered
        assert {"Ämter", "ämter", "depot_id", "sku", "qty", "status"} <= set(columns)
        indexes = {r[0]: r[1] for r in conn.execute("SELECT indexname, indexdef FROM pg_indexes")}
        partial = indexes["stock_open"]  # named once: it starts with its table's name already
        assert "WHERE (status = 'open'::text)" in partial
        assert not any("stock_expr" in n for n in indexes)
        assert "depot_name" in indexes
        fk = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'"
        ).fetchone()[0]
        assert "REFERENCES depot(id) ON DELETE CASCADE" in fk
        default = conn.execute(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'depot' AND column_name = 'opened'"
        ).fetchone()[0]
        assert "now()" in default
        conn.execute("INSERT INTO depot (name) VALUES ('서울 1센터')")  # identity on the id
    with connect(fresh_target) as conn, pytest.raises(RunbookError, match="already exists"):
        ddl.create(conn, reflect.plan(str(path))["objects"])


def test_a_declared_blob_holding_only_nulls_stays_bytea() -> None:
    assert choose_type("BLOB", {"null": 4}) == ("bytea", "declared BLOB", None)
    assert choose_type("", {"null": 4})[1] == "no declared type; the data holds no values"
    assert choose_type("BLOB", {"text": 2})[0] == "text"  # the data decides where it is text


def test_index_names_are_prefixed_with_their_table_once(tmp_path: Path) -> None:
    path = tmp_path / "places.db"
    with sqlite3.connect(path) as lite:
        lite.executescript(
            "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT, frecency INTEGER);"
            "CREATE INDEX moz_places_urlindex ON moz_places (url);"
            "CREATE INDEX frecencyindex ON moz_places (frecency);"
        )
    ddl_text = " ".join(s for o in reflect.plan(str(path))["objects"] for s in o.get("ddl", []))
    assert '"moz_places_urlindex"' in ddl_text and "moz_places_moz_places" not in ddl_text
    assert '"moz_places_frecencyindex"' in ddl_text
