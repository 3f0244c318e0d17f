"""A step's kernel started while the step before it runs: only once that step's library call has
returned without error, once, with the modules its notebook imports already loaded, and stopped
when its step does not run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync

from runbook.record import runner


def cell(*tags: str) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}}


def reply(status: str) -> dict[str, Any]:
    return {"content": {"status": status}}


def test_the_hook_fires_after_a_library_call_that_returned_and_only_then() -> None:
    calls: list[str] = []

    async def then() -> None:
        calls.append("started")

    hook = runner.after_library_call(then)
    run_sync(hook)(cell=cell("parameters"), cell_index=0, execute_reply=reply("ok"))
    run_sync(hook)(cell=cell(), cell_index=1, execute_reply=reply("ok"))
    run_sync(hook)(cell=cell("library-call"), cell_index=2, execute_reply=reply("error"))
    assert calls == []
    run_sync(hook)(cell=cell("library-call"), cell_index=2, execute_reply=reply("ok"))
    assert calls == ["started"]


def test_the_next_steps_kernel_starts_once_warm_and_is_stopped_when_unused() -> None:
    kernels: dict[str, Any] = {}
    start = runner._kernel_starter(kernels, "verify")
    run_sync(start)()
    kernel = kernels["verify"]
    run_sync(start)()  # a second library-call cell: the same kernel
    assert kernels == {"verify": kernel}
    printed: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    client = kernel.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=60)
        code = "import os, sys; print('runbook.steps.verify' in sys.modules, os.getcwd())"
        run_sync(client.execute_interactive)(code, output_hook=collect, timeout=60)
    finally:
        client.stop_channels()
    loaded, cwd = "".join(printed).split()
    assert loaded == "True"  # the notebook's own import line then finds it loaded
    assert Path(cwd) == runner.NOTEBOOKS  # where papermill would have started it
    process = kernel.provisioner.process
    runner.stop_kernels(kernels)
    assert kernels == {}
    assert process.poll() is not None  # ended and reaped, no kernel left behind
