"""What the notebooks show: step results as DataFrames, and charts as PNG images (so the HTML
export of a run is self-contained and readable offline)."""

from __future__ import annotations

import importlib
import io
import re
import sqlite3
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from IPython.display import Image

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class _OnFirstUse:
    """A module imported when first used. pandas and matplotlib cost a kernel about 50 MB; a
    step's notebook imports this module before its work, so they would sit in the kernel while
    the step's worker processes run (the peak of a whole run), not only when a table is shown."""

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


pd = _OnFirstUse("pandas", _pandas_options)
matplotlib = _OnFirstUse("matplotlib")
font_manager = _OnFirstUse("matplotlib.font_manager")
_matplotlib_figure = _OnFirstUse("matplotlib.figure")
_agg = _OnFirstUse("matplotlib.backends.backend_agg")

LONG_TABLE = 20  # rows shown of a long table; the rest is counted, not dumped
BASE_FONT = "DejaVu Sans"  # matplotlib's own font: Latin, Greek, Cyrillic, ✓ ✗, no Hangul
# Fonts known to cover Hangul, in order of preference (Debian: fonts-noto-cjk, fonts-nanum,
# fonts-unfonts-core, fonts-baekmuk); any other installed font with Hangul is found by its cmap.
CJK_FONTS = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "NanumGothic",
    "NanumBarunGothic",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "UnDotum",
    "Baekmuk Gulim",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
)
_HANGUL_SYLLABLES = re.compile("[\uac00-\ud7a3]+")
_OTHER_CJK = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uf900-\ufaff]+")
_INITIALS = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch",
             "k", "t", "p", "h")  # fmt: skip
_VOWELS = ("a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u",
           "wo", "we", "wi", "yu", "eu", "ui", "i")  # fmt: skip
_FINALS = ("", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m",
           "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t")  # fmt: skip


def romanize(text: str) -> str:
    """Hangul syllables in the Revised Romanization (syllable by syllable, without the sound
    changes across syllables), each run of them capitalized: `서울식품` → `Seoulsikpum`."""

    def syllables(match: re.Match[str]) -> str:
        out = []
        for char in match.group(0):
            code = ord(char) - 0xAC00
            initial, vowel, final = code // 588, code % 588 // 28, code % 28
            out.append(_INITIALS[initial] + _VOWELS[vowel] + _FINALS[final])
        return "".join(out).capitalize()

    return _HANGUL_SYLLABLES.sub(syllables, text)


def _has_hangul(path: str) -> bool:
    try:
        return 0xAC00 in font_manager.get_font(path).get_charmap()
    except (OSError, RuntimeError, ValueError):
        return False


def _font_files() -> list[str]:
    """Font files in the folders matplotlib knows, listed directly: without folders,
    findSystemFonts asks fc-list, and a kernel holding pandas and matplotlib that starts a
    process is counted twice by the tree's summed RSS until the child execs (measured: a whole
    run's peak 377 MiB instead of 283)."""
    if sys.platform == "win32":
        return font_manager.findSystemFonts()
    folders = [*font_manager.X11FontDirectories, *font_manager.OSXFontDirectories]
    return font_manager.findSystemFonts(fontpaths=[f for f in folders if Path(f).is_dir()])


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family of an installed font that has Hangul glyphs, or None. Fonts installed after
    matplotlib cached its font list are found on disk and added."""
    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    candidates = [name for name in CJK_FONTS if name in installed]
    candidates += sorted(n for n in installed if "CJK" in n or "Nanum" in n or n.endswith(" KR"))
    for name in dict.fromkeys(candidates):
        if _has_hangul(installed[name]):
            return name
    hints = ("nanum", "cjk", "kr", "unfonts", "baekmuk", "hangul", "malgun", "gothic")
    for path in sorted(_font_files()):
        if any(hint in Path(path).name.lower() for hint in hints) and _has_hangul(path):
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


def label(text: Any, font: str | None = None) -> str:
    """A chart label that renders without tofu boxes: as is when a CJK font is installed (or
    `font` is given), else Hangul romanized and other CJK characters left out. Bytes that are
    not UTF-8 (kept as surrogates by the source reader) show as U+FFFD."""
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if (font or cjk_font()) or not (_HANGUL_SYLLABLES.search(text) or _OTHER_CJK.search(text)):
        return text
    text = _OTHER_CJK.sub("", romanize(text))
    return re.sub(r"\s{2,}", " ", text).strip() or "?"


def _png(fig: Figure) -> Image:
    _agg.FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")


def _fonts() -> dict[str, Any]:
    """rc settings for a chart: matplotlib's font, falling back glyph by glyph to the CJK font."""
    cjk = cjk_font()
    return {"font.family": [BASE_FONT, cjk] if cjk else [BASE_FONT]}


def _figure(rows: int) -> Figure:
    return _matplotlib_figure.Figure(figsize=(8, 0.35 * max(rows, 4) + 1.2))


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
            [label(t) for t in labels],
        )
        ax.invert_yaxis()
        ax.set_title(label(title))
        ax.set_xlabel(xlabel)
        if len(series) > 1:
            ax.legend(loc="lower right")
        ax.grid(axis="x", alpha=0.3)
        return _png(fig)


def summarize(frame: pd.DataFrame, limit: int = LONG_TABLE) -> pd.DataFrame:
    """The first rows of a long table; the caption says how many there are in all."""
    shown = frame.head(limit)
    if len(frame) > limit:
        print(f"{len(frame)} rows in all; the first {limit} are shown.")
    return shown


def facts(items: dict[str, Any]) -> pd.DataFrame:
    """Key facts of a step as a two-column table."""
    return pd.DataFrame({"fact": list(items), "value": [str(v) for v in items.values()]})


def backup_tables(backup: dict[str, Any]) -> pd.DataFrame:
    """Rows and bytes per table of the backup."""
    frame = pd.DataFrame(
        {
            "table": list(backup["row_counts"]),
            "rows": list(backup["row_counts"].values()),
            "bytes": [backup["table_bytes"].get(t, 0) for t in backup["row_counts"]],
        }
    )
    return frame.sort_values("bytes", ascending=False, ignore_index=True)


def table_sizes_chart(backup: dict[str, Any]) -> Image:
    """Bar chart of table sizes in the backup (MiB)."""
    frame = backup_tables(backup)
    return _bar_chart(
        list(frame["table"]),
        {"MiB": [b / 2**20 for b in frame["bytes"]]},
        "Source tables by size",
        "MiB (table and its indexes)",
    )


def client_orders_chart(backup_path: str | Path, top: int = 12) -> Image | str:
    """The clients with the most orders in the backup (names as the application shows them: a
    glance that the copy holds production-like data); a note when the backup has no such tables."""
    from runbook.source import open_readonly

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


def column_map(schema: dict[str, Any]) -> pd.DataFrame:
    """Source column → target column type → conversion rule."""
    frame = pd.DataFrame(schema["columns"])
    return frame[["table", "column", "source_type", "target_type", "nullable", "conversion"]]


def conversion_rules(schema: dict[str, Any]) -> pd.DataFrame:
    """Each conversion used, with its rule and how many columns use it."""
    frame = pd.DataFrame(schema["columns"])
    return (
        frame.groupby(["conversion", "rule"], sort=True)
        .size()
        .reset_index(name="columns")
        .sort_values("conversion", ignore_index=True)
    )


def preflight_summary(schema: dict[str, Any]) -> pd.DataFrame:
    """Misfits per table, column and kind (empty when every value fits)."""
    summary = schema["preflight"]["summary"]
    return pd.DataFrame(summary, columns=["table", "column", "kind", "count"])


def columns_per_table(schema: dict[str, Any]) -> pd.DataFrame:
    """Per table: how many columns are mapped and with which conversions."""
    frame = pd.DataFrame(schema["columns"])
    grouped = frame.groupby("table", sort=False)
    return pd.DataFrame(
        {
            "columns": grouped.size(),
            "conversions": grouped["conversion"].agg(lambda c: ", ".join(sorted(set(c)))),
        }
    ).reset_index()


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
        ax.set_yticks(range(len(tables)), [label(t) for t in tables])
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


def preflight_findings(schema: dict[str, Any]) -> pd.DataFrame:
    """The individual misfits: table, primary key, column, kind, value."""
    findings = schema["preflight"]["findings"]
    return summarize(pd.DataFrame(findings, columns=["table", "pk", "column", "kind", "value"]))


def transfer_tables(transfer: dict[str, Any]) -> pd.DataFrame:
    """Rows and bytes copied per table, in load order."""
    return pd.DataFrame(transfer["tables"])[["table", "rows", "bytes"]]


def transfer_timings(transfer: dict[str, Any]) -> pd.DataFrame:
    """Seconds and rows/s per table."""
    return pd.DataFrame(transfer["tables"])[["table", "rows", "seconds", "rows_per_second"]]


def throughput_chart(transfer: dict[str, Any]) -> Image:
    """Rows per second of each table's COPY."""
    frame = pd.DataFrame(transfer["tables"])
    return _bar_chart(
        list(frame["table"]),
        {"rows/s": [v or 0 for v in frame["rows_per_second"]]},
        "COPY throughput per table",
        "rows per second",
    )


def throughput_over_time_chart(transfer: dict[str, Any]) -> Image:
    """The load over time: each table's COPY as a band at its rows/s across the seconds it ran,
    and the cumulative rows copied on a second axis. Tables are placed at `start_seconds` (since
    the load began) where transfer.json records it, else one after another."""
    tables = transfer["tables"]
    spans, clock = [], 0.0
    for table in tables:
        seconds = max(float(table.get("seconds") or 0), 1e-6)
        start = table.get("start_seconds")
        start = clock if start is None else float(start)
        spans.append((start, start + seconds, table))
        clock = max(clock, start + seconds) if table.get("start_seconds") is None else clock
    end = max((stop for _, stop, _ in spans), default=0.0)
    with matplotlib.rc_context(_fonts()):
        fig = _matplotlib_figure.Figure(figsize=(8, 3.6))
        ax = fig.add_subplot()
        cumulative = ax.twinx()
        for i, (start, stop, table) in enumerate(spans):
            rate = table.get("rows_per_second") or 0
            ax.fill_between([start, stop], 0, rate, alpha=0.45, color=f"C{i % 10}")
            ax.plot([start, stop], [rate, rate], color=f"C{i % 10}", label=label(table["table"]))
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


def sequences(transfer_or_verify: dict[str, Any]) -> pd.DataFrame:
    """Sequences and the values they were set to or will hand out next."""
    return pd.DataFrame(transfer_or_verify["sequences"])


def verify_tables(result: dict[str, Any]) -> pd.DataFrame:
    """Per table: rows on both sides, checksum on both sides, and whether they match."""
    frame = pd.DataFrame(result["tables"])
    frame["match"] = (frame["source_rows"] == frame["target_rows"]) & (
        frame["source_checksum"] == frame["target_checksum"]
    )
    return frame[
        ["table", "source_rows", "target_rows", "source_checksum", "target_checksum", "match"]
    ]


def differences(result: dict[str, Any]) -> pd.DataFrame:
    """Rows that differ, side by side (empty when none)."""
    rows = [diff for table in result["tables"] for diff in table["differences"]]
    columns = ["table", "pk", "problem", "column", "source", "target"]
    return summarize(pd.DataFrame(rows, columns=columns))


def verify_chart(result: dict[str, Any]) -> Image:
    """Source vs target rows per table with the checksum status: a table whose checksum (or
    count) differs is drawn in red and marked in its label."""
    frame = verify_tables(result)
    labels = [
        f"{t}{'' if ok else '  (CHECKSUM DIFFERS)'}"
        for t, ok in zip(frame["table"], frame["match"], strict=True)
    ]
    failed = int((~frame["match"]).sum())
    with matplotlib.rc_context(_fonts()):
        fig = _figure(len(labels))
        ax = fig.add_subplot()
        ys = range(len(labels))
        ax.barh([y - 0.2 for y in ys], frame["source_rows"], height=0.4, color="#9aa5b1",
                label="source rows")  # fmt: skip
        colors = ["#2e7d32" if ok else "#c62828" for ok in frame["match"]]
        ax.barh([y + 0.2 for y in ys], frame["target_rows"], height=0.4, color=colors,
                label="target rows (green: checksum matches, red: differs)")  # fmt: skip
        for y, (rows, ok) in enumerate(zip(frame["target_rows"], frame["match"], strict=True)):
            ax.annotate(
                f" {rows} {'✓' if ok else '✗ differs'}", (rows, y + 0.2), va="center", fontsize=8,
                color="#2e7d32" if ok else "#c62828",
            )  # fmt: skip
        ax.set_yticks(list(ys), [label(t) for t in labels])
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


def checks(result: dict[str, Any]) -> pd.DataFrame:
    """Foreign keys, sequences and application queries as one table of checks."""
    rows = [
        {"check": f"foreign key {fk['name']}", "ok": fk["validated"]}
        for fk in result["foreign_keys"]
    ]
    rows += [
        {
            "check": f"sequence {s['table']}.{s['column']} next {s['next_value']} > max {s['max']}",
            "ok": s["ok"],
        }
        for s in result["sequences"]
    ]
    rows += [
        {"check": f"application query: {q['query']} ({q['rows']} rows)", "ok": q["equal"]}
        for q in result["application_queries"]
    ]
    return pd.DataFrame(rows, columns=["check", "ok"])


def checks_summary(result: dict[str, Any]) -> pd.DataFrame:
    """The checks of `checks()` counted by kind, with the failing ones named."""
    frame = checks(result)
    frame["kind"] = frame["check"].str.extract(r"^(foreign key|sequence|application query)")[0]
    rows = []
    for kind, group in frame.groupby("kind", sort=False):
        failing = group.loc[~group["ok"].astype(bool), "check"].tolist()
        rows.append(
            {
                "kind": kind,
                "checked": len(group),
                "passed": len(group) - len(failing),
                "failing": "; ".join(failing[:5]) + (" …" if len(failing) > 5 else ""),
            }
        )
    return pd.DataFrame(rows, columns=["kind", "checked", "passed", "failing"])


def reflect_notes(schema: dict[str, Any]) -> pd.DataFrame:
    """Reflect mode: column types chosen by the data, and what was translated or left out."""
    reflected = schema.get("reflected")
    columns = ["table", "object", "note"]
    if not reflected:
        print("Schema from the application's Alembic migrations: nothing reflected.")
        return pd.DataFrame([], columns=columns)
    rows = [
        {"table": t["name"], "object": c["name"], "note": f"{c['pg_type']}: {c['why']}"}
        for t in reflected["tables"]
        for c in t["columns"]
        if "data holds" in c["why"] or c["target"] != c["name"]
    ]
    rows += [
        {"table": t["name"], "object": "(table)", "note": f"named {t['target']} in PostgreSQL"}
        for t in reflected["tables"]
        if t["target"] != t["name"].lower()
    ]
    return summarize(pd.DataFrame(rows + reflected["notes"], columns=columns))


def load_attempts(result: dict[str, Any]) -> pd.DataFrame:
    """Which transfer attempt loaded how many key ranges and rows of each table (a run that
    was interrupted and run again shows more than one attempt)."""
    frame = pd.DataFrame(result.get("ranges", []), columns=["table", "attempt", "rows", "status"])
    if frame.empty:
        return pd.DataFrame([], columns=["table", "attempt", "ranges", "rows"])
    grouped = frame.groupby(["table", "attempt"], sort=True).agg(
        ranges=("rows", "size"), rows=("rows", "sum")
    )
    return grouped.reset_index()
