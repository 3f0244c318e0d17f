"""Modules imported when first used. matplotlib costs a kernel about 30 MB; a step's notebook
imports what it draws with before its work, so it would sit in the kernel while the step's
worker processes run (the peak of a whole run), not only when a chart is drawn."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

_loading: list[threading.Thread] = []  # background loads a first use waits for


def load_in_background(load: Callable[[], None]) -> None:
    """Run `load` (imports) in a background thread; the first use of a module waits for it, so
    no import runs in two threads at once (Python may then hand one of them a module still being
    initialised: seen as pandas' display options not yet set, when tables were pandas')."""
    thread = threading.Thread(target=load, name="prefetch", daemon=True)
    _loading.append(thread)
    thread.start()


def wait_for_loads() -> None:
    """Wait for the background loads (but the one asking, when a load itself uses a module)."""
    for thread in list(_loading):
        if thread is not threading.current_thread():
            thread.join()
            if thread in _loading:
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
