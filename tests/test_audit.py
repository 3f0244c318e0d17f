"""The archive as an audit record: runs chained by manifest hashes, `runbook audit` naming the
file that changed, runs/index.html listing every run, and the reviewer's HTML view."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from commands import runbook

from coldchain.sample import generate
from runbook.record import manifest
from runbook.record.audit import check_files
from runbook.record.reference import admin_target, fresh_database

pytestmark = pytest.mark.e2e
SCALE = 0.002


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three runs archived in one runs folder: a full run with code hidden in its HTML (the
    reviewer's view), then two backup-only runs; the runs form a chain of three manifests."""
    base = tmp_path_factory.mktemp("archive")
    sample = base / "dispatch.db"
    generate(sample, scale=SCALE, seed=11)
    root = base / "runs"
    with fresh_database() as target:
        env = {"DATABASE_URL": target.url, "RUNBOOK_RUNS": str(root)}
        first = runbook("run", str(sample), "--report", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        for name in ("20991231T000001Z-bbbbbb", "20991231T000002Z-cccccc"):
            done = runbook(
                "run", str(sample), "--run-dir", str(root / name), "--steps", "backup", env=env
            )
            assert done.returncode == 0, done.stdout + done.stderr
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(runs) == 3
    return {"root": root, "runs": runs, "sample": sample}


@pytest.fixture
def copy(archive: dict, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A private copy of the archive that a test may tamper with."""
    root = tmp_path / "runs"
    shutil.copytree(archive["root"], root)
    return root, [root / p.name for p in archive["runs"]]


def audit(run_dir: Path) -> subprocess.CompletedProcess:
    return runbook("audit", str(run_dir), env={})


def test_manifests_form_a_chain(archive: dict) -> None:
    first, middle, last = archive["runs"]
    manifests = [json.loads((p / "manifest.json").read_text()) for p in archive["runs"]]
    assert manifests[0]["previous_manifest"] is None
    assert manifests[1]["previous_manifest"]["run"] == first.name
    assert manifests[2]["previous_manifest"]["run"] == middle.name
    from runbook.core.run import sha256_file

    assert manifests[2]["previous_manifest"]["sha256"] == sha256_file(middle / "manifest.json")


def test_audit_passes_on_an_untouched_archive(archive: dict) -> None:
    done = audit(archive["runs"][-1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout
    for run in archive["runs"]:
        assert f"{run.name}: " in done.stdout
    assert f"{archive['runs'][0].name}: first run of the chain" in done.stdout


def test_one_byte_changed_in_an_archived_notebook_fails_naming_the_file(copy) -> None:
    root, (first, _, last) = copy
    notebook = first / "04_verify.ipynb"
    data = bytearray(notebook.read_bytes())
    at = data.index(b"PASS")
    data[at] = ord("F")  # one byte
    notebook.write_bytes(bytes(data))
    done = audit(last)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"CHANGED {first.name}/04_verify.ipynb" in done.stdout
    assert done.stdout.count("CHANGED") == 1
    assert "FAIL" in done.stdout


def test_a_replaced_manifest_in_the_middle_of_the_chain_fails_naming_it(copy) -> None:
    root, (first, middle, last) = copy
    # a careful forger: the replacement manifest is self-consistent (its file hashes match)
    path = middle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["outcome"] = "passed"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    done = audit(last)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"REPLACED {middle.name}/manifest.json: {last.name} recorded sha256" in done.stdout
    assert "CHANGED" not in done.stdout
    assert audit(middle).returncode == 0  # alone, the replaced run looks fine: the chain caught it


def test_added_and_removed_files_are_named(copy) -> None:
    root, (first, middle, last) = copy
    (middle / "backup.json").unlink()
    (first / "notes.txt").write_text("added later")
    done = audit(last)
    assert done.returncode == 1
    assert f"MISSING {middle.name}/backup.json" in done.stdout
    assert f"ADDED {first.name}/notes.txt" in done.stdout


def test_a_removed_run_breaks_the_chain(copy) -> None:
    root, (first, middle, last) = copy
    shutil.rmtree(middle)
    done = audit(last)
    assert done.returncode == 1
    assert f"MISSING {middle.name}/manifest.json: recorded by {last.name}" in done.stdout


def test_re_running_steps_of_an_earlier_run_is_not_tampering(copy, archive: dict) -> None:
    root, (first, middle, last) = copy
    again = runbook(
        "run",
        str(archive["sample"]),
        "--run-dir",
        str(middle),
        "--steps",
        "backup",
        env={"DATABASE_URL": admin_target().url},
    )
    assert again.returncode == 0, again.stdout + again.stderr
    manifest = json.loads((middle / "manifest.json").read_text())
    assert len(manifest["supersedes"]) == 1
    done = audit(last)
    assert done.returncode == 0, done.stdout
    assert f"{middle.name}: steps were re-run after {last.name} was archived" in done.stdout


def test_audit_of_a_folder_without_manifest_says_what_to_pass(tmp_path: Path) -> None:
    done = audit(tmp_path)
    assert done.returncode == 2
    assert "holds no readable manifest.json" in done.stderr


def test_index_lists_every_run_with_links_and_a_masked_target(archive: dict) -> None:
    index = (archive["root"] / "index.html").read_text()
    for run in archive["runs"]:
        assert f'href="{run.name}/manifest.json"' in index
    first = archive["runs"][0]
    for name in ("01_backup", "02_schema", "03_transfer", "04_verify"):
        assert f'href="{first.name}/{name}.html"' in index
        assert (first / f"{name}.html").is_file()
    assert index.count(">PASS<") == 1 and index.count(">incomplete<") == 2
    assert "dispatch.db" in index


def test_html_hides_injected_parameters_and_report_view_hides_code(archive: dict) -> None:
    first, middle, _ = archive["runs"]
    assert json.loads((first / "manifest.json").read_text())["html_view"] == "report"
    notebook = (first / "01_backup.ipynb").read_text()
    assert "injected-parameters" in notebook and str(first.resolve()) in notebook
    report = (first / "01_backup.html").read_text()
    full = (middle / "01_backup.html").read_text()
    assert str(first.resolve()) not in report and str(middle.resolve()) not in full
    assert "highlight hl-ipython3" not in report  # no code cell shows its source
    assert "highlight hl-ipython3" in full
    assert "PASS" in report  # the outputs stay
    for html in (report, full):  # readable offline: charts inline, nothing fetched from outside
        assert "data:image/png;base64," in html
        assert not re.search(r"<script[^>]+src=\"https?:", html)


def test_a_failed_html_export_fails_its_step_with_the_reason(tmp_path: Path) -> None:
    from runbook.record.export import Exports

    broken = tmp_path / "02_schema.ipynb"
    broken.write_text("{ not a notebook", encoding="utf-8")
    record = {"step": "schema", "outcome": "passed", "parts": {}}
    with Exports(secrets=("s3cret",)) as exports:
        exports.submit(record, broken, report=False)
    assert record["outcome"] == "failed"
    assert record["error"].startswith("the notebook ran, but its HTML export failed: ")
    assert "html" not in record and "export" not in record["parts"]


def test_the_exporter_warm_up_writes_nothing_and_never_fails_a_step(tmp_path: Path) -> None:
    """`Exports.warm` renders a committed notebook in memory before the first export: nothing is
    written beside it, a warm-up that fails (here a broken notebook) fails no step, and the
    export after it is the one asked for."""
    from runbook.record.export import Exports
    from runbook.record.kernels import notebook_path

    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not a notebook", encoding="utf-8")
    committed = notebook_path("backup")
    before = sorted(committed.parent.iterdir())
    executed = tmp_path / "01_backup.ipynb"
    executed.write_bytes(committed.read_bytes())
    record = {"step": "backup", "outcome": "passed", "parts": {}}
    with Exports() as exports:
        exports.warm(broken, report=False)
        exports.warm(committed, report=False)
        exports.submit(record, executed, report=False)
    assert sorted(committed.parent.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "01_backup.html",
        "01_backup.ipynb",
        "broken.ipynb",
    ]
    assert record["outcome"] == "passed" and record["html"] == "01_backup.html"
    assert "01_backup: PASS" in (tmp_path / "01_backup.html").read_text(encoding="utf-8")


@pytest.fixture
def backed_up(tmp_path: Path) -> Path:
    """A run folder as step 01 leaves it: the backup and backup.json with the sha256 it took."""
    backup = tmp_path / "source-backup.db"
    backup.write_bytes(b"snapshot " * 100_000)
    record = {"backup_file": backup.name, "sha256": hashlib.sha256(backup.read_bytes()).hexdigest()}
    (tmp_path / "backup.json").write_text(json.dumps(record), encoding="utf-8")
    return tmp_path


def test_the_manifest_lists_the_backup_with_the_hash_step_01_took(backed_up: Path) -> None:
    hashes = manifest.file_hashes(backed_up, recorded=manifest.recorded_hashes(backed_up))
    assert hashes == manifest.file_hashes(backed_up)  # the same as hashing every file again
    assert hashes["source-backup.db"] == hashlib.sha256(b"snapshot " * 100_000).hexdigest()


def test_a_backup_changed_after_step_01_fails_the_audit(backed_up: Path) -> None:
    (backed_up / "source-backup.db").write_bytes(b"tampered " * 100_000)  # before the manifest
    listed = manifest.file_hashes(backed_up, recorded=manifest.recorded_hashes(backed_up))
    problems = check_files(backed_up, {"files": listed})
    assert len(problems) == 1 and problems[0].startswith("CHANGED")
    assert "source-backup.db" in problems[0]


@pytest.mark.parametrize("report", [False, True])
@pytest.mark.parametrize("step", ["backup", "schema", "transfer", "verify", "cutover"])
def test_the_html_is_the_page_nbconvert_makes(step: str, report: bool) -> None:
    """The exporter leaves out HTMLExporter's pass through BeautifulSoup and adds its alt text
    and tabindex attributes itself: read as BeautifulSoup reads it, the page is the one the
    stock exporter makes, for every committed notebook (with its outputs) in both views."""
    import nbformat
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter

    from runbook.record.export import NO_ALT_TEXT, new_exporter
    from runbook.record.kernels import notebook_path

    notebook = nbformat.read(notebook_path(step), as_version=4)
    ours, _ = new_exporter(report).from_notebook_node(notebook)
    stock, _ = new_exporter(report, HTMLExporter).from_notebook_node(notebook)
    assert str(BeautifulSoup(ours, features="html.parser")) == stock
    assert ours.count('tabindex="0"') == stock.count('tabindex="0"') > 0
    assert ours.count(f'alt="{NO_ALT_TEXT}"') == stock.count(f'alt="{NO_ALT_TEXT}"') > 0
