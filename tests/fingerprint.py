"""A fingerprint of everything a target database holds (catalog and data), to prove that a
refused run left it untouched."""

from __future__ import annotations

import hashlib

from runbook.core.target import Target, connect


def fingerprint(target: Target) -> str:
    digest = hashlib.sha256()
    with connect(target) as conn:
        catalog = conn.execute(
            """
            SELECT n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
            ORDER BY 1, 2, 4
            """
        ).fetchall()
        digest.update(repr(catalog).encode())
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace NOT IN ('pg_catalog'::regnamespace) ORDER BY 1, 2"
        ).fetchall()
        digest.update(repr(constraints).encode())
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            digest.update(repr(sorted(map(repr, rows))).encode())
    return digest.hexdigest()


def data_fingerprint(target: Target, tables: list[str]) -> dict[str, str]:
    """sha256 of each table's rows (order-independent), for comparing two loads."""
    found = {}
    with connect(target) as conn:
        for table in tables:
            rows = conn.execute(f'SELECT * FROM public."{table}"').fetchall()
            found[table] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    return found
