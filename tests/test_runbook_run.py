"""End to end: `runbook run` on a sample database, through papermill, into an archived run; a
tampered target fails verification naming the rows; the password never reaches any output."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import apsw
import pytest
from commands import runbook
from fingerprint import fingerprint

from coldchain.sample import generate
from runbook.cli import DEMO_DATABASE
from runbook.core.run import sha256_file
from runbook.core.target import Target, connect, embedded_target

pytestmark = pytest.mark.e2e
SCALE = 0.002


def files_containing(folder: Path, secret: str) -> list[str]:
    return [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and secret.encode() in p.read_bytes()
    ]


def refused(sample_db: Path, run_dir: Path, url: str, secret: str) -> str:
    """Run against a target that must be refused before step 01: the command's output, after
    asserting a non-zero exit, no step 01 notebook, and `secret` in no output and no file."""
    done = runbook("run", str(sample_db), "--run-dir", str(run_dir), env={"DATABASE_URL": url})
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert not (run_dir / "01_backup.ipynb").exists()
    assert secret not in text
    assert files_containing(run_dir, secret) == []
    return text


@pytest.fixture
def sample_db(tmp_path: Path) -> Path:
    path = tmp_path / "dispatch.db"
    generate(path, scale=SCALE, seed=7)
    return path


def test_run_migrates_verifies_and_archives(
    password_target: Target, sample_db: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    env = {"DATABASE_URL": password_target.url}
    done = runbook("run", str(sample_db), "--run-dir", str(run_dir), env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "PASS" in done.stdout
    assert "WARNING" not in output  # the kernels' start-up noise stays out of the run's output

    # the archive: 4 executed notebooks without errors, 4 HTML files, hashes that match
    notebooks = sorted(run_dir.glob("0*.ipynb"))
    assert [p.stem for p in notebooks] == ["01_backup", "02_schema", "03_transfer", "04_verify"]
    for notebook in notebooks:
        cells = json.loads(notebook.read_text())["cells"]
        outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
        assert not [o for o in outputs if o["output_type"] == "error"], notebook.name
        assert notebook.with_suffix(".html").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["outcome"] == "passed"
    assert [s["outcome"] for s in manifest["steps"]] == ["passed"] * 4
    # where each step's wall time went: the library call apart from the notebook machinery
    for step in manifest["steps"]:
        parts = step["parts"]
        assert set(parts) == {
            "kernel_start",
            "setup",
            "library_call",
            "display",
            "other",
            "export",
        }, step["step"]
        assert parts["library_call"] > 0 and parts["export"] > 0, step["step"]
        inside = sum(v for k, v in parts.items() if k != "export")
        assert abs(inside - step["seconds"]) < 0.1, step  # export: in the background
    assert manifest["source_sha256"] == sha256_file(run_dir / "source-backup.db")
    # the SQLite libraries that read the source are on record
    assert manifest["versions"]["sqlite (standard module)"] == sqlite3.sqlite_version
    assert manifest["versions"]["sqlite (apsw)"] == apsw.sqlite_lib_version()
    for name, digest in manifest["files"].items():
        assert sha256_file(run_dir / name) == digest, name
    assert json.loads((run_dir / "verify.json").read_text())["verdict"] == "PASS"

    # the password is in no file of the run and in no output of the command
    password = password_target.password
    assert password and password not in output
    assert files_containing(run_dir, password) == []

    # values arrived identical; the sequence hands out a new id
    with connect(password_target) as conn:
        created, active, temp, items = conn.execute(
            "SELECT created_at, is_active, (SELECT temperature_c FROM temperature_logs "
            "ORDER BY id LIMIT 1), (SELECT items FROM orders WHERE items IS NOT NULL "
            "ORDER BY id LIMIT 1) FROM users ORDER BY id LIMIT 1"
        ).fetchone()
        new_id = conn.execute(
            "INSERT INTO users (username, email, hashed_password, role, is_active, created_at) "
            "VALUES ('new', 'new@example.kr', 'x', 'viewer', true, now()) RETURNING id"
        ).fetchone()[0]
        top = conn.execute("SELECT max(id) FROM users WHERE username <> 'new'").fetchone()[0]
        conn.rollback()
    lite = sqlite3.connect(sample_db)
    s_created, s_active = lite.execute(
        "SELECT created_at, is_active FROM users ORDER BY id LIMIT 1"
    ).fetchone()
    s_temp = lite.execute("SELECT temperature_c FROM temperature_logs ORDER BY id").fetchone()[0]
    s_items = lite.execute(
        "SELECT items FROM orders WHERE items IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()[0]
    assert created == datetime.fromisoformat(s_created)
    assert active is bool(s_active)
    assert temp == s_temp  # the exact double
    assert items == json.loads(s_items, parse_float=Decimal) or items == json.loads(s_items)
    assert new_id > top

    # a tampered target: one value changed, one row deleted → verify fails and names them
    with connect(password_target) as conn:
        changed = conn.execute(
            "UPDATE clients SET name = name || ' (변경)' WHERE id = (SELECT min(id) FROM clients) "
            "RETURNING id"
        ).fetchone()[0]
        deleted = conn.execute(
            "DELETE FROM temperature_logs WHERE id = (SELECT max(id) FROM temperature_logs) "
            "RETURNING id"
        ).fetchone()[0]
        conn.commit()
    again = runbook("run", str(sample_db), "--steps", "verify", "--run-dir", str(run_dir), env=env)
    assert again.returncode != 0
    text = again.stdout + again.stderr
    assert f"clients {{'id': {changed}}}: value differs column name" in text
    assert f"temperature_logs {{'id': {deleted}}}: missing in target" in text
    assert password not in text
    assert files_containing(run_dir, password) == []
    assert json.loads((run_dir / "manifest.json").read_text())["outcome"] == "failed"


def test_unreachable_target_fails_before_backup_without_the_password(
    sample_db: Path, tmp_path: Path
) -> None:
    url = "postgresql://app:" + "pw-never-shown-42" + "@127.0.0.1:9/coldchain"
    text = refused(sample_db, tmp_path / "run", url, "pw-never-shown-42")
    assert "cannot connect" in text and "What to do" in text


def test_run_with_password_authentication_and_a_wrong_password(
    scram_server, sample_db: Path, tmp_path: Path
) -> None:
    from runbook.core.target import create_database

    create_database(scram_server.target(), "coldchain")
    good = scram_server.target("coldchain")
    done = runbook(
        "run", str(sample_db), "--run-dir", str(tmp_path / "ok"), env={"DATABASE_URL": good.url}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert scram_server.password not in done.stdout + done.stderr
    assert files_containing(tmp_path / "ok", scram_server.password) == []

    wrong = scram_server.target("coldchain", password="not-the-password-31337")
    before = fingerprint(good)
    failed = runbook(
        "run", str(sample_db), "--run-dir", str(tmp_path / "bad"), env={"DATABASE_URL": wrong.url}
    )
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "password authentication failed" in text and "check the user and password" in text
    assert "not-the-password-31337" not in text
    assert not (tmp_path / "bad" / "01_backup.ipynb").exists()
    assert fingerprint(good) == before  # the loaded target is exactly as the good run left it


def test_a_role_without_create_rights_fails_before_step_01_with_one_sentence(
    scram_server, sample_db: Path, tmp_path: Path
) -> None:
    from runbook.core.target import connect, create_database

    create_database(scram_server.target(), "locked")
    with connect(scram_server.target("locked"), autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw-777'")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    url = scram_server.target("locked").url.replace(
        f"postgres:{scram_server.password}@", "reader:reader-pw-777@"
    )
    before = fingerprint(scram_server.target("locked"))
    text = refused(sample_db, tmp_path / "run", url, "reader-pw-777")
    assert "permission denied: role reader may not create objects" in text
    assert 'GRANT USAGE, CREATE ON SCHEMA "public" TO "reader"' in text
    assert fingerprint(scram_server.target("locked")) == before  # the target is untouched


def test_a_missing_database_fails_before_step_01_with_one_sentence(
    scram_server, sample_db: Path, tmp_path: Path
) -> None:
    url = scram_server.target("no_such_database").url
    databases = "SELECT datname FROM pg_database ORDER BY 1"
    with connect(scram_server.target()) as conn:
        before = conn.execute(databases).fetchall()
    text = refused(sample_db, tmp_path / "run", url, scram_server.password)
    assert 'database "no_such_database" does not exist' in text
    assert "create the database first" in text
    with connect(scram_server.target()) as conn:
        assert conn.execute(databases).fetchall() == before  # nothing created on the server


@pytest.fixture(scope="module")
def old_server():
    """A PostgreSQL 11 server (older than the runbook supports), with password authentication."""
    from throwaway_server import ThrowawayServer, old_server_binaries

    server = ThrowawayServer(old_server_binaries())
    yield server
    server.close()


def test_a_server_older_than_postgresql_12_fails_before_step_01_with_one_sentence(
    old_server, sample_db: Path, tmp_path: Path
) -> None:
    from runbook.core.target import server_version

    target = old_server.target()
    assert server_version(target).startswith("PostgreSQL 11.")
    before = fingerprint(target)
    text = refused(sample_db, tmp_path / "run", target.url, old_server.password)
    assert "the target runs PostgreSQL 11.22, older than PostgreSQL 12" in text, text
    assert "migrate into PostgreSQL 12 or newer" in text
    assert fingerprint(target) == before


def test_the_run_process_leaves_out_the_format_checkers_and_still_validates_notebooks(
    tmp_path: Path,
) -> None:
    """`runbook run` keeps jsonschema's optional format checkers (the IRI one builds a grammar
    on import) out of its process; nbformat still validates: a notebook with a broken cell is
    refused, and the HTML export still works."""
    import subprocess
    import sys

    from conftest import REPO

    code = (
        "import sys\n"
        "from runbook.record.runner import FORMAT_CHECKERS, without_format_checkers\n"
        "without_format_checkers()\n"
        "import nbformat, papermill\n"
        "nb = nbformat.read('notebooks/01_backup.ipynb', 4)\n"
        "nbformat.validate(nb)\n"
        "nb.cells[0]['cell_type'] = 'bogus'\n"
        "try:\n"
        "    nbformat.validate(nb)\n"
        "    print('accepted')\n"
        "except nbformat.ValidationError:\n"
        "    print('refused')\n"
        "print(all(sys.modules.get(name, 'absent') is None for name in FORMAT_CHECKERS))\n"
        "from pathlib import Path\n"
        "from runbook.record.export import export_html\n"
        f"copy = Path({str(tmp_path / '01_backup.ipynb')!r})\n"
        "copy.write_bytes(Path('notebooks/01_backup.ipynb').read_bytes())\n"
        "print('01_backup: PASS' in export_html(copy).read_text(encoding='utf-8'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["refused", "True", "True"], done.stdout + done.stderr


def test_demo_migrates_syncs_and_cuts_over() -> None:
    """`make demo`'s command, end to end on a small sample: the four steps on a copy that the
    demo's application keeps writing to, a sync of its changes, then the cutover; each passes,
    the cutover's record names the bulk run it finished, and the demo database holds the
    application's last write."""
    home = Path(os.environ["RUNBOOK_HOME"])
    earlier = set((home / "runs").glob("*/manifest.json"))  # other tests' runs
    done = runbook("demo", "--scale", str(SCALE), env={})
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "runbook sync:\nSync 1: snapshot" in text and "runbook cutover:" in text, text
    made = set((home / "runs").glob("*/manifest.json")) - earlier
    manifests = [json.loads(p.read_text()) for p in made]
    assert len(manifests) == 2
    cutovers = [m for m in manifests if m.get("finishes")]
    assert len(cutovers) == 1 and cutovers[0]["outcome"] == "passed"
    bulk = next(m for m in manifests if m["run"] == cutovers[0]["finishes"]["run"])
    assert [s["step"] for s in bulk["steps"]] == ["backup", "schema", "transfer", "verify"]
    # the bulk run's manifest lists what the cutover's catch-up added to its folder, and the
    # cutover records that version: the audit passes through both
    bulk_manifest = home / "runs" / bulk["run"] / "manifest.json"
    finishes = cutovers[0]["finishes"]["manifest_sha256"]
    assert finishes == hashlib.sha256(bulk_manifest.read_bytes()).hexdigest()
    audited = runbook("audit", str(home / "runs" / cutovers[0]["run"]), env={})
    assert audited.returncode == 0 and "PASS" in audited.stdout, audited.stdout
    live = sqlite3.connect(home / "data" / "demo-live.db")
    newest = live.execute("SELECT max(id), count(*) FROM temperature_logs").fetchone()
    live.close()
    demo = embedded_target(DEMO_DATABASE)
    with connect(demo) as conn:
        assert conn.execute("SELECT max(id), count(*) FROM temperature_logs").fetchone() == newest
