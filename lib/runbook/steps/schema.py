"""Step 02: the target schema exists, and every source column has a home with a known conversion."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

import psycopg
import sqlalchemy as sa

from coldchain.migrations import alembic_config
from coldchain.models import Base
from runbook.columns import reflect
from runbook.columns.conversions import conversion_for
from runbook.columns.plan import ColumnPlan
from runbook.core import source as sqlite_source
from runbook.core.errors import RunbookError
from runbook.core.run import RunFolder
from runbook.core.target import (
    Target,
    connect,
    connection_error,
    current_schema,
    qualified,
    translated,
)
from runbook.engine import ddl, ledger, replace
from runbook.engine.preflight import require_policy, scan
from runbook.engine.scanners import scanners_ahead
from runbook.engine.snapshot import FK_PROBLEMS_KEPT


def alembic_head() -> str:
    """The newest revision of the application's migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def application_tables() -> list[str]:
    """Tables the application's models define."""

    return list(Base.metadata.tables)


def require_known_revision(conn: psycopg.Connection, target: Target) -> None:
    """Refuse a target at an Alembic revision these migrations do not know (a newer
    application, or another application's), before anything is written."""
    from alembic.script import ScriptDirectory

    table = qualified(conn, "alembic_version")
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    if not exists.fetchone()[0]:
        return
    current = [r for (r,) in conn.execute(f"SELECT version_num FROM {table}")]
    known = {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    unknown = [r for r in current if r not in known]
    if unknown:
        raise RunbookError(
            f"the target's Alembic revision {unknown[0]!r} is not one of this runbook's "
            "migrations (newer, or another application's); nothing was written",
            where=target.display,
            fix="use the runbook version that matches the application, or an empty target",
        )


class StepTransaction:
    """Step 02's one transaction on the target: everything it writes (the ledger's claim, the
    schema, a replaced target's drops) is committed together only when the whole step passes,
    so a stop leaves the target exactly as it was (PostgreSQL's DDL is transactional). Alembic
    runs on the same connection through SQLAlchemy."""

    def __init__(self, target: Target, *, alembic: bool = False) -> None:
        self.target = target
        self.pg = connect(target)
        # the transaction stays open through the preflight scan of the source, idle meanwhile
        self.pg.execute("SET idle_in_transaction_session_timeout = 0")
        self._engine: sa.Engine | None = None
        self._alembic: sa.Connection | None = None
        if alembic:  # before anything is written: SQLAlchemy's first connect rolls back
            self._engine = sa.create_engine(
                "postgresql+psycopg://",
                creator=lambda: self.pg,
                poolclass=sa.pool.StaticPool,
                pool_reset_on_return=None,
            )
            self._alembic = self._engine.connect()
            self._alembic.begin()

    def alembic(self) -> sa.Connection:
        """The same connection and transaction, for Alembic (which then commits nothing)."""
        if self._alembic is None:
            raise RuntimeError("StepTransaction(alembic=True) makes Alembic's connection")
        return self._alembic

    def finish(self, commit: bool) -> None:
        """Commit (or roll back) everything the step wrote, and close the connection. Rolling
        back or closing a connection the server lost fails too; that is not the error to report
        (the one that ended the step is), and the server rolled the transaction back anyway."""
        try:
            if commit:
                self.pg.commit()
            else:
                with contextlib.suppress(psycopg.OperationalError):
                    self.pg.rollback()
        finally:
            if self._alembic is not None:
                with contextlib.suppress(sa.exc.OperationalError):
                    self._alembic.close()
                self._engine.dispose()
            self.pg.close()


def upgrade(target: Target, step: StepTransaction | None = None) -> dict[str, Any]:
    """`alembic upgrade head` of the application's migrations into the target (in step 02's
    transaction when given one, else committed at once); a target at a revision these
    migrations do not know (newer, or another application's) is refused."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    own = step is None
    step = step or StepTransaction(target, alembic=True)
    try:
        require_known_revision(step.pg, target)
        conn = step.alembic()
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(alembic_config(conn), "head")
        after = MigrationContext.configure(conn).get_current_revision()
        if own:
            step.finish(commit=True)
    except sa.exc.OperationalError as exc:
        raise connection_error(target, exc.orig or exc) from None
    except sa.exc.ProgrammingError as exc:
        if "permission denied" not in str(exc.orig):
            raise
        with connect(target) as conn:
            schema = current_schema(conn)
        raise RunbookError(
            f"the target role may not create the schema: {str(exc.orig).splitlines()[0]}",
            where=target.display,
            fix=f"grant it USAGE and CREATE on schema {schema} (GRANT USAGE, CREATE ON SCHEMA "
            f"{schema} TO <role>), or connect as the database owner",
        ) from None
    finally:
        if own and not step.pg.closed:
            step.finish(commit=False)
    return {"revision_before": before, "revision_after": after, "head": alembic_head()}


def target_columns(conn: psycopg.Connection) -> dict[str, dict[str, tuple[str, bool]]]:
    """{table: {column: (format_type, nullable)}} of the target schema, in column order."""
    query = """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0
          AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum
    """
    columns: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, type_text, nullable in conn.execute(query):
        columns.setdefault(table, {})[column] = (type_text, nullable)
    return columns


def _table_plans(
    table: sqlite_source.Table,
    shape: dict[str, Any] | None,
    target_cols: dict[str, tuple[str, bool]],
    column_rules: dict[str, list[str]],
) -> list[ColumnPlan]:
    """The plans of one table's columns (taking its columns' rules out of `column_rules`); a
    column without a home, or a NOT NULL target column the source cannot fill, is refused."""
    pg_table = shape["target"] if shape else table.name
    renamed = {c["name"]: c for c in shape["columns"]} if shape else {}
    plans = []
    for column in table.columns:
        where = f"{table.name}.{column.name}"
        pg_column = renamed[column.name]["target"] if renamed else column.name
        if pg_column not in target_cols:
            raise RunbookError(
                f"source column {column.name!r} has no column in the target table",
                where=where,
                fix="add a migration that creates the column, then run 02_schema again",
            )
        type_text, nullable = target_cols[pg_column]
        options = tuple(sorted(column_rules.pop(where, ())))
        if "empty-as-null" in options and not nullable:
            raise RunbookError(
                "rule 'empty-as-null' on a NOT NULL column would turn '' into an error",
                where=where,
                fix="remove the rule for this column and fix its '' values in the source",
            )
        special = (renamed[column.name]["conversion"] if renamed else None) or ""
        rule = conversion_for(type_text, options, where=where, name=special)
        plans.append(
            ColumnPlan(
                table.name,
                column.name,
                column.declared,
                type_text,
                nullable,
                rule.name,
                options,
                "" if pg_table == table.name else pg_table,
                "" if pg_column == column.name else pg_column,
            )
        )
    filled = {p.pg_column for p in plans}
    missing = [n for n, (_, nullable) in target_cols.items() if n not in filled and not nullable]
    if missing:
        raise RunbookError(
            f"target columns {missing} are NOT NULL but the source has no such columns",
            where=table.name,
            fix="give them a default in a migration, or map them from source columns",
        )
    return plans


def column_map(
    backup: str,
    target: Target | psycopg.Connection,
    column_rules: dict[str, list[str]] | None = None,
    reflected: list[dict[str, Any]] | None = None,
) -> list[ColumnPlan]:
    """Pair every source column with its target column and conversion (plus the explicit rules
    the operator chose, keyed "table.column"); a source column with no home, or a target column
    the source cannot fill, stops the run here, before any data moves. The target's columns are
    read on the given connection (step 02's transaction), or a new one to the target."""
    column_rules = dict(column_rules or {})
    conn = sqlite_source.open_readonly(backup)
    try:
        tables = sqlite_source.reflect(conn)
    finally:
        conn.close()
    if isinstance(target, psycopg.Connection):
        homes = target_columns(target)
    else:
        with connect(target) as pg:
            homes = target_columns(pg)
    shapes = {shape["name"]: shape for shape in reflected or []}
    plans = []
    for table in tables:
        shape = shapes.get(table.name)
        pg_table = shape["target"] if shape else table.name
        if pg_table not in homes:
            raise RunbookError(
                f"source table {table.name!r} has no table in the target schema",
                where=table.name,
                fix="add it to the application's models and migrations, or use reflect mode",
            )
        plans += _table_plans(table, shape, homes[pg_table], column_rules)
    if column_rules:
        raise RunbookError(
            f"column_rules name columns the source does not have: {', '.join(column_rules)}",
            fix='write each key as "table.column" of a source column',
        )
    return plans


def describe(plans: list[ColumnPlan]) -> list[dict[str, Any]]:
    """Rows of the column map for display and for `schema.json`."""
    return [asdict(plan) | {"rule": plan.rule.rule} for plan in plans]


SCHEMA_MODES = ("alembic", "reflect")


AGAIN = "run 02_schema again (runbook run SOURCE --steps schema --run-dir RUN_DIR)"


def _create(step: StepTransaction, run: RunFolder, mode: str, replace_target: bool) -> dict:
    """The target schema, in step 02's transaction: this migration's tables claimed (a target
    holding other data is refused), dropped first where the target is replaced, then created
    by Alembic or from the reflected shapes (each reflected object PostgreSQL refuses is listed
    with its reason)."""
    backup, target, conn = run.read("backup"), step.target, step.pg
    reflected = reflect.plan(str(run.backup_path)) if mode == "reflect" else None
    tables = [t["target"] for t in reflected["tables"]] if reflected else application_tables()
    replaced = None
    if replace_target:  # step 01 saved the target; only this migration's tables go
        saved = replace.require_saved(run)
        replaced = {"saved": saved, "dropped": replace.drop_application_tables(conn, tables)}
    if mode == "alembic":
        require_known_revision(conn, target)
    earlier = ledger.require_ours_or_empty(
        conn, target, tables, backup["sha256"], ("alembic_version",), replace_target
    )
    ledger.claim(conn, backup["sha256"], backup["source_name"], mode, tables)
    if reflected:
        made = ddl.present if earlier else ddl.create
        reflected["objects"] = made(conn, reflected["objects"])
    migration = upgrade(target, step) if mode == "alembic" else None
    return {"replaced": replaced, "reflected": reflected, "migration": migration}


def translated_checks(reflected: dict[str, Any] | None) -> dict[str, list[tuple[str, str]]]:
    """The CHECK constraints PostgreSQL holds, per source table: (name, SQLite expression)."""
    checks: dict[str, list[tuple[str, str]]] = {}
    for line in (reflected or {}).get("objects", []):
        if line["kind"] == "check" and line["outcome"] == "translated":
            checks.setdefault(line["table"], []).append((line["name"], line["check"]))
    return checks


def _orphans_known(run: RunFolder) -> list[dict] | None:
    """Step 01's `PRAGMA foreign_key_check` of the same backup, when it kept the whole list
    (the preflight need not run it again: measured 0.2-0.8 s at scale 1)."""
    backup = run.read("backup")
    problems = backup.get("foreign_key_check", [])
    return problems if len(problems) < FK_PROBLEMS_KEPT else None


def prepare(
    run: RunFolder,
    target: Target,
    column_rules: dict[str, list[str]] | None = None,
    mode: str = "alembic",
    replace_target: bool = False,
    on_bad_rows: str = "stop",
) -> dict[str, Any]:
    """Create the schema (the application's Alembic migrations, or one reflected from the
    SQLite file), map the columns, scan the backup for misfits, and record all three in
    `schema.json` (tied to the backup's sha256, so the transfer need not scan again). All of
    it is one transaction on the target, committed only when the step passes: when the
    preflight stops the run (`on_bad_rows="stop"` and misfits), nothing was written."""
    if mode not in SCHEMA_MODES:
        raise RunbookError(f"unknown schema mode {mode!r}", fix="use 'alembic' or 'reflect'")
    require_policy(on_bad_rows)
    backup, recorded = str(run.backup_path), run.read("backup")
    rows = sum(recorded.get("row_counts", {}).values())
    # the scan's processes start while the schema is created: they need only the backup
    with scanners_ahead(backup, rows) as ahead, translated(target, "the schema step", AGAIN):
        step = StepTransaction(target, alembic=mode == "alembic")
        written = False
        try:
            created = _create(step, run, mode, replace_target)
            reflected = created["reflected"]
            tables = reflected and reflected["tables"]
            plans = column_map(backup, step.pg, column_rules, tables)
            checks, orphans = translated_checks(reflected), _orphans_known(run)
            preflight = scan(backup, plans, checks, orphans, ahead, recorded.get("row_counts"))
            written = not (preflight["total"] and on_bad_rows == "stop")
        finally:
            step.finish(commit=written)
    result = {
        "backup_sha256": recorded["sha256"],
        "mode": mode,
        "written": written,
        **created,
        "columns": describe(plans),
        "preflight": preflight,
    }
    run.write("schema", result)
    return result


def key_facts(result: dict[str, Any]) -> dict[str, Any]:
    """What the audit record must show of the schema step."""
    migration = result["migration"]
    if migration:
        facts = {
            "schema mode": "alembic (the application's migrations)",
            "alembic revision before": migration["revision_before"] or "(empty database)",
            "alembic revision after": migration["revision_after"],
        }
    else:
        outcomes = [line["outcome"] for line in result["reflected"]["objects"]]
        facts = {
            "schema mode": "reflect (built from the SQLite file)",
            "schema objects translated": outcomes.count("translated"),
            "schema objects listed (not in PostgreSQL, see why)": outcomes.count("listed"),
        }
    return facts | {
        "tables mapped": len({c["table"] for c in result["columns"]}),
        "columns mapped": len(result["columns"]),
        "misfit values found by preflight": result["preflight"]["total"],
        "rows that cannot be loaded as they are": result["preflight"]["rows"],
        "written to the target": "yes"
        if result.get("written", True)
        else "no: the preflight stopped the run, the transaction was rolled back",
    }


def summary(result: dict[str, Any]) -> str:
    """One line for the verdict."""
    migration = result["migration"]
    made = f"revision {migration['revision_after']}" if migration else "reflected from SQLite"
    return (
        f"schema {made}; {len(result['columns'])} columns mapped; "
        f"{result['preflight']['total']} misfits in {result['preflight']['rows']} rows."
    )
