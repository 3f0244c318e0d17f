"""Step 03 on a real server: values arrive exact through the binary COPY path, tables load in
parallel and in primary-key ranges, indexes and foreign keys are rebuilt after the data so the
catalog ends exactly as Alembic made it, and a crashed load can put them back."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from coldchain.sample import generate
from runbook.columns.conversions import conversion_for, register_functions
from runbook.columns.plan import ColumnPlan
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.source import decode_text
from runbook.core.target import Target, connect
from runbook.engine import loader
from runbook.steps import backup, schema, transfer

CATALOG = """
SELECT 'index', c.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'constraint ' || co.contype::text, cl.relname, co.conname,
       pg_get_constraintdef(co.oid) || ' valid=' || co.convalidated
       || ' deferrable=' || co.condeferrable
       || ' index=' || coalesce(co.conindid::regclass::text, '')
FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
WHERE co.connamespace = 'public'::regnamespace
UNION ALL
SELECT 'column', c.relname, a.attname,
       format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
       || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY 1, 2, 3
"""


def catalog(target: Target) -> list[tuple]:
    with connect(target) as conn:
        return conn.execute(CATALOG).fetchall()


@pytest.fixture
def prepared(tmp_path: Path, fresh_target: Target) -> tuple[RunFolder, Target, Path]:
    """Steps 01 and 02 done on a small sample: a run folder and the Alembic schema."""
    sample = tmp_path / "dispatch.db"
    generate(sample, scale=0.003, seed=11)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    backup.snapshot(sample, run)
    schema.prepare(run, fresh_target)
    return run, fresh_target, sample


def test_parallel_ranged_load_ends_with_exactly_the_alembic_catalog(
    prepared, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, target, sample = prepared
    before = catalog(target)
    monkeypatch.setattr(loader, "SPLIT_ROWS", 500)  # temperature_logs goes as key ranges
    handed: list[list[dict]] = []
    result = transfer.transfer(run, target, workers=3, after_load=handed.append)
    assert catalog(target) == before
    assert handed == [result["tables"]]  # what the notebook draws its load charts of, ahead

    lite = sqlite3.connect(sample)
    with connect(target) as conn:
        for entry in result["tables"]:
            name = entry["table"]
            count = lite.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            assert entry["rows"] == count
            assert conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] == count
            assert entry["format"] == "binary"
        invalid = conn.execute("SELECT conname FROM pg_constraint WHERE NOT convalidated")
        assert invalid.fetchall() == []
        top = conn.execute("SELECT max(id) FROM temperature_logs").fetchone()[0]
        new_id = conn.execute(
            "INSERT INTO temperature_logs (vehicle_id, recorded_at, temperature_c, door_open) "
            "SELECT min(id), now(), 1.5, false FROM vehicles RETURNING id"
        ).fetchone()[0]
        assert new_id > top
        conn.rollback()
    assert len(result["foreign_keys"]) == 17
    assert set(result["indexes"]) >= {"ix_orders_status", "users_username_key"}
    assert result["workers"] == 3
    assert transfer.summary(result).startswith(f"{sum(t['rows'] for t in result['tables'])} rows")


def test_key_ranges_reaching_the_largest_bigint_fit_the_ledger_and_cover_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random 64-bit keys reach both ends of bigint: the key ranges of a split table still end
    where the ledger's bigint can name them (the last one open above, so the largest key is
    loaded) and together select every row exactly once."""
    keys = [-(2**63), -(2**40), -5, 0, 7, 2**40, 2**62, 2**63 - 1]
    path = tmp_path / "keys.db"
    with sqlite3.connect(path) as lite:
        lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        lite.executemany("INSERT INTO t VALUES (?, 'x')", [(k,) for k in keys])
    lite.close()
    plans = [
        ColumnPlan("t", "id", "INTEGER", "bigint", False, "integer"),
        ColumnPlan("t", "v", "TEXT", "text", True, conversion_for("text").name),
    ]
    monkeypatch.setattr(loader, "SPLIT_ROWS", 3)
    table = loader.TableLoad("t", "t", plans, len(keys), "id")
    with sqlite3.connect(path) as lite:
        chunks = loader.split(lite, table, "", workers=2)
        assert len(chunks) >= 2
        assert all(-(2**63) <= end <= 2**63 - 1 for c in chunks for end in c.span)
        selected = [k for c in chunks for (k,) in lite.execute(f"SELECT id FROM t WHERE {c.where}")]
        again = [loader.range_chunk(table, "", *c.span, c.rows).where for c in chunks]
        assert again == [c.where for c in chunks]  # as a resumed load rebuilds them
    lite.close()
    assert sorted(selected) == keys


def test_dropped_definitions_are_recorded_and_a_crashed_load_is_restored(
    prepared, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, target, _ = prepared
    before = catalog(target)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash in the middle of the load")

    monkeypatch.setattr(loader, "chunk_job", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        transfer.transfer(run, target, workers=2)
    ledger = json.loads((run.path / "transfer.json").read_text())
    assert ledger["status"] == "loading"
    names = {i["name"] for i in ledger["dropped_indexes"]}
    assert {"ix_temperature_logs_vehicle_recorded", "users_email_key"} <= names
    assert len(ledger["dropped_foreign_keys"]) == 17
    assert catalog(target) != before  # the crash left the schema without them

    # a later run after the same crash restores them by itself, then loads normally
    with pytest.raises(RuntimeError):
        transfer.transfer(run, target, workers=2)
    monkeypatch.undo()
    result = transfer.transfer(run, target, workers=2)
    assert result["status"] == "complete"
    assert catalog(target) == before


def test_an_occupied_target_is_refused_before_anything_is_dropped(prepared) -> None:
    run, target, _ = prepared
    with connect(target) as conn:
        conn.execute(
            "INSERT INTO users (username, email, hashed_password, role, is_active, created_at) "
            "VALUES ('x', 'x@example.kr', 'x', 'viewer', true, now())"
        )
        conn.commit()
    before = catalog(target)
    with pytest.raises(RunbookError, match="hold rows this migration did not load"):
        transfer.transfer(run, target)
    assert catalog(target) == before


# --- exact values through the binary wire format ------------------------------------------------

EDGE_VALUES = {
    ("timestamp without time zone", "DATETIME"): [
        "2026-03-02 06:00:00.123456",
        "2026-03-02 06:00:00",
        "2026-03-02 06:00",
        "2026-03-02T06:00:00.5",
        "2026-03-02T06:00:00.123456",
        "2026-03-02T06:00",
        "1999-12-31 23:59:59.999999",
        "1969-07-20 20:17:40.1",
        "0001-01-01 00:00:00",
        "2024-02-29 12:00:00.000001",
    ],
    ("date", "DATE"): ["2026-03-02", "1999-12-31", "2000-01-01", "1900-03-01", "0001-01-01"],
    ("time without time zone", "TIME"): ["00:00", "23:59:59.999999", "08:30:00", "12:00:00.5"],
    ("boolean", "BOOLEAN"): [1, 0, "t", "F", "true", "FALSE", "1", "0"],
    ("double precision", "FLOAT"): [0.1, -0.0, 1e300, 5e-324, -273.15, 2.0**53 + 1, 1e-7, 3],
    ("integer", "INTEGER"): [0, -(2**31), 2**31 - 1, 42],
    ("bigint", "BIGINT"): [-(2**63), 2**63 - 1],
    ("smallint", "SMALLINT"): [-(2**15), 2**15 - 1],
    ("numeric(10,2)", "NUMERIC(10,2)"): [0.1, 12.3, 99999999.99, -0.01, 5, 0.0],
    ("jsonb", "JSON"): [
        '{"b": 1, "a": [1.50, 2e3, -0, 12345678901234567890], "é": "\\n\\t\\\\"}',
        "[]",
        '"text"',
        "3",
        "1.25",
        '{"bb": null, "a": true, "ccc": {"z": 0.1}}',
    ],
    ("character varying(40)", "VARCHAR(40)"): ["tab\there", "new\nline", "back\\slash", "", "서울"],
    ("text", "TEXT"): ["\r\n", "\\N", "N", "|", "1:x|2:y", "🧊 cold"],
    ("bytea", "BLOB"): [b"", b"\x00\x01\xff", b"\\x00"],
}


@pytest.mark.parametrize(("pg_type", "declared"), list(EDGE_VALUES), ids=lambda v: str(v))
def test_binary_copy_and_checksums_agree_for_edge_values(
    fresh_target: Target, tmp_path: Path, pg_type: str, declared: str
) -> None:
    from runbook.engine import checksums, shapes

    values = EDGE_VALUES[(pg_type, declared)] + [None]
    path = tmp_path / "edge.db"
    lite = sqlite3.connect(path)
    register_functions(lite)
    lite.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {declared})")
    lite.executemany("INSERT INTO t (id, v) VALUES (?, ?)", list(enumerate(values)))
    plans = [
        ColumnPlan("t", "id", "INTEGER", "integer", False, "integer"),
        ColumnPlan("t", "v", declared, pg_type, True, conversion_for(pg_type).name),
    ]
    assert loader.wire(plans[1]) is not None  # a plain column: binary COPY
    rule = plans[1].rule
    lite.text_factory = str
    with connect(fresh_target) as conn:
        conn.execute(f"CREATE TABLE t (id integer PRIMARY KEY, v {pg_type})")
        conn.commit()
        loader.register_dumpers(conn)
        table = loader.TableLoad("t", "t", plans, len(values), "id")
        assert table.binary
        job = loader.chunk_job(loader.Chunk(table, "", len(values)))
        loader.stream(lite, conn, job, lambda rows: None)
        back = dict(conn.execute(f"SELECT id, {rule.target_select('v')} FROM t"))
    lite.text_factory = decode_text
    for key, value in lite.execute("SELECT id, v FROM t"):
        if value is None:
            assert back[key] is None
        elif pg_type == "double precision":
            assert back[key] == value and math.copysign(1, back[key]) == math.copysign(1, value)
        else:
            assert rule.canonical(back[key]) == rule.canonical(value), (key, value, back[key])

    # the checksums of both engines agree on these values, and see a change of any one of them
    lite.commit()
    lite.close()
    shape = shapes.Shape("t", "t", plans, ("id",), True)
    assert not shape.row_mode
    source = checksums._source_sums(str(path), shape, "")
    assert checksums._target_sums(fresh_target, shape) == source
    with connect(fresh_target) as conn:
        conn.execute("UPDATE t SET v = (SELECT v FROM t WHERE id = 1) WHERE id = 0")
        conn.commit()
    assert checksums._target_sums(fresh_target, shape) != source
