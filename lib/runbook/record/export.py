"""The HTML view of an executed notebook (lab template, offline), made in a background thread
while the next step runs, and its outcome put into the step's record."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runbook.core.target import mask_text

# The lab template without the scripts it loads from a CDN (require.js, MathJax, Mermaid): the
# runbook's notebooks use none of them, and an audit record must not reach out when opened.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


_EXPORTERS: dict[bool, tuple[Any, threading.Lock]] = {}  # per `report`: built once a process

# what nbconvert's HTMLExporter adds to the template's page with BeautifulSoup (images without
# alt text get nbconvert's own, cell inputs and outputs become focusable), added here to the
# template's markup it is meant for; tests/test_audit.py holds the page to be the one the
# stock exporter makes
NO_ALT_TEXT = "No description has been provided for this image"
_FOCUSABLE = re.compile(
    r'<div class="(?:jp-Cell-inputWrapper|(?:[^"]*\s)?jp-OutputArea-output(?:\s[^"]*)?)"'
)
_IMAGE = re.compile(r"<img\b[^>]*>")
_ALT = re.compile(r"\salt=")


def _with_alt(image: re.Match) -> str:
    tag = image[0]
    return tag if _ALT.search(tag) else f'{tag[:-1]} alt="{NO_ALT_TEXT}">'


def accessible(html: str) -> str:
    """The page with nbconvert's accessibility attributes: tabindex="0" on every cell input and
    output, alt text on every image that has none."""
    html = _FOCUSABLE.sub(lambda found: f'{found[0]} tabindex="0"', html)
    return _IMAGE.sub(_with_alt, html)


def _exporter_class() -> type:
    """nbconvert's HTMLExporter without its pass through BeautifulSoup: parsing the page again,
    compiling soupsieve's selectors and printing the page again cost the run's exports 0.5 s
    once and 0.06-0.09 s a notebook (measured on 2 vCPUs), for attributes `accessible` adds."""
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class PlainHTMLExporter(HTMLExporter):
        def from_notebook_node(self, nb: Any, resources: Any = None, **kw: Any) -> Any:
            # HTMLExporter.from_notebook_node up to its BeautifulSoup pass (nbconvert 7.17)
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight = self.filters.get(
                "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
            )
            resources = self._init_resources(resources)
            data_type = WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources
            )
            self.register_filter("highlight_code", highlight)
            self.register_filter("filter_data_type", data_type)
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            return accessible(html), resources

    return PlainHTMLExporter


def new_exporter(report: bool, kind: type | None = None) -> Any:
    """An HTML exporter of the run's notebooks (`kind`: nbconvert's HTMLExporter or a subclass;
    by default the one without the BeautifulSoup pass): lab template, offline, the injected
    parameters hidden, and the code too for the `report` view."""
    from jinja2 import DictLoader
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = (kind or _exporter_class())(
        template_name="lab",
        template_file="runbook-offline.html.j2",
        extra_loaders=[DictLoader({"runbook-offline.html.j2": OFFLINE_TEMPLATE})],
        exclude_input=report,
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={"injected-parameters"}, enabled=True),
        enabled=True,
    )
    return exporter


def _exporter(report: bool) -> tuple[Any, threading.Lock]:
    """The HTML exporter of the run's notebooks, built once and reused with its lock (an
    exporter loads and compiles its templates when built: measured, 0.09-0.14 s an export with
    a new one, 0.04-0.06 s with the same one)."""
    if report not in _EXPORTERS:
        _EXPORTERS.setdefault(report, (new_exporter(report), threading.Lock()))
    return _EXPORTERS[report]


def _render(notebook: Path, report: bool) -> str:
    """The HTML of a notebook, through the process's exporter."""
    import nbformat

    exporter, lock = _exporter(report)
    with lock:
        body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    return body


def _warm(notebook: Path, report: bool) -> None:
    from runbook.record.lazy import collector_paused

    with collector_paused():
        _render(notebook, report)


def export_html(notebook: Path, *, report: bool = False) -> Path:
    """HTML of an executed notebook (lab template, images inline, no external scripts, injected
    parameters hidden); `report` also hides the code, for reviewers (the .ipynb keeps all)."""
    html = notebook.with_suffix(".html")
    html.write_text(_render(notebook, report), encoding="utf-8")
    return html


def _export(notebook: Path, report: bool) -> tuple[str, float]:
    clock = time.perf_counter()
    html = export_html(notebook, report=report)
    return html.name, round(time.perf_counter() - clock, 2)


def _settle(record: dict[str, Any], done: Future, secrets: tuple[str, ...]) -> None:
    """Put an export's outcome into its step's record: the HTML's name and seconds, or the
    step failed (its audit record lacks the HTML) with the reason."""
    try:
        html, seconds = done.result()
    except Exception as exc:  # noqa: BLE001 - a failed export is an outcome to record
        record["outcome"] = "failed"
        reason = mask_text(f"{type(exc).__name__}: {exc}", *secrets)
        record["error"] = f"the notebook ran, but its HTML export failed: {reason}"
        return
    record["html"] = html
    record.setdefault("parts", {})["export"] = seconds


class Exports:
    """HTML exports of executed notebooks, made one at a time in a background thread while the
    next step runs (measured: 0.4-1.3 s each, off every step's wall time); `finish` waits for
    them all and completes each step's record, before the manifest hashes the files."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="html-export")
        self._pending: list[tuple[dict[str, Any], Future]] = []
        self._secrets = secrets

    def submit(self, record: dict[str, Any], notebook: Path, report: bool) -> None:
        self._pending.append((record, self._pool.submit(_export, notebook, report)))

    def warm(self, notebook: Path, report: bool) -> None:
        """Render `notebook` (a committed one) in memory, nothing written, before the first
        export: what an exporter does once a process (its templates compiled, the regular
        expressions of pygments' lexer) is then
        done while the first step runs, not beside the second (measured: 0.39 s the first
        export of a process, 0.04 s the next ones; nbconvert's import 0.16 s), the cyclic
        collector paused while it loads (`lazy.collector_paused`)."""
        self._pool.submit(_warm, notebook, report)

    def finish(self) -> None:
        for record, done in self._pending:
            _settle(record, done, self._secrets)
        self._pending.clear()
        self._pool.shutdown()

    def __enter__(self) -> Exports:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def export_into(record: dict[str, Any], notebook: Path, report: bool) -> None:
    """Export a notebook now and complete its step's record (as `Exports` does later)."""
    done: Future = Future()
    try:
        done.set_result(_export(notebook, report))
    except Exception as exc:  # noqa: BLE001 - settled into the record
        done.set_exception(exc)
    _settle(record, done, ())
