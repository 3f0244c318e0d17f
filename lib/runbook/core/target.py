"""The target PostgreSQL: where its URL comes from, how it is shown (masked), how to connect.

The password only ever lives in the environment (or a `.env` file); anything displayed or
written goes through `mask_url` / `mask_text` first. Every connection the runbook opens (psycopg
here and in the loader processes, SQLAlchemy for Alembic, pg_dump) uses `session_url`: the
target's URL, its TLS parameters as given, with the session settings the runbook needs added.
"""

from __future__ import annotations

import os
import re
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from runbook.core import tls
from runbook.core.errors import RunbookError, WorkerError, first_line
from runbook.core.source import quote_ident

if TYPE_CHECKING:  # psycopg is imported where a connection is made: `runbook run` starts its
    import psycopg  # first kernel before it (measured: 0.08 s of the command's start)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
EMBEDDED_DATABASE = "coldchain"
_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://", "postgres://")
_PASSWORD_IN_URL = re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]*:)([^@\s]*)(@)")
# a password given as a URL or conninfo parameter (`?password=…`, `sslpassword=…`)
_PASSWORD_PARAMETER = re.compile(r"(?i)(\b(?:ssl)?password=)([^&\s#'\"]+)")
# the URL parameters that name files, made absolute where the runbook resolves the URL: the
# notebooks' kernels and pg_dump run in other folders
FILE_PARAMETERS = ("sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir", "passfile")
# What every connection of the runbook asks of its server session when it connects (libpq's
# `options`, so it holds for the whole session whatever the administrator's defaults): no
# statement_timeout or idle_in_transaction_session_timeout cutting off a long COPY, index build
# or checksum query, and a marker by which `check_ready` proves the server received them (a
# connection pooler refuses or drops them).
SESSION_SETTINGS = {
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "runbook.session": "direct",
}


def project_home() -> Path:
    """Folder of `.runbook/` (embedded server) and `runs/`: RUNBOOK_HOME or the project root."""
    return Path(os.environ.get("RUNBOOK_HOME") or PROJECT_ROOT)


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***` (user, host, port, database stay readable),
    a `password=` or `sslpassword=` parameter too."""
    url = _PASSWORD_IN_URL.sub(
        lambda m: m.group(1) + ("***" if m.group(2) else "") + m.group(3), url
    )
    return _PASSWORD_PARAMETER.sub(lambda m: m.group(1) + "***", url)


def mask_text(text: str, *secrets: str) -> str:
    """Text with every URL password and every given secret replaced by `***`."""
    text = mask_url(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def url_password(url: str) -> str | None:
    """The password a URL carries, if any (before the host, or as a `password` parameter)."""
    password = urlsplit(libpq_url(url)).password
    return unquote(password) if password else url_parameter(url, "password")


def _parameters(url: str) -> list[tuple[str, str]]:
    """The URL's query parameters as written (not decoded: libpq reads `+` as itself)."""
    query = urlsplit(url).query
    return [tuple(item.partition("=")[::2]) for item in query.split("&") if item]


def url_parameter(url: str, name: str) -> str | None:
    """The decoded value of a query parameter of the URL (the last one given), if any."""
    values = [unquote(value) for key, value in _parameters(url) if key == name]
    return values[-1] if values else None


def with_parameters(url: str, values: dict[str, str], drop: tuple[str, ...] = ()) -> str:
    """The URL with these query parameters set (replacing any given) and those in `drop` left
    out; every value percent-encoded alike (`+` too, which SQLAlchemy would read as a space)."""
    parts = urlsplit(url)
    gone = {*values, *drop}
    pairs = [(key, unquote(value)) for key, value in _parameters(url) if key not in gone]
    pairs += values.items()
    query = "&".join(f"{key}={quote(value, safe='/:@,')}" for key, value in pairs)
    return urlunsplit(parts._replace(query=query))


def session_url(url: str) -> str:
    """The libpq URL every connection of the runbook uses: the target's (TLS parameters and all),
    client_encoding UTF8 (the bytes COPY and the checksums send are UTF-8), and libpq's `options`
    with SESSION_SETTINGS after the operator's own (the URL's `options`, else PGOPTIONS)."""
    url = libpq_url(url)
    given = url_parameter(url, "options")
    given = os.environ.get("PGOPTIONS", "") if given is None else given
    ours = " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())
    return with_parameters(url, {"client_encoding": "UTF8", "options": f"{given} {ours}".strip()})


def with_absolute_files(url: str, folder: Path) -> str:
    """The URL with the files its parameters name (sslrootcert, …) made absolute from `folder`."""
    relative = {}
    for name in FILE_PARAMETERS:
        value = url_parameter(url, name)
        if value and value != "system" and not Path(value).expanduser().is_absolute():
            relative[name] = str(folder / value)
    return with_parameters(url, relative) if relative else url


def libpq_url(url: str) -> str:
    """The URL in the `postgresql://` form libpq understands (driver suffix removed)."""
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return "postgresql://" + url[len(scheme) :]
    raise RunbookError(
        f"the target URL does not start with postgresql:// (got {mask_url(url)[:40]!r})",
        fix="give a URL like postgresql://user:$PASSWORD@host:5432/db in DATABASE_URL",
    )


def sqlalchemy_url(url: str) -> str:
    """The URL for SQLAlchemy (the runbook's session settings added): psycopg 3 unless the URL
    names psycopg2 explicitly."""
    driver = "psycopg2" if url.startswith("postgresql+psycopg2://") else "psycopg"
    return f"postgresql+{driver}://" + session_url(url)[len("postgresql://") :]


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE pairs of a `.env` file (comments, `export` and quotes handled as the app does)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class Target:
    """A resolved target database; `repr` and `display` never show the password."""

    url: str = field(repr=False)
    kind: str  # "external" or "embedded"
    source: str  # where the URL came from, e.g. "environment DATABASE_URL"

    @property
    def display(self) -> str:
        """What notebooks and logs show for this target."""
        if self.kind == "embedded":
            return f"embedded PostgreSQL under .runbook/ (database {self.database})"
        return re.sub(r"host=/[^&]*", "host=<socket>", mask_url(self.url))

    @property
    def database(self) -> str:
        """The database name."""
        return urlsplit(libpq_url(self.url)).path.lstrip("/") or "postgres"

    @property
    def password(self) -> str | None:
        """The password (to be masked wherever text may contain it)."""
        return url_password(self.url)

    def __repr__(self) -> str:
        return f"Target({self.display!r}, from {self.source})"

    def with_database(self, name: str) -> Target:
        """The same server and credentials, another database."""
        parts = urlsplit(self.url)
        return Target(urlunsplit(parts._replace(path="/" + name)), self.kind, self.source)


def resolve_target(url: str = "", env_var: str = "DATABASE_URL") -> Target:
    """Find the target: a password-free `url` parameter, else `env_var` from the environment or a
    `.env` file (working directory, then project root), else the embedded server."""
    if url:
        if url_password(url):
            raise RunbookError(
                "the target URL parameter carries a password, which would be written into the "
                "executed notebook and the run archive",
                fix=f"remove the password from the parameter and put the full URL in the "
                f"environment variable {env_var} (or a .env file) instead",
            )
        libpq_url(url)
        return Target(with_absolute_files(url, Path.cwd()), "external", "parameter")
    if os.environ.get(env_var):
        url = with_absolute_files(os.environ[env_var], Path.cwd())
        return Target(url, "external", f"environment {env_var}")
    for folder in dict.fromkeys([Path.cwd(), Path.cwd().parent, project_home()]):
        dotenv = folder / ".env"
        if dotenv.is_file() and read_dotenv(dotenv).get(env_var):
            url = with_absolute_files(read_dotenv(dotenv)[env_var], folder)
            return Target(url, "external", f"{env_var} in .env")
    return embedded_target()


def embedded_target(database: str | None = None) -> Target:
    """Start (or reuse) the embedded PostgreSQL under `.runbook/pgdata` and return its target
    (database RUNBOOK_EMBEDDED_DATABASE, default `coldchain`, created when missing)."""
    database = database or os.environ.get("RUNBOOK_EMBEDDED_DATABASE") or EMBEDDED_DATABASE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        home = project_home() / ".runbook"
        home.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(home / "pgdata", cleanup_mode=None)
        admin_uri = server.get_uri()
    parts = urlsplit(admin_uri)
    base = Target(urlunsplit(parts._replace(netloc="postgres@")), "embedded", "embedded server")
    create_database(base.with_database("postgres"), database, exist_ok=True)
    return base.with_database(database)


def stop_embedded() -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    pgdata = project_home() / ".runbook" / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        server.cleanup()
    return True


def connect(target: Target, **kwargs: object) -> psycopg.Connection:
    """Open a psycopg 3 connection (`session_url`), turning driver errors into one masked,
    actionable sentence."""
    import psycopg

    try:
        return psycopg.connect(session_url(target.url), **kwargs)
    except psycopg.OperationalError as exc:
        raise connection_error(target, exc) from None


def current_schema(conn: psycopg.Connection) -> str:
    """The schema the migration goes into: the session's current schema, the first schema of
    the URL's search_path that exists (`check_ready` makes sure it is the one the URL names)."""
    return conn.execute("SELECT current_schema()").fetchone()[0]


def qualified(conn: psycopg.Connection, name: str) -> str:
    """Table or index `name` in the current schema, quoted: never one of the same name found
    further along the search_path."""
    return f"{quote_ident(current_schema(conn))}.{quote_ident(name)}"


_CONNECTION_HINTS = [
    ("Connection refused", "start the server or check host and port"),
    ("password authentication failed", "check the user and password in the URL"),
    ("does not exist", "create the database first (createdb) or fix its name in the URL"),
    ("could not translate host name", "check the host name in the URL"),
    ("timeout expired", "check that the host is reachable and the port is open"),
    (
        "unsupported startup parameter",
        "connect to PostgreSQL itself, not through a connection pooler such as PgBouncer "
        "(README: Production targets)",
    ),
]


def connection_error(target: Target, exc: BaseException) -> RunbookError:
    """A RunbookError explaining a failed connection, with the password masked; a TLS failure
    says which check failed for which host (`tls.explain`)."""
    message = mask_text(first_line(exc), target.password or "")
    explained = tls.explain(libpq_url(target.url), target.display, message)
    if explained:
        return explained
    fix = next((hint for key, hint in _CONNECTION_HINTS if key in message), "check the target URL")
    return RunbookError(f"cannot connect to {target.display}: {message}", fix=fix)


@contextmanager
def translated(target: Target, doing: str, fix: str) -> Iterator[None]:
    """Turn what the drivers and worker processes raise while `doing` something into one
    RunbookError sentence: what failed (the driver's first line, password masked), where (the
    target), and `fix`; a lost connection says so, and to bring the server back first."""
    import psycopg

    try:
        yield
    except (psycopg.Error, sqlite3.Error, WorkerError) as exc:
        message = mask_text(first_line(exc), target.password or "")
        if _LOST.search(message):
            raise RunbookError(
                f"{doing} failed: the connection to the server was lost ({message})",
                where=target.display,
                fix=f"check that the server is running and reachable, then {fix}",
            ) from None
        raise RunbookError(f"{doing} failed: {message}", where=target.display, fix=fix) from None


_LOST = re.compile(
    r"server closed the connection|terminating connection|connection (?:refused|reset)|"
    r"consuming input failed|the connection is (?:lost|closed)|SSL SYSCALL|no connection",
    re.IGNORECASE,
)


def create_database(admin: Target, name: str, *, exist_ok: bool = False) -> None:
    """Create database `name` on the server of `admin` (a target connected to another database)."""
    with connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and exist_ok:
            return
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin: Target, name: str) -> None:
    """Drop database `name` (terminating its sessions) if it exists."""
    with connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def server_version(target: Target) -> str:
    """The server's version string, e.g. `PostgreSQL 15.20`."""
    with connect(target) as conn:
        return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]
