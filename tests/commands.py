"""The runbook command as the tests run it: in a subprocess, with the test's environment."""

from __future__ import annotations

import os
import subprocess
import sys


def runbook(
    *args: str, env: dict[str, str], wrapper: tuple[str, ...] = (), cwd: str | None = None
) -> subprocess.CompletedProcess:
    """`runbook ARGS` with `env` over this process's environment, started through `wrapper`
    (e.g. setpriv) when given, in folder `cwd` when given; output captured."""
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "runbook.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
    )
