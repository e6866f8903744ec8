"""SQL storage (SQLModel on SQLite or PostgreSQL): every repository of ``dispenser_hub.ports``, migrations.

``create_engine_for(url)`` builds the engine (``engine``); ``SqlUnitOfWorkFactory(engine, protector)`` opens
units of work (``uow``); ``migrate.upgrade(url)`` brings a database to the code's schema and
``migrate.check(url)`` refuses a database that is behind (``migrate``). The tables and their rules are in
``tables``. Import ``migrate`` explicitly (it loads Alembic).
"""

from dispenser_hub.adapters.db.engine import create_engine_for
from dispenser_hub.adapters.db.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = ["SqlUnitOfWork", "SqlUnitOfWorkFactory", "create_engine_for"]
