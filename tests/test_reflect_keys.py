"""Reflect mode on tables SQLite keys in other ways than by an integer rowid: WITHOUT ROWID
tables (identified by their primary key), tables without a primary key, FTS virtual tables
(their documents migrated, their shadow tables never), and foreign-key groups whose columns
hold mixed types. Each database is built here; every row lands in the target or in the reject
ledger, and a stop in step 02 leaves the target exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fingerprint import fingerprint
from reflect_runs import accounted, build, ledger, migrate, objects, prepared

from runbook.core.errors import RunbookError
from runbook.core.target import Target, connect
from runbook.engine import checksums, loader
from runbook.engine.ledger import LEDGER_TABLES
from runbook.engine.preflight import require_clean
from runbook.steps import transfer, verify

ROWLESS = """
CREATE TABLE region (code TEXT PRIMARY KEY, name TEXT NOT NULL, founded DATETIME) WITHOUT ROWID;
CREATE TABLE cell (x INTEGER, y INTEGER, label TEXT, PRIMARY KEY (x, y)) WITHOUT ROWID;
CREATE TABLE reading (id INTEGER PRIMARY KEY, celsius REAL) WITHOUT ROWID;
CREATE TABLE site (id INTEGER PRIMARY KEY, region TEXT REFERENCES region (code));
CREATE TABLE link (region TEXT NOT NULL REFERENCES region (code), site INTEGER NOT NULL,
                   PRIMARY KEY (region, site)) WITHOUT ROWID;
CREATE TABLE log (message TEXT, at DATETIME);
CREATE TABLE cell_note (x INTEGER, y INTEGER, note TEXT, FOREIGN KEY (x, y) REFERENCES cell);
INSERT INTO cell_note VALUES (1, 2, 'kept'), (5, 5, 'orphan');
INSERT INTO region VALUES ('KR', 'Korea', '2020-01-01 00:00:00'), ('XX', 'broken', 'soon'),
                          ('JP', 'Japan', NULL);
INSERT INTO cell VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 1, 'it''s');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO reading SELECT i * 7, i / 4.0 FROM n;
INSERT INTO site VALUES (1, 'KR'), (2, 'XX'), (3, 'JP');
INSERT INTO link VALUES ('KR', 1), ('XX', 2), ('ZZ', 9);
INSERT INTO log VALUES ('start', '2020-01-01 00:00:00'), ('bad', 'yesterday'),
                       ('start', '2020-01-01 00:00:00');
"""
REJECTED = {  # (table, primary key): kind
    ("region", '{"code": "XX"}'): "unparseable_datetime",
    ("site", '{"id": 2}'): "depends_on_rejected",
    ("link", '{"region": "XX", "site": 2}'): "depends_on_rejected",
    ("link", '{"region": "ZZ", "site": 9}'): "orphan_foreign_key",
    ("log", '{"rowid": 2}'): "unparseable_datetime",
    ("cell_note", '{"rowid": 2}'): "orphan_foreign_key",
}


def _rejected(folder: Path) -> dict[tuple[str, str], str]:
    return {(e["table"], json.dumps(e["pk"], sort_keys=True)): e["kind"] for e in ledger(folder)}


def test_without_rowid_tables_and_a_table_without_key_migrate_in_key_ranges(
    fresh_target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "SPLIT_ROWS", 100)  # reading loads as key ranges,
    monkeypatch.setattr(checksums, "SPLIT_COST", 200)  # and is checksummed as key ranges
    source = build(tmp_path / "rowless.db", ROWLESS)
    result = migrate(source, fresh_target, tmp_path / "run")
    accounted(tmp_path / "run", result)
    assert _rejected(tmp_path / "run") == REJECTED
    ranges = json.loads((tmp_path / "run" / "transfer.json").read_text())["ranges"]
    assert len([r for r in ranges if r["table"] == "reading"]) > 1
    with connect(fresh_target) as conn:
        assert conn.execute("SELECT label FROM cell WHERE x = 2").fetchone() == ("it's",)
        assert conn.execute("SELECT count(*), max(id) FROM reading").fetchone() == (500, 3500)
        keys = conn.execute("SELECT code FROM region ORDER BY code").fetchall()
        assert keys == [("JP",), ("KR",)]


def test_an_interrupted_load_of_a_without_rowid_table_resumes_from_its_key_ranges(
    fresh_target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "SPLIT_ROWS", 100)
    source = build(tmp_path / "rowless.db", ROWLESS)
    run = prepared(source, fresh_target, tmp_path / "run")
    transfer.transfer(run, fresh_target, "reject", workers=2)
    with connect(fresh_target) as conn:  # as a crash leaves it: one range neither loaded nor done
        sha = run.read("backup")["sha256"]
        start, end = conn.execute(
            "SELECT range_start, range_end FROM runbook_ranges "
            "WHERE table_name = 'reading' ORDER BY range_start OFFSET 1 LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM reading WHERE id >= %s AND id < %s", [start, end])
        conn.execute(
            "UPDATE runbook_ranges SET status = 'planned' "
            "WHERE table_name = 'reading' AND range_start = %s",
            [start],
        )
        conn.execute("UPDATE runbook_loads SET status = 'loading' WHERE backup_sha256 = %s", [sha])
        conn.commit()
    again = transfer.transfer(run, fresh_target, "reject", workers=2)
    assert again["attempt"] == 2
    accounted(run.path, verify.verify(run, fresh_target, workers=2))


FTS = """
CREATE VIRTUAL TABLE notes USING fts5(title, body);
INSERT INTO notes (rowid, title, body) VALUES (10, 'cold chain', 'keep it cold'),
                                             (20, 'dispatch', NULL);
CREATE TABLE doc (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
INSERT INTO doc VALUES (1, 'alpha beta'), (2, 'gamma');
CREATE VIRTUAL TABLE doc_search USING fts5(body, content='doc', content_rowid='id');
INSERT INTO doc_search (doc_search) VALUES ('rebuild');
CREATE VIRTUAL TABLE old_search USING fts4(subject);
INSERT INTO old_search (docid, subject) VALUES (5, 'an fts4 row');
"""
SHADOWS = {
    "notes_data", "notes_idx", "notes_content", "notes_docsize", "notes_config",
    "doc_search_data", "doc_search_idx", "doc_search_docsize", "doc_search_config",
    "old_search_content", "old_search_segments", "old_search_segdir", "old_search_docsize",
    "old_search_stat",
}  # fmt: skip


def test_fts_tables_migrate_their_documents_and_never_their_shadow_tables(
    fresh_target: Target, tmp_path: Path
) -> None:
    source = build(tmp_path / "fts.db", FTS)
    folder = tmp_path / "run"
    result = migrate(source, fresh_target, folder)
    accounted(folder, result)
    found = objects(folder)
    for shadow in SHADOWS:
        assert found[("shadow table", shadow)]["outcome"] == "listed"
    assert found[("virtual table", "notes")]["outcome"] == "translated"
    listed = [found[("full-text index", name)] for name in ("notes", "doc_search", "old_search")]
    assert all(o["outcome"] == "listed" and "to_tsvector" in o["why"] for o in listed)
    with connect(fresh_target) as conn:
        tables = {
            r
            for (r,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables - set(LEDGER_TABLES) == {"notes", "doc", "old_search"}
        rows = conn.execute("SELECT rowid, title, body FROM notes ORDER BY rowid").fetchall()
        assert rows == [(10, "cold chain", "keep it cold"), (20, "dispatch", None)]
        assert conn.execute("SELECT rowid, subject FROM old_search").fetchall() == [
            (5, "an fts4 row")
        ]
        for index in listed:  # the advice works when followed
            conn.execute(index["suggestion"])
        hits = conn.execute(
            "SELECT id FROM doc WHERE to_tsvector('simple', body) @@ to_tsquery('simple', 'gamma')"
        ).fetchall()
        assert hits == [(2,)]


KEY_GROUP = """
CREATE TABLE zone (code INTEGER_OR_TEXT PRIMARY KEY, name TEXT);
INSERT INTO zone VALUES (9001, 'north'), (9002, 'south'), ('X-1', 'lab'), (12.5, 'odd');
CREATE TABLE area (id INTEGER PRIMARY KEY, zone_code INTEGER NOT NULL UNIQUE
                   REFERENCES zone (code));
INSERT INTO area VALUES (1, 9001), (2, 9002);
CREATE TABLE bin (id INTEGER PRIMARY KEY, area_zone INTEGER REFERENCES area (zone_code));
INSERT INTO bin VALUES (1, 9001), (2, NULL);
CREATE TABLE kind (id INTEGER PRIMARY KEY);
CREATE TABLE thing (id INTEGER PRIMARY KEY, kind_id INTEGER REFERENCES kind (id));
INSERT INTO kind VALUES (1); INSERT INTO thing VALUES (1, 1);
"""


def test_columns_joined_by_foreign_keys_get_one_type_from_all_their_data(
    fresh_target: Target, tmp_path: Path
) -> None:
    source = build(tmp_path / "group.db", KEY_GROUP)
    folder = tmp_path / "run"
    accounted(folder, migrate(source, fresh_target, folder))
    reflected = json.loads((folder / "schema.json").read_text())["reflected"]
    types = {(t["name"], c["name"]): c for t in reflected["tables"] for c in t["columns"]}
    for key in [("zone", "code"), ("area", "zone_code"), ("bin", "area_zone")]:
        assert types[key]["pg_type"] == "text", types[key]
        assert "foreign-key group" in types[key]["why"]
    assert types[("thing", "kind_id")]["pg_type"] == types[("kind", "id")]["pg_type"] == "bigint"
    with connect(fresh_target) as conn:
        codes = conn.execute("SELECT code FROM zone ORDER BY name").fetchall()
        assert codes == [("X-1",), ("9001",), ("12.5",), ("9002",)]
        joined = conn.execute(
            "SELECT zone.name FROM bin JOIN area ON bin.area_zone = area.zone_code "
            "JOIN zone ON zone.code = area.zone_code"
        ).fetchall()
        assert joined == [("north",)]
        valid = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated "
            "AND connamespace = 'public'::regnamespace AND conname NOT LIKE 'runbook\\_%'"
        ).fetchone()[0]
        assert valid == 3


def test_a_stop_in_step_02_leaves_the_target_exactly_as_it_was(
    fresh_target: Target, tmp_path: Path
) -> None:
    source = build(tmp_path / "rowless.db", ROWLESS)
    before = fingerprint(fresh_target)
    run = prepared(source, fresh_target, tmp_path / "run", on_bad_rows="stop")
    assert fingerprint(fresh_target) == before
    schema = run.read("schema")
    assert schema["written"] is False
    with pytest.raises(RunbookError, match="nothing was written"):
        require_clean(schema["preflight"], "stop")
    with pytest.raises(RunbookError, match="step 02 stopped") as stopped:
        transfer.transfer(run, fresh_target, "reject", workers=2)
    assert "on_bad_rows" in stopped.value.fix
    assert fingerprint(fresh_target) == before


SEQUENCES = """
CREATE TABLE ticket (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT);
INSERT INTO ticket (note) VALUES ('gone'); DELETE FROM ticket;
CREATE TABLE batch (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT);
INSERT INTO batch VALUES (10, 'gone'); DELETE FROM batch; INSERT INTO batch VALUES (5, 'kept');
CREATE TABLE plain (id INTEGER PRIMARY KEY, note TEXT);
INSERT INTO plain VALUES (3, 'kept');
"""


def test_autoincrement_sequences_never_hand_out_an_id_sqlite_handed_out(
    fresh_target: Target, tmp_path: Path
) -> None:
    source = build(tmp_path / "seq.db", SEQUENCES)
    folder = tmp_path / "run"
    result = migrate(source, fresh_target, folder)
    accounted(folder, result)
    assert all(s["ok"] for s in result["sequences"])
    with connect(fresh_target) as conn:
        ids = [
            conn.execute(f"INSERT INTO {t} (note) VALUES ('new') RETURNING id").fetchone()[0]
            for t in ("ticket", "batch", "plain")
        ]
    assert ids == [2, 11, 4]
    found = objects(folder)
    assert "sqlite_sequence" in found[("sequence", "ticket.id")]["why"]


MISMATCH = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT);
CREATE TABLE child (id INTEGER PRIMARY KEY, code TEXT REFERENCES parent (code));
INSERT INTO parent VALUES (1, 'a'); INSERT INTO child VALUES (1, 'a'), (2, 'b');
"""


def test_a_foreign_key_to_columns_that_are_no_key_is_listed_not_a_crash(
    fresh_target: Target, tmp_path: Path
) -> None:
    """SQLite cannot check such a key ("foreign key mismatch"), nor can PostgreSQL make it."""
    folder = tmp_path / "run"
    accounted(folder, migrate(build(tmp_path / "mismatch.db", MISMATCH), fresh_target, folder))
    line = objects(folder)[("foreign key", "child_code_fkey")]
    assert line["outcome"] == "listed" and "no unique constraint" in line["why"]
