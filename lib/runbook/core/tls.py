"""TLS to the target, when it fails: one sentence naming the host, the check that failed (the
certificate's chain, its dates, its host name, a missing CA file, a server that wants TLS or
offers none) and what to do. libpq says only "certificate verify failed" for every failure of
the chain; the reason is found by repeating the handshake with Python's ssl module."""

from __future__ import annotations

import os
import re
import socket
import ssl
import struct
from pathlib import Path

from runbook.core.errors import RunbookError

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # the startup message asking for TLS
_UNKNOWN_CA = "is signed by a certificate authority that sslrootcert does not hold (unknown CA)"
_CHAIN_REASONS = {
    "unable to get local issuer certificate": _UNKNOWN_CA,
    "unable to get issuer certificate": _UNKNOWN_CA,
    "self-signed certificate in certificate chain": _UNKNOWN_CA,
    "self signed certificate in certificate chain": _UNKNOWN_CA,
    "self-signed certificate": "is self-signed, and not the certificate sslrootcert holds",
    "self signed certificate": "is self-signed, and not the certificate sslrootcert holds",
    "certificate has expired": "has expired",
    "certificate is not yet valid": "is not valid yet (check the clocks of both machines)",
}
_RENEW = (
    "the server's administrator must renew its certificate (or fix the clock); do not lower "
    "sslmode to get past this"
)
_RIGHT_CA = (
    "set sslrootcert to the certificate of the CA that signed the server's certificate (your "
    "provider publishes it, e.g. Amazon RDS's global-bundle.pem), or check that the URL names "
    "the intended server; do not lower sslmode to get past this"
)
_MISMATCH = re.compile(
    r'server certificate for "([^"]+)"( \(and \d+ other names?\))? does not match host name'
)
_NO_ROOT = re.compile(r'root certificate file "([^"]*)" does not exist')


def explain(url: str, display: str, message: str) -> RunbookError | None:
    """The sentence for a connection to `url` that failed with `message` (the driver's first
    line, masked) because of TLS; None when TLS is not what failed."""
    params = _params(url)
    host = params.get("host") or params.get("hostaddr") or "localhost"
    mode = params.get("sslmode") or "prefer"
    if "certificate verify failed" in message:
        found = chain_failure(params)
        reason = _CHAIN_REASONS.get(
            found or "", f"failed OpenSSL's check ({found})" if found else "did not verify"
        )
        return RunbookError(
            f"TLS certificate check failed for host {host}: the server's certificate {reason} "
            f"(sslmode={mode}); nothing was written",
            where=display,
            fix=_RENEW
            if found in ("certificate has expired", "certificate is not yet valid")
            else _RIGHT_CA,
        )
    if mismatch := _MISMATCH.search(message):
        return RunbookError(
            f"TLS host name check failed for host {host}: the server's certificate is issued "
            f"for {mismatch.group(1)}{mismatch.group(2) or ''}, not for {host}; nothing was "
            "written",
            where=display,
            fix=f"put the host name the certificate names (e.g. {mismatch.group(1)}) in the URL "
            f"instead of {host}, or ask the administrator for a certificate that names {host}",
        )
    if missing := _NO_ROOT.search(message):
        return RunbookError(
            f"TLS certificate check for host {host} needs the CA certificate file "
            f"{missing.group(1)}, which does not exist; nothing was written",
            where=display,
            fix="give sslrootcert the path of the CA certificate your provider publishes (a "
            "relative path is read from the folder runbook runs in)",
        )
    return _unencrypted(message, host, mode, display)


def _unencrypted(message: str, host: str, mode: str, display: str) -> RunbookError | None:
    """A server that accepts only TLS asked without it, or one without TLS asked for it."""
    if "no pg_hba.conf entry" in message and "no encryption" in message:
        return RunbookError(
            f"the server at {host} refuses connections without TLS from this host "
            f"(sslmode={mode}); nothing was written",
            where=display,
            fix="connect with TLS: add sslmode=verify-full&sslrootcert=<the CA certificate file> "
            "to the URL (if it is still refused, the administrator must allow this user from "
            "this host in pg_hba.conf)",
        )
    if "server does not support SSL" in message:
        return RunbookError(
            f"the server at {host} does not offer TLS, which the URL requires (sslmode={mode}); "
            "nothing was written",
            where=display,
            fix="ask the administrator to enable TLS on the server (ssl = on), or check that the "
            "URL names the intended server",
        )
    return None


_ENVIRONMENT = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT"}
_ENVIRONMENT |= {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT"}


def _params(url: str) -> dict[str, str]:
    """The URL's connection parameters, and those libpq takes from the environment otherwise."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = {k: v for k, v in conninfo_to_dict(url).items() if isinstance(v, str)}
    except Exception:  # noqa: BLE001 - a URL libpq cannot parse has no TLS parameters to explain
        params = {}
    for name, variable in _ENVIRONMENT.items():
        if not params.get(name) and os.environ.get(variable):
            params[name] = os.environ[variable]
    return params


def chain_failure(params: dict[str, str], timeout: float = 10.0) -> str | None:
    """Why the server's certificate chain does not verify against sslrootcert (OpenSSL's reason,
    e.g. "certificate has expired"), found by asking the server for TLS as libpq does and
    verifying its certificate with Python's ssl module; None when that cannot tell."""
    host = (params.get("hostaddr") or params.get("host") or "localhost").split(",")[0]
    port = int((params.get("port") or "5432").split(",")[0])
    root = params.get("sslrootcert") or str(Path("~/.postgresql/root.crt").expanduser())
    context = ssl.create_default_context()
    context.check_hostname = False  # libpq checks the host name itself, and says so
    try:
        if root == "system":
            context.load_default_certs()
        else:
            context.load_verify_locations(cafile=root)
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_SSL_REQUEST)
            if sock.recv(1) != b"S":
                return None
            with context.wrap_socket(sock, server_hostname=params.get("host") or host):
                return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message
    except (OSError, ValueError):
        return None
