"""Progress bars: widgets when a person watches the notebook in JupyterLab, plain text lines when
papermill runs it (the `runbook` command and `make notebooks` set RUNBOOK_PROGRESS=text), so the
archived notebook and its HTML show what happened instead of a widget without its state."""

from __future__ import annotations

import os
import sys
from typing import Any

TEXT = "text"


def text_mode() -> bool:
    """True when progress is to be printed as text (headless runs)."""
    return os.environ.get("RUNBOOK_PROGRESS", "").lower() == TEXT


def bar(**kwargs: Any):
    """A tqdm progress bar: `tqdm.auto` (a widget in JupyterLab) or, in text mode, a text bar on
    stdout that prints its start and its end only (no carriage-return churn in the record)."""
    if text_mode():
        from tqdm.std import tqdm

        kwargs.setdefault("file", sys.stdout)
        kwargs["mininterval"] = float("inf")
        kwargs.setdefault("ascii", True)
        return tqdm(**kwargs)
    from tqdm.auto import tqdm

    return tqdm(**kwargs)
