"""Every bad source through the runbook command: non-zero exit, one sentence saying what is wrong,
no password in any output, and the target exactly as it was (catalog and data fingerprint)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from commands import runbook
from fingerprint import fingerprint

from coldchain.sample import generate


def _sample(tmp: Path) -> bytes:
    good = tmp / "good.db"
    if not good.exists():
        generate(good, scale=0.002, seed=1)
    return good.read_bytes()


def make(kind: str, tmp: Path) -> Path:
    path = tmp / "dispatch.db"
    if kind == "directory":
        path.mkdir()
    elif kind == "not_sqlite":
        path.write_text("id,name\n1,(주)한빛냉장\n")
    elif kind == "utf16":
        _sample(tmp)  # as sqlite3_open16 creates them (Windows applications)
        with (
            closing(sqlite3.connect(path)) as lite,
            closing(sqlite3.connect(tmp / "good.db")) as good,
        ):
            lite.execute("PRAGMA encoding = 'UTF-16le'")
            lite.executescript("\n".join(good.iterdump()))
    elif kind == "empty":
        with sqlite3.connect(path) as lite:
            lite.execute("PRAGMA user_version = 1")
    elif kind != "missing":
        data = _sample(tmp)
        path.write_bytes(
            {
                "truncated": data[: len(data) * 6 // 10],
                "newer_format": data[:18] + bytes([3, 3]) + data[20:],
                "corrupt_page": data[:8192] + b"\xff" * 4096 + data[12288:],
            }[kind]
        )
    return path


CASES = {
    "missing": "does not exist",
    "directory": "is not a file",
    "not_sqlite": "is not a SQLite database",
    "empty": "holds no tables",
    "truncated": "database disk image is malformed",
    "newer_format": "asks for SQLite file format 3",
    "corrupt_page": "integrity_check failed",
    "utf16": "stores its text as UTF-16le",
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_bad_source_leaves_the_target_untouched(scram_server, tmp_path: Path, kind: str) -> None:
    from runbook.core.target import create_database

    name = f"bad_source_{kind}"
    create_database(scram_server.target(), name)
    target = scram_server.target(name)
    before = fingerprint(target)
    source = make(kind, tmp_path)
    done = runbook(
        "run", str(source), "--run-dir", str(tmp_path / "run"), env={"DATABASE_URL": target.url}
    )
    text = done.stdout + done.stderr
    assert done.returncode != 0
    assert CASES[kind] in text and "What to do" in text
    assert scram_server.password not in text
    assert fingerprint(target) == before


def without_root_file_access() -> tuple[str, ...]:
    """A command prefix under which this process cannot read a mode-000 file: none for a normal
    user; for root, setpriv dropping the two capabilities that let root read any file."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv (util-linux) is missing: root reads any file")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def test_a_file_without_read_permission_is_refused_before_anything_is_written(
    scram_server, tmp_path: Path
) -> None:
    from runbook.core.target import create_database

    create_database(scram_server.target(), "bad_source_unreadable")
    target = scram_server.target("bad_source_unreadable")
    before = fingerprint(target)
    source = tmp_path / "dispatch.db"
    source.write_bytes(_sample(tmp_path))
    source.chmod(0o000)
    run = tmp_path / "run"
    done = runbook(
        "run",
        str(source),
        "--run-dir",
        str(run),
        env={"DATABASE_URL": target.url},
        wrapper=without_root_file_access(),
    )
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert f"the source {source} cannot be read (permission denied)" in text, text
    assert "What to do" in text
    assert scram_server.password not in text
    assert fingerprint(target) == before
    assert not (run / "backup.json").exists()


def test_the_advice_for_a_utf16_source_works_when_followed(scram_server, tmp_path: Path) -> None:
    """The refusal's command makes a UTF-8 copy that the runbook migrates and verifies."""
    from runbook.core.target import create_database

    if not shutil.which("sqlite3"):
        pytest.skip("the sqlite3 command-line shell is not installed")
    source = make("utf16", tmp_path)
    create_database(scram_server.target(), "utf16_copy")
    env = {"DATABASE_URL": scram_server.target("utf16_copy").url}
    refused = runbook("run", str(source), "--run-dir", str(tmp_path / "refused"), env=env)
    text = refused.stdout + refused.stderr
    assert refused.returncode != 0, text
    command = text.split("make a UTF-8 copy (", 1)[1].split(") and migrate", 1)[0]
    subprocess.run(command, shell=True, check=True, cwd=tmp_path)  # noqa: S602 - its advice
    copy = tmp_path / "dispatch-utf8.db"
    with closing(sqlite3.connect(copy)) as lite:
        assert lite.execute("PRAGMA encoding").fetchone()[0] == "UTF-8"
    done = runbook("run", str(copy), "--run-dir", str(tmp_path / "run"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout
