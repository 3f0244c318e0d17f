"""The Cold Chain Dispatch System's PostgreSQL models, Alembic migrations and sample data."""
