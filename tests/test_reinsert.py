"""Rejected rows, corrected by the operator, go back in: checked by the same rules first (nothing
written while one still does not fit), loaded parents first, and accounted for by 04_verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dirty_source import make_dirty_source

from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.target import Target, connect
from runbook.steps import backup, reinsert, schema, transfer, verify


def test_corrected_rows_are_reinserted_and_verified(fresh_target: Target, tmp_path: Path) -> None:
    source = tmp_path / "dirty.db"
    make_dirty_source(source)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    backup.snapshot(source, run)
    schema.prepare(run, fresh_target, on_bad_rows="reject")
    transfer.transfer(run, fresh_target, "reject", workers=2)
    lines = [json.loads(x) for x in (run.path / "rejects.jsonl").read_text().splitlines()]

    # the order whose weight had float noise, and its route stops that depended on it
    order = next(x for x in lines if x["kind"] == "too_precise")
    order_id = order["pk"]["id"]
    stops = [
        x for x in lines if x["table"] == "dispatch_routes" and x["row"]["order_id"] == order_id
    ]
    rejected_dispatches = {x["pk"]["id"] for x in lines if x["table"] == "dispatches"}
    stops = [s for s in stops if s["row"]["dispatch_id"] not in rejected_dispatches]
    still_bad = dict(order, row={**order["row"], "weight_kg": 0.1 + 0.2})
    corrected = tmp_path / "corrected.jsonl"
    corrected.write_text(json.dumps(still_bad) + "\n")
    with pytest.raises(RunbookError, match="still do not fit"):
        reinsert.reinsert(run, fresh_target, corrected)
    with connect(fresh_target) as conn:
        assert (
            conn.execute("SELECT count(*) FROM orders WHERE id = %s", [order_id]).fetchone()[0] == 0
        )

    fixed = dict(order, row={**order["row"], "weight_kg": 0.3})
    corrected.write_text("".join(json.dumps(x) + "\n" for x in [*stops, fixed]))  # any order
    counts = reinsert.reinsert(run, fresh_target, corrected)
    assert counts == {"orders": 1, **({"dispatch_routes": len(stops)} if stops else {})}
    with connect(fresh_target) as conn:
        weight = conn.execute("SELECT weight_kg FROM orders WHERE id = %s", [order_id]).fetchone()[
            0
        ]
    assert str(weight) == "0.30"

    with pytest.raises(RunbookError, match="already re-inserted"):
        reinsert.reinsert(run, fresh_target, corrected)

    result = verify.verify(run, fresh_target)
    orders_result = next(t for t in result["tables"] if t["table"] == "orders")
    assert result["verdict"] == "PASS", (result["failures"], orders_result)
    orders = next(t for t in result["tables"] if t["table"] == "orders")
    assert orders["reinserted_rows"] == 1
