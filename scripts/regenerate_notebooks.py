"""Build the four runbook notebooks from the cell sources below, execute them headlessly with
papermill on the fixed reference sample, and strip volatile metadata, so the committed notebooks
(nbval's reference outputs) are always produced the same way. Run with `make notebooks`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import papermill

from runbook.core import parameters
from runbook.record.reference import reference_environment, reference_traffic

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
IGNORE = ["nbval-ignore-output"]  # cells whose output varies by run (timings, progress bars)
# the cells doing a step's work: the manifest records their seconds apart from the rest
# (kernel start, imports, tables and charts, export)
LIBRARY = ["library-call"]

BEGIN = "step = session.begin({step!r}, run_dir, source_db, target_url, database_url_env)"
# 01, 02 and 04 load the modules of their charts while their library call works
# (`charts.prefetch`); 03 loads them and draws its load charts once its loader processes have
# ended (beside them, the run's peak), while the server builds indexes (`charts.draw_ahead`)
PREFETCH = "\ncharts.prefetch()  # matplotlib loads while the step works"


def parameters_cell(step: str) -> tuple[str, str, list[str]]:
    """The parameters cell of a step's notebook, made from the one declaration of the run's
    parameters (`runbook.core.parameters`)."""
    return ("code", parameters.cell(step), ["parameters"])


CELLS: dict[str, list[tuple[str, str, list[str]]]] = {
    "01_backup": [
        (
            "markdown",
            """# 01 · Backup: a consistent, verified copy of the source

This step copies the application's SQLite database under one read transaction (the file's
bytes while its read lock keeps writers off them; in WAL mode SQLite's **online backup API**,
which, unlike `cp`, includes committed transactions still in the `-wal` file), records the
copy's **sha256**, and runs `PRAGMA integrity_check` and `PRAGMA foreign_key_check` on it.
Steps 02–04 read this copy, never the live file, so everything later speaks of the same bytes.

The first code cell says which run folder this session works in: a new one under `runs/`
(steps 02–04 continue the most recent unfinished run), or the one named by the `run_dir`
parameter or `RUNBOOK_RUN_DIR`.

**Check before going on:** integrity is `ok`, the row counts and the largest clients look like
production, the foreign-key problems are zero (or understood), and the last line says PASS.""",
            [],
        ),
        parameters_cell("backup"),
        (
            "code",
            "from runbook.core import session\n"
            "from runbook.engine import replace\n"
            "from runbook.record import charts, show\n"
            "from runbook.steps import backup\n"
            "\n" + BEGIN.format(step="backup") + PREFETCH,
            [],
        ),
        (
            "code",
            "result = backup.snapshot(\n"
            "    step.source, step.run,\n"
            "    after_census=charts.draw_backup_ahead,  # charts drawn while the copy is checked\n"
            ")",
            LIBRARY,
        ),
        ("code", "show.facts(backup.key_facts(result))", []),
        ("code", "backup.require_sound(result)\nshow.backup_tables(result)", []),
        ("code", "charts.table_sizes_chart(result)", []),
        ("code", "charts.client_orders_chart(step.run.backup_path)", []),
        (
            "code",
            "saved = replace.save_if_replacing(step.run, step.target, replace_target)",
            LIBRARY,
        ),
        ("code", "show.facts(replace.describe(saved))", []),
        ("code", "session.verdict(step, backup.summary(result))", []),
    ],
    "02_schema": [
        (
            "markdown",
            """# 02 · Schema: every source column has a home and a known conversion

This step runs `alembic upgrade head` of the application's migrations into the target (or, with
`schema_mode="reflect"`, builds the schema from the SQLite file itself), pairs every source
column with its target column and the **conversion rule** that moves its values, and scans the
backup from step 01 for every value that would not fit (**preflight**), before a single row is
written. All of it is one transaction: when the preflight stops the run, the target is left
exactly as it was. In reflect mode the **schema objects** table accounts for every object of the
SQLite file (indexes, foreign keys, CHECKs, collations, defaults, views, triggers, virtual
tables): translated into PostgreSQL, or listed with why.

**Check before going on:** the migration reached the head revision, every column has a rule you
agree with (the column map shows the first rows; `schema.json` in the run folder has them all),
every listed schema object is one you can do without or will recreate by hand, the preflight
chart shows no misfits (or you chose how to handle them), and the last line says PASS.""",
            [],
        ),
        parameters_cell("schema"),
        (
            "code",
            "from runbook.core import session\n"
            "from runbook.engine import preflight\n"
            "from runbook.record import charts, show\n"
            "from runbook.steps import schema\n"
            "\n" + BEGIN.format(step="schema") + PREFETCH,
            [],
        ),
        (
            "code",
            "result = schema.prepare(\n"
            "    step.run, step.target, column_rules, schema_mode, replace_target, on_bad_rows\n"
            ")",
            LIBRARY,
        ),
        ("code", "show.facts(schema.key_facts(result))", []),
        ("code", "show.conversion_rules(result)", []),
        ("code", "show.reflect_notes(result)", []),
        ("code", "show.schema_objects(result)", []),
        ("code", "show.columns_per_table(result)", []),
        ("code", "show.summarize(show.column_map(result))", []),
        ("code", "charts.misfits_chart(result)", []),
        ("code", "show.summarize(show.preflight_summary(result))", []),
        ("code", "show.preflight_findings(result)", []),
        (
            "code",
            'preflight.require_clean(result["preflight"], on_bad_rows)\n'
            "session.verdict(step, schema.summary(result))",
            [],
        ),
    ],
    "03_transfer": [
        (
            "markdown",
            """# 03 · Transfer: every source row into the target

Each table is streamed from the backup into PostgreSQL with `COPY`, primary keys preserved.
Foreign keys are dropped for the load (the `drivers` ↔ `vehicles` cycle needs it), re-added and
**validated** afterwards; every sequence is set past the largest id copied, so the application's
next insert gets a fresh id. Nothing is written when step 02 found misfits (unless
`on_bad_rows="reject"`: then those rows, and the rows that depend on them, go to
`rejects.jsonl` with their reason and the whole original row). Each key range is recorded as
complete in the target in the same transaction that loads it: if the transfer is interrupted,
run it again and it continues from there.

**Check before going on:** every table shows the row count of step 01 (less the rows it sent
to the reject ledger, counted per table), all foreign keys are valid, every sequence is above
its table's largest id, and the last line says PASS. The charts
show the rows/s of each table's COPY and the load over time.""",
            [],
        ),
        parameters_cell("transfer"),
        (
            "code",
            "from runbook.core import session\n"
            "from runbook.record import charts, show\n"
            "from runbook.steps import transfer\n"
            "\n" + BEGIN.format(step="transfer"),
            [],
        ),
        (
            "code",
            "result = transfer.transfer(\n"
            "    step.run, step.target, on_bad_rows, workers=workers,\n"
            "    after_load=charts.draw_ahead,  # load charts drawn while indexes are built\n"
            ")",
            IGNORE + LIBRARY,
        ),
        ("code", "show.transfer_tables(result)", []),
        ("code", "show.transfer_timings(result)", IGNORE),
        ("code", "charts.throughput_chart(result)", IGNORE),
        ("code", "charts.throughput_over_time_chart(result)", IGNORE),
        ("code", "show.sequences(result)", []),
        ("code", "session.verdict(step, transfer.summary(result))", []),
    ],
    "04_verify": [
        (
            "markdown",
            """# 04 · Verify: source and target hold the same data

Counts prove little, so every table gets an **order-independent content checksum** computed on
both engines from the same canonical form of each value; where a checksum differs, the rows that
differ are shown side by side with their primary keys. Foreign keys, sequences, views and a few
of the application's own queries are checked too. Every source row is accounted for: the first
table shows each table's source rows, how many were loaded and how many went to
`rejects.jsonl`, and the verdict says how many were rejected. The last table says which transfer
attempt loaded which key ranges (more than one attempt when a transfer was interrupted and run
again). The last cell raises on **FAIL**, so papermill and CI fail with it.

**Check before switching the application over:** every bar in the chart is green (its checksum
matches), no rows differ, every check passed, and the verdict on the last line is PASS.""",
            [],
        ),
        parameters_cell("verify"),
        (
            "code",
            "from runbook.core import session\n"
            "from runbook.record import charts, show\n"
            "from runbook.steps import verify\n"
            "\n" + BEGIN.format(step="verify") + PREFETCH,
            [],
        ),
        (
            "code",
            "result = verify.verify(step.run, step.target, workers=workers)",
            LIBRARY,
        ),
        ("code", "show.verify_tables(result)", []),
        ("code", "charts.verify_chart(result)", []),
        ("code", "show.differences(result)", []),
        ("code", "show.checks_summary(result)", []),
        ("code", "show.load_attempts(result)", []),
        ("code", "session.verdict(step, verify.raise_on_fail(result))", []),
    ],
    "05_cutover": [
        (
            "markdown",
            """# 05 · Cutover: catch up, prove, switch, with the application stopped

The bulk run (01–04) copied and verified a snapshot while the application kept running;
`runbook sync` carried its changes over since then. Now the application is stopped, and the
**freeze window** runs from that moment to the PASS below: this notebook checks that nobody
writes to the source any more, applies the last changes in one transaction, proves that the
target equals the final snapshot at the cost of the changes (every row changed since the bulk
run compared on both engines; the rest unchanged on both sides), and runs the application's own
smoke test through psycopg2. Then it prints the application's new `DATABASE_URL` line.

After the window, with the application already on PostgreSQL, the second half of the guide: the
post-migration report and the first PostgreSQL backup with a restore drill.

**Check before switching the application over:** the quiet check passed, every changed row
matches, the smoke test passed, and the line after it says PASS.""",
            [],
        ),
        parameters_cell("cutover"),
        (
            "code",
            "from runbook.core import session\n"
            "from runbook.record import charts, show\n"
            "from runbook.steps import cutover\n"
            "\n" + BEGIN.format(step="cutover") + "\n"
            "cut = cutover.begin(step.run, bulk_run_dir, step.source, step.target, stopped_at)",
            IGNORE,
        ),
        (
            "code",
            "# (a) the application has stopped: no write transaction, nothing committed lately\n"
            "stopped = cutover.require_stopped(cut, write_wait_seconds, quiet_seconds)",
            LIBRARY,
        ),
        ("code", "show.facts(stopped)", IGNORE),
        (
            "code",
            "# (b) the last catch-up, in one transaction\n"
            "record = cutover.final_sync(cut, on_bad_rows)",
            LIBRARY,
        ),
        ("code", "show.sync_changes(record)", []),
        ("code", "charts.changes_chart(record)", []),
        (
            "code",
            "# (c) the target equals the final snapshot\n"
            "checked = cutover.verify_final(cut, record, workers)",
            LIBRARY,
        ),
        ("code", "show.facts(checked)", IGNORE),
        (
            "code",
            "# (d) the application's smoke test (psycopg2, rolled back)\n"
            "smoke = cutover.smoke_test(cut)",
            LIBRARY,
        ),
        ("code", "show.facts({k: v for k, v in smoke.items() if k != 'seconds'})", []),
        (
            "code",
            "# (e) the application's new setting (fill in the password)\n"
            "print(cutover.switch_line(cut))",
            [],
        ),
        ("code", "# (f) the freeze window ends here\nprint(cutover.close_window(cut))", []),
        (
            "markdown",
            """## After the window: the post-migration report and the first backup

The application is on PostgreSQL now. Below: table and index sizes beside the SQLite file's,
the connections open on the database, whether `pg_stat_statements` is available, fresh
statistics, the application's pool (`pool_size=20, max_overflow=10, pool_pre_ping=True`)
against `max_connections`; then `pg_dump -Fc` into this run folder, restored into a scratch
database and verified there by the same checksums. Every catch-up since the bulk run closes
the notebook.""",
            [],
        ),
        ("code", "report = cutover.report(cut)", LIBRARY),
        ("code", "show.table_sizes(report)", IGNORE),
        (
            "code",
            "print('pg_stat_statements:', report['pg_stat_statements'])\n"
            "show.facts(report['pool'])",
            [],
        ),
        ("code", "drill = cutover.backup_drill(cut, workers)", LIBRARY),
        ("code", "show.facts(drill)", IGNORE),
        ("code", "show.syncs(cutover.history(cut))", IGNORE),
        ("code", "session.verdict(step, cutover.summary(cut))", []),
    ],
}


def build(name: str) -> nbformat.NotebookNode:
    """The unexecuted notebook `name` from its cell sources."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for index, (kind, text, tags) in enumerate(CELLS[name]):
        maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = maker(text, id=f"{name}-{index:02d}")
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    return nb


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What `nbstripout --keep-output --keep-count --keep-id --extra-keys "metadata.papermill
    cell.metadata.papermill cell.metadata.execution"` does, plus: widget state is dropped, and
    so are widget views that would point at it (their text fallback stays). Outputs, execution
    counts, cell ids and tags are kept: they are nbval's reference."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        for key in ("papermill", "execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    return nb


def regenerate(names: list[str]) -> None:
    """Execute every notebook in order on one reference run, writing them into notebooks/."""
    os.environ["RUNBOOK_PROGRESS"] = "text"  # plain progress lines, as under `runbook run`
    with reference_environment() as environment:
        for name in names:
            if name == "05_cutover":
                reference_traffic(environment)
            path = NOTEBOOKS / f"{name}.ipynb"
            nbformat.write(build(name), path)
            papermill.execute_notebook(
                str(path), str(path), kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False
            )
            nbformat.write(strip(nbformat.read(path, as_version=4)), path)
            print(f"regenerated {path.relative_to(NOTEBOOKS.parent)}")


if __name__ == "__main__":
    regenerate(sys.argv[1:] or list(CELLS))
