"""How a run's kernels start: ipykernel's own launcher (`python -m ipykernel_launcher`) with two
differences no notebook sees. debugpy is not imported: no frontend attaches a debugger to a run's
kernel, and ipykernel then answers debug requests that it has none (measured: 0.045 CPU-s and
7 MiB a kernel). The cyclic collector is paused until the kernel has imported what its first
notebook imports (`kernels.STARTED` resumes it): it would walk the hundreds of thousands of
objects the imports make, which live as long as the kernel, again and again while they load
(measured, 01's and 02's modules: 0.88 CPU-s with it, 0.76 s without)."""

from __future__ import annotations

import sys
from pathlib import Path

from runbook.record.lazy import pause_collector


def main() -> None:
    """Start an IPython kernel as `ipykernel_launcher` does, without debugpy, the collector
    paused."""
    pause_collector()
    # the working directory leaves sys.path while ipykernel loads (IPython puts it back), as in
    # ipykernel_launcher
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]
    sys.modules.setdefault("debugpy", None)  # None: `import debugpy` raises ImportError
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
