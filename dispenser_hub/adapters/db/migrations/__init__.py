"""Alembic migrations of the hub's database; run them with ``dispenser_hub.adapters.db.migrate``."""
