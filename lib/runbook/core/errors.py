"""The one error family the runbook raises: every failure an operator can meet ends as a
`RunbookError` sentence (what, where, what to do); the traceback stays in the notebook's
record."""

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


class WorkerError(RunbookError):
    """A failure in a worker process, carried back as its first line; the step that started
    the workers says what it was doing and what to do (see `core.target.translated`)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add DETAIL and HINT lines), or its
    repr when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
