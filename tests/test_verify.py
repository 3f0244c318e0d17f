"""Step 04 on a real server: the checksums computed by the two engines agree on a faithful copy,
and one changed value of any kind (a double by one ulp, a timestamp by a microsecond, a jsonb
number, a NULL), a missing row or a sequence set back makes the verdict FAIL, naming the row."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from coldchain.sample import generate
from runbook import backup, digest, schema, transfer, verify
from runbook.errors import RunbookError
from runbook.run import RunFolder
from runbook.target import Target, connect


@pytest.fixture
def migrated(tmp_path: Path, fresh_target: Target) -> tuple[RunFolder, Target]:
    sample = tmp_path / "dispatch.db"
    generate(sample, scale=0.003, seed=5)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    backup.snapshot(sample, run)
    schema.prepare(run, fresh_target)
    transfer.transfer(run, fresh_target, workers=2)
    return run, fresh_target


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


JSON_DOCUMENTS = [
    '{"b": 1, "a": 2, "ccc": 3, "dd": {"zz": [], "y": {}}}',
    '{"n": [1.50, 2e3, -0, 0.0, 1E-7, 12345678901234567890, -1.0e+2, 0.1]}',
    '{"é": "\\u00e9\\n\\t\\"\\\\/\\u001f", "한글": "서울", "a b": null}',
    '{"dup": 1, "dup": 2}',
    '[true, false, null, "", [], {}]',
    '"plain"',
    "7",
    "-2.5e-3",
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
