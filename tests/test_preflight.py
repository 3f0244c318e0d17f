"""The preflight finds every misfit, orphan and dependent row before anything is written; the
stop policy names them; the reject ledger keeps each rejected row exactly recoverable."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from dirty_source import CORRUPTIONS, make_dirty_source

from runbook.columns.plan import ColumnPlan
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.source import decode_text
from runbook.core.target import Target
from runbook.engine.preflight import require_clean, scan
from runbook.engine.rejects import read_ledger, write_ledger
from runbook.steps.schema import column_map


@pytest.fixture
def dirty(tmp_path: Path) -> tuple[Path, dict[str, set[int]]]:
    path = tmp_path / "dirty.db"
    return path, make_dirty_source(path)


@pytest.fixture
def plans(dirty, fresh_target: Target) -> list[ColumnPlan]:
    from runbook.steps.schema import upgrade

    upgrade(fresh_target)
    return column_map(str(dirty[0]), fresh_target)


def rejected_ids(result: dict) -> dict[str, set[int]]:
    return {table: {row[0] for row in rows} for table, rows in result["rejected"].items()}


def test_every_kind_is_found_with_table_key_and_column(dirty, plans) -> None:
    path, expected = dirty
    result = scan(str(path), plans)
    kinds = {(f["table"], f["column"], f["kind"]) for f in result["findings"]}
    for table, column, _, kind in CORRUPTIONS:
        assert (table, column, kind) in kinds
    assert all(set(f["pk"]) == {"id"} for f in result["findings"])
    # exactly the misfit rows and the rows that depend on them, no more
    assert rejected_ids(result) == expected
    assert result["rows"] == sum(len(ids) for ids in expected.values())
    assert any(f["kind"] == "depends_on_rejected" for f in result["findings"])


def test_the_stop_policy_names_the_first_misfits_and_the_count(dirty, plans) -> None:
    result = scan(str(dirty[0]), plans)
    with pytest.raises(RunbookError) as error:
        require_clean(result)
    message = str(error.value)
    first = result["findings"][0]
    assert f"{first['table']} {first['pk']} column {first['column']}" in message
    assert f"{result['total']} problems in {result['rows']} source rows" in message
    assert 'on_bad_rows="reject"' in message
    require_clean(result, "reject")  # the reject policy lets the run go on


def test_the_ledger_holds_every_rejected_row_exactly(dirty, plans, tmp_path: Path) -> None:
    path, expected = dirty
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    path.rename(run.backup_path)
    result = scan(str(run.backup_path), plans)
    counts = write_ledger(run, result)
    assert counts == {table: len(ids) for table, ids in expected.items()}
    entries = read_ledger(run.path / "rejects.jsonl")
    lite = sqlite3.connect(run.backup_path)
    lite.text_factory = decode_text
    for entry in entries:
        columns = list(entry["row"])
        original = lite.execute(
            f"SELECT {', '.join(columns)} FROM {entry['table']} WHERE id = ?", [entry["pk"]["id"]]
        ).fetchone()
        assert tuple(entry["row"].values()) == original  # types and bytes included
        assert entry["reason"] and entry["kind"] and entry["column"]
    invalid = next(e for e in entries if e["kind"] == "invalid_utf8")
    assert (
        invalid["row"]["name"].encode("utf-8", "surrogateescape").decode("cp949") == "(주)한빛냉장"
    )


def test_a_clean_database_has_no_findings(fresh_target: Target, tmp_path: Path) -> None:
    from coldchain.sample import generate
    from runbook.steps.schema import upgrade

    path = tmp_path / "clean.db"
    generate(path, scale=0.002, seed=3)
    upgrade(fresh_target)
    plans = column_map(str(path), fresh_target)
    result = scan(str(path), plans)
    assert result["total"] == 0 and result["rejected"] == {}
    # what the scan cost is recorded per table, and for the foreign keys
    assert set(result["seconds"]) == {p.table for p in plans} | {"(foreign keys)"}


# values at the edges of what a conversion's `fits` gate accepts: each must either fail the gate
# or pass every check, so the gate never hides a misfit (but text's UTF-8 and NUL, which the scan
# checks per row, gated or not: the test of text that is not UTF-8 or holds NUL below)
GATED = {
    "timestamp without time zone": [
        "2025-01-01 10:00:00",
        "2025-01-01T10:00:00",
        "2025-01-01 10:00:00.123456",
        "2025-02-28 23:59:59",
        "2025-02-29 10:00:00",
        "2024-02-29 10:00:00",
        "2025-02-30 10:00:00",
        "2025-04-30 10:00:00",
        "2025-04-31 10:00:00",
        "2025-12-31 10:00:00",
        "2025-11-31 10:00:00",
        "2025-13-01 10:00:00",
        "2025-00-10 10:00:00",
        "2025-01-00 10:00:00",
        "2025-01-01 24:00:00",
        "2025-01-01 10:60:00",
        "2025-01-01 10:00:60",
        "2025-01-01 10:00:00+09:00",
        "2025-01-01 10:00:00Z",
        "2025-01-01 10:00:00+00:00",
        "2025-01-01 10:00:00 +00:00",
        "2025-01-01 10:00:00.5Z",
        "2025-01-01 10:00:00.5 ",
        "2025-01-01 10:00:00 ",
        "2025-01-01 10:00:00.",
        "2025-01-01 10:00:00.12345",
        "2025-01-01 10:00:00.1234567",
        "2025-01-01 10:00:00.12345Z",
        "2025-01-01 10:00:00.5+0000",
        "2025-01-01 10:00:00.1234 5",
        "2025-01-01 10:00:00.12345 ",
        "2025-02-30 10:00:00.123456",
        "0000-01-01 00:00:00.123456",
        "2025-01-01 10:00",
        "2025-01-01",
        "0000-01-01 00:00:00",
        "",
        " 2025-01-01 10:00:00",
        "2025-01-01 10:00:00\x00junk",
        1735725600,
        1.5,
        b"2025-01-01 10:00:00",
        None,
    ],
    "integer": [0, -(2**31), 2**31 - 1, 2**31, -(2**31) - 1, 1.0, "1", "", b"\x01", None],
    "bigint": [2**63 - 1, -(2**63), 1.5, "7", None],
    "double precision": [0, 1.5, -1e308, 9e999, -9e999, "1.5", "inf", "", b"\x00", b"", None],
    "boolean": [0, 1, 2, -1, 0.5, "0", "1", "t", "true", "yes", "", b"\x01", None],
    "date": [
        "2025-01-01",
        "2024-02-29",
        "2025-02-29",
        "2025-04-31",
        "2025-13-01",
        "2025-1-01",
        "2025-01-01 ",
        "2025-01-01T00:00",
        "0000-01-01",
        "",
        "2025-01-01\x00x",
        20250101,
        1.5,
        b"2025-01-01",
        None,
    ],
    "time without time zone": [
        "10:00:00",
        "23:59:59",
        "24:00:00",
        "23:60:00",
        "23:59:60",
        "10:00",
        "10:00:00.5",
        "1:00:00",
        "",
        "10:00:00\x00",
        1000,
        None,
    ],
    "character varying(5)": [
        "abcde",
        "abcdef",
        "한글",
        "한글한글한",
        "한글한글한글",
        "a\x00b",
        "\x7f\x01",
        "",
        5,
        1.5,
        b"abc",
        None,
    ],
    "text": ["plain", "한국어", "a\x00", "", 7, 2.5, b"\xc3\x28", None],
    "jsonb": [
        '{"a": 1}',
        "[1, 2]",
        '{"a": "\\u0000"}',
        '{"a": "\\U0000"}',
        '{"a": "한"}',
        "not json",
        "",
        '{"a": 1}\x00x',
        5,
        1.5,
        b"{}",
        None,
    ],
}
# bytes that are not UTF-8, stored as TEXT (SQLite keeps them): each type gets them too
NOT_UTF8 = ["c328", "ff", "80", "41e282", "eab0", "c0af", "4180"]


@pytest.mark.parametrize("affinity", ["", "TEXT", "REAL"])  # the column's declared type
@pytest.mark.parametrize("target_type", sorted(GATED))
def test_a_value_the_gate_accepts_passes_every_check(target_type: str, affinity: str) -> None:
    from runbook.columns.conversions import conversion_for, register_functions
    from runbook.columns.types import TargetType

    rule, kind = conversion_for(target_type), TargetType(target_type)
    assert rule.fits is not None
    conn = sqlite3.connect(":memory:")
    conn.text_factory = bytes  # the gate lets text that is not UTF-8 by (the row check's)
    register_functions(conn)
    conn.execute(f"CREATE TABLE t (v {affinity})")
    conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in GATED[target_type]])
    conn.executemany(
        "INSERT INTO t VALUES (CAST(? AS TEXT))", [(bytes.fromhex(h),) for h in NOT_UTF8]
    )
    from runbook.engine.values import _ROW_CHECKS

    row_checked = {check("v") for check in _ROW_CHECKS.values()}  # made per row, not gated
    misfit = " OR ".join(f"({sql})" for _, sql in rule.checks("v", kind) if sql not in row_checked)
    accepted = conn.execute(
        f"SELECT v, coalesce(v IS NOT NULL AND ({misfit}), 0) FROM t WHERE {rule.fits('v', kind)}"
    ).fetchall()
    assert accepted or affinity, "the gate accepts the common spelling (as SQLAlchemy stores it)"
    assert [v for v, failed in accepted if failed] == []


@pytest.mark.parametrize("chunk_bytes", [4 << 20, 1])  # one chunk; chunks of 16 rows
@pytest.mark.parametrize("fine_text", ["줄", "줄" * 800])  # short rows; 2.4 kB of Korean a row
def test_text_that_is_not_utf8_or_holds_nul_is_found_beside_text_that_is_fine(
    tmp_path, monkeypatch, chunk_bytes, fine_text
) -> None:
    from runbook.engine import values

    monkeypatch.setattr(values, "TEXT_CHUNK_BYTES", chunk_bytes)
    from runbook.columns.conversions import conversion_for
    from runbook.columns.plan import ColumnPlan

    path = tmp_path / "texts.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, j TEXT)")
    rows = [
        (1, "plain", "한국어", '{"k": "값"}'),
        (2, bytes.fromhex("c328"), "ok", None),  # a lead byte before ASCII: length() sees 2
        (3, "ok", bytes.fromhex("e282"), "[1]"),  # a character cut short at the end
        (4, bytes.fromhex("e2"), bytes.fromhex("82ac"), "{}"),  # halves of one character
        (5, "x", None, bytes.fromhex("5b2280225d")),  # a stray continuation byte in JSON
        (6, 7, 2.5, 3),  # numbers: not text, not checked as text
        (7, "a\x00b", "한\x00", '{"k": "\\u0000"}'),  # NUL in text; an escaped one in JSON
    ]
    conn.executemany("INSERT INTO t VALUES (?, CAST(? AS TEXT), CAST(? AS TEXT), ?)", rows[:5])
    conn.execute("UPDATE t SET j = CAST(j AS TEXT) WHERE id = 5")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows[5:])
    fine = [(8 + i, f"row {i}", fine_text, "[]") for i in range(60)]  # chunks without a problem
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", fine)
    conn.commit()
    conn.close()

    def plan(column: str, pg_type: str) -> ColumnPlan:
        return ColumnPlan("t", column, "TEXT", pg_type, True, conversion_for(pg_type).name)

    plans = [plan("id", "integer"), plan("a", "text"), plan("b", "text"), plan("j", "jsonb")]
    found = {(f["pk"]["id"], f["column"], f["kind"]) for f in scan(str(path), plans)["findings"]}
    utf8 = {(pk, column) for pk, column, kind in found if kind == "invalid_utf8"}
    assert utf8 == {(2, "a"), (3, "b"), (4, "a"), (4, "b"), (5, "j")}
    nul = {(pk, column) for pk, column, kind in found if kind == "nul_character"}
    assert nul == {(7, "a"), (7, "b"), (7, "j")}


def test_sparse_rowids_make_no_more_ranges_or_chunks_than_rows(tmp_path, monkeypatch) -> None:
    """Rowids far apart (an epoch in milliseconds, or random 64-bit keys, as some applications
    key their rows) are cut by rows, not by their span: 200 rows over 2e11 rowids are one range,
    read in chunks of 16 rows (the chunk size here), not one chunk a row, and the misfit in the
    last row is found."""
    from runbook.columns.conversions import conversion_for, register_functions
    from runbook.core import source as sqlite_source
    from runbook.engine import scanners, values

    monkeypatch.setattr(values, "TEXT_CHUNK_BYTES", 1)  # chunks of 16 rows, the least
    path = tmp_path / "sparse.db"
    ids = [1_700_000_000_000 + i * 1_000_000_007 for i in range(200)]
    with closing(sqlite3.connect(path)) as lite:
        lite.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        rows = [(key, f"note {key}") for key in ids[:-1]] + [(ids[-1], "last\x00")]
        lite.executemany("INSERT INTO notes VALUES (?, ?)", rows)
        lite.commit()
    plans = [
        ColumnPlan("notes", "id", "INTEGER", "bigint", False, conversion_for("bigint").name),
        ColumnPlan("notes", "body", "TEXT", "text", True, conversion_for("text").name),
    ]
    table = sqlite_source.tables_of(path)["notes"]
    with closing(sqlite3.connect(path)) as conn:
        register_functions(conn)
        assert scanners._ranges(conn, table, None) == [(200, (ids[0], ids[-1]))]
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        found = values.Recorded()
        only = f"rowid BETWEEN {ids[0]} AND {ids[-1]}"
        values.scan_values(conn, table, plans, found, only, (ids[0], ids[-1]))
    chunk_queries = [sql for sql in statements if "group_concat(CASE WHEN" in sql]
    assert 200 / 16 <= len(chunk_queries) <= 200 / 16 + 2
    assert [(f[0], f[2], f[3], f[4]) for f in found] == [
        ("notes", {"id": ids[-1]}, "body", "nul_character")
    ]
    whole = scan(str(path), plans)["findings"]
    assert [(f["pk"], f["kind"]) for f in whole] == [({"id": ids[-1]}, "nul_character")]


def test_year_0000_which_postgresql_refuses_is_a_misfit(fresh_target: Target, tmp_path) -> None:
    """SQLite's dates count a year 0000, PostgreSQL's do not: such a value is found before a row
    is written (the binary load would have stored it as 1 BC), and what the preflight lets by
    is what PostgreSQL reads."""
    from runbook.columns.conversions import conversion_for
    from runbook.core.target import connect

    path = tmp_path / "years.db"
    values = [
        (1, "2025-01-01 10:00:00.5", "2025-01-01"),
        (2, "0000-01-01 10:00:00", "0000-06-01"),
        (3, "0001-01-01 00:00:00", "0001-01-01"),
        (4, "0000-12-31 23:59:59.999999", "0000-12-31"),
    ]
    with closing(sqlite3.connect(path)) as lite:
        lite.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, day DATE)")
        lite.executemany("INSERT INTO ev VALUES (?, ?, ?)", values)
        lite.commit()

    def plan(column: str, pg_type: str) -> ColumnPlan:
        return ColumnPlan("ev", column, "TEXT", pg_type, True, conversion_for(pg_type).name)

    plans = [
        plan("id", "integer"),
        plan("at", "timestamp without time zone"),
        plan("day", "date"),
    ]
    found = {(f["pk"]["id"], f["column"], f["kind"]) for f in scan(str(path), plans)["findings"]}
    assert found == {
        (2, "at", "unparseable_datetime"),
        (2, "day", "unparseable_date"),
        (4, "at", "unparseable_datetime"),
        (4, "day", "unparseable_date"),
    }
    with connect(fresh_target) as conn:
        for key, at, day in values:
            for text, cast in ((at, "timestamp"), (day, "date")):
                try:
                    conn.execute(f"SELECT %s::{cast}", [text])
                    refused = False
                except psycopg.errors.DatetimeFieldOverflow:
                    refused = True
                conn.rollback()
                assert refused == (key in (2, 4)), (text, cast)


def test_a_scan_in_rowid_ranges_finds_what_one_pass_finds(dirty, plans, monkeypatch) -> None:
    from runbook.engine import scanners

    whole = scan(str(dirty[0]), plans)
    monkeypatch.setattr(scanners, "SPLIT_ROWS", 3)  # every table in ranges of about 3 rows
    monkeypatch.setattr(scanners, "PROCESSES", 3)
    monkeypatch.setattr(scanners, "IN_PROCESS_ROWS", 0)  # in worker processes
    in_ranges = scan(str(dirty[0]), plans)
    with scanners.scanners_ahead(str(dirty[0]), rows=1) as ahead:  # as step 02 starts them
        assert len(ahead) == 3
        started_ahead = scan(str(dirty[0]), plans, ahead=ahead)
        assert ahead == []  # every one took ranges
    seconds = whole.pop("seconds").keys()
    assert in_ranges.pop("seconds").keys() == seconds == started_ahead.pop("seconds").keys()
    assert in_ranges == whole == started_ahead  # the same findings, in the same order


@pytest.mark.parametrize(
    "chunk_bytes, max_rows", [(4 << 20, 1000), (1, 1000), (4 << 20, 1), (64, 0)]
)  # one chunk a range; chunks of 16 rows (more than MAX_FLAGGED); rowids or chunks too many
def test_the_chunk_pass_finds_what_the_pass_without_it_finds(
    dirty, plans, monkeypatch, chunk_bytes, max_rows
) -> None:
    """A range read in chunks first (text checked per chunk, failed value checks listed by
    rowid), then only its flagged rows again, finds what one pass over every row finds."""
    from runbook.columns.conversions import open_fast_source
    from runbook.columns.plan import by_table
    from runbook.core import source as sqlite_source
    from runbook.engine import values

    monkeypatch.setattr(values, "TEXT_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(values, "MAX_FLAGGED_ROWS", max_rows)
    path = str(dirty[0])
    tables = sqlite_source.tables_of(path)
    conn = open_fast_source(path)
    try:
        for name, table_plans in by_table(plans).items():
            low, high = conn.execute(f"SELECT min(rowid), max(rowid) FROM {name}").fetchone()
            only = f"rowid BETWEEN {low} AND {high}"
            chunked, whole = values.Recorded(), values.Recorded()
            values.scan_values(conn, tables[name], table_plans, chunked, only, (low, high))
            values.scan_values(conn, tables[name], table_plans, whole, only)
            assert chunked == whole, name
    finally:
        conn.close()


@pytest.mark.parametrize("in_processes", [False, True])
def test_a_key_or_value_that_is_not_utf8_is_reported_as_stored(
    tmp_path, monkeypatch, in_processes
) -> None:
    """The scan reads through apsw, which decodes text strictly: a finding's key and value that
    are not UTF-8 still come back, as the standard module shows them (surrogates)."""
    from runbook.columns.conversions import conversion_for
    from runbook.engine import scanners

    if in_processes:
        monkeypatch.setattr(scanners, "PROCESSES", 2)
        monkeypatch.setattr(scanners, "IN_PROCESS_ROWS", 0)
    path = tmp_path / "keys.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE k (code TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID")
    conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, n INTEGER)")
    bad = bytes.fromhex("b0a1")  # EUC-KR for "가", not UTF-8
    conn.execute("INSERT INTO k VALUES (CAST(? AS TEXT), 1), ('ok', CAST(? AS TEXT))", [bad, bad])
    conn.execute("INSERT INTO r VALUES (1, CAST(? AS TEXT)), (2, 5)", [bad])
    conn.commit()
    conn.close()

    def plan(table: str, column: str, pg_type: str) -> ColumnPlan:
        return ColumnPlan(table, column, "TEXT", pg_type, False, conversion_for(pg_type).name)

    plans = [plan("k", "code", "text"), plan("k", "n", "integer"), plan("r", "id", "integer")]
    plans.append(plan("r", "n", "integer"))
    found = [
        (f["table"], f["pk"], f["column"], f["kind"]) for f in scan(str(path), plans)["findings"]
    ]
    shown = decode_text(bad)
    assert found == [  # in key order: "ok" sorts before the byte 0xb0
        ("k", {"code": "ok"}, "n", "wrong_type"),
        ("k", {"code": shown}, "code", "invalid_utf8"),
        ("r", {"id": 1}, "n", "wrong_type"),
    ]
