"""Alembic env.py: migrate with a Connection handed in by the caller, or one made from the URL.

Logging is deliberately left alone (no ``fileConfig``): the runbook owns the log output.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from coldchain.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    """Configure the migration context with this project's comparison options."""
    context.configure(target_metadata=target_metadata, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    """Render the migrations as SQL for the configured URL, without connecting."""
    _configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    """Run the migrations on one connection."""
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the caller's connection, or on a new engine for the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "No database to migrate: pass connection= or url= to coldchain.migrations."
            "alembic_config()"
        )
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
