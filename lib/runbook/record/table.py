"""The tables a notebook shows: rows under named columns, as HTML in JupyterLab and the HTML
export and as aligned text in the notebook's plain output (what nbval compares). Plain Python:
pandas cost each step's kernel about 40 MB and half a second to import, for display only."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_WIDTH = 80  # characters of one value shown; longer values end in "…"


def _text(value: Any) -> str:
    """A value as the table shows it (floats to at most three decimals, no trailing zeros)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "NaN"
    text = str(value)
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"


def _numeric(values: Iterable[Any]) -> bool:
    """A column of numbers (bools aside) is aligned to the right."""
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )


class Table:
    """Rows under named columns, in the order given."""

    def __init__(self, rows: Iterable[Mapping[str, Any] | Sequence[Any]], columns: Sequence[str]):
        self.columns = list(columns)
        self.rows = [
            [row.get(c) for c in self.columns] if isinstance(row, Mapping) else list(row)
            for row in rows
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def head(self, limit: int) -> Table:
        """The first `limit` rows."""
        return Table(self.rows[:limit], self.columns)

    def __getitem__(self, name: str) -> list[Any]:
        """The values of one column, in row order."""
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def __repr__(self) -> str:
        cells = [[_text(v) for v in row] for row in self.rows]
        right = [_numeric(row[i] for row in self.rows) for i in range(len(self.columns))]
        widths = [
            max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(self.columns)
        ]

        def line(values: list[str]) -> str:
            parts = [
                v.rjust(w) if r else v.ljust(w)
                for v, w, r in zip(values, widths, right, strict=True)
            ]
            return "  ".join(parts).rstrip()

        lines = [line(self.columns)] + [line(row) for row in cells]
        return "\n".join(lines) if self.rows else f"{lines[0]}\n(no rows)"

    def _repr_html_(self) -> str:
        right = [_numeric(row[i] for row in self.rows) for i in range(len(self.columns))]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "\n".join(
            "<tr>"
            + "".join(
                f'<td style="text-align: {"right" if r else "left"}">{html.escape(_text(v))}</td>'
                for v, r in zip(row, right, strict=True)
            )
            + "</tr>"
            for row in self.rows
        )
        if not self.rows:
            body = f'<tr><td colspan="{len(self.columns)}">(no rows)</td></tr>'
        return (
            '<table class="dataframe runbook-table">\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
        )
