"""The runner's papermill engine writes the executed notebook around the library call, on a
failure and at the end, not around every cell, and leaves the same record."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from runbook.record import engine


def _notebook(path: Path, cells: list[tuple[str, list[str]]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(code, metadata={"tags": tags}) for code, tags in cells]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each write of an executed notebook, by the statuses of its cells; no write by time."""
    import papermill.engines

    seen: list[str] = []
    real = papermill.engines.write_ipynb

    def counted(nb, path):
        seen.append(" ".join(c.metadata.papermill["status"][0] for c in nb.cells))
        real(nb, path)

    monkeypatch.setattr(papermill.engines, "write_ipynb", counted)
    monkeypatch.setattr(engine, "SAVE_EVERY", 1e9)
    return seen


def test_the_notebook_is_written_around_the_library_call(tmp_path: Path, writes) -> None:
    out = tmp_path / "out.ipynb"
    # the library call reads the notebook as it is on disk while it runs
    peek = f"import json\nprint(json.dumps(json.load(open({str(out)!r}))['cells'][1]['outputs']))"
    source = _notebook(
        tmp_path / "in.ipynb",
        [("x = 1", []), ("print(x + 41)", []), (peek, ["library-call"]), ("y = 2", [])],
    )
    papermill.execute_notebook(
        str(source), str(out), kernel_name="python3", engine_name=engine.ENGINE,
        progress_bar=False,
    )  # fmt: skip
    # p/r/c: pending, running, completed; the start, the call's start and end, the end
    assert writes == ["p p p p", "c c r p", "c c c p", "c c c c"]
    executed = json.loads(out.read_text(encoding="utf-8"))
    shown = json.loads("".join(executed["cells"][2]["outputs"][0]["text"]))
    assert "".join(shown[0]["text"]) == "42\n"  # what came before the call was on disk during it
    assert [c["metadata"]["papermill"]["status"] for c in executed["cells"]] == ["completed"] * 4


def test_a_failing_cell_is_written_when_it_fails(tmp_path: Path, writes) -> None:
    out = tmp_path / "out.ipynb"
    source = _notebook(tmp_path / "in.ipynb", [("x = 1", []), ("1 / 0", []), ("y = 2", [])])
    with pytest.raises(PapermillExecutionError, match="ZeroDivisionError"):
        papermill.execute_notebook(
            str(source), str(out), kernel_name="python3", engine_name=engine.ENGINE,
            progress_bar=False,
        )  # fmt: skip
    assert writes == ["p p p", "c f p", "c f p"]  # the start, the failure, the end
    executed = json.loads(out.read_text(encoding="utf-8"))  # papermill's error banner first
    failed = [o for c in executed["cells"] for o in c.get("outputs", []) if "ename" in o]
    assert [o["ename"] for o in failed] == ["ZeroDivisionError"]
