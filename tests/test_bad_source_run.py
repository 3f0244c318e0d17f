"""Every bad source through the runbook command: non-zero exit, one sentence saying what is wrong,
no password in any output, and the target exactly as it was (catalog and data fingerprint)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from commands import runbook
from fingerprint import fingerprint

from coldchain.sample import generate


def _sample(tmp: Path) -> bytes:
    good = tmp / "good.db"
    generate(good, scale=0.002, seed=1)
    return good.read_bytes()


def make(kind: str, tmp: Path) -> Path:
    path = tmp / "dispatch.db"
    if kind == "directory":
        path.mkdir()
    elif kind == "not_sqlite":
        path.write_text("id,name\n1,(주)한빛냉장\n")
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
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_bad_source_leaves_the_target_untouched(scram_server, tmp_path: Path, kind: str) -> None:
    from runbook.target import create_database

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
