"""What the notebooks show: step results as DataFrames, and charts as PNG images (so the HTML
export of a run is self-contained and readable offline)."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from IPython.display import Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

pd.set_option("display.max_rows", 200)  # long tables go through summarize()
pd.set_option("display.max_colwidth", 80)

LONG_TABLE = 20  # rows shown of a long table; the rest is counted, not dumped


def _png(fig: Figure) -> Image:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")


def _bar_chart(labels: list[str], series: dict[str, list[float]], title: str, xlabel: str) -> Image:
    fig = Figure(figsize=(8, 0.35 * max(len(labels), 4) + 1.2))
    ax = fig.add_subplot()
    height = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [y + i * height for y in range(len(labels))]
        ax.barh(positions, values, height=height, label=name)
    ax.set_yticks([y + height * (len(series) - 1) / 2 for y in range(len(labels))], labels)
    ax.invert_yaxis()
    ax.set_title(title)
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
    """Source vs target rows per table; a table whose checksum differs is marked in its label."""
    frame = verify_tables(result)
    labels = [
        f"{t}{'' if ok else '  (CHECKSUM DIFFERS)'}"
        for t, ok in zip(frame["table"], frame["match"], strict=True)
    ]
    return _bar_chart(
        labels,
        {"source": list(frame["source_rows"]), "target": list(frame["target_rows"])},
        "Rows per table: source vs target",
        "rows",
    )


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
