"""Modules imported when first used. matplotlib costs a kernel about 30 MB; a step's notebook
imports what it draws with before its work, so it would sit in the kernel while the step's
worker processes run (the peak of a whole run), not only when a chart is drawn. Modules loaded
in the background meanwhile, the cyclic collector paused while they load."""

from __future__ import annotations

import contextlib
import gc
import importlib
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

_loading: list[threading.Thread] = []  # background loads a first use waits for

# the cyclic collector pauses while modules load in the background: a load's imports make
# objects that live as long as the process, and the collector walked them again and again while
# they loaded (measured, 02's modules and matplotlib in 01's kernel: 0.12 CPU-s); cycles the
# notebook drops meanwhile are collected once the loads are done. Paused by its threshold (0:
# no automatic collection), not gc.disable(): gc.isenabled() may be another thread's momentary
# state (subprocess turns the collector off and on again around a fork with a preexec_fn).
_COLLECTOR = threading.Lock()
_pauses: list[Any] = [0, None]  # pauses in force, the thresholds before the first


def pause_collector() -> None:
    """No automatic collection until as many `resume_collector` calls."""
    with _COLLECTOR:
        if _pauses[0] == 0:
            _pauses[1] = gc.get_threshold()
            gc.set_threshold(0)
        _pauses[0] += 1


def resume_collector() -> None:
    """End one pause; the last restores the collector's thresholds."""
    with _COLLECTOR:
        if _pauses[0] == 0:
            return
        _pauses[0] -= 1
        if _pauses[0] == 0:
            gc.set_threshold(*_pauses[1])


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector paused while modules load in the block (as in a background load)."""
    pause_collector()
    try:
        yield
    finally:
        resume_collector()


def load_in_background(load: Callable[[], None]) -> None:
    """Run `load` (imports) in a background thread, after the loads started before it, the
    cyclic collector paused until the loads are done; the first use of a module waits for
    them, so no import runs in two threads at once (Python may then hand one of them a module
    still being initialised: seen as pandas' display options not yet set, when tables were
    pandas')."""

    def after_earlier_loads() -> None:
        try:
            wait_for_loads()
            load()
        finally:
            resume_collector()

    thread = threading.Thread(target=after_earlier_loads, name="prefetch", daemon=True)
    _loading.append(thread)
    pause_collector()
    thread.start()


def import_in_background(statements: str) -> None:
    """Run import statements in the background (`load_in_background`): a shared kernel's later
    notebooks' modules, loaded while its first notebook works. Nothing is bound in the user's
    namespace; an import that fails here fails again, and is reported, in its notebook."""

    def load() -> None:
        with contextlib.suppress(Exception):
            exec(statements, {})  # noqa: S102 - import lines of the runbook's own notebooks

    load_in_background(load)


def wait_for_loads() -> None:
    """Wait for the background loads; asked in a load, for the loads started before it only."""
    current = threading.current_thread()
    in_a_load = current in _loading
    earlier = _loading[: _loading.index(current)] if in_a_load else list(_loading)
    for thread in earlier:
        thread.join()
        if not in_a_load and thread in _loading:
            _loading.remove(thread)


class OnFirstUse:
    """A module imported when one of its attributes is first asked for (`setup` runs then)."""

    def __init__(self, name: str, setup: Callable[[ModuleType], None] | None = None) -> None:
        self._name, self._setup, self._module = name, setup, None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            wait_for_loads()
            module = importlib.import_module(self._name)
            if self._setup:
                self._setup(module)
            self._module = module
        return getattr(self._module, attribute)


matplotlib = OnFirstUse("matplotlib")
font_manager = OnFirstUse("matplotlib.font_manager")
matplotlib_figure = OnFirstUse("matplotlib.figure")
agg = OnFirstUse("matplotlib.backends.backend_agg")
