"""Alembic environment of the Cold Chain Dispatch System, usable without an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS_DIR", "alembic_config"]

#: The folder holding env.py, script.py.mako and versions/.
MIGRATIONS_DIR = Path(__file__).resolve().parent


def _psycopg_url(url: str) -> str:
    """Point a bare ``postgresql://`` URL at psycopg 3, the project's driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Build an Alembic Config for these migrations in code, so no alembic.ini is needed.

    ``connection``, if given, is used by env.py as is: inside a transaction the caller
    commits (``with engine.begin() as conn``), otherwise Alembic commits its own.  Without
    it, env.py connects to ``url`` (a bare ``postgresql://`` URL gets psycopg 3).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolates '%', which occurs in URL-encoded passwords.
        config.set_main_option("sqlalchemy.url", _psycopg_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config
