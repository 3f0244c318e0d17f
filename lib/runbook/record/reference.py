"""The fixed sample and fresh target that the committed notebooks are produced with (by
`scripts/regenerate_notebooks.py`) and checked against (by nbval in `make test`)."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coldchain.sample import generate
from coldchain.traffic import Traffic
from runbook.core.target import Target, create_database, drop_database, embedded_target

REFERENCE_SCALE = 0.002
REFERENCE_SEED = 42


def admin_target() -> Target:
    """A target on the test server to create throwaway databases from: TEST_DATABASE_URL when
    set, else the embedded server."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return Target(url, "external", "environment TEST_DATABASE_URL")
    return embedded_target("postgres")


@contextmanager
def fresh_database(prefix: str = "runbook_test", admin: Target | None = None) -> Iterator[Target]:
    """A brand-new empty database on the test server (or `admin`'s), dropped afterwards."""
    admin = admin or admin_target()
    name = f"{prefix}_{secrets.token_hex(4)}"
    create_database(admin, name)
    try:
        yield admin.with_database(name)
    finally:
        drop_database(admin, name)


@contextmanager
def reference_environment() -> Iterator[dict[str, str]]:
    """Sample database, fresh target and empty run folders, exported as the environment the
    notebooks' default parameters read (RUNBOOK_SOURCE, RUNBOOK_RUN_DIR, DATABASE_URL; for
    05, RUNBOOK_CUTOVER_DIR and RUNBOOK_BULK_RUN_DIR: the cutover finishes the reference run)."""
    names = (
        "RUNBOOK_SOURCE",
        "RUNBOOK_RUN_DIR",
        "DATABASE_URL",
        "RUNBOOK_CUTOVER_DIR",
        "RUNBOOK_BULK_RUN_DIR",
    )
    saved = {name: os.environ.get(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="runbook-reference-") as tmp, fresh_database() as db:
        sample = Path(tmp) / "sample.db"
        generate(sample, scale=REFERENCE_SCALE, seed=REFERENCE_SEED)
        run_dir = Path(tmp) / "runs" / "reference"
        run_dir.mkdir(parents=True)
        values = {
            "RUNBOOK_SOURCE": str(sample),
            "RUNBOOK_RUN_DIR": str(run_dir),
            "DATABASE_URL": db.url,
            "RUNBOOK_CUTOVER_DIR": str(Path(tmp) / "runs" / "cutover"),
            "RUNBOOK_BULK_RUN_DIR": str(run_dir),
        }
        os.environ.update(values)
        try:
            yield values
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


REFERENCE_TRAFFIC = 300  # rows the application writes between the bulk run and the cutover


def reference_traffic(environment: dict[str, str]) -> dict[str, int]:
    """The application's traffic on the reference sample after the bulk run (fixed seed, so
    the cutover's notebook shows the same changes every time)."""
    traffic = Traffic(environment["RUNBOOK_SOURCE"], seed=REFERENCE_SEED)
    try:
        return traffic.run(REFERENCE_TRAFFIC)
    finally:
        traffic.close()
