"""Shared fixtures: a throwaway project home, fresh databases on the test server, and the
reference environment the nbval items of the committed notebooks run in."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from runbook.core.target import Target, connect, embedded_target, stop_embedded
from runbook.record.reference import fresh_database, reference_environment, reference_traffic

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
_session = ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    # Each test session gets its own project home (embedded server, runs/), never the user's.
    if not os.environ.get("RUNBOOK_HOME"):
        home = tempfile.mkdtemp(prefix="runbook-tests-")
        os.environ["RUNBOOK_HOME"] = home
        _session.callback(shutil.rmtree, home, ignore_errors=True)
        _session.callback(stop_embedded)
    os.environ.pop("DATABASE_URL", None)  # tests name their targets explicitly
    config.pluginmanager.register(_TrafficBeforeCutover(), "reference-traffic")


_reference: dict[str, str] = {}


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if any(".ipynb" in item.nodeid for item in items):
        _reference.update(_session.enter_context(reference_environment()))


class _TrafficBeforeCutover:
    """Before the cutover's notebook: the application's traffic after the bulk run, as
    `make notebooks` writes it between 04 and 05 (the reference outputs show its changes).
    A plugin, not a hook of this conftest, whose item hooks reach only the items under tests/."""

    @pytest.hookimpl
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if "05_cutover.ipynb" in item.nodeid and _reference and not _reference.get("traffic"):
            reference_traffic(_reference)
            _reference["traffic"] = "done"


def pytest_unconfigure(config: pytest.Config) -> None:
    _session.close()


SERVERS = ["embedded"] + (["external"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(params=SERVERS)
def fresh_target(request: pytest.FixtureRequest) -> Target:
    """A brand-new empty database, on the embedded server and on TEST_DATABASE_URL's when set."""
    if request.param == "embedded":
        admin = embedded_target("postgres")
    else:
        admin = Target(os.environ["TEST_DATABASE_URL"], "external", "TEST_DATABASE_URL")
    with fresh_database(admin=admin) as target:
        yield target


@pytest.fixture
def fresh_database_url(fresh_target: Target) -> str:
    """URL of a brand-new empty database."""
    return fresh_target.url


@pytest.fixture
def shared_dir() -> Path:
    """The project's shared folder (schema notes, real SQLite samples) beside the checkout."""
    if not SHARED.is_dir():
        pytest.skip("the shared/ folder beside the checkout is absent")
    return SHARED


@pytest.fixture
def password_target(fresh_target: Target) -> Target:
    """The fresh database, reached through a role with a password (the application's form of
    DATABASE_URL), so tests can prove the password never reaches a file or an output."""
    role = f"runbook_app_{secrets.token_hex(3)}"
    password = f"pw-{secrets.token_hex(8)}"
    with connect(fresh_target, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f'ALTER DATABASE "{fresh_target.database}" OWNER TO {role}')
        conn.execute(f"ALTER SCHEMA public OWNER TO {role}")
    parts = urlsplit(fresh_target.url)
    host = parts.netloc.rpartition("@")[2]
    yield Target(urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}")), "external", "test")
    with connect(fresh_target, autocommit=True) as conn:
        conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


@pytest.fixture(scope="session")
def scram_server():
    """A private PostgreSQL server that checks passwords (scram-sha-256), for the session."""
    from throwaway_server import ThrowawayServer

    server = ThrowawayServer()
    yield server
    server.close()


@pytest.fixture
def one_target() -> Target:
    """A brand-new database on one server (TEST_DATABASE_URL's when set, else the embedded one),
    for end-to-end runs that need not repeat on every server."""
    with fresh_database() as target:
        yield target
