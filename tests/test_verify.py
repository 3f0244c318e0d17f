"""Step 04 on a real server: the checksums computed by the two engines agree on a faithful copy,
and one changed value of any kind (a double by one ulp, a timestamp by a microsecond, a jsonb
number, a NULL), a missing row or a sequence set back makes the verdict FAIL, naming the row."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from coldchain.sample import generate
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.target import Target, connect
from runbook.engine import checksums, digest, shapes
from runbook.steps import backup, schema, transfer, verify


def migrate(tmp_path: Path, target: Target, scale: float) -> RunFolder:
    """Steps 01-03 of a sample of the given scale into the target: the run folder."""
    sample = tmp_path / "dispatch.db"
    generate(sample, scale=scale, seed=5)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    backup.snapshot(sample, run)
    schema.prepare(run, target)
    transfer.transfer(run, target, workers=2)
    return run


@pytest.fixture
def migrated(tmp_path: Path, fresh_target: Target) -> tuple[RunFolder, Target]:
    return migrate(tmp_path, fresh_target, 0.003), fresh_target


def test_a_faithful_copy_passes_with_every_table_checksummed_in_sql(migrated) -> None:
    run, target = migrated
    result = verify.verify(run, target, workers=2)
    assert result["verdict"] == "PASS", result["failures"]
    assert {t["mode"] for t in result["tables"]} == {"sql"}
    for table in result["tables"]:
        assert table["source_rows"] == table["target_rows"] > 0
        assert table["source_checksum"] == table["target_checksum"]
    assert verify.raise_on_fail(result).startswith("10 tables")


def test_one_changed_value_of_each_kind_fails_and_is_named(migrated) -> None:
    run, target = migrated
    with connect(target) as conn:
        log_id, temperature = conn.execute(
            "SELECT id, temperature_c FROM temperature_logs ORDER BY id LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE temperature_logs SET temperature_c = %s WHERE id = %s",
            [math.nextafter(temperature, math.inf), log_id],
        )
        humid_id = conn.execute(  # NULL in the source, 0 here: only the NULL flags tell
            "UPDATE temperature_logs SET humidity_pct = 0 "
            "WHERE id = (SELECT max(id) FROM temperature_logs WHERE humidity_pct IS NULL) "
            "RETURNING id"
        ).fetchone()[0]
        order_id = conn.execute(
            "UPDATE orders SET requested_delivery_at = requested_delivery_at + interval '1 us' "
            "WHERE id = (SELECT max(id) FROM orders) RETURNING id"
        ).fetchone()[0]
        event_id = conn.execute(
            "UPDATE audit_events SET payload = jsonb_set(payload, '{x}', '1.50') "
            "WHERE id = (SELECT min(id) FROM audit_events WHERE jsonb_typeof(payload) = 'object') "
            "RETURNING id"
        ).fetchone()[0]
        route_id = conn.execute(
            "UPDATE dispatch_routes SET arrived_at = NULL "
            "WHERE id = (SELECT min(id) FROM dispatch_routes WHERE arrived_at IS NOT NULL) "
            "RETURNING id"
        ).fetchone()[0]
        gone = conn.execute(
            "DELETE FROM temperature_alerts WHERE id = (SELECT max(id) FROM temperature_alerts) "
            "RETURNING id"
        ).fetchone()[0]
        conn.execute("SELECT setval('users_id_seq', 1)")
        conn.commit()
    result = verify.verify(run, target)
    assert result["verdict"] == "FAIL"
    text = "\n".join(result["failures"])
    assert f"temperature_logs {{'id': {log_id}}}: value differs column temperature_c" in text
    assert f"temperature_logs {{'id': {humid_id}}}: value differs column humidity_pct" in text
    assert f"orders {{'id': {order_id}}}: value differs column requested_delivery_at" in text
    assert f"audit_events {{'id': {event_id}}}: value differs column payload" in text
    assert f"dispatch_routes {{'id': {route_id}}}: value differs column arrived_at" in text
    assert f"temperature_alerts {{'id': {gone}}}: missing in target" in text
    assert "sequence of users.id" in text
    changed = {t["table"] for t in result["tables"] if t["source_checksum"] != t["target_checksum"]}
    assert changed == {
        "temperature_logs",
        "orders",
        "audit_events",
        "dispatch_routes",
        "temperature_alerts",
    }
    with pytest.raises(RunbookError, match="verification FAILED"):
        verify.raise_on_fail(result)


def test_an_order_the_server_does_not_promise_never_decides_a_difference(
    migrated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The faster server query takes its rows' order from a key-sorted subquery, which
    PostgreSQL does not promise. Given the reverse order, every segment differs at first: it is
    hashed again in the promised order and the copy passes (without that second look it would
    fail); a changed value still fails, named."""
    run, target = migrated
    monkeypatch.setattr(checksums, "PRESORTED_AGGREGATES", 10**9)  # the faster query everywhere
    segment_sql = shapes.Shape.target_segment_sql

    def reversed_order(self, where: str = "", *, ordered: bool = True) -> tuple[str, str]:
        next_key, segment = segment_sql(self, where, ordered=ordered)
        return next_key, segment if ordered else segment.replace(") AS keyed", " DESC) AS keyed")

    monkeypatch.setattr(shapes.Shape, "target_segment_sql", reversed_order)
    assert verify.verify(run, target)["verdict"] == "PASS"
    with monkeypatch.context() as without:
        without.setattr(checksums, "_ordered_again", lambda *args: None)
        failed = verify.verify(run, target)
    assert failed["verdict"] == "FAIL"
    assert "temperature_logs: content checksum differs" in failed["failures"]
    with connect(target) as conn:
        log_id = conn.execute(
            "UPDATE temperature_logs SET sensor_id = sensor_id || 'x' "
            "WHERE id = (SELECT max(id) FROM temperature_logs WHERE sensor_id IS NOT NULL) "
            "RETURNING id"
        ).fetchone()[0]
    result = verify.verify(run, target)
    assert result["verdict"] == "FAIL"
    assert result["failures"] == [
        "temperature_logs: content checksum differs",
        f"temperature_logs {{'id': {log_id}}}: value differs column sensor_id",
    ]


JSON_DOCUMENTS = [
    '{"b": 1, "a": 2, "ccc": 3, "dd": {"zz": [], "y": {}}}',
    '{"n": [1.50, 2e3, -0, 0.0, 1E-7, 12345678901234567890, -1.0e+2, 0.1]}',
    '{"é": "\\u00e9\\n\\t\\"\\\\/\\u001f", "한글": "서울", "a b": null}',
    '{"dup": 1, "dup": 2}',
    # one shape again and again (its key order is looked up, not sorted, after the first), the
    # same keys in another order, and a repeated key among them
    '[{"sku": 1, "qty": 2, "lot": 3}, {"sku": 4, "qty": 5, "lot": 6},'
    ' {"lot": 7, "qty": 8, "sku": 9}, {"sku": 1, "qty": 2, "sku": 3}, {"ab": 1, "b": 2},'
    ' {"b": 1, "ab": 2}]',
    '[true, false, null, "", [], {}]',
    '"plain"',
    "7",
    "-2.5e-3",
    # as json.dumps writes floats: shortest repr, but in exponent form or as a negative zero
    '{"small": 1e-05, "big": 1e+16, "x": 0.5}',
    "[1e-07]",
    '{"t": -0.0}',
    # blanks around the value (the decoder's path) and none (json's C scanner and encoder alone)
    ' {"b": [1, 2], "a": "x"}\n',
    '\t[{"k": 1}, {"kk": 2, "j": 3}]  ',
    '[{"name":"\\ud50c\\ub808\\uc778","qty":112,"lot":"L2510"},{"origin":"\\uad6d\\uc0b0"}]',
]


@pytest.mark.parametrize("document", JSON_DOCUMENTS)
def test_jsonb_text_in_python_is_what_postgresql_prints(
    fresh_target: Target, document: str
) -> None:
    with connect(fresh_target) as conn:
        printed = conn.execute("SELECT %s::jsonb::text", [document]).fetchone()[0]
    assert digest.jsonb_text(document) == printed


def test_bare_json_numbers_stored_as_numbers(fresh_target: Target) -> None:
    with connect(fresh_target) as conn:
        for value in (0.1, 3, -2.5, 1e-7, 100.0):
            literal = repr(value) if isinstance(value, float) else str(value)
            printed = conn.execute("SELECT %s::jsonb::text", [literal]).fetchone()[0]
            assert digest.jsonb_text(value) == printed


PG_TYPES = {"INTEGER PRIMARY KEY": "bigint PRIMARY KEY", "TEXT": "text", "FLOAT": "float8"}


def table_on_both(path: Path, target: Target, rows: list[tuple], columns: str) -> None:
    """Table t with the same rows in a new SQLite file and in the target (`columns` as SQLite
    declares them; the target's types follow PG_TYPES)."""
    import sqlite3

    pg_columns = ", ".join(
        f"{name} {PG_TYPES[declared]}"
        for name, declared in (c.strip().split(" ", 1) for c in columns.split(","))
    )
    with sqlite3.connect(path) as lite:
        lite.execute(f"CREATE TABLE t ({columns})")
        lite.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    lite.close()
    with connect(target) as conn:
        conn.execute(f"CREATE TABLE t ({pg_columns})")
        with conn.cursor().copy("COPY t FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


EXTREME_KEYS = [
    -(2**63),
    -20_000,
    -19_999,
    -10_000,
    -9_999,
    -1,
    0,
    1,
    9_999,
    10_000,
    19_999,
    10**12,
    2**63 - 1,
]


def test_segments_cover_negative_sparse_and_extreme_keys(
    fresh_target: Target, tmp_path: Path
) -> None:
    """The source is read segment by segment (the next key present, then its segment's rows):
    keys at both ends of bigint, around zero and with huge gaps land in the same segments on
    both engines, and a change in any one row is seen, a NULL double turned 0 included."""

    from runbook.columns.conversions import conversion_for
    from runbook.columns.plan import ColumnPlan

    path = tmp_path / "keys.db"
    rows = [(k, f"v{k}", None if k == 0 else k / 3) for k in EXTREME_KEYS]
    table_on_both(path, fresh_target, rows, "id INTEGER PRIMARY KEY, v TEXT, d FLOAT")
    plans = [
        ColumnPlan("t", "id", "INTEGER", "bigint", False, conversion_for("bigint").name),
        ColumnPlan("t", "v", "TEXT", "text", True, conversion_for("text").name),
        ColumnPlan("t", "d", "FLOAT", "double precision", True, "double precision"),
    ]
    shape = shapes.Shape("t", "t", plans, ("id",), True)
    source = checksums._source_sums(str(path), shape, "")
    assert sorted(source) == sorted({digest.segment_of(k) for k in EXTREME_KEYS})
    assert sum(count for count, _ in source.values()) == len(EXTREME_KEYS)
    assert checksums._target_sums(fresh_target, shape) == source
    for key in (-(2**63), -9_999, 2**63 - 1):
        with connect(fresh_target) as conn:
            conn.execute("UPDATE t SET v = v || 'x' WHERE id = %s", [key])
        changed = checksums._target_sums(fresh_target, shape)
        assert [s for s in source if source[s] != changed[s]] == [digest.segment_of(key)]
        with connect(fresh_target) as conn:
            conn.execute("UPDATE t SET v = left(v, -1) WHERE id = %s", [key])
    with connect(fresh_target) as conn:  # NULL in the source, 0 here: only the NULL flag tells
        conn.execute("UPDATE t SET d = 0 WHERE id = 0")
    changed = checksums._target_sums(fresh_target, shape)
    assert [s for s in source if source[s] != changed[s]] == [0]


def test_sparse_keys_make_segments_and_key_ranges_of_rows_not_of_keys(
    fresh_target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys an epoch in milliseconds apart (as some applications key their rows): a segment is
    as wide as the keys are sparse, so 20,000 rows over 2e10 keys are a few segments and key
    ranges, not one segment per row (two queries each on both engines) nor a key range per
    10,000 keys, and a changed row is still found and named."""
    from runbook.columns.conversions import conversion_for
    from runbook.columns.plan import ColumnPlan
    from runbook.engine import differences

    path = tmp_path / "sparse.db"
    keys = [1_700_000_000_000 + i * 1_000_003 for i in range(20_000)]
    table_on_both(
        path, fresh_target, [(k, f"v{k}") for k in keys], "id INTEGER PRIMARY KEY, v TEXT"
    )
    plans = [
        ColumnPlan("t", "id", "INTEGER", "bigint", False, conversion_for("bigint").name),
        ColumnPlan("t", "v", "TEXT", "text", True, conversion_for("text").name),
    ]
    found, extents = checksums.shapes_of(str(path), {"t": plans}, {})  # rows counted
    shape = found["t"]
    assert extents["t"] == (20_000, keys[0], keys[-1])
    source = checksums._source_sums(str(path), shape, "")
    assert 2 <= len(source) <= 4  # segments of about SEGMENT rows
    assert checksums._target_sums(fresh_target, shape) == source
    monkeypatch.setattr(checksums, "SPLIT_COST", 5_000)  # 8 pieces by cost
    parts = checksums._parts(found, extents, {"t": ""}, {})
    assert 2 <= len(parts) <= 8
    in_ranges: dict[int, list[int]] = {}
    for part in parts:
        in_ranges.update(checksums._source_sums(str(path), shape, part.source_where, part.start))
    assert in_ranges == source
    below_zero = checksums._parts(found, {"t": (20_000, -(10**7), -1)}, {"t": ""}, {})
    assert [(p.source_where, p.start) for p in below_zero] == [("", digest.INT64_MIN)]
    with connect(fresh_target) as conn:
        conn.execute("UPDATE t SET v = 'changed' WHERE id = %s", [keys[12_345]])
    changed = checksums._target_sums(fresh_target, shape)
    assert [s for s in source if source[s] != changed[s]] == [
        digest.segment_of(keys[12_345], shape.width)
    ]
    named = differences.compare(str(path), fresh_target, shape, "", source, changed)
    assert [d["pk"] for d in named["differences"]] == [{"id": keys[12_345]}]


def test_a_key_range_is_walked_from_its_own_first_key(
    fresh_target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large table is checksummed as key ranges in parallel, each walked from its own lowest
    key on both engines: the ranges together give the whole table's sums, and the last range
    costs SQLite no more steps than the first (walked from the lowest integer, SQLite read
    every row before its range to find the first key)."""

    from runbook.columns.conversions import conversion_for
    from runbook.columns.plan import ColumnPlan
    from runbook.core import source

    path = tmp_path / "ranges.db"
    rows = [(k, f"v{k}") for k in range(50_000)]
    table_on_both(path, fresh_target, rows, "id INTEGER PRIMARY KEY, v TEXT")
    plans = [
        ColumnPlan("t", "id", "INTEGER", "bigint", False, conversion_for("bigint").name),
        ColumnPlan("t", "v", "TEXT", "text", True, conversion_for("text").name),
    ]
    shape = shapes.Shape("t", "t", plans, ("id",), True)
    steps: list[int] = []
    open_fast = source.open_readonly_fast

    def counted(*args, **kwargs):
        conn = open_fast(*args, **kwargs)
        steps.append(0)

        def step() -> bool:
            steps[-1] += 1
            return False

        conn.set_progress_handler(step, 100)
        return conn

    monkeypatch.setattr(source, "open_readonly_fast", counted)
    whole = checksums._source_sums(str(path), shape, "")
    assert whole == checksums._target_sums(fresh_target, shape)
    steps.clear()
    source_ranges: dict[int, list[int]] = {}
    target_ranges: dict[int, list[int]] = {}
    for low in range(0, 50_000, 10_000):
        where = f'"id" >= {low} AND "id" < {low + 10_000}'
        source_ranges.update(checksums._source_sums(str(path), shape, where, low))
        target_ranges.update(checksums._target_sums(fresh_target, shape, where, low))
    assert source_ranges == whole == target_ranges
    assert len(steps) == 5 and steps[-1] < 1.2 * steps[0], steps


def test_verify_walks_each_key_range_from_its_lower_bound(
    tmp_path: Path, one_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = migrate(tmp_path, one_target, 0.04)
    monkeypatch.setattr(checksums, "SPLIT_COST", 20_000)  # temperature_logs in ranges of a segment
    jobs: list[tuple[str, int]] = []
    source_job = checksums._source_job

    def spied(backup_path: str, shape, where: str, start: int = digest.INT64_MIN):
        if shape.table == "temperature_logs":
            jobs.append((where, start))
        return source_job(backup_path, shape, where, start)

    monkeypatch.setattr(checksums, "_source_job", spied)
    assert verify.verify(run, one_target)["verdict"] == "PASS"
    assert len(jobs) >= 3
    for where, start in jobs:
        bound = where.split('"id" >= ')[1].split(" ")[0].rstrip(")") if ">=" in where else None
        assert start == (int(bound) if bound else digest.INT64_MIN), (where, start)


def test_both_engines_are_read_at_the_same_time(migrated, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's checksum queries do not wait for a free thread behind the source's
    processes, nor the source behind them: here every server query waits until the source has
    delivered a result, which only ends when both sides run at the same time."""
    import threading

    run, target = migrated
    source_delivered = threading.Event()
    in_processes, target_sums = checksums.in_processes, checksums._target_sums

    def source_side(jobs, workers, setup, arguments, work, done):
        def delivered(key, result):
            source_delivered.set()
            done(key, result)

        return in_processes(jobs, workers, setup, arguments, work, delivered)

    def server_side(*args, **kwargs):
        assert source_delivered.wait(timeout=60), "the source side had not started"
        return target_sums(*args, **kwargs)

    monkeypatch.setattr(checksums, "in_processes", source_side)
    monkeypatch.setattr(checksums, "_target_sums", server_side)
    assert verify.verify(run, target, workers=2)["verdict"] == "PASS"
