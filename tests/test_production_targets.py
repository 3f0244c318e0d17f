"""Production targets, each a real server the test starts: a TLS-only server (a certificate from
a throwaway CA, `hostssl` + scram only, statement_timeout and idle_in_transaction_session_timeout
of 5 s) migrated by the application's own non-superuser owner role with sslmode=verify-full;
certificates that do not verify; PgBouncer in transaction-pooling mode in front of a server; a
schema other than public for a role granted only that schema; a database not in UTF-8.

Servers with TLS come from the system's PostgreSQL package (the embedded server is built without
TLS), PgBouncer from the system's package, the CA from `openssl`: each test skips with its
reason where one is absent."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from commands import kill_tree, prepare_transfer, runbook, start_transfer
from fingerprint import fingerprint
from test_resume import load_status, one_range_held, planned_ranges
from test_resume import wait_for_ranges as wait_for_complete_ranges
from throwaway_server import (
    Certificates,
    ThrowawayPgBouncer,
    ThrowawayServer,
    make_ca,
    make_certificates,
    system_server_binaries,
)

from coldchain.models import Base
from coldchain.sample import generate
from coldchain.traffic import Traffic
from runbook.core.errors import RunbookError
from runbook.core.readiness import check_ready
from runbook.core.target import Target, connect, sqlalchemy_url

pytestmark = pytest.mark.e2e
SCALE = 0.002
TABLES = list(Base.metadata.tables)


def files_containing(folder: Path, secret: str) -> list[str]:
    return [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and secret.encode() in p.read_bytes()
    ]


def write(source: Path, rows: int, seed: int) -> None:
    """The application's traffic: about `rows` rows written to `source`."""
    writer = Traffic(source, seed=seed)
    try:
        writer.run(rows)
    finally:
        writer.close()


def owned_database(server: ThrowawayServer, database: str, role: str) -> tuple[str, str]:
    """A database owned by a new login role that is not a superuser, as the application's guide
    makes it (CREATE ROLE …; CREATE DATABASE … OWNER …); (the role's password, its URL)."""
    password = f"pw-{secrets.token_hex(8)}"
    with connect(server.target(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {database} OWNER {role}")
    return password, server.url(database, role, password)


def refused_before_step_01(source: Path, run_dir: Path, url: str, secret: str, **kw) -> str:
    """`runbook run` against a target it must refuse before step 01: its output, after asserting
    a failing exit, no step 01 notebook, and `secret` in no output and no file."""
    done = runbook("run", str(source), "--run-dir", str(run_dir), env={"DATABASE_URL": url}, **kw)
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert not (run_dir / "01_backup.ipynb").exists()
    assert secret not in text
    assert not run_dir.exists() or files_containing(run_dir, secret) == []
    return text


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("source") / "dispatch.db"
    generate(path, scale=SCALE, seed=14)
    return path


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A TLS-only server (hostssl + scram) with 5 s statement and idle-in-transaction timeouts,
    its certificate from a throwaway CA issued for localhost only; (server, CA folder)."""
    folder = tmp_path_factory.mktemp("tls")
    certificates = make_certificates(folder / "ca")
    make_ca(folder / "other", "other")  # a CA that signed nothing of this server's
    timeouts = {"statement_timeout": "5s", "idle_in_transaction_session_timeout": "5s"}
    server = ThrowawayServer(system_server_binaries(), tls=certificates, settings=timeouts)
    yield server, folder
    server.close()


def test_a_tls_only_server_with_verify_full_and_a_non_superuser_owner_passes(
    tls, source: Path, tmp_path: Path
) -> None:
    """Every connection the runbook opens (its own, the kernels', the loader processes',
    SQLAlchemy's for Alembic, pg_dump's for --replace-target) honours sslmode=verify-full: the
    server takes TLS connections only, so a PASS means none went without. The CA file is named
    by a relative path, as an operator would in their working folder (the kernels run in
    another)."""
    server, folder = tls
    password, url = owned_database(server, "coldchain_db", "coldchain")
    with connect(server.target("coldchain_db"), autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"  # the runbook's own
    url = url.split("?")[0] + "?sslmode=verify-full&sslrootcert=ca/ca.crt"
    env = {"DATABASE_URL": url}
    done = runbook("run", str(source), "--run-dir", str(tmp_path / "run"), env=env, cwd=folder)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert password not in output and files_containing(tmp_path / "run", password) == []
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    session = manifest["target_session"]
    assert session["tls"]["used"] and session["tls"]["protocol"].startswith("TLSv1.")
    assert session["tls"]["cipher"] and session["tls"]["sslmode"] == "verify-full"
    assert session["tls"]["server certificate"] == "CA and host name"
    assert session["role"]["role"] == "coldchain" and session["role"]["owns_database"]
    assert not session["role"]["superuser"] and not session["role"]["createdb"]
    assert session["session_settings"]["statement_timeout"] == "0"

    # --replace-target as the same owner: pg_dump saves the target over TLS first
    again = runbook(
        "run", str(source), "--run-dir", str(tmp_path / "replaced"), "--replace-target",
        env=env, cwd=folder,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    saved = json.loads((tmp_path / "replaced" / "target-saved.json").read_text())
    assert saved["method"] == "pg_dump" and "orders" in saved["tables"]
    listing = subprocess.run(
        [str(system_server_binaries() / "pg_restore"), "--list", saved["file"]],
        cwd=tmp_path / "replaced",
        capture_output=True,
        text=True,
        check=True,
    )
    assert "TABLE DATA public orders" in listing.stdout

    # the cutover over TLS as the owner: its smoke test (psycopg2) and pg_dump honour verify-full
    live = tmp_path / "live.db"
    shutil.copyfile(source, live)
    bulk = tmp_path / "bulk"
    done = runbook(
        "run", str(live), "--run-dir", str(bulk), "--replace-target", env=env, cwd=folder
    )
    assert done.returncode == 0, done.stdout + done.stderr
    write(live, 200, seed=1)
    synced = runbook("sync", str(live), "--run-dir", str(bulk), env=env, cwd=folder)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    write(live, 200, seed=2)
    cut = tmp_path / "cut"
    arguments = [str(live), "--run-dir", str(bulk), "--cutover-dir", str(cut)]
    done = runbook("cutover", *arguments, env=env, cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    backup = json.loads((cut / "cutover.json").read_text())["backup"]
    assert backup["bytes"] > 0 and "CREATEDB" in backup["restore"]
    assert password not in done.stdout + done.stderr and files_containing(cut, password) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong CA", "TLS certificate check failed for host localhost: the server's certificate "
         "is signed by a certificate authority that sslrootcert does not hold (unknown CA)"),
        ("host name", "TLS host name check failed for host 127.0.0.1: the server's certificate "
         "is issued for localhost"),
        ("no TLS", "the server at localhost refuses connections without TLS from this host"),
    ],
)  # fmt: skip
def test_a_certificate_that_does_not_verify_is_refused_before_step_01(
    tls, source: Path, tmp_path: Path, case: str, expected: str
) -> None:
    server, folder = tls
    role = f"app_{secrets.token_hex(3)}"
    password, url = owned_database(server, f"{role}_db", role)
    good = Target(url, "external", "test")
    with connect(good) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO kept VALUES (1, 'untouched')")
        conn.commit()
    before = fingerprint(good)
    bad = {
        "wrong CA": url.replace(str(folder / "ca" / "ca.crt"), str(folder / "other" / "other.crt")),
        "host name": url.replace("@localhost:", "@127.0.0.1:"),
        "no TLS": url.split("?")[0] + "?sslmode=disable",
    }[case]
    text = refused_before_step_01(source, tmp_path / "run", bad, password)
    assert expected in text.replace("\n", " "), text
    assert "What to do:" in text and "nothing was written" in text
    assert fingerprint(good) == before


def test_an_expired_certificate_is_named_as_such(tls) -> None:
    """libpq says only "certificate verify failed"; the sentence says which check: the date."""
    _, folder = tls
    ca = folder / "ca"
    expired = Certificates(ca / "ca.crt", ca / "expired.crt", ca / "server.key")
    server = ThrowawayServer(system_server_binaries(), tls=expired)
    try:
        with pytest.raises(RunbookError) as refused:
            check_ready(server.target())
        message = str(refused.value)
        expected = (
            "TLS certificate check failed for host localhost: the server's certificate has "
            "expired (sslmode=verify-full)"
        )
        assert expected in message, message
        assert "must renew its certificate" in message and server.password not in message
    finally:
        server.close()


def test_sslmode_require_and_verify_ca_are_honoured_and_recorded(tls) -> None:
    server, _ = tls
    url = server.target().url
    for mode, checked in (("require", "not checked"), ("verify-ca", "CA only")):
        # verify-ca accepts the certificate for another host name: it checks the CA only
        other = url.replace("verify-full", mode).replace("@localhost:", "@127.0.0.1:")
        ready = check_ready(Target(other, "external", "test"))
        assert ready.tls["used"] and ready.tls["sslmode"] == mode
        assert ready.tls["server certificate"] == checked
        assert ready.role["superuser"]


def test_psycopg2_through_sqlalchemy_honours_tls_and_the_session_settings(tls) -> None:
    """The application's driver (a postgresql+psycopg2:// URL, as Alembic and a smoke test use
    it) gets the same URL parameters: verify-full TLS, statement_timeout off."""
    import sqlalchemy as sa

    server, _ = tls
    url = "postgresql+psycopg2://" + server.target().url.split("://", 1)[1]
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.dialect.driver == "psycopg2"
            used = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            assert conn.execute(sa.text(used)).scalar() is True
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"  # server: 5s
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pooled(scram_server):
    """PgBouncer in transaction-pooling mode in front of the session's scram server, and a
    database owned by a non-superuser role; (bouncer, role, password, direct URL)."""
    role = f"pooled_{secrets.token_hex(3)}"
    password, direct = owned_database(scram_server, f"{role}_db", role)
    bouncer = ThrowawayPgBouncer(scram_server, {role: password})
    yield bouncer, role, password, direct
    bouncer.close()


def test_pgbouncer_in_transaction_mode_is_refused_naming_the_direct_url_and_resume_passes(
    pooled, scram_server, source: Path, tmp_path: Path
) -> None:
    """A load killed mid-way, run again through the pooler: refused before step 01 with the
    server's own URL, the half-loaded target untouched; that URL then resumes it to PASS."""
    bouncer, role, password, direct = pooled
    target = Target(direct, "external", "test")
    env = {"DATABASE_URL": direct, "RUNBOOK_SPLIT_ROWS": "400"}
    first = tmp_path / "first"
    prepare_transfer(source, first, env)
    # every other range loaded, none committing at the kill
    with one_range_held(target, lambda: start_transfer(source, first, env)) as process:
        wait_for_complete_ranges(target, process, planned_ranges(target) - 1)
        kill_tree(process)
    killed = load_status(target)
    assert killed[0] == "loading"
    before = fingerprint(target)

    through_pooler = bouncer.url(f"{role}_db", role, password)
    text = refused_before_step_01(source, tmp_path / "pooled", through_pooler, password)
    assert "leads to a connection pooler (such as PgBouncer)" in text, text
    assert f"postgresql://{role}:***@127.0.0.1:{scram_server.port}/{role}_db" in text
    assert fingerprint(target) == before and load_status(target) == killed

    again = runbook("run", str(source), "--run-dir", str(tmp_path / "direct"), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tmp_path / "direct" / "verify.json").read_text())["verdict"] == "PASS"


def test_a_pooler_that_drops_the_session_settings_silently_is_refused_too(pooled, scram_server):
    """PgBouncer told to ignore the `options` startup parameter accepts the connection and drops
    the settings without a word: the marker the runbook sends is missing, so it refuses."""
    _, role, password, _ = pooled
    quiet = ThrowawayPgBouncer(scram_server, {role: password}, ignore=("options",))
    try:
        target = Target(quiet.url(f"{role}_db", role, password), "external", "test")
        with pytest.raises(RunbookError) as refused:
            check_ready(target)
        assert "connection pooler" in str(refused.value)
        assert f"@127.0.0.1:{scram_server.port}/" in str(refused.value)
        assert password not in str(refused.value)
    finally:
        quiet.close()


def readme_grants(database: str, role: str) -> list[str]:
    """The GRANTs the README's Production targets section gives a role that is not the owner,
    for this database and role (schema coldchain)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Production targets", 1)[1].split("```sql", 1)[1].split("```")[0]
    grants = [line.strip() for line in block.splitlines() if line.startswith("GRANT")]
    assert len(grants) == 2, block
    return [
        re.sub(r"\bmigrator\b", role, re.sub(r"\bcoldchain_db\b", database, grant))
        for grant in grants
    ]


def test_a_role_granted_only_a_schema_migrates_into_it(scram_server, source: Path, tmp_path):
    """The least-privilege role of the README with exactly its GRANTs (CONNECT on the database,
    USAGE and CREATE on schema `coldchain`, owned by the application's role; PUBLIC's rights
    revoked); the URL's options put coldchain first on the search_path. Every table, sequence
    and the runbook's own ledger land there, none in public. The role's statement and
    idle-in-transaction timeouts are 1 ms: the runbook's sessions set their own."""
    suffix = secrets.token_hex(3)
    owner, migrator, database = f"owner_{suffix}", f"migrator_{suffix}", f"schema_{suffix}"
    owned_database(scram_server, database, owner)
    password = f"pw-{secrets.token_hex(8)}"
    with connect(scram_server.target(database), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {migrator} LOGIN PASSWORD '{password}'")
        conn.execute(f"ALTER ROLE {migrator} SET statement_timeout = '1ms'")
        conn.execute(f"ALTER ROLE {migrator} SET idle_in_transaction_session_timeout = '1ms'")
        conn.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        conn.execute(f"CREATE SCHEMA coldchain AUTHORIZATION {owner}")
        for grant in readme_grants(database, migrator):
            conn.execute(grant)
    url = scram_server.url(database, migrator, password) + "?options=-csearch_path%3Dcoldchain"
    live = tmp_path / "live.db"
    shutil.copyfile(source, live)
    env = {"DATABASE_URL": url}
    done = runbook("run", str(live), "--run-dir", str(tmp_path / "run"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    session = json.loads((tmp_path / "run" / "manifest.json").read_text())["target_session"]
    assert session["schema"] == "coldchain" and not session["role"]["owns_database"]
    with connect(scram_server.target(database)) as conn:
        placed = dict(
            conn.execute(
                "SELECT c.relname, n.nspname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'S')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            ).fetchall()
        )
    expected = {*TABLES, "alembic_version", "runbook_loads", "runbook_ranges", "orders_id_seq"}
    assert expected <= set(placed), sorted(placed)
    assert set(placed.values()) == {"coldchain"}, placed

    # the cutover as the same role: catch-up, proof, the smoke test (psycopg2, SQLAlchemy's
    # models) all in schema coldchain; the restore drill skipped (the role may not create one)
    write(live, 300, seed=1)
    cut = tmp_path / "cut"
    arguments = [str(live), "--run-dir", str(tmp_path / "run")]
    done = runbook("cutover", *arguments, "--cutover-dir", str(cut), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    facts = json.loads((cut / "cutover.json").read_text())
    changes = facts["final_sync"]["changes"].values()
    assert sum(c["inserted"] + c["updated"] + c["deleted"] for c in changes) > 0
    assert facts["smoke_test"]["clients"] > 0
    assert "CREATEDB" in facts["backup"]["restore"] and facts["backup"]["bytes"] > 0
    assert files_containing(cut, password) == []
    with connect(scram_server.target(database)) as conn:
        schema = conn.execute(
            "SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = 'runbook_syncs'"
        ).fetchone()
    assert schema == ("coldchain",)


def test_a_search_path_naming_a_missing_schema_is_refused(scram_server) -> None:
    url = scram_server.target().url + "?options=-csearch_path%3Dnowhere%2Cpublic"
    with pytest.raises(RunbookError) as refused:
        check_ready(Target(url, "external", "test"))
    assert "schema nowhere does not exist in database postgres" in str(refused.value)
    assert 'CREATE SCHEMA "nowhere"' in str(refused.value)


def test_a_database_not_in_utf8_is_refused_before_step_01_and_the_advice_works(
    scram_server, source: Path, tmp_path: Path
) -> None:
    """EUC-KR holds 2,350 of the 11,172 Hangul syllables the application may store: the
    runbook refuses it (rather than fail mid-load on the first syllable it lacks), and the
    CREATE DATABASE it advises makes a target it accepts."""
    role = f"korean_{secrets.token_hex(3)}"
    password = f"pw-{secrets.token_hex(8)}"
    with connect(scram_server.target(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(
            f"CREATE DATABASE {role}_euckr OWNER {role} ENCODING 'EUC_KR' "
            "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    target = scram_server.target(f"{role}_euckr")
    before = fingerprint(target)
    url = scram_server.url(f"{role}_euckr", role, password)
    text = refused_before_step_01(source, tmp_path / "run", url, password)
    assert f"the target database {role}_euckr is encoded EUC_KR" in text
    assert fingerprint(target) == before
    advice = text.split("CREATE DATABASE <name>", 1)[1].split(" (or another")[0]
    with connect(scram_server.target(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {role}_utf8{advice}")
    utf8 = Target(scram_server.url(f"{role}_utf8", role, password), "external", "test")
    assert check_ready(utf8).role["owns_database"]
