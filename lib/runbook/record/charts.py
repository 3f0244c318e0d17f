"""The notebooks' charts, drawn as PNG images so the HTML export of a run is self-contained and
readable offline; labels in Korean where a Hangul font is installed (`hangul`)."""

from __future__ import annotations

import importlib
import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.display import Image

from runbook.core.source import open_readonly
from runbook.record import hangul
from runbook.record.lazy import (
    agg,
    load_in_background,
    matplotlib,
    matplotlib_figure,
    wait_for_loads,
)
from runbook.record.show import backup_tables, verify_tables

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def prefetch() -> None:
    """Import matplotlib and find the Hangul font in a background thread while the
    step's library call works, so its tables and charts need not wait for them (measured: 2 s
    of a step's display). 01, 02 and 04 call it at their start (beside 02's preflight or 04's
    checksum processes its 30 MB stay under the peak 03 sets); 03 once its loader processes,
    the run's peak of memory, have ended."""

    load_in_background(_load_matplotlib)


def _load_matplotlib() -> None:
    for name in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        importlib.import_module(name)
    hangul.cjk_font()


# charts drawn ahead (`draw_ahead`, `draw_backup_ahead`), by chart and what they were drawn of
_AHEAD: dict[tuple[str, str], Image | str] = {}
TOP_CLIENTS = 12  # the clients step 01's chart shows


def draw_ahead(tables: list[dict[str, Any]]) -> None:
    """Step 03's `after_load`: import matplotlib and draw the load's two charts from its
    per-table rows in a background thread while the server builds indexes and validates keys
    (the kernel would wait idle; measured: 0.75 s of 03's display on a slow hour of 2 vCPUs).
    The chart functions return these images when given the same rows, else draw their own."""
    key = _rows_key(tables)
    _draw_in_background(
        {
            ("throughput", key): lambda: _throughput(tables),
            ("over time", key): lambda: _over_time(tables),
        }
    )


def _draw_in_background(charts: dict[tuple[str, str], Callable[[], Image | str]]) -> None:
    """Draw each chart (chart, key) in a background thread once matplotlib is loaded, the charts
    drawn ahead before forgotten; `_drawn_ahead` waits for them."""

    def draw() -> None:
        _load_matplotlib()
        for chart, drawing in charts.items():
            _AHEAD[chart] = drawing()

    _AHEAD.clear()
    load_in_background(draw)


def _rows_key(tables: list) -> str:
    return json.dumps(tables, sort_keys=True, default=str)


def _drawn_ahead(chart: str, key: str) -> Image | str | None:
    wait_for_loads()
    return _AHEAD.get((chart, key))


def _png(fig: Figure) -> Image:
    agg.FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")


def _fonts() -> dict[str, Any]:
    """rc settings for a chart: matplotlib's font, falling back glyph by glyph to the CJK font."""
    cjk = hangul.cjk_font()
    return {"font.family": [hangul.BASE_FONT, cjk] if cjk else [hangul.BASE_FONT]}


def _figure(rows: int) -> Figure:
    return matplotlib_figure.Figure(figsize=(8, 0.35 * max(rows, 4) + 1.2))


def _bar_chart(labels: list[str], series: dict[str, list[float]], title: str, xlabel: str) -> Image:
    with matplotlib.rc_context(_fonts()):
        fig = _figure(len(labels))
        ax = fig.add_subplot()
        height = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            positions = [y + i * height for y in range(len(labels))]
            ax.barh(positions, values, height=height, label=name)
        ax.set_yticks(
            [y + height * (len(series) - 1) / 2 for y in range(len(labels))],
            [hangul.label(t) for t in labels],
        )
        ax.invert_yaxis()
        ax.set_title(hangul.label(title))
        ax.set_xlabel(xlabel)
        if len(series) > 1:
            ax.legend(loc="lower right")
        ax.grid(axis="x", alpha=0.3)
        return _png(fig)


def draw_backup_ahead(copy: Path, census: dict[str, Any]) -> None:
    """Step 01's `after_census`: draw its two charts in a background thread while the copy's
    hash, integrity and foreign keys are read (threads in SQLite and hashlib, a core to spare;
    measured: 0.3 s of 01's display, a core idle meanwhile). The chart functions return these
    images when given the same counts and sizes, or the same file unchanged, else draw their own."""

    _draw_in_background(
        {
            ("sizes", _census_key(census)): lambda: _table_sizes(census),
            ("clients", _file_key(copy)): lambda: _client_orders(copy),
        }
    )


def _census_key(backup: dict[str, Any]) -> str:
    return _rows_key([backup["row_counts"], backup["table_bytes"]])


def _file_key(path: str | Path, top: int = TOP_CLIENTS) -> str:
    """A file as it is now: its path, size and time of change, and the clients shown."""
    try:
        stat = Path(path).stat()
    except OSError:
        return ""  # nothing drawn ahead of it: drawn now, and says why it cannot be
    return f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{top}"


def table_sizes_chart(backup: dict[str, Any]) -> Image:
    """Bar chart of table sizes in the backup (MiB)."""
    return _drawn_ahead("sizes", _census_key(backup)) or _table_sizes(backup)


def _table_sizes(backup: dict[str, Any]) -> Image:
    frame = backup_tables(backup)
    return _bar_chart(
        list(frame["table"]),
        {"MiB": [b / 2**20 for b in frame["bytes"]]},
        "Source tables by size",
        "MiB (table and its indexes)",
    )


def client_orders_chart(backup_path: str | Path, top: int = TOP_CLIENTS) -> Image | str:
    """The clients with the most orders in the backup (names as the application shows them: a
    glance that the copy holds production-like data); a note when the backup has no such tables."""
    return _drawn_ahead("clients", _file_key(backup_path, top)) or _client_orders(backup_path, top)


def _client_orders(backup_path: str | Path, top: int = TOP_CLIENTS) -> Image | str:
    conn = open_readonly(backup_path)
    try:
        rows = conn.execute(
            "SELECT c.name, count(o.id) FROM clients c LEFT JOIN orders o ON o.client_id = c.id "
            "GROUP BY c.id ORDER BY count(o.id) DESC, c.id LIMIT ?",
            [top],
        ).fetchall()
    except sqlite3.Error:
        return "no clients/orders tables in this database: chart of clients left out"
    finally:
        conn.close()
    return _bar_chart(
        [name for name, _ in rows],
        {"orders": [count for _, count in rows]},
        f"Top {len(rows)} clients by orders (backup)",
        "orders",
    )


def misfits_chart(schema: dict[str, Any]) -> Image:
    """Preflight misfits per table, stacked by kind; every mapped table is listed, so a chart of
    zero bars says that each table was scanned and nothing was found."""
    tables = list(dict.fromkeys(c["table"] for c in schema["columns"]))
    summary = schema["preflight"]["summary"]
    kinds = sorted({row["kind"] for row in summary})
    total = sum(row["count"] for row in summary)
    with matplotlib.rc_context(_fonts()):
        fig = _figure(len(tables))
        ax = fig.add_subplot()
        left = [0] * len(tables)
        for kind in kinds:
            counts = [
                sum(r["count"] for r in summary if r["table"] == t and r["kind"] == kind)
                for t in tables
            ]
            ax.barh(range(len(tables)), counts, left=left, label=kind)
            left = [a + b for a, b in zip(left, counts, strict=True)]
        ax.set_yticks(range(len(tables)), [hangul.label(t) for t in tables])
        ax.invert_yaxis()
        if total:
            ax.set_title(f"Preflight: {total} values do not fit, by table and kind")
            ax.legend(loc="lower right", title="kind")
        else:
            ax.set_title(f"Preflight: every value fits (0 misfits in {len(tables)} tables)")
            ax.text(0.5, 0.5, "✓ no misfits", transform=ax.transAxes, ha="center", va="center",
                    fontsize=16, color="#2e7d32")  # fmt: skip
            ax.set_xlim(0, 1)
            ax.set_xticks([0, 1])
        ax.set_xlabel("values that do not fit")
        ax.grid(axis="x", alpha=0.3)
        return _png(fig)


def throughput_chart(transfer: dict[str, Any]) -> Image:
    """Rows per second of each table's COPY."""
    tables = transfer["tables"]
    return _drawn_ahead("throughput", _rows_key(tables)) or _throughput(tables)


def _throughput(tables: list[dict[str, Any]]) -> Image:
    return _bar_chart(
        [t["table"] for t in tables],
        {"rows/s": [t.get("rows_per_second") or 0 for t in tables]},
        "COPY throughput per table",
        "rows per second",
    )


def throughput_over_time_chart(transfer: dict[str, Any]) -> Image:
    """The load over time: each table's COPY as a band at its rows/s across the seconds it ran,
    and the cumulative rows copied on a second axis. Tables are placed at `start_seconds` (since
    the load began) where transfer.json records it, else one after another."""
    tables = transfer["tables"]
    return _drawn_ahead("over time", _rows_key(tables)) or _over_time(tables)


def _over_time(tables: list[dict[str, Any]]) -> Image:
    spans, clock = [], 0.0
    for table in tables:
        seconds = max(float(table.get("seconds") or 0), 1e-6)
        start = table.get("start_seconds")
        start = clock if start is None else float(start)
        spans.append((start, start + seconds, table))
        clock = max(clock, start + seconds) if table.get("start_seconds") is None else clock
    end = max((stop for _, stop, _ in spans), default=0.0)
    with matplotlib.rc_context(_fonts()):
        fig = matplotlib_figure.Figure(figsize=(8, 3.6))
        ax = fig.add_subplot()
        cumulative = ax.twinx()
        for i, (start, stop, table) in enumerate(spans):
            rate = table.get("rows_per_second") or 0
            ax.fill_between([start, stop], 0, rate, alpha=0.45, color=f"C{i % 10}")
            name = hangul.label(table["table"])
            ax.plot([start, stop], [rate, rate], color=f"C{i % 10}", label=name)
        done, times, totals = 0, [0.0], [0]
        for _, stop, table in sorted(spans, key=lambda span: span[1]):
            done += table["rows"]
            times.append(stop)
            totals.append(done)
        cumulative.plot(times, totals, color="black", linewidth=1.5)
        ax.set_xlabel("seconds since the load began")
        ax.set_ylabel("rows per second (bands)")
        cumulative.set_ylabel("rows copied (line)")
        ax.set_title(f"COPY over time: {done} rows in {end:.1f} s")
        ax.set_xlim(0, end or 1)
        ax.set_ylim(0)
        cumulative.set_ylim(0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.12, 1), fontsize=7, title="table")
        ax.grid(alpha=0.3)
        return _png(fig)


def verify_chart(result: dict[str, Any]) -> Image:
    """Source vs target rows per table with the checksum status: a table whose checksum (or
    count) differs is drawn in red and marked in its label."""
    frame = verify_tables(result)
    labels = [
        f"{t}{'' if ok else '  (CHECKSUM DIFFERS)'}"
        for t, ok in zip(frame["table"], frame["match"], strict=True)
    ]
    failed = sum(not ok for ok in frame["match"])
    with matplotlib.rc_context(_fonts()):
        fig = _figure(len(labels))
        ax = fig.add_subplot()
        ys = range(len(labels))
        ax.barh([y - 0.2 for y in ys], frame["source_rows"], height=0.4, color="#9aa5b1",
                label="source rows")  # fmt: skip
        colors = ["#2e7d32" if ok else "#c62828" for ok in frame["match"]]
        ax.barh([y + 0.2 for y in ys], frame["loaded"], height=0.4, color=colors,
                label="target rows (green: checksum matches, red: differs)")  # fmt: skip
        for y, (rows, ok) in enumerate(zip(frame["loaded"], frame["match"], strict=True)):
            ax.annotate(
                f" {rows} {'✓' if ok else '✗ differs'}", (rows, y + 0.2), va="center", fontsize=8,
                color="#2e7d32" if ok else "#c62828",
            )  # fmt: skip
        ax.set_yticks(list(ys), [hangul.label(t) for t in labels])
        ax.invert_yaxis()
        ax.set_xmargin(0.15)
        ax.set_title(
            "Rows per table, source vs target: every checksum matches"
            if not failed
            else f"Rows per table, source vs target: {failed} table(s) DIFFER"
        )
        ax.set_xlabel("rows")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        return _png(fig)


def changes_chart(record: dict[str, Any]) -> Image:
    """A sync's changes per table, stacked by kind (inserted, updated, deleted, held back)."""
    tables = list(record["changes"]["tables"])
    kinds = {
        "inserted": "#2e7d32",
        "updated": "#1565c0",
        "deleted": "#c62828",
        "rejected": "#8a6d00",
    }
    total = record["changes"]["total"]
    with matplotlib.rc_context(_fonts()):
        fig = _figure(len(tables))
        ax = fig.add_subplot()
        left = [0] * len(tables)
        for kind, color in kinds.items():
            counts = [record["changes"]["tables"][t][kind] for t in tables]
            name = "held back" if kind == "rejected" else kind
            ax.barh(range(len(tables)), counts, left=left, color=color, label=name)
            left = [a + b for a, b in zip(left, counts, strict=True)]
        ax.set_yticks(range(len(tables)), [hangul.label(t) for t in tables])
        ax.invert_yaxis()
        ax.set_title(f"Changes applied by sync {record['number']}: {total} rows")
        ax.set_xlabel("rows")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        return _png(fig)
