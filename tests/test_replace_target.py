"""--replace-target: the target is saved into the run folder first, then only this migration's
tables are dropped and recreated; other tables stay as they were."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_occupied_target import backed_up

from runbook.core.errors import RunbookError
from runbook.core.target import Target, connect
from runbook.engine import replace
from runbook.steps import schema


def test_replace_saves_then_drops_only_application_tables(
    fresh_target: Target, tmp_path: Path
) -> None:
    schema.prepare(backed_up(tmp_path, 1, "old"), fresh_target)
    with connect(fresh_target) as conn:
        conn.execute(
            "INSERT INTO users (username, email, hashed_password, role, is_active, "
            "created_at) VALUES ('kim', 'kim@example.kr', 'x', 'ADMIN', true, now())"
        )
        conn.execute("CREATE TABLE invoices (id int, total numeric)")
        conn.execute("INSERT INTO invoices VALUES (1, 10)")
        conn.commit()
    run = backed_up(tmp_path, 2, "new")
    with pytest.raises(RunbookError, match="did not save the target"):
        schema.prepare(run, fresh_target, replace_target=True)

    saved = replace.save_if_replacing(run, fresh_target, True)
    assert saved["tables"]["users"] == 1 and saved["tables"]["invoices"] == 1
    dump = replace.saved_path(run, saved)
    assert dump.stat().st_size > 0
    if saved["method"] == "pg_dump":
        pg_restore = replace.pg_tool("pg_restore", 16) or "pg_restore"
        listing = subprocess.run(
            [str(pg_restore), "--list", str(dump)], capture_output=True, text=True
        )
        assert "TABLE DATA public users" in listing.stdout

    result = schema.prepare(run, fresh_target, replace_target=True)
    assert (
        "users" in result["replaced"]["dropped"] and "invoices" not in result["replaced"]["dropped"]
    )
    with connect(fresh_target) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        assert conn.execute("SELECT total FROM invoices").fetchone()[0] == 10
