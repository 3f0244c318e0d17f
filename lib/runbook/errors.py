"""The one error type the runbook raises on purpose."""

from __future__ import annotations


class RunbookError(Exception):
    """A problem the operator can act on: says what went wrong, where, and what to do next."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.what
        if self.where:
            text += f" (at {self.where})"
        if self.fix:
            text += f". What to do: {self.fix}"
        return text
