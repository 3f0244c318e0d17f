"""One declaration of the run's parameters: every field reaches the notebooks that take it (and
only those), the CLI options and the README table are made from it, and a misspelt name or a
value outside its allowed set is refused before any step starts."""

from __future__ import annotations

import shutil
from dataclasses import fields
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import REPO

from runbook import cli
from runbook.core import parameters
from runbook.core.errors import RunbookError
from runbook.core.parameters import RunParameters
from runbook.core.run import STEPS
from runbook.record import kernels, runner


@pytest.mark.parametrize("step", STEPS)
def test_every_parameter_reaches_the_notebooks_that_take_it(step: str) -> None:
    declared = papermill.inspect_notebook(str(runner.notebook_path(step)))
    expected = RunParameters().for_step(step)
    assert set(declared) == set(expected)
    for name, value in expected.items():
        assert declared[name]["default"] == parameters._literal(
            next(f for f in fields(RunParameters) if f.name == name)
        ), name
        assert value == RunParameters().as_dict()[name]


def test_every_field_is_taken_by_some_step_and_documented() -> None:
    for declared in parameters.declared():
        assert declared.metadata["steps"], declared.name
        assert set(declared.metadata["steps"]) <= set(STEPS), declared.name
        assert declared.metadata["help"].strip(), declared.name


def test_the_readme_table_is_the_declaration() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert parameters.markdown_table() in readme


def test_a_misspelt_parameter_is_refused_with_the_name_it_resembles() -> None:
    with pytest.raises(RunbookError, match="unknown parameter 'on_bad_row'.*'on_bad_rows'"):
        RunParameters.checked({"on_bad_row": "reject"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"on_bad_rows": "skip"}, "on_bad_rows='skip' is not one of 'stop', 'reject'"),
        ({"schema_mode": "magic"}, "schema_mode='magic' is not one of"),
        ({"workers": "4"}, "workers must be a whole number"),
        ({"replace_target": 1}, "replace_target must be True or False"),
    ],
)
def test_a_value_outside_its_allowed_set_is_refused(values: dict, message: str) -> None:
    with pytest.raises(RunbookError, match=message):
        RunParameters.checked(values)


def test_the_cli_options_are_made_from_the_declaration(tmp_path: Path, capsys) -> None:
    args = cli.build_parser().parse_args(
        [
            "run",
            "x.db",
            "--workers",
            "3",
            "--on-bad-rows",
            "reject",
            "--rule",
            "orders.items=cp949",
            "--rule",
            "orders.requested_pickup_at=epoch-seconds,empty-as-null",
            "--replace-target",
        ]
    )
    chosen = parameters.from_options(args, source_db="x.db", run_dir=str(tmp_path))
    assert chosen.workers == 3 and chosen.on_bad_rows == "reject" and chosen.replace_target
    assert chosen.column_rules == {
        "orders.items": ["cp949"],
        "orders.requested_pickup_at": ["epoch-seconds", "empty-as-null"],
    }
    for command, steps in (("run", STEPS), ("cutover", ("cutover",))):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        help_text = capsys.readouterr().out
        for declared in parameters.declared():
            flag, takes = declared.metadata["flag"], set(declared.metadata["steps"])
            if flag:
                assert (flag in help_text) == bool(takes & set(steps)), (command, flag)


def test_an_option_outside_its_choices_fails_before_anything_runs(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", "x.db", "--on-bad-rows", "skip"])
    assert stopped.value.code == 2
    assert "invalid choice: 'skip'" in capsys.readouterr().err


def test_a_notebook_that_does_not_declare_a_parameter_is_refused_before_step_01(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook of another runbook version would silently drop what it does not declare."""
    notebooks = tmp_path / "notebooks"
    shutil.copytree(runner.NOTEBOOKS, notebooks)
    path = notebooks / "03_transfer.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(line for line in cell.source.splitlines() if "workers" not in line)
    nbformat.write(nb, path)
    monkeypatch.setattr(kernels, "NOTEBOOKS", notebooks)
    with pytest.raises(RunbookError, match="03_transfer does not declare the parameter.*workers"):
        runner.require_declared(list(STEPS), RunParameters())
    runner.require_declared(["backup", "schema"], RunParameters())  # those still declare theirs


def test_the_command_exits_with_its_status_and_every_line_it_printed(tmp_path: Path) -> None:
    """`runbook` ends its process without tearing down the interpreter (`cli.entry`): what it
    printed into a pipe still arrives, and its exit status is the command's."""
    import subprocess
    import sys

    def runbook(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "runbook.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)

    shown = runbook("run", "--help")
    assert shown.returncode == 0
    assert shown.stdout.rstrip().endswith(".ipynb keeps everything")  # the last line of it
    refused = runbook("run", "x.db", "--steps", "bogus", "--run-dir", str(tmp_path))
    assert refused.returncode == 2
    assert refused.stderr.startswith("runbook: unknown step(s) ['bogus']")
    misused = runbook("run")  # argparse's own exit: no source given
    assert misused.returncode == 2
    assert "error: the following arguments are required: source" in misused.stderr
    stopped = subprocess.run(  # Ctrl-C while a command runs: the status a shell expects
        [sys.executable, "-c", "import runbook.cli as cli\n"
         "def interrupted():\n    raise KeyboardInterrupt\n"
         "cli.main = interrupted\ncli.entry()"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert stopped.returncode == 130 and "KeyboardInterrupt" in stopped.stderr
