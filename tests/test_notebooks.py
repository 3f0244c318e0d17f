"""The committed notebooks were produced by `make notebooks` (scripts/regenerate_notebooks.py):
cells as the script builds them, executed top to bottom, volatile metadata stripped, no machine
paths or secrets; and each one reads as a runbook step (introduction, verdict, charts)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def _script():
    spec = importlib.util.spec_from_file_location(
        "regenerate_notebooks", REPO / "scripts" / "regenerate_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()
NAMES = list(SCRIPT.CELLS)
HOW = "regenerate with `make notebooks` (scripts/regenerate_notebooks.py)"


def committed(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_every_notebook_in_the_folder_is_built_by_the_script() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES), HOW


@pytest.mark.parametrize("name", NAMES)
def test_cells_are_the_scripts(name: str) -> None:
    nb, built = committed(name), SCRIPT.build(name)
    assert [(c.cell_type, c.id, c.source, c.metadata.get("tags", [])) for c in nb.cells] == [
        (c.cell_type, c.id, c.source, c.metadata.get("tags", [])) for c in built.cells
    ], f"{name}: cells differ from the script's; {HOW}"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_executed_in_order_and_stripped(name: str) -> None:
    nb = committed(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        f"{name}: not executed top to bottom by papermill; {HOW}"
    )
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], name
    text = (NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8")
    stripped = nbformat.writes(SCRIPT.strip(nbformat.reads(text, as_version=4))) + "\n"
    assert text == stripped, f"{name}: volatile metadata left in; {HOW}"
    assert "papermill" not in nb.metadata and "widgets" not in nb.metadata


@pytest.mark.parametrize("name", NAMES)
def test_no_machine_paths_or_passwords(name: str) -> None:
    text = (NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8")
    assert not re.search(r"(/tmp/|/home/|/root/|/work/|[A-Z]:\\\\)", text), name
    assert not re.search(r"postgres(ql)?://[^:/@\s]*:[^@*\s]+@", text), name


@pytest.mark.parametrize("name", NAMES)
def test_reads_as_a_runbook_step(name: str) -> None:
    nb = committed(name)
    intro = nb.cells[0]
    assert intro.cell_type == "markdown" and "Check before" in intro.source
    last = nb.cells[-1]
    verdict = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream")
    assert re.fullmatch(rf"{name}: PASS\. [^\n]+\n", verdict), verdict
    charts = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert charts, f"{name} has no chart"


def test_looking_for_a_hangul_font_starts_no_process(monkeypatch) -> None:
    """The kernel draws charts with pandas and matplotlib loaded: a process it started then
    (fc-list) would be counted with the kernel's whole memory until it execs."""
    import subprocess

    from runbook.record import hangul

    def refused(*args, **kwargs):
        raise AssertionError(f"a process was started: {args[:1]}")

    hangul.cjk_font.cache_clear()
    monkeypatch.setattr(subprocess, "Popen", refused)
    try:
        found = hangul.cjk_font()
    finally:
        hangul.cjk_font.cache_clear()
    assert found is None or isinstance(found, str)


def test_hangul_is_romanized_where_no_cjk_font_is_installed(monkeypatch) -> None:
    from runbook.record import hangul

    assert hangul.romanize("서울식품(주) A동") == "Seoulsikpum(Ju) ADong"
    monkeypatch.setattr(hangul, "cjk_font", lambda: None)
    assert hangul.label("한빛냉장 3") == "Hanbitnaengjang 3"
    assert hangul.label("東京 cold") == "cold"  # other CJK left out, never a tofu box
    assert hangul.label("orders") == "orders"
    assert hangul.label("한빛", font="NanumGothic") == "한빛"


@pytest.mark.parametrize("cjk", [False, True])
def test_charts_with_korean_client_names_render_without_missing_glyphs(
    cjk: bool, tmp_path: Path, monkeypatch
) -> None:
    import warnings

    from coldchain.sample import generate
    from runbook.record import charts, hangul

    if cjk and hangul.cjk_font() is None:
        pytest.skip("no font with Hangul is installed (Debian: fonts-nanum or fonts-noto-cjk)")
    if not cjk:
        monkeypatch.setattr(hangul, "cjk_font", lambda: None)
    sample = tmp_path / "sample.db"
    generate(sample, scale=0.001, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)"
        chart = charts.client_orders_chart(sample)
    assert chart.data.startswith(b"\x89PNG")


def test_the_load_charts_drawn_ahead_are_shown_only_for_the_rows_they_were_drawn_of() -> None:
    import copy

    from runbook.record import charts

    rows = [
        {"table": "orders", "rows": 5000, "seconds": 0.5, "rows_per_second": 10000,
         "start_seconds": 0.0},
        {"table": "주문", "rows": 800, "seconds": 0.2, "rows_per_second": 4000,
         "start_seconds": 0.1},
    ]  # fmt: skip
    charts.draw_ahead(rows)
    shown = charts.throughput_chart({"tables": copy.deepcopy(rows)})
    over_time = charts.throughput_over_time_chart({"tables": rows})
    assert shown.data.startswith(b"\x89PNG") and over_time.data.startswith(b"\x89PNG")
    assert charts.throughput_chart({"tables": rows}) is shown  # drawn once, ahead
    assert charts.throughput_over_time_chart({"tables": rows}) is over_time
    other = copy.deepcopy(rows)
    other[1]["rows_per_second"] = 8000  # not the rows drawn ahead: drawn now, of these rows
    redrawn = charts.throughput_chart({"tables": other})
    assert redrawn is not shown and redrawn.data != shown.data
    assert redrawn.data == charts.throughput_chart({"tables": copy.deepcopy(other)}).data


def test_the_backup_charts_drawn_ahead_are_those_of_the_copy_as_step_01_described_it(
    tmp_path: Path,
) -> None:
    import os
    import sqlite3

    from coldchain.sample import generate
    from runbook.core.run import RunFolder
    from runbook.record import charts
    from runbook.steps import backup

    source = tmp_path / "source.db"
    generate(source, scale=0.001, seed=5)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    seen = []
    result = backup.snapshot(
        source, run, after_census=lambda copy, census: seen.append((copy, census))
    )
    assert seen == [
        (run.backup_path, {k: result[k] for k in ("row_counts", "table_bytes")})
    ]  # called once, with what backup.json then holds
    charts.draw_backup_ahead(*seen[0])
    sizes, clients = charts.table_sizes_chart(result), charts.client_orders_chart(run.backup_path)
    assert sizes.data.startswith(b"\x89PNG") and clients.data.startswith(b"\x89PNG")
    assert charts.table_sizes_chart(result) is sizes  # drawn once, ahead
    assert charts.client_orders_chart(str(run.backup_path)) is clients
    assert charts.client_orders_chart(run.backup_path, top=3) is not clients  # other clients
    other = {**result, "row_counts": {**result["row_counts"], "orders": 1}}
    assert charts.table_sizes_chart(other) is not sizes  # not the census drawn ahead
    # the file changed since (a later copy under the same name): drawn again, of its clients
    os.chmod(run.backup_path, 0o644)
    before = run.backup_path.stat().st_mtime_ns
    with sqlite3.connect(run.backup_path) as conn:
        conn.execute("UPDATE orders SET client_id = (SELECT min(id) FROM clients)")
    conn.close()
    os.utime(run.backup_path, ns=(before + 10**9, before + 10**9))  # whatever the clock's tick
    redrawn = charts.client_orders_chart(run.backup_path)
    assert redrawn is not clients and redrawn.data != clients.data


def test_an_interactive_session_shares_one_run_folder_and_never_writes_into_an_archive(
    tmp_path: Path, monkeypatch
) -> None:
    from runbook.core.errors import RunbookError
    from runbook.core.run import STEP_RESULTS, open_run

    monkeypatch.setenv("RUNBOOK_RUNS", str(tmp_path))
    monkeypatch.delenv("RUNBOOK_RUN_DIR", raising=False)
    with pytest.raises(RunbookError, match="no unfinished run"):
        open_run(needs="backup")
    archived = tmp_path / "20990101T000000Z-aaaaaa"  # newest, but archived by `runbook run`
    archived.mkdir()
    (archived / "manifest.json").write_text("{}")
    first = open_run(create=True)  # 01 starts a run
    assert first.why.startswith("a new run") and first.path != archived
    (first.path / STEP_RESULTS["backup"]).write_text("{}")
    for needs, writes in (("backup", "schema"), ("schema", "transfer"), ("transfer", "verify")):
        chosen = open_run(needs=needs)  # 02-04 continue it
        assert chosen.path == first.path
        assert chosen.why.startswith("the most recent unfinished run")
        (first.path / STEP_RESULTS[writes]).write_text("{}")
    again = open_run(needs="transfer")  # 04 once more, after the run finished
    assert again.path == first.path and again.why.startswith("every run is finished")
    assert open_run(create=True).path not in (first.path, archived)  # 01 again: a new run
    monkeypatch.setenv("RUNBOOK_RUN_DIR", str(archived))
    assert open_run().why == "from RUNBOOK_RUN_DIR"
    assert open_run(str(first.path)).why == "the run_dir parameter"


def test_a_run_the_runbook_command_is_still_writing_is_not_taken_over(
    tmp_path: Path, monkeypatch
) -> None:
    from runbook.core.run import open_run

    monkeypatch.setenv("RUNBOOK_RUNS", str(tmp_path))
    monkeypatch.delenv("RUNBOOK_RUN_DIR", raising=False)
    mine = open_run(create=True)
    busy = tmp_path / "20990101T000000Z-bbbbbb"  # newer, no manifest yet, papermill writing
    busy.mkdir()
    (busy / "01_backup.ipynb").write_text("{}")
    assert open_run(needs="backup").path == mine.path
