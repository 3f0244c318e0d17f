"""Target URLs: where they come from, how they are masked, and that passwords stay out."""

from __future__ import annotations

import pytest

from runbook.core.errors import RunbookError
from runbook.core.target import (
    Target,
    connect,
    mask_text,
    mask_url,
    resolve_target,
    session_url,
    sqlalchemy_url,
    url_parameter,
    url_password,
)


def secret_url(password: str, rest: str = "db/x", scheme: str = "postgresql") -> str:
    """A URL with a (made-up) password, built at run time: no file holds one."""
    return f"{scheme}://app:" + password + "@" + rest


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (secret_url("s3cr%40t", "db:5432/coldchain"), "postgresql://app:***@db:5432/coldchain"),
        (secret_url("pw", scheme="postgresql+psycopg2"), "postgresql+psycopg2://app:***@db/x"),
        ("postgres://app@db/x", "postgres://app@db/x"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_a_password_given_as_a_url_parameter_is_masked_read_and_refused_as_a_parameter() -> None:
    url = "postgresql://app@db/x?sslmode=require&password=" + "pa%26ss" + "&sslpassword=" + "k3y"
    assert mask_url(url) == "postgresql://app@db/x?sslmode=require&password=***&sslpassword=***"
    masked = mask_text(f"could not connect to {url}")
    assert "pa%26ss" not in masked and "k3y" not in masked
    assert url_password(url) == "pa&ss"
    with pytest.raises(RunbookError) as error:
        resolve_target(url)
    assert "carries a password" in str(error.value) and "pa&ss" not in str(error.value)


def test_every_connection_asks_the_runbooks_session_settings_after_the_operators_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql+psycopg2://app@db/x?options=-csearch_path%3Dcoldchain&sslrootcert=/a+b.pem"
    options = url_parameter(session_url(url), "options")
    assert options.startswith("-csearch_path=coldchain -c statement_timeout=0 ")
    assert "-c idle_in_transaction_session_timeout=0" in options
    assert url_parameter(session_url(url), "client_encoding") == "UTF8"
    assert url_parameter(session_url(url), "sslrootcert") == "/a+b.pem"  # libpq reads + as +
    monkeypatch.setenv("PGOPTIONS", "-csearch_path=from_env")  # used when the URL sets none
    assert url_parameter(session_url("postgresql://app@db/x"), "options").startswith(
        "-csearch_path=from_env -c statement_timeout=0"
    )


def test_sqlalchemy_reads_the_session_url_as_libpq_does() -> None:
    import sqlalchemy as sa

    url = "postgresql://app@db/x?sslrootcert=/certs/a+b.pem&options=-csearch_path%3Dcoldchain"
    query = sa.engine.make_url(sqlalchemy_url(url)).query
    assert query["sslrootcert"] == "/certs/a+b.pem"  # SQLAlchemy reads a bare + as a space
    assert query["options"].startswith("-csearch_path=coldchain -c statement_timeout=0")


def test_files_the_url_names_are_made_absolute_where_it_is_resolved(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_DB", "postgresql://app@db/x?sslmode=verify-full&sslrootcert=ca/r.crt")
    found = resolve_target("", "MY_DB")
    assert url_parameter(found.url, "sslrootcert") == str(tmp_path / "ca" / "r.crt")
    assert url_parameter(found.url, "sslmode") == "verify-full"
    monkeypatch.setenv("MY_DB", "postgresql://app@db/x?sslrootcert=system")
    assert url_parameter(resolve_target("", "MY_DB").url, "sslrootcert") == "system"


def test_mask_text_masks_urls_inside_messages_and_named_secrets() -> None:
    text = f"could not connect to {secret_url('hunter2')} with hunter2"
    assert "hunter2" not in mask_text(text, "hunter2")


def test_url_password_is_decoded() -> None:
    assert url_password(secret_url("s3cr%40t")) == "s3cr@t"
    assert url_password("postgresql://app@db/x") is None


def test_sqlalchemy_url_prefers_psycopg3_but_keeps_named_psycopg2() -> None:
    assert sqlalchemy_url("postgresql://a@h/d").startswith("postgresql+psycopg://a@h/d?")
    assert sqlalchemy_url("postgresql+psycopg2://a@h/d").startswith("postgresql+psycopg2://a@h/d?")


def test_a_url_parameter_with_a_password_is_refused() -> None:
    with pytest.raises(RunbookError) as error:
        resolve_target(secret_url("topsecret"))
    assert "topsecret" not in str(error.value)
    assert "environment variable" in str(error.value)


def test_environment_then_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f'export MY_DB="{secret_url("pw", "h:5432/from_dotenv")}"\n')
    assert resolve_target("", "MY_DB").database == "from_dotenv"
    monkeypatch.setenv("MY_DB", secret_url("pw", "h:5432/from_env"))
    found = resolve_target("", "MY_DB")
    assert found.database == "from_env"
    assert "pw" not in repr(found) and "***" in found.display


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(RunbookError, match="postgresql://"):
        resolve_target("mysql://u@h/d")


def test_wrong_port_gives_one_masked_sentence() -> None:
    target = Target(secret_url("sup3rsecret", "127.0.0.1:9/db"), "external", "test")
    with pytest.raises(RunbookError) as error:
        connect(target, connect_timeout=3)
    message = str(error.value)
    assert "sup3rsecret" not in message
    assert "cannot connect" in message and "What to do" in message


def test_fresh_target_answers(fresh_target: Target) -> None:
    with connect(fresh_target) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == fresh_target.database


def test_psycopg2_urls_keep_working_for_the_application(fresh_target: Target) -> None:
    import sqlalchemy as sa

    url = "postgresql+psycopg2://" + fresh_target.url.split("://", 1)[1]
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        assert conn.dialect.driver == "psycopg2"
    engine.dispose()
