"""Steps sharing a kernel: it starts with the modules its first notebook imports and loads the
later notebooks' in the background, its namespace is emptied (those loads done) and its
execution count back at 1 between notebooks, it is stopped and reaped at the end; a kernel that
died leaves the next step to a kernel of its own; the next kernel starts only after a library
call that returned; background loads run one after the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jupyter_core.utils import run_sync

from runbook.record import kernels


def _run(kernel: Any, code: str) -> tuple[str, int]:
    """What `code` prints in the kernel, and the execution count it ran as."""
    printed: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    client = kernel.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=60)
        reply = run_sync(client.execute_interactive)(code, output_hook=collect, timeout=60)
    finally:
        client.stop_channels()
    return "".join(printed), reply["content"]["execution_count"]


def test_one_kernel_runs_the_steps_on_a_fresh_namespace_each() -> None:
    kernel = kernels.start_kernel(["schema", "verify"])
    try:
        printed, _ = _run(
            kernel,
            "import os, sys\n"
            "print('runbook.steps.schema' in sys.modules)\n"
            "print(os.getcwd())\nleft_over = 1",
        )
        loaded, cwd = printed.split()
        assert loaded == "True"  # the first notebook's import lines find them loaded
        assert Path(cwd) == kernels.NOTEBOOKS  # where papermill would have started it
        _run(kernel, "x = 2")
        assert kernels.fresh_namespace(kernel)
        printed, count = _run(
            kernel,
            "print('left_over' in dir(), 'sys' in dir(), 'verify' in dir())\n"
            "print('runbook.steps.verify' in __import__('sys').modules)",
        )
        # nothing the notebook before defined, nor the background load; its modules loaded
        assert printed.split() == ["False", "False", "False", "True"]
        assert count == 1  # numbered as in a kernel of its own
        process = kernel.provisioner.process
    finally:
        kernels.stop_kernel(kernel)
    assert process.poll() is not None  # ended and reaped, no kernel left behind


CYCLE = """
import gc, weakref
class Node:
    pass
node = Node()
node.itself = node  # garbage only the cyclic collector frees, once the namespace lets go
watch = weakref.ref(node)
"""


def test_a_notebook_s_garbage_is_collected_though_the_kernel_freezes_what_it_holds() -> None:
    kernel = kernels.start_kernel(["backup", "schema"])
    try:
        printed, _ = _run(kernel, "import gc\nprint(gc.get_freeze_count() > 0)")
        assert printed.split() == ["True"]  # the modules imported before the first cell
        _run(kernel, CYCLE)
        _run(kernel, "import builtins\nbuiltins.watched = watch")  # survives the reset
        assert kernels.fresh_namespace(kernel)
        printed, _ = _run(kernel, "import builtins\nprint(builtins.watched() is None)")
        # collected by the reset, not frozen with what the kernel keeps
        assert printed.split() == ["True"]
    finally:
        kernels.stop_kernel(kernel)


LAUNCH_FACTS = """
import gc, sys
from runbook.record import lazy
lazy.wait_for_loads()  # 04's modules load in the background, the collector paused meanwhile
print(gc.isenabled(), gc.get_threshold()[0] > 0)
print(sys.modules.get("debugpy", "-"), "IPython" in sys.modules)
"""


def test_a_run_s_kernel_starts_without_debugpy_and_its_notebooks_run_with_the_collector() -> None:
    """The kernel starts through the runbook's launcher (ipykernel's, without debugpy, the
    collector paused while it loads); once the later notebook's modules have loaded in the
    background, the collector runs, and IPython answers the first cell."""
    kernel = kernels.start_kernel(["transfer", "verify"])
    try:
        command = kernel.provisioner.process.args
        assert command[command.index("-m") + 1] == kernels.LAUNCHER
        printed, count = _run(kernel, LAUNCH_FACTS)
        assert printed.split() == ["True", "True", "None", "True"]  # debugpy refused
        assert count == 1
    finally:
        kernels.stop_kernel(kernel)


def test_the_collector_is_paused_while_background_loads_run_and_restored_after() -> None:
    """No automatic collection while loads run (threshold 0, whatever gc.enable() another
    thread calls, as subprocess does), the thresholds as they were once the last load is done."""
    import gc
    import threading

    from runbook.record import lazy

    thresholds: list[tuple[int, ...]] = []
    release = threading.Event()

    def load() -> None:
        release.wait(timeout=30)
        gc.enable()
        thresholds.append(gc.get_threshold())

    before = gc.get_threshold()
    gc.set_threshold(500, 7, 9)
    try:
        lazy.load_in_background(load)
        lazy.load_in_background(load)
        assert gc.get_threshold()[0] == 0  # paused from the first load on
        release.set()
        lazy.wait_for_loads()
        assert gc.get_threshold() == (500, 7, 9)  # restored once both are done
        assert [t[0] for t in thresholds] == [0, 0]
        with lazy.collector_paused():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold() == (500, 7, 9)
    finally:
        gc.set_threshold(*before)


def test_a_kernel_that_died_is_not_used_again() -> None:
    kernel = kernels.start_kernel(["backup"])
    try:
        _run(kernel, "1")
        kernel.provisioner.process.kill()
        kernel.provisioner.process.wait()
        assert not kernels.fresh_namespace(kernel)
    finally:
        kernels.stop_kernel(kernel)


def test_01_and_02_share_a_kernel_and_03_and_04_another() -> None:
    steps = ["backup", "schema", "transfer", "verify"]
    assert kernels.kernel_groups(steps) == [["backup", "schema"], ["transfer", "verify"]]
    assert kernels.kernel_groups(["schema", "verify"]) == [["schema"], ["verify"]]
    assert kernels.kernel_groups(["cutover"]) == [["cutover"]]


@pytest.mark.parametrize(
    ("steps", "loaded"),
    [(["backup", "schema"], True), (["transfer", "verify"], False), (["cutover"], False)],
)
def test_matplotlib_loads_from_the_kernel_s_start_only_where_its_first_notebook_loads_it(
    steps: list[str], loaded: bool
) -> None:
    """01 and 04 load matplotlib in their first cell: their kernel starts that load when it
    answers; 03 loads it after its loader processes (the run's memory peak), 05 not at all."""
    kernel = kernels.start_kernel(steps)
    try:
        code = (
            "import sys\nfrom runbook.record import lazy\nlazy.wait_for_loads()\n"
            "print('matplotlib.figure' in sys.modules)"
        )
        printed, _ = _run(kernel, code)
    finally:
        kernels.stop_kernel(kernel)
    assert printed.strip() == str(loaded)


def _cell(*tags: str) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}}


def _reply(status: str) -> dict[str, Any]:
    return {"content": {"status": status}}


def test_the_next_kernel_starts_after_a_library_call_that_returned_and_only_then() -> None:
    calls: list[str] = []

    async def then() -> None:
        calls.append("started")

    hook = kernels.after_library_call(then)
    run_sync(hook)(cell=_cell("parameters"), cell_index=0, execute_reply=_reply("ok"))
    run_sync(hook)(cell=_cell(), cell_index=1, execute_reply=_reply("ok"))
    run_sync(hook)(cell=_cell("library-call"), cell_index=2, execute_reply=_reply("error"))
    assert calls == []
    run_sync(hook)(cell=_cell("library-call"), cell_index=2, execute_reply=_reply("ok"))
    assert calls == ["started"]
    started: dict[int, Any] = {}
    start = kernels.kernel_starter(started, 2, ["transfer", "verify"])
    run_sync(start)()
    kernel = started[2]
    run_sync(start)()  # a second library-call cell: the same kernel
    try:
        assert started == {2: kernel}
        printed, _ = _run(kernel, "import sys\nprint('runbook.steps.transfer' in sys.modules)")
        assert printed.split() == ["True"]
    finally:
        kernels.stop_kernel(kernel)


def test_a_ready_client_loses_no_output_of_the_first_cell() -> None:
    """A client is ready once IOPub is connected: what the first request prints arrives, for
    every new client (each step's, each reset's), and readiness takes no wait for silence."""
    kernel = kernels.start_kernel(["backup"])
    try:
        for attempt in range(8):
            client = kernel.client()
            assert isinstance(client, kernels.ReadyClient)
            printed, _ = _run(kernel, f"print('attempt', {attempt})")
            assert printed.split() == ["attempt", str(attempt)]
    finally:
        kernels.stop_kernel(kernel)


def test_a_killed_kernel_is_gone_at_once_and_its_client_is_not_ready() -> None:
    kernel = kernels.start_kernel(["backup"])
    try:
        _run(kernel, "1")
        process = kernel.provisioner.process
        kernels.kill_kernel(kernel)
        process.wait(timeout=10)  # killed, not asked: it does not tidy up for seconds
        client = kernel.client()
        client.start_channels()
        try:
            with pytest.raises(RuntimeError, match="died"):
                run_sync(client.wait_for_ready)(timeout=30)
        finally:
            client.stop_channels()
    finally:
        kernels.stop_kernel(kernel)  # the tidying up of a killed kernel
    assert not kernel.has_kernel


def test_background_loads_run_one_after_the_other_and_wait_only_for_earlier_ones() -> None:
    """A load starts when the loads before it are done (no import in two threads at once); a
    load that waits for loads (a module's first use inside it) waits for the earlier ones only,
    so a later load waiting for it cannot deadlock; `wait_for_loads` waits for all."""
    import threading

    from runbook.record import lazy

    order: list[str] = []
    release, done = threading.Event(), threading.Event()

    def first() -> None:
        release.wait(timeout=30)
        lazy.wait_for_loads()  # inside a load: must not wait for `second`, which waits for it
        order.append("first")

    def second() -> None:
        order.append("second")
        done.set()

    lazy.load_in_background(first)
    lazy.load_in_background(second)
    assert order == []  # second waits for first, which waits for the release
    release.set()
    assert done.wait(timeout=30), "the loads wait for each other"
    lazy.wait_for_loads()
    assert order == ["first", "second"]
    assert lazy._loading == []  # all joined and forgotten


def test_import_in_background_imports_and_leaves_a_failure_to_the_notebook() -> None:
    import sys

    from runbook.record import lazy

    assert "tabnanny" not in sys.modules
    lazy.import_in_background("import tabnanny\nimport runbook_no_such_module")
    lazy.wait_for_loads()  # no exception: the notebook's own import line will report it
    assert "tabnanny" in sys.modules  # imported before the failing line
