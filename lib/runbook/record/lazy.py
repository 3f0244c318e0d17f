"""Modules imported when first used. pandas and matplotlib cost a kernel about 50 MB; a step's
notebook imports what it shows with before its work, so they would sit in the kernel while the
step's worker processes run (the peak of a whole run), not only when a table is shown."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any


class OnFirstUse:
    """A module imported when one of its attributes is first asked for (`setup` runs then)."""

    def __init__(self, name: str, setup: Callable[[ModuleType], None] | None = None) -> None:
        self._name, self._setup, self._module = name, setup, None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            module = importlib.import_module(self._name)
            if self._setup:
                self._setup(module)
            self._module = module
        return getattr(self._module, attribute)


def _pandas_options(pandas: ModuleType) -> None:
    pandas.set_option("display.max_rows", 200)  # long tables go through summarize()
    pandas.set_option("display.max_colwidth", 80)


pd = OnFirstUse("pandas", _pandas_options)
matplotlib = OnFirstUse("matplotlib")
font_manager = OnFirstUse("matplotlib.font_manager")
matplotlib_figure = OnFirstUse("matplotlib.figure")
agg = OnFirstUse("matplotlib.backends.backend_agg")
