"""Alembic migrations of the gateway database (applied by ``gateway.db.migrate``)."""
