"""Every real SQLite database in shared/data/sqlite-samples migrates in reflect mode and verifies,
with its misfit rows in the reject ledger and accounted for (source = target + rejected), and
every schema object of Sakila and of the Django application either in PostgreSQL or listed in
step 02 with why (Sakila's views run on both engines, its triggers' suggestions work when
applied; Django's deferrable foreign keys stay deferrable, its CHECK holds, its sequences never
hand out an id SQLite handed out)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from conftest import SHARED
from reflect_runs import accounted, ledger, migrate, objects

from runbook.core.target import Target, connect
from runbook.record.reference import fresh_database

SAMPLES = [
    "Chinook_Sqlite.sqlite",
    "Chinook_Sqlite_AutoIncrementPKs.sqlite",
    "storage.sqlite",
    "test_pk.db",
    "bad-utf8.db",
    "type-mismatch.db",
    "collision.db",
]
FOLDER = SHARED / "data" / "sqlite-samples"


@pytest.mark.parametrize("name", SAMPLES)
def test_a_sample_database_migrates_and_verifies_in_reflect_mode(
    shared_dir: Path, fresh_target: Target, tmp_path: Path, name: str
) -> None:
    source = shared_dir / "data" / "sqlite-samples" / name
    result = migrate(source, fresh_target, tmp_path / "run")
    accounted(tmp_path / "run", result)
    lines = ledger(tmp_path / "run")
    if name == "bad-utf8.db":  # the one value that is not text goes to the ledger, whole
        assert len(lines) == 1
        entry = lines[0]
        assert entry["table"] == "files" and entry["kind"] == "wrong_type"
        assert "blob_base64" in json.dumps(entry["row"])
    else:
        assert lines == []


def _migrated(name: str, tmp_path_factory: pytest.TempPathFactory):
    """One reflect-mode migration of a real database for the whole module (it takes seconds)."""
    if not (FOLDER / name).is_file():
        pytest.skip(f"{name} is absent: the shared/data/sqlite-samples folder is not beside it")
    folder = tmp_path_factory.mktemp(name.split(".")[0]) / "run"
    with fresh_database() as target:
        yield target, folder, migrate(FOLDER / name, target, folder)


@pytest.fixture(scope="module")
def sakila(tmp_path_factory):
    yield from _migrated("sakila.db", tmp_path_factory)


@pytest.fixture(scope="module")
def django(tmp_path_factory):
    yield from _migrated("django-local-library.db", tmp_path_factory)


def _every_object_has_a_line(name: str, folder: Path) -> dict:
    found = objects(folder)
    with closing(sqlite3.connect(FOLDER / name)) as lite:
        entries = set(lite.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    assert {n for (n,) in entries} <= {n for _, n in found}
    return found


def test_sakila_migrates_with_every_object_accounted_for(sakila) -> None:
    target, folder, result = sakila
    accounted(folder, result)
    assert ledger(folder) == []
    found = _every_object_has_a_line("sakila.db", folder)
    views = {n: o for (k, n), o in found.items() if k == "view"}
    translated = {n for n, o in views.items() if o["outcome"] == "translated"}
    assert translated == {"film_list", "staff_list", "sales_by_film_category", "actor_info"}
    assert "if(" in views["customer_list"]["why"] and "ucase" in views[
        "nicer_but_slower_film_list"]["why"]  # fmt: skip
    assert "GROUP BY" in views["sales_by_store"]["why"]
    compared = {v["view"]: v for v in result["views"]}
    assert set(compared) == translated and all(v["ok"] for v in compared.values())
    assert (
        compared["sales_by_film_category"]["source_rows"]
        == 16
        == (compared["sales_by_film_category"]["target_rows"])
    )
    columns = json.loads((folder / "schema.json").read_text())["columns"]
    types = {(c["table"], c["column"]): c["target_type"] for c in columns}
    assert types[("staff", "picture")] == "bytea"  # a BLOB holding only NULLs
    assert types[("film", "release_year")] == "integer"  # YEAR
    with connect(target) as conn:
        updates = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confupdtype = 'c' "
            "AND connamespace = 'public'::regnamespace"
        ).fetchone()[0]
    assert updates == 22  # every foreign key keeps ON UPDATE CASCADE


def test_sakilas_triggers_work_in_postgresql_as_suggested(sakila) -> None:
    target, folder, _ = sakila
    triggers = {n: o for (k, n), o in objects(folder).items() if k == "trigger"}
    assert set(triggers) == {"ins_film", "upd_film", "del_film"}
    with connect(target) as conn:  # applied, used, and rolled back: the module's target stays
        for trigger in triggers.values():
            assert trigger["outcome"] == "listed" and trigger["sql"].startswith("CREATE TRIGGER")
            conn.execute(trigger["suggestion"])
        film = conn.execute(
            "INSERT INTO film (title, description, language_id, last_update) "
            "VALUES ('RUNBOOK', 'a migration', 1, now()) RETURNING film_id"
        ).fetchone()[0]
        assert film == 1001  # after sqlite_sequence's 1000
        conn.execute("UPDATE film SET title = 'RUNBOOK II' WHERE film_id = %s", [film])
        text = conn.execute("SELECT title FROM film_text WHERE film_id = %s", [film]).fetchone()
        assert text == ("RUNBOOK II",)
        conn.execute("DELETE FROM film WHERE film_id = %s", [film])
        gone = conn.execute("SELECT count(*) FROM film_text WHERE film_id = %s", [film])
        assert gone.fetchone()[0] == 0
        conn.rollback()


def test_django_keeps_its_deferrable_keys_checks_and_sequences(django) -> None:
    target, folder, result = django
    accounted(folder, result)
    found = _every_object_has_a_line("django-local-library.db", folder)
    assert found[("check", "django_admin_log_action_flag_check")]["outcome"] == "translated"
    with closing(sqlite3.connect(FOLDER / "django-local-library.db")) as lite:
        expected = {
            table: max(seq, top or 0) + 1
            for table, seq, top in [
                (t, s, lite.execute(f'SELECT max(id) FROM "{t}"').fetchone()[0])
                for t, s in lite.execute("SELECT name, seq FROM sqlite_sequence")
            ]
        }
    handed_out = {s["table"]: s["next_value"] for s in result["sequences"]}
    assert {t: handed_out[t] for t in expected} == expected
    assert expected["auth_user"] == 5  # sqlite_sequence says 4 were handed out, 1 row is left
    with connect(target) as conn:
        deferred = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND condeferrable "
            "AND condeferred AND connamespace = 'public'::regnamespace"
        ).fetchone()[0]
        assert deferred == 16
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "UPDATE django_admin_log SET action_flag = -1 WHERE id = "
                "(SELECT min(id) FROM django_admin_log)"
            )
