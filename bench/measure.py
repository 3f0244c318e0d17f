"""Measuring a process tree: wall seconds and the peak of its resident memory (summed over the
process and all its descendants, polled from /proc every 20 ms); and what the machine is."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _command(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, summed. A child still running its
    parent's command is a fork that has not yet exec'd its own program (a kernel starting a
    worker): its pages are the parent's, shared copy-on-write, so it counts once (seen: a
    147 MB kernel counted twice for one 20 ms poll, 398 MB instead of 251 MB)."""
    total, stack = 0, [(pid, b"")]
    while stack:
        current, parent_command = stack.pop()
        command = _command(current)
        if command != parent_command:
            total += _rss_kib(current)
        stack += [(child, command) for child in _children(current)]
    return total


def measure(command: list[str], **kwargs) -> dict:
    """Run a command; wall seconds and the peak RSS (MiB) of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kib(process.pid))
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out, err = process.communicate()
    done.set()
    poller.join()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(
            f"{' '.join(command[:3])}… failed ({process.returncode}): {err.decode()[-2000:]}"
        )
    return {"seconds": seconds, "peak_rss_mib": round(peak / 1024, 1), "stdout": out.decode()}


def load_average() -> list[float]:
    """The machine's load averages (1, 5, 15 minutes), as `uptime` prints them."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """CPU, memory, OS and Python of this machine."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as handle:
        mem_kib = int(handle.readline().split()[1])
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
