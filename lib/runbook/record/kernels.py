"""The kernels a run's notebooks execute on: started early with the modules their notebooks
import, 03 and 04 sharing one (`kernel_groups`), emptied between notebooks, stopped at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from runbook.core.run import notebook_name
from runbook.core.target import PROJECT_ROOT
from runbook.record.parts import LIBRARY_CALL

NOTEBOOKS = PROJECT_ROOT / "notebooks"


def notebook_path(step: str) -> Path:
    """The committed notebook of a step."""
    return NOTEBOOKS / f"{notebook_name(step)}.ipynb"


KERNEL_ARGUMENTS = [
    # the kernel listens on 127.0.0.1 only; its start-up warning that TCP is not encrypted
    # would stand in every run's output (its errors still show)
    "--IPKernelApp.log_level=ERROR",
    # no command history in a SQLite file under ~/.ipython: the executed notebook is the record
    # (measured: kernel start 1.56 s with it, 1.17 s without)
    "--HistoryManager.enabled=False",
]


# 01 and 02 share a kernel, and 03 and 04 another, one notebook after the other, the namespace
# emptied in between (`fresh_namespace`): a kernel of its own cost a step 2.1-2.7 CPU-seconds
# (its start, the imports of SQLAlchemy, psycopg and matplotlib) on 2 vCPUs, where a run is
# CPU-bound; 02 in 01's kernel finds matplotlib loaded instead of loading it beside its
# preflight processes (measured, standard scale 1, four alternating runs each: 02 1.56 -> 1.19
# s, the whole run 10.36 -> 10.18 s). Not all four steps in one: a kernel that has run 01 and 02
# holds 60-70 MB more than a fresh one (their modules, matplotlib) and beside 03's loader
# processes lifted the run's peak from 281 to 346 MiB. A kernel starts early: the first with
# the runner's checks, importing what 01 imports and then, in the background while 01 works,
# what 02 imports (`_warm`); 03's once 02 has returned from its library call (its preflight
# processes gone) while 02 draws its charts and is exported. The modules keep only caches
# between notebooks; nbval and the interrupted-notebook test run each notebook in a kernel of
# its own, as JupyterLab does.
KERNEL_GROUPS = (("backup", "schema"), ("transfer", "verify"))


def kernel_groups(steps: list[str]) -> list[list[str]]:
    """The run's steps in the groups that share a kernel (a step in no group: alone)."""
    groups: list[list[str]] = []
    for step in steps:
        shared = next((g for g in KERNEL_GROUPS if step in g), (step,))
        if groups and groups[-1][0] in shared:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _first_cell(step: str) -> str:
    """The source of a step notebook's first cell after its parameters."""
    cells = json.loads(notebook_path(step).read_text(encoding="utf-8"))["cells"]
    code = [
        c
        for c in cells
        if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", [])
    ]
    return "".join(code[0]["source"]) if code else ""


def _imports(cell: str) -> list[str]:
    """The import lines of a cell's source."""
    return [line for line in cell.splitlines() if line.startswith(("from runbook", "import "))]


IOPUB_PROBE = 0.05  # seconds a connected IOPub channel takes to bring a request's idle status


class ReadyClient(AsyncKernelClient):
    """The client of a run's kernels (papermill's and the namespace reset's), ready as soon as
    the kernel has answered on both channels. jupyter_client's `wait_for_ready` waits for 0.2 s
    of silence on IOPub, after a first kernel_info whose status messages are usually lost to
    ZeroMQ's late subscription (measured: 0.21 s a client, a client per step and per reset, on
    a kernel that has long been up): here it waits for the idle status of its own kernel_info
    request, which says IOPub is connected and that nothing it sent is still on the way."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            request = self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply and reply["msg_type"] == "kernel_info_reply" and await self._idle(request):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

    async def _idle(self, request: str) -> bool:
        """True once IOPub brings the idle status of `request` (the messages before it read and
        dropped, as jupyter_client's flush drops them); False when IOPub stays silent."""
        while True:
            try:
                message = await self.iopub_channel.get_msg(timeout=IOPUB_PROBE)
            except Empty:
                return False
            if (
                message["parent_header"].get("msg_id") == request
                and message["msg_type"] == "status"
                and message["content"].get("execution_state") == "idle"
            ):
                return True


LAUNCHER = "runbook.record.launcher"  # ipykernel's launcher without debugpy, collector paused


class RunKernelManager(AsyncKernelManager):
    """The kernel manager of a run's kernels: the `python3` kernel spec's command, started by
    `launcher` where the spec names `-m ipykernel_launcher` (another spec's command as it is)."""

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        for i in range(1, len(command)):
            if command[i - 1] == "-m" and command[i] == "ipykernel_launcher":
                command[i] = LAUNCHER
        return command


async def _start_kernel(steps: list[str]) -> Any:
    kernel = RunKernelManager(
        kernel_name="python3", client_class=f"{__name__}.{ReadyClient.__name__}"
    )
    await kernel.start_kernel(extra_arguments=KERNEL_ARGUMENTS + _warm(steps), cwd=str(NOTEBOOKS))
    return kernel


def _warm(steps: list[str]) -> list[str]:
    """IPython's exec_lines importing what the steps' notebooks import: the first notebook's
    before the kernel answers, the later notebooks' in the background (`fresh_namespace` waits
    for them), so the first step does not wait for modules it does not use (measured, 01 and
    02 sharing a kernel that imported both before it answered: 01 waited 0.46-0.50 s for it,
    0.08-0.12 s for one importing 01's modules alone)."""
    first_cell = _first_cell(steps[0]) if steps else ""
    first = _imports(first_cell)
    later = [line for s in steps[1:] for line in _imports(_first_cell(s)) if line not in first]
    lines = first + [FREEZE, STARTED]
    lines += [CHARTS_EARLY] if PREFETCH in first_cell else []
    lines += [BACKGROUND.format("\n".join(dict.fromkeys(later)))] if later else []
    return [f"--IPKernelApp.exec_lines={line}" for line in lines]


# what the kernel holds before a notebook's first cell (modules; after a reset's collection, no
# garbage) moved out of the cyclic collector's reach: its collections, %reset's included, then
# walk only what the notebooks made (a full collection of a kernel with 01's and 02's modules:
# 0.06 s; with the runner's own `gc.freeze`, standard scale 1, ten alternating runs each: the
# whole run 9.91 -> 9.68 s and 10.26 -> 9.77 s median; wide 1 within its spread)
FREEZE = "__import__('gc').freeze()"
# runbook.record.lazy as an expression, for the kernel's exec_lines and the namespace reset
LAZY = "__import__('runbook.record.lazy', fromlist=['_'])"
# the collector, paused while the kernel started (`launcher`), runs for the notebooks
STARTED = f"{LAZY}.resume_collector()"


BACKGROUND = LAZY + ".import_in_background({!r})"
# matplotlib for the charts, loaded in the background as soon as the kernel answers (while the
# runner finishes its checks) when its first notebook would start that load in its first cell
# (01, 04; not 03, which loads it once its loader processes, the run's memory peak, have ended,
# nor 05, which draws inside the freeze window and was not measured with it)
PREFETCH = "charts.prefetch()"
CHARTS_EARLY = "__import__('runbook.record.charts', fromlist=['_']).prefetch()"


def start_kernel(steps: list[str]) -> Any:
    """The kernel of a run's steps, started now: the `python3` kernel as papermill would start
    it (same spec and arguments, in notebooks/, with the environment set so far) through
    `launcher`, importing what the steps' notebooks import while it starts (IPython's
    exec_lines: no cell, no execution count)."""
    from jupyter_core.utils import run_sync

    return run_sync(_start_kernel)(steps)


# the user namespace emptied and the execution count back at 1: the next notebook's cells see
# only what they define, numbered from 1, as in a kernel of their own
RESET = (
    f"{LAZY}.wait_for_loads()\n"  # the warm imports
    "get_ipython().run_line_magic('reset', '-f')\nget_ipython().execution_count = 1\n"
    f"{FREEZE}"
)


async def _fresh_namespace(kernel: Any) -> None:
    client = kernel.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(RESET, silent=True, timeout=60)
    finally:
        client.stop_channels()
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"the kernel could not reset: {reply['content'].get('evalue')}")


def fresh_namespace(kernel: Any) -> bool:
    """Empty the kernel's namespace for the next notebook; False when the kernel does not answer
    (it died with the step before), so papermill starts the next step's own."""
    from jupyter_core.utils import run_sync

    if not run_sync(kernel.is_alive)():
        return False
    try:
        run_sync(_fresh_namespace)(kernel)
    except Exception:  # noqa: BLE001 - the next step then runs in a kernel of its own
        return False
    return True


def after_library_call(then: Callable[[], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """An nbclient `on_cell_executed` hook awaiting `then` once a cell tagged `library-call`
    has run without error: on papermill's own event loop, the one a later papermill call runs
    in, so a kernel started there serves the next steps as if started before them."""

    async def hook(cell: Any, execute_reply: dict[str, Any], **_: Any) -> None:
        tagged = LIBRARY_CALL in cell.get("metadata", {}).get("tags", [])
        if tagged and execute_reply.get("content", {}).get("status") == "ok":
            await then()

    return hook


def kernel_starter(
    kernels: dict[int, Any], group: int, steps: list[str]
) -> Callable[[], Awaitable[None]]:
    """Start the kernel of `group` into `kernels` once; a kernel that fails to start is left to
    papermill, which starts each step's own and says in that step's record what failed."""

    async def start() -> None:
        if group not in kernels:
            try:
                kernels[group] = await _start_kernel(steps)
            except Exception:  # noqa: BLE001 - not this step's failure (see above)
                return

    return start


def kill_kernel(kernel: Any) -> None:
    """End a kernel whose steps are done now, its memory given back at once; `stop_kernel`
    tidies up later (jupyter_client's shutdown polls every 0.1 s until the process is gone:
    0.11-0.15 s between the steps, measured)."""
    from jupyter_core.utils import run_sync

    if kernel.has_kernel:  # a provisioner with its process
        run_sync(kernel.provisioner.kill)()


def stop_kernel(kernel: Any) -> None:
    """Stop the run's kernel (papermill stops only the kernels it started)."""
    from jupyter_core.utils import run_sync

    if kernel is not None and kernel.has_kernel:
        run_sync(kernel.shutdown_kernel)(now=True)
