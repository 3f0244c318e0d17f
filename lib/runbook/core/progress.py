"""Progress bars: widgets when a person watches the notebook in JupyterLab, plain text lines when
papermill runs it (the `runbook` command and `make notebooks` set RUNBOOK_PROGRESS=text), so the
archived notebook and its HTML show what happened instead of a widget without its state."""

from __future__ import annotations

import os
import time
from typing import Any

TEXT = "text"


def text_mode() -> bool:
    """True when progress is to be printed as text (headless runs)."""
    return os.environ.get("RUNBOOK_PROGRESS", "").lower() == TEXT


class TextProgress:
    """Headless progress: one line per bar when it closes (bars of parallel loads would otherwise
    interleave cursor movements in the archived record)."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", **_: Any):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        seconds = time.perf_counter() - self.started
        print(f"{self.desc}: {self.n} of {self.total} {self.unit} in {seconds:.1f} s", flush=True)

    def __enter__(self) -> TextProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(**kwargs: Any):
    """A progress bar: `tqdm.auto` (a widget in JupyterLab) or, in text mode, one line on stdout
    per bar when it closes."""
    if text_mode():
        return TextProgress(**kwargs)
    from tqdm.auto import tqdm

    return tqdm(**kwargs)
