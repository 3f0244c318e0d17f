"""A throwaway PostgreSQL server with password (scram) authentication on a free local port, made
from the server binaries the embedded-server package ships; tests start and stop it at will."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from runbook.target import Target

SERVER_USER = "pgserver"  # PostgreSQL refuses to run as root; this user runs it instead


def _binaries() -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayServer:
    """initdb + pg_ctl start/stop of a private cluster; `target(db)` gives a password URL."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="runbook-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.password = f"scram-{secrets.token_hex(8)}"
        self.user = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                subprocess.run(["useradd", "-s", "/bin/sh", SERVER_USER], check=True)
            self.user = SERVER_USER
            self.folder.chmod(0o755)
            shutil.chown(self.folder, SERVER_USER)
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user:
            shutil.chown(pwfile, self.user)
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
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(_binaries() / tool), *args],
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

    def target(self, database: str = "postgres", password: str | None = None) -> Target:
        secret = self.password if password is None else password
        url = "postgresql://postgres:" + secret + f"@127.0.0.1:{self.port}/{database}"
        return Target(url, "external", "throwaway server")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
