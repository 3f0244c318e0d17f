"""A real browser: JupyterLab on a free local port, the four notebooks run through its menus in
the system's Chromium (driven by Playwright, headless, no browser download), then the archive's
runs/index.html opened and its links followed. Screenshots go to the test's output folder."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from commands import runbook

from coldchain.sample import generate
from runbook.record.reference import REFERENCE_SCALE, REFERENCE_SEED, fresh_database

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("RUNBOOK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
NAMES = ["01_backup", "02_schema", "03_transfer", "04_verify"]
HEADINGS = {
    "01_backup": "01 · Backup",
    "02_schema": "02 · Schema",
    "03_transfer": "03 · Transfer",
    "04_verify": "04 · Verify",
}
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# JupyterLab settings for the test: every cell in the DOM (no virtual scrolling), no news prompt
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
STARTED = """(panel) => {
  const p = document.querySelector(panel);
  return !!p && [...p.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent));
}"""
FINISHED = """(panel) => {
  const p = document.querySelector(panel);
  const status = p.querySelector('.jp-Notebook-ExecutionIndicator');
  const prompts = [...p.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim());
  const failed = [...p.querySelectorAll('.jp-OutputArea-output')]
    .some(e => e.textContent.includes('Traceback'));
  return !!status && status.dataset.status === 'idle' && !prompts.some(t => t.includes('*'))
    && (prompts.every(t => /^\\[\\d+\\]:$/.test(t)) || failed);
}"""


VISIBLE = """(panel) => {
  const inView = (e) => { const r = e.getBoundingClientRect();
    return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; };
  const p = document.querySelector(panel);
  const cells = p.querySelectorAll('.jp-CodeCell');
  const verdict = cells[cells.length - 1].querySelector('.jp-OutputArea-output');
  return {verdict: !!verdict && verdict.textContent.includes(': PASS.') && inView(verdict),
          chart: [...p.querySelectorAll('.jp-OutputArea-output img')].some(inView)};
}"""

# the verdict and a chart both in view (VISIBLE's two answers)
SHOWN = f"(panel) => {{ const v = ({VISIBLE})(panel); return v.verdict && v.chart; }}"


def _chromium_missing() -> str | None:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium is not installed at {CHROMIUM} (.ci/run installs Debian's chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


if reason := _chromium_missing():
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"JupyterLab did not answer within {timeout} s")


@pytest.fixture
def workspace(tmp_path: Path):
    """A sample database, a fresh target, an empty runs folder and a copy of the notebooks."""
    sample = tmp_path / "dispatch.db"
    generate(sample, scale=REFERENCE_SCALE, seed=REFERENCE_SEED)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in NAMES:
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", notebooks)
    runs = tmp_path / "runs"
    runs.mkdir()
    with fresh_database("runbook_lab") as target:
        env = {k: v for k, v in os.environ.items() if k != "RUNBOOK_RUN_DIR"}
        env.update(
            RUNBOOK_SOURCE=str(sample),
            RUNBOOK_RUNS=str(runs),
            DATABASE_URL=target.url,
        )
        yield {"tmp": tmp_path, "sample": sample, "notebooks": notebooks, "runs": runs, "env": env}


@pytest.fixture
def lab(workspace: dict):
    """JupyterLab on 127.0.0.1 and a free port, with a random token, its own settings and state
    folders, and the notebooks' environment (source, target, runs folder; no RUNBOOK_RUN_DIR, so
    the notebooks choose their run folder as in an engineer's session)."""
    tmp = workspace["tmp"]
    for relative, values in SETTINGS.items():
        path = tmp / "lab-settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(workspace["env"])
    for variable, folder in {
        "JUPYTER_CONFIG_DIR": "jupyter-config",
        "JUPYTER_DATA_DIR": "jupyter-data",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
        "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
    }.items():
        (tmp / folder).mkdir(exist_ok=True)
        env[variable] = str(tmp / folder)
    port, token = free_port(), secrets.token_hex(16)
    log = (tmp / "jupyterlab.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={workspace['notebooks']}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", process)
        yield {"base": base, "token": token, **workspace}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def run_all_cells(page: Page) -> None:
    """Clear the committed outputs and run every cell through the menus, as a person would."""
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=90_000)
    page.wait_for_selector(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status=idle]")
    for attempt in range(3):
        menu(page, "Edit", "Clear Outputs of All Cells")
        menu(page, "Run", "Run All Cells")
        try:
            page.wait_for_function(STARTED, arg=PANEL, timeout=20_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    page.wait_for_function(FINISHED, arg=PANEL, timeout=180_000)


def menu(page: Page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def screenshot_whole_notebook(page: Page, path: Path) -> None:
    """Make the window as tall as the notebook, so every cell is in the picture."""
    height = page.evaluate(
        "(panel) => document.querySelector(panel + ' .jp-WindowedPanel-outer').scrollHeight",
        PANEL,
    )
    page.set_viewport_size({"width": 1400, "height": min(height + 160, 16_000)})
    page.evaluate(
        "(panel) => { document.querySelector(panel + ' .jp-WindowedPanel-outer').scrollTop = 0; }",
        PANEL,
    )
    with contextlib.suppress(PlaywrightTimeout):  # the layout follows the new size
        page.wait_for_function(SHOWN, arg=PANEL, timeout=30_000)
    visible = page.evaluate(VISIBLE, PANEL)
    assert visible["verdict"] and visible["chart"], f"{path.stem}: {visible}"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 900})


def saved_cells(page: Page, lab: dict, name: str, timeout: float = 60) -> list[dict]:
    """The notebook's cells as the UI's save wrote them to disk: Save through the menu, then read
    the file until it holds the verdict (saving again every 15 s, as a person would)."""
    path = lab["notebooks"] / f"{name}.ipynb"
    deadline = time.monotonic() + timeout
    saved_at = -1e9
    seen = "nothing yet"
    while time.monotonic() < deadline:
        if time.monotonic() - saved_at > 15:
            menu(page, "File", "Save Notebook")
            saved_at = time.monotonic()
        try:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError) as exc:  # absent or half-written while the server saves
            seen = f"{type(exc).__name__}: {exc}"
        else:
            last = [o.get("text", "") for o in cells[-1].get("outputs", [])]
            if any(f"{name}: PASS" in "".join(text) for text in last):
                return cells
            seen = f"last cell outputs {last!r:.300}"
        page.wait_for_timeout(500)
    files = sorted(p.name for p in lab["notebooks"].iterdir())
    log = (lab["tmp"] / "jupyterlab.log").read_text(errors="replace")[-3000:]
    raise AssertionError(
        f"{name}: the saved notebook never held the verdict ({seen}); "
        f"notebooks folder: {files}; JupyterLab log tail:\n{log}"
    )


def test_notebooks_in_jupyterlab_and_the_archive_index_in_chromium(
    lab: dict, record_property
) -> None:
    shots = lab["tmp"] / "screenshots"
    shots.mkdir()
    record_property("screenshots", str(shots))
    run_folders = []
    # meanwhile, the runbook command archives two runs (one full, one backup only) elsewhere
    archive_root = lab["tmp"] / "archive"
    archived: dict[str, subprocess.CompletedProcess] = {}

    def make_archive() -> None:
        with fresh_database("runbook_lab_archive") as target:
            env = {**lab["env"], "DATABASE_URL": target.url, "RUNBOOK_RUNS": str(archive_root)}
            archived["full"] = runbook("run", str(lab["sample"]), env=env)
            later = [
                "--run-dir",
                str(archive_root / "29991231T235959Z-ffffff"),
                "--steps",
                "backup",
            ]
            archived["backup"] = runbook("run", str(lab["sample"]), *later, env=env)

    archiving = threading.Thread(target=make_archive, daemon=True)
    archiving.start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            for name in NAMES:
                page.goto(f"{lab['base']}/lab/tree/{name}.ipynb?reset&token={lab['token']}")
                run_all_cells(page)
                panel = page.locator(PANEL)
                outputs = panel.locator(".jp-OutputArea-output")
                texts = outputs.all_inner_texts()
                assert not [t for t in texts if "Traceback" in t], f"{name}: a cell failed"
                verdict = panel.locator(".jp-CodeCell").last.locator(".jp-OutputArea")
                assert re.match(rf"{name}: PASS\. ", verdict.inner_text()), verdict.inner_text()
                charts = panel.locator(".jp-OutputArea-output img")
                assert charts.count() >= 1, f"{name}: no chart"
                assert all(
                    charts.nth(i).evaluate("img => img.complete && img.naturalWidth > 100")
                    for i in range(charts.count())
                )
                if name == "03_transfer":  # progress bars are widgets here, not text
                    assert panel.locator(".widget-hprogress, .jupyter-widgets").count() >= 1
                folder = re.search(r"Run folder: (\S+) \(([^)]*)\)", "\n".join(texts))
                assert folder, f"{name}: no run folder line"
                run_folders.append(folder.groups())
                screenshot_whole_notebook(page, shots / f"{name}.png")
                cells = saved_cells(page, lab, name)
                outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
                assert not [o for o in outputs if o["output_type"] == "error"], name

            # one interactive session, one run folder: 01 starts it, 02-04 continue it
            assert len({run for run, _ in run_folders}) == 1, run_folders
            assert run_folders[0][1].startswith("a new run")
            assert all(
                why.startswith("the most recent unfinished run") for _, why in run_folders[1:]
            )
            assert (lab["runs"] / run_folders[0][0] / "verify.json").is_file()

            # the archive: two runs by the runbook command, listed in index.html
            archiving.join(timeout=600)
            for done in archived.values():
                assert done.returncode == 0, done.stdout + done.stderr
            index = archive_root / "index.html"
            page.goto(index.as_uri())
            rows = page.locator("#runs tbody tr")
            assert rows.count() == 2
            page.screenshot(path=str(shots / "index.png"), full_page=True)
            first = rows.nth(1)
            assert first.locator("td").nth(4).inner_text() == "PASS"
            assert rows.nth(0).locator("td").nth(4).inner_text() == "incomplete"
            steps = first.locator("a.step")
            assert steps.all_inner_texts() == ["backup", "schema", "transfer", "verify"]
            for i, name in enumerate(NAMES):
                first.locator("a.step").nth(i).click()
                page.wait_for_load_state()
                assert page.url.endswith(f"/{name}.html"), page.url
                assert HEADINGS[name] in page.locator("h1").first.inner_text()
                assert page.locator("img").count() >= 1  # charts inline in the export
                page.go_back()
                page.wait_for_selector("#runs")
            for i in range(rows.count()):
                link = rows.nth(i).locator("a[href$='manifest.json']")
                run = link.get_attribute("href").split("/")[0]
                link.click()
                page.wait_for_load_state()
                assert json.loads(page.locator("body").inner_text())["run"] == run
                page.go_back()
                page.wait_for_selector("#runs")
        finally:
            browser.close()
    assert sorted(p.name for p in shots.glob("*.png")) == sorted(
        [f"{name}.png" for name in NAMES] + ["index.png"]
    )
