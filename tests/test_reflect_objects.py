"""Reflect mode accounts for every schema object of a SQLite file: views (translated and run on
both engines, or listed with PostgreSQL's reason), triggers (listed with a PL/pgSQL suggestion
that works when applied), CHECK constraints (translated and enforced, rows that break them found
by the preflight), COLLATE NOCASE (an ICU collation where the server has ICU, else listed),
deferrable foreign keys (deferrable after the load rebuilt them), defaults (translated, or
listed when PostgreSQL refuses them). Each database is built here."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from reflect_runs import accounted, build, ledger, migrate, objects, prepared

from runbook.columns import reflect
from runbook.core.errors import RunbookError
from runbook.core.target import Target, connect
from runbook.engine.preflight import require_clean
from runbook.steps import schema

VIEWS = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, "Kind" TEXT);
INSERT INTO item VALUES (1, 'ice', 2.5, 'cold'), (2, 'box', 12.0, 'dry'), (3, NULL, 4.0, 'cold');
CREATE VIEW cheap AS SELECT id, name FROM item WHERE price < 10;
CREATE VIEW "Kinds" AS SELECT "Kind", count(*) AS n FROM [item] GROUP BY `Kind`;
CREATE VIEW labels AS SELECT id, ifnull(name, '?') || ' #' || id AS label FROM item;
CREATE VIEW names AS SELECT group_concat(name, '; ') AS all_names FROM item WHERE id == 1;
CREATE VIEW cheap_again AS SELECT * FROM cheap WHERE id > 1;
CREATE VIEW this_year AS SELECT id, strftime('%Y', 'now') AS year FROM item;
CREATE TABLE batch (id INTEGER PRIMARY KEY, made DATETIME);
INSERT INTO batch VALUES (1, '2020-01-01 00:00:00'), (2, 'never');
CREATE VIEW batches AS SELECT id FROM batch;
"""


def test_views_are_translated_and_run_on_both_engines_or_listed_with_the_reason(
    fresh_target: Target, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    result = migrate(build(tmp_path / "views.db", VIEWS), fresh_target, folder)
    accounted(folder, result)
    found = objects(folder)
    translated = {"cheap", "Kinds", "labels", "names", "cheap_again", "batches"}
    assert {n for (k, n), o in found.items() if k == "view" and o["outcome"] == "translated"} == (
        translated
    )
    assert "strftime" in found[("view", "this_year")]["why"]
    assert found[("view", "this_year")]["sql"].startswith("CREATE VIEW this_year")
    compared = {v["view"]: v for v in result["views"]}
    assert set(compared) == translated
    rejected = compared.pop("batches")  # batch 2 is in the ledger: SQLite's count is not PG's
    assert rejected["ok"] and rejected["target_rows"] == 1 and "rejected" in rejected["note"]
    assert all(v["ok"] and v["source_rows"] == v["target_rows"] for v in compared.values())
    with connect(fresh_target) as conn:
        assert conn.execute("SELECT * FROM kinds ORDER BY 1").fetchall() == [
            ("cold", 2),
            ("dry", 1),
        ]
        assert conn.execute("SELECT label FROM labels WHERE id = 3").fetchone() == ("? #3",)
        assert conn.execute("SELECT all_names FROM names").fetchone() == ("ice",)


TRIGGERS = """
CREATE TABLE film (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
CREATE TABLE film_text (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
CREATE TRIGGER `ins_film` AFTER INSERT ON `film` FOR EACH ROW BEGIN
    INSERT INTO film_text (id, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER upd_film AFTER UPDATE ON film WHEN old.title != new.title BEGIN
    UPDATE film_text SET title = new.title WHERE id = old.id;
END;
CREATE TRIGGER keep_film BEFORE DELETE ON film BEGIN SELECT RAISE(ABORT, 'films stay'); END;
CREATE TRIGGER named_film BEFORE INSERT ON film
BEGIN SELECT RAISE(ABORT, 'a title, please') WHERE new.title = ''; END;
INSERT INTO film VALUES (1, 'Alien');
"""


def test_triggers_are_listed_with_a_plpgsql_suggestion_that_works(
    fresh_target: Target, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    accounted(folder, migrate(build(tmp_path / "trg.db", TRIGGERS), fresh_target, folder))
    found = objects(folder)
    triggers = {n: o for (k, n), o in found.items() if k == "trigger"}
    assert set(triggers) == {"ins_film", "upd_film", "keep_film", "named_film"}
    assert all(o["outcome"] == "listed" and o["sql"].startswith("CREATE TRIGGER") for o in
               triggers.values())  # fmt: skip
    with connect(fresh_target) as conn:
        for trigger in triggers.values():
            conn.execute(trigger["suggestion"])
        conn.execute("INSERT INTO film VALUES (2, 'Heat')")
        conn.execute("UPDATE film SET title = 'Ronin' WHERE id = 2")
        assert conn.execute("SELECT title FROM film_text WHERE id = 2").fetchone() == ("Ronin",)
        with pytest.raises(psycopg.errors.RaiseException, match="films stay"), conn.transaction():
            conn.execute("DELETE FROM film WHERE id = 1")
        with pytest.raises(psycopg.errors.RaiseException, match="a title, please"):
            conn.execute("INSERT INTO film VALUES (3, '')")


CHECKS = """
CREATE TABLE ticket (
  id INTEGER PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
  qty INTEGER CONSTRAINT qty_positive CHECK (qty > 0),
  kind TEXT CHECK (kind IS NULL OR typeof(kind) = 'text'),
  CHECK (length(status) < 10)
);
INSERT INTO ticket VALUES (1, 'open', 2, 'a'), (2, 'closed', NULL, NULL);
PRAGMA ignore_check_constraints = 1;
INSERT INTO ticket VALUES (3, 'bogus', 1, 'b');
"""


def test_check_constraints_are_translated_enforced_and_checked_by_the_preflight(
    fresh_target: Target, tmp_path: Path
) -> None:
    source = build(tmp_path / "checks.db", CHECKS)
    stopped = prepared(source, fresh_target, tmp_path / "stop", on_bad_rows="stop")
    with pytest.raises(RunbookError, match="check_violation"):
        require_clean(stopped.read("schema")["preflight"], "stop")
    folder = tmp_path / "run"
    accounted(folder, migrate(source, fresh_target, folder))
    assert [(e["pk"], e["kind"]) for e in ledger(folder)] == [({"id": 3}, "check_violation")]
    found = objects(folder)
    checks = {n: o for (k, n), o in found.items() if k == "check"}
    assert {n for n, o in checks.items() if o["outcome"] == "translated"} == {
        "ticket_status_check",
        "qty_positive",
        "ticket_check",
    }
    assert "typeof" in checks["ticket_kind_check"]["why"]
    with connect(fresh_target) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO ticket (id, status) VALUES (9, 'bogus')")
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO ticket (id, status, qty) VALUES (9, 'open', 0)")


NOCASE = """
CREATE TABLE crs (id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE,
                  code VARCHAR(10) NOT NULL COLLATE NOCASE UNIQUE);
INSERT INTO crs VALUES (1, 'WGS 84', 'EPSG'), (2, 'wgs 84', 'esri'), (3, 'Wgs 84', 'IGNF'),
                       (4, 'NAD83', 'other');
CREATE VIEW wgs AS SELECT id FROM crs WHERE name = 'wgs 84';
"""


def test_nocase_columns_compare_without_case_where_the_server_can(
    password_target: Target, tmp_path: Path
) -> None:
    """Run by a role that owns the database but is no superuser: ICU collations are what such a
    role can create; a server without ICU gets the columns listed, and verify names the view
    whose results then differ."""
    folder = tmp_path / "run"
    result = migrate(build(tmp_path / "nocase.db", NOCASE), password_target, folder)
    found = objects(folder)
    with connect(password_target) as conn:
        matches = conn.execute("SELECT count(*) FROM crs WHERE name = 'wgs 84'").fetchone()[0]
        try:  # what this role can do on this server, asked directly
            conn.execute(
                "CREATE COLLATION probe (provider = icu, locale = 'und-u-ks-level2', "
                "deterministic = false)"
            )
            icu = True
        except psycopg.Error:
            icu = False
        conn.rollback()
    for column in ("crs.name", "crs.code"):
        line = found[("collation", column)]
        if icu:
            assert line["outcome"] == "translated" and "ICU" in line["why"]
        else:
            assert line["outcome"] == "listed" and "ICU" in line["why"]
    if icu:
        assert matches == 3
        accounted(folder, result)
        with connect(password_target) as conn, pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO crs VALUES (5, 'x', 'epsg')")
    else:
        assert matches == 1
        assert result["verdict"] == "FAIL"
        assert any("view wgs" in f and "3" in f and "1" in f for f in result["failures"])


DEFERRABLE = """
CREATE TABLE "author" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
                       "name" varchar(100) NOT NULL);
CREATE TABLE "book" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "author_id" bigint NULL REFERENCES "author" ("id") DEFERRABLE INITIALLY DEFERRED,
    "editor_id" integer NULL REFERENCES "author" ("id"),
    "co_id" integer NULL, CONSTRAINT co FOREIGN KEY (co_id) REFERENCES author (id)
        DEFERRABLE INITIALLY IMMEDIATE);
INSERT INTO author VALUES (1, 'Le Guin'); INSERT INTO book VALUES (1, 1, 1, 1);
"""


def test_deferrable_foreign_keys_stay_deferrable_after_the_load(
    fresh_target: Target, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    accounted(folder, migrate(build(tmp_path / "dfr.db", DEFERRABLE), fresh_target, folder))
    with connect(fresh_target) as conn:
        timing = {
            column: (deferrable, deferred)
            for column, deferrable, deferred in conn.execute(
                "SELECT a.attname, co.condeferrable, co.condeferred FROM pg_constraint co "
                "JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = co.conkey[1] "
                "WHERE co.contype = 'f' AND co.connamespace = 'public'::regnamespace "
                "AND co.conname NOT LIKE 'runbook\\_%'"
            )
        }
        assert timing == {
            "author_id": (True, True),
            "editor_id": (False, False),
            "co_id": (True, False),
        }
        conn.execute("INSERT INTO book (id, author_id) VALUES (2, 7)")  # the parent comes later
        conn.execute("INSERT INTO author VALUES (7, 'Vinge')")
        conn.commit()


DEFAULTS = """
CREATE TABLE job (id INTEGER PRIMARY KEY, started DATETIME DEFAULT 0,
    created DATETIME DEFAULT CURRENT_TIMESTAMP, tries INTEGER DEFAULT 'none',
    state TEXT DEFAULT 'new', ratio REAL DEFAULT (1.0 / 3), flag BOOLEAN DEFAULT 1,
    picture BLOB, kind TEXT, twice INTEGER GENERATED ALWAYS AS (tries * 2) STORED,
    loud TEXT AS (upper(state)));
INSERT INTO job (id, started, created, tries, kind) VALUES (1, '2020-01-01 10:00:00',
    '2020-01-01 10:00:00', 3, 'a');
CREATE INDEX moz_places_frecency ON job (tries);
CREATE INDEX job_state ON job (state);
CREATE INDEX job_twice ON job (twice);
"""


def test_defaults_postgresql_refuses_are_listed_and_the_rest_translated(
    fresh_target: Target, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    accounted(folder, migrate(build(tmp_path / "dflt.db", DEFAULTS), fresh_target, folder))
    found = objects(folder)
    assert found[("default", "job.started")]["outcome"] == "listed"
    assert "0" in found[("default", "job.started")]["why"]
    assert found[("default", "job.tries")]["outcome"] == "listed"
    assert found[("default", "job.ratio")]["outcome"] == "listed"
    assert found[("default", "job.created")]["outcome"] == "translated"
    with connect(fresh_target) as conn:
        conn.execute("INSERT INTO job (id, picture) VALUES (2, %s)", [b"\x00\xff"])
        row = conn.execute("SELECT state, flag, created IS NOT NULL, started FROM job WHERE id = 2")
        assert row.fetchone() == ("new", True, True, None)
        computed = conn.execute("SELECT twice, loud FROM job ORDER BY id").fetchall()
        assert computed == [(6, "NEW"), (None, "NEW")]  # by PostgreSQL, from the copied columns
        indexes = {r for (r,) in conn.execute("SELECT indexname FROM pg_indexes")}
        assert {"job_state", "job_moz_places_frecency", "job_twice"} <= indexes
    assert found[("generated column", "job.twice")]["outcome"] == "translated"
    columns = json.loads((folder / "schema.json").read_text())["reflected"]["tables"][0]["columns"]
    picture = next(c for c in columns if c["name"] == "picture")
    assert (picture["pg_type"], picture["why"]) == ("bytea", "declared BLOB")


def test_every_sqlite_schema_object_has_a_line_in_step_02(tmp_path: Path) -> None:
    """Nothing is left out without a line: each table, index, view and trigger of the file
    (SQLite's own autoindexes and sqlite_sequence aside) is named in the objects table."""
    source = build(tmp_path / "all.db", VIEWS + TRIGGERS.replace("film", "movie") + DEFAULTS)
    planned = reflect.plan(str(source))
    named = {o["name"] for o in planned["objects"]}
    import sqlite3

    with sqlite3.connect(source) as lite:
        entries = {
            name
            for (name,) in lite.execute(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        }
    assert entries <= named


ORDERS = """
CREATE TABLE "Orders" ("OrderID" INTEGER PRIMARY KEY, "OrderDate" DATETIME,
                       "ShippedDate" DATETIME);
INSERT INTO "Orders" VALUES (10248, '2016-07-04', '2016-07-16'), (10249, '2016-07-05', 'soon'),
                            (10250, '2016-07-08', '2016-07-12 09:00:00');
"""


def test_date_only_values_stop_with_the_rule_that_loads_them_as_midnight(
    fresh_target: Target, tmp_path: Path
) -> None:
    source = build(tmp_path / "orders.db", ORDERS)
    stopped = prepared(source, fresh_target, tmp_path / "stop", on_bad_rows="stop")
    preflight = stopped.read("schema")["preflight"]
    kinds = {(s["column"], s["kind"]): s["count"] for s in preflight["summary"]}
    assert kinds == {
        ("OrderDate", "date_in_datetime"): 3,
        ("ShippedDate", "date_in_datetime"): 1,
        ("ShippedDate", "unparseable_datetime"): 1,
    }
    with pytest.raises(RunbookError) as error:
        require_clean(preflight, "stop")
    assert "--rule Orders.OrderDate=date-as-midnight" in error.value.fix
    assert "ShippedDate=" not in error.value.fix  # its misfits are not all of that kind
    folder = tmp_path / "run"
    rules = {"Orders.OrderDate": ["date-as-midnight"], "Orders.ShippedDate": ["date-as-midnight"]}
    result = migrate(source, fresh_target, folder, column_rules=rules)
    accounted(folder, result)
    assert [(e["pk"], e["kind"]) for e in ledger(folder)] == [
        ({"OrderID": 10249}, "unparseable_datetime")
    ]
    columns = json.loads((folder / "schema.json").read_text())["columns"]
    assert {c["conversion"] for c in columns if c["column"].endswith("Date")} == {
        "iso-datetime+date-as-midnight"
    }
    with connect(fresh_target) as conn:
        rows = conn.execute("SELECT orderdate, shippeddate FROM orders ORDER BY 1").fetchall()
    assert [(str(a), str(b)) for a, b in rows] == [
        ("2016-07-04 00:00:00", "2016-07-16 00:00:00"),
        ("2016-07-08 00:00:00", "2016-07-12 09:00:00"),
    ]


def test_step_02_run_again_reads_what_the_target_holds(
    fresh_target: Target, tmp_path: Path
) -> None:
    """A re-run of step 02 on the same backup (a resumed migration) makes nothing again: each
    object's line says what the target holds, and one dropped since is listed."""
    source = build(tmp_path / "again.db", VIEWS + CHECKS.split("PRAGMA")[0] + DEFERRABLE)
    run = prepared(source, fresh_target, tmp_path / "run")
    first = {(o["kind"], o["name"]): o for o in run.read("schema")["reflected"]["objects"]}
    with connect(fresh_target) as conn:
        conn.execute("DROP VIEW cheap_again")
        conn.commit()
    again = schema.prepare(run, fresh_target, None, "reflect", on_bad_rows="reject")
    lines = {(o["kind"], o["name"]): o for o in again["reflected"]["objects"]}
    assert lines.keys() == first.keys()
    assert lines[("view", "cheap_again")]["outcome"] == "listed"
    assert "not in the target" in lines[("view", "cheap_again")]["why"]
    del lines[("view", "cheap_again")], first[("view", "cheap_again")]
    assert {k: o["outcome"] for k, o in lines.items()} == {
        k: o["outcome"] for k, o in first.items()
    }
