"""Is the target fit for a migration? Checked before step 01 and at the top of every notebook,
before anything is written: PostgreSQL 12 or newer, reached directly (the session settings the
runbook sends when it connects arrived: no connection pooler in between), a UTF-8 database, and
a schema to put everything in that the role may create objects in. What the session is (TLS,
the role's attributes, the schema) goes into the manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from runbook.core.errors import RunbookError
from runbook.core.source import quote_ident
from runbook.core.target import (
    SESSION_SETTINGS,
    Target,
    connection_error,
    libpq_url,
    session_url,
    translated,
    url_parameter,
    with_parameters,
)

if TYPE_CHECKING:  # psycopg is imported where a connection is made (see core.target)
    import psycopg

MINIMUM_SERVER = 120000  # PostgreSQL 12: generated identity, VALIDATE CONSTRAINT, COPY as used
_MARKER = "runbook.session"

_FACTS = """
SELECT current_setting('server_version_num')::int AS number,
       current_setting('server_version') AS version,
       current_setting(%s, true) AS marker,
       current_user AS role, current_database() AS database, current_schema() AS schema,
       pg_encoding_to_char(d.encoding) AS encoding,
       r.rolsuper AS superuser, r.rolcreatedb AS createdb, r.rolcreaterole AS createrole,
       r.rolreplication AS replication, r.rolbypassrls AS bypassrls,
       d.datdba = r.oid AS owns_database, pg_get_userbyid(d.datdba) AS database_owner,
       (SELECT pg_get_userbyid(nspowner) FROM pg_namespace
        WHERE nspname = current_schema()) AS schema_owner,
       has_schema_privilege(current_schema(), 'CREATE') AS may_create,
       has_schema_privilege(current_schema(), 'USAGE') AS may_use,
       s.ssl, s.version AS tls_protocol, s.cipher AS tls_cipher, s.bits AS tls_bits
FROM pg_database d JOIN pg_roles r ON r.rolname = current_user
LEFT JOIN pg_stat_ssl s ON s.pid = pg_backend_pid()
WHERE d.datname = current_database()
"""


@dataclass(frozen=True)
class Readiness:
    """A target found fit: its server, the schema everything goes into, and its session."""

    version: str  # e.g. "PostgreSQL 16.2"
    schema: str
    tls: dict[str, Any]
    role: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of the target's session (no secret, no file path)."""
        settings = {k: v for k, v in SESSION_SETTINGS.items() if k != _MARKER}
        return {
            "server": self.version,
            "schema": self.schema,
            "tls": self.tls,
            "role": self.role,
            "session_settings": settings | {"client_encoding": "UTF8"},
        }


def check_ready(target: Target) -> Readiness:
    """Connect and check the target can take a migration; one sentence, before anything is
    written, when it cannot (a pooler in between, an old server, a database not in UTF-8, a
    missing schema, a role without the rights it needs)."""
    import psycopg
    from psycopg.rows import dict_row

    try:
        conn = psycopg.connect(session_url(target.url), row_factory=dict_row)
    except psycopg.OperationalError as exc:
        if "unsupported startup parameter" in str(exc):
            raise _pooler(target) from None
        raise connection_error(target, exc) from None
    with translated(target, "checking the target", "run the same command again"), conn:
        facts = conn.execute(_FACTS, [_MARKER]).fetchone()
        if facts["marker"] != SESSION_SETTINGS[_MARKER]:
            raise _pooler(target, conn)
        in_effect = {o.keyword.decode(): (o.val or b"").decode() for o in conn.pgconn.info}
    version = "PostgreSQL " + facts["version"].split()[0]
    if facts["number"] < MINIMUM_SERVER:
        raise RunbookError(
            f"the target runs {version}, older than PostgreSQL 12, which the runbook needs",
            where=target.display,
            fix="migrate into PostgreSQL 12 or newer (the application uses 15)",
        )
    _require_utf8(target, facts)
    _require_schema(target, facts)
    return Readiness(version, facts["schema"], _tls(in_effect, facts), _role(facts))


def _tls(in_effect: dict[str, str], facts: dict[str, Any]) -> dict[str, Any]:
    """The session's TLS as the server reports it (pg_stat_ssl), and what the sslmode in effect
    (the URL's, PGSSLMODE's or libpq's default) had checked."""
    mode = in_effect.get("sslmode") or "prefer"
    checked = {"verify-full": "CA and host name", "verify-ca": "CA only"}.get(mode, "not checked")
    if not facts["ssl"]:
        return {"used": False, "sslmode": mode}
    return {
        "used": True,
        "protocol": facts["tls_protocol"],
        "cipher": facts["tls_cipher"],
        "bits": facts["tls_bits"],
        "sslmode": mode,
        "server certificate": checked,
    }


def _role(facts: dict[str, Any]) -> dict[str, Any]:
    keys = ("role", "superuser", "createdb", "createrole", "replication", "bypassrls")
    keys += ("owns_database", "database_owner", "schema_owner")
    return {key: facts[key] for key in keys}


def _require_utf8(target: Target, facts: dict[str, Any]) -> None:
    if facts["encoding"] == "UTF8":
        return
    raise RunbookError(
        f"the target database {facts['database']} is encoded {facts['encoding']}, which cannot "
        "hold every character the application stores (EUC-KR, for one, has 2,350 of the 11,172 "
        "Hangul syllables); nothing was written",
        where=target.display,
        fix="create a UTF-8 database and point the URL at it: CREATE DATABASE <name> OWNER "
        f"{quote_ident(facts['database_owner'])} ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' "
        "LC_CTYPE 'C.UTF-8' TEMPLATE template0 (or another UTF-8 locale the server has)",
    )


def wanted_schema(target: Target) -> str | None:
    """The first schema the URL's options (or PGOPTIONS) put in the search_path, if they set it."""
    options = url_parameter(session_url(target.url), "options") or ""
    found = re.search(r"search_path\s*=\s*((?:\\ |[^ ])+)", options)
    if not found:
        return None
    names = [n.strip().strip('"') for n in found.group(1).replace("\\ ", " ").split(",")]
    return next((n for n in names if n and n != "$user"), None)


def _require_schema(target: Target, facts: dict[str, Any]) -> None:
    """Everything goes into the session's current schema: it must be the one the URL names, and
    the role must be allowed to create objects in it."""
    wanted, schema, role = wanted_schema(target), facts["schema"], facts["role"]
    if schema is None or (wanted and wanted != schema):
        missing = wanted or "named by the search_path"
        raise RunbookError(
            f"schema {missing} does not exist in database {facts['database']}; nothing was written",
            where=target.display,
            fix=f"create it as the database owner (CREATE SCHEMA {quote_ident(wanted or role)} "
            f"AUTHORIZATION {quote_ident(role)}), or fix the search_path in the URL's options",
        )
    if not (facts["may_create"] and facts["may_use"]):
        raise RunbookError(
            f"permission denied: role {role} may not create objects in schema {schema}",
            where=target.display,
            fix=f"GRANT USAGE, CREATE ON SCHEMA {quote_ident(schema)} TO {quote_ident(role)} "
            f"(as its owner, {facts['schema_owner']}), or connect as the database owner",
        )


def _pooler(target: Target, conn: psycopg.Connection | None = None) -> RunbookError:
    """The refusal of a target reached through a connection pooler, naming the server's own
    address as the pooler reaches it (the URL to migrate with)."""
    direct = direct_url(target, conn)
    instead = f": {Target(direct, 'external', 'pooler').display}" if direct else ""
    return RunbookError(
        "the target URL leads to a connection pooler (such as PgBouncer), not to PostgreSQL "
        "itself: the session settings the runbook needs did not reach the server, and a "
        "transaction pooler would lose those set later; nothing was written",
        where=target.display,
        fix=f"run the migration with the server's own address{instead} (the server as the "
        "pooler reaches it: its host and port); the application can keep using the pooler",
    )


def direct_url(target: Target, conn: psycopg.Connection | None = None) -> str | None:
    """The target URL with the host and port of the server behind a pooler (as the pooler
    reaches it; the pooler's host when it reaches the server by a Unix socket)."""
    import psycopg

    sql = "SELECT host(inet_server_addr()), current_setting('port')"
    try:
        if conn is None:
            with psycopg.connect(libpq_url(target.url), connect_timeout=10) as raw:
                address, port = raw.execute(sql).fetchone()
        else:
            address, port = conn.execute(sql, prepare=False).fetchone().values()
    except psycopg.Error:
        return None
    parts = urlsplit(target.url)
    host = address or parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    user = parts.netloc.rpartition("@")[0]
    url = urlunsplit(parts._replace(netloc=f"{user}@{host}:{port}" if user else f"{host}:{port}"))
    return with_parameters(url, {}, drop=("host", "hostaddr", "port"))
