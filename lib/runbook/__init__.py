"""Helper library of the SQLite → PostgreSQL migration runbook: one function per notebook cell."""

__version__ = "0.1.0"
