"""Step 03: every source row into the target by streamed COPY, keys preserved, sequences set."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from tqdm.auto import tqdm

from runbook import source as sqlite_source
from runbook.errors import RunbookError
from runbook.preflight import require_clean
from runbook.run import RunFolder
from runbook.schema import ColumnPlan, by_table, plans_from, target_type
from runbook.source import quote_ident
from runbook.target import Target, connect, mask_text

FETCH_ROWS = 5_000  # rows per round trip from SQLite; memory stays flat whatever the table size


def load_order(tables: list[sqlite_source.Table]) -> list[str]:
    """Tables with parents before children (cycles, like drivers ↔ vehicles, broken in source
    order); foreign keys are re-added after all data, so the order only keeps the log readable."""
    remaining = {
        t.name: {fk.parent for fk in t.foreign_keys if fk.parent != t.name} for t in tables
    }
    order: list[str] = []
    while remaining:
        ready = [name for name, parents in remaining.items() if not parents - set(order)]
        pick = ready[0] if ready else next(iter(remaining))
        order.append(pick)
        del remaining[pick]
    return order


def copy_line_sql(table: str, plans: list[ColumnPlan]) -> str:
    """A SELECT that makes SQLite render each row as one line of COPY text format."""
    fields = []
    for plan in plans:
        col = quote_ident(plan.column)
        render = plan.rule.render(col, target_type(plan))
        fields.append(f"CASE WHEN {col} IS NULL THEN '\\N' ELSE {render} END")
    return f"SELECT {' || char(9) || '.join(fields)} || char(10) FROM {quote_ident(table)}"


def _foreign_keys(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, str]]:
    rows = conn.execute(
        """
        SELECT cl.relname, co.conname, pg_get_constraintdef(co.oid)
        FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
        WHERE co.contype = 'f' AND cl.relnamespace = 'public'::regnamespace
          AND cl.relname = ANY(%s)
        ORDER BY cl.relname, co.conname
        """,
        [tables],
    ).fetchall()
    return [{"table": t, "name": n, "definition": d} for t, n, d in rows]


def _require_empty(conn: psycopg.Connection, tables: list[str], target: Target) -> None:
    occupied = {}
    for name in tables:
        if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {quote_ident(name)})").fetchone()[0]:
            occupied[name] = True
    if occupied:
        raise RunbookError(
            f"target tables already hold rows: {', '.join(occupied)}; nothing was written",
            where=target.display,
            fix="migrate into an empty database (run 02_schema on a fresh one)",
        )


def copy_table(
    source: Any, conn: psycopg.Connection, table: str, plans: list[ColumnPlan], total: int
) -> dict[str, Any]:
    """Stream one table from SQLite into COPY in one transaction; returns rows, bytes, seconds."""
    columns = ", ".join(quote_ident(p.column) for p in plans)
    started = time.perf_counter()
    rows = written = 0
    with (
        tqdm(total=total, desc=table, unit="rows", leave=True, mininterval=0.5) as bar,
        conn.transaction(),
        conn.cursor().copy(f"COPY {quote_ident(table)} ({columns}) FROM STDIN") as copy,
    ):
        cursor = source.execute(copy_line_sql(table, plans))
        while batch := cursor.fetchmany(FETCH_ROWS):
            data = b"".join(line for (line,) in batch)
            copy.write(data)
            rows += len(batch)
            written += len(data)
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    return {
        "table": table,
        "rows": rows,
        "bytes": written,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds) if seconds else None,
    }


def _restore_foreign_keys(conn: psycopg.Connection, fks: list[dict[str, str]]) -> None:
    for fk in fks:
        conn.execute(
            f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT {quote_ident(fk['name'])} "
            f"{fk['definition']} NOT VALID"
        )
    conn.commit()
    for fk in fks:
        try:
            conn.execute(
                f"ALTER TABLE {quote_ident(fk['table'])} "
                f"VALIDATE CONSTRAINT {quote_ident(fk['name'])}"
            )
            conn.commit()
        except psycopg.errors.ForeignKeyViolation as exc:
            conn.rollback()
            raise RunbookError(
                f"foreign key {fk['name']} does not hold after the load: "
                f"{str(exc).splitlines()[0]}",
                where=fk["table"],
                fix="the source holds orphan rows the preflight did not catch; report this",
            ) from None


def set_sequences(conn: psycopg.Connection, tables: list[str]) -> list[dict[str, Any]]:
    """Move every column sequence past the largest key copied, so the next insert gets a new id."""
    results = []
    for table in tables:
        columns = conn.execute(
            """
            SELECT a.attname, pg_get_serial_sequence(quote_ident(%s), a.attname)
            FROM pg_attribute a
            WHERE a.attrelid = ('public.' || quote_ident(%s))::regclass AND a.attnum > 0
              AND NOT a.attisdropped
            """,
            [table, table],
        ).fetchall()
        for column, sequence in columns:
            if not sequence:
                continue
            top = conn.execute(f"SELECT max({quote_ident(column)}) FROM {quote_ident(table)}")
            top = top.fetchone()[0]
            if top is None:
                conn.execute("SELECT setval(%s, 1, false)", [sequence])
            else:
                conn.execute("SELECT setval(%s, %s, true)", [sequence, top])
            results.append({"table": table, "column": column, "sequence": sequence, "max": top})
    conn.commit()
    return results


def transfer(run: RunFolder, target: Target, on_bad_rows: str = "stop") -> dict[str, Any]:
    """Load every table of the backup into the target: refuse misfits and occupied tables before
    writing, drop foreign keys, COPY each table, re-add and validate the keys, set sequences."""
    schema = run.read("schema")
    backup = run.read("backup")
    if schema["backup_sha256"] != backup["sha256"]:
        raise RunbookError(
            "the schema step ran on another backup than the one in this run folder",
            where=run.name,
            fix="run 02_schema again for this run",
        )
    require_clean(schema["preflight"], on_bad_rows)
    plans = by_table(plans_from(schema))
    source = sqlite_source.open_readonly(run.backup_path)
    tables = sqlite_source.reflect(source)
    source.text_factory = bytes  # COPY lines go to the server as the bytes SQLite rendered
    order = [name for name in load_order(tables) if name in plans]
    counts = backup["row_counts"]
    started = datetime.now(UTC)
    try:
        with connect(target) as conn:
            _require_empty(conn, order, target)
            fks = _foreign_keys(conn, order)
            run.write("transfer", {"status": "loading", "dropped_foreign_keys": fks})
            for fk in fks:
                table, name = quote_ident(fk["table"]), quote_ident(fk["name"])
                conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            conn.commit()
            loaded = [
                copy_table(source, conn, name, plans[name], counts.get(name, 0)) for name in order
            ]
            _restore_foreign_keys(conn, fks)
            sequences = set_sequences(conn, order)
            conn.autocommit = True
            conn.execute("ANALYZE")
    except psycopg.Error as exc:
        message = mask_text(str(exc).strip().splitlines()[0], target.password or "")
        raise RunbookError(
            f"the load failed: {message}",
            where=target.display,
            fix="read the message, fix the cause, and run the transfer again into an empty target",
        ) from None
    finally:
        source.close()
    result = {
        "status": "complete",
        "backup_sha256": backup["sha256"],
        "started_at": started.isoformat(timespec="seconds"),
        "order": order,
        "tables": loaded,
        "foreign_keys": fks,
        "sequences": sequences,
    }
    run.write("transfer", result)
    return result


def summary(result: dict[str, Any]) -> str:
    """One line for the verdict."""
    rows = sum(t["rows"] for t in result["tables"])
    return (
        f"{rows} rows in {len(result['tables'])} tables copied; "
        f"{len(result['foreign_keys'])} foreign keys validated; "
        f"{len(result['sequences'])} sequences set."
    )
