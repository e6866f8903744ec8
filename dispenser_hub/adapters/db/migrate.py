"""Schema migrations, run from code: ``upgrade(url)``, ``current(url)``, ``check(url)``.

Rules:

* The migration scripts ship inside the package (``migrations/``); the Alembic ``Config`` is built here, so no
  ``alembic.ini`` is needed (the one at the repository root is for developers writing new revisions).
* ``upgrade`` is idempotent: at the target revision it does nothing.
* The hub refuses to start on a database whose revision is not the code's head: ``check`` raises
  ``SchemaVersionError`` saying which revision it found and what to run. Running migrations is an explicit
  operator step (``dispenser-hub migrate``), never a side effect of starting the service.
* Messages never contain the URL (it may hold a password).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from dispenser_hub.adapters.db.engine import create_engine_for

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")


class SchemaVersionError(RuntimeError):
    """The database schema is not at the revision this code expects."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the hub's migrations; ``url`` goes to ``env.py`` through its attributes."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes["url"] = url
    return config


def head() -> str:
    """The revision the code expects (the newest migration)."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package ships its migrations
        msg = f"no migrations found in {MIGRATIONS_DIR}"
        raise SchemaVersionError(msg)
    return revision


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest); no-op when already there."""
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The database's revision, or ``None`` for a database never migrated (empty)."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def check(url: str) -> None:
    """Raise ``SchemaVersionError`` unless the database is at the code's revision."""
    found = current(url)
    expected = head()
    if found != expected:
        at = found or "none (empty)"
        msg = f"database at revision {at}, code expects {expected}: run dispenser-hub migrate"
        raise SchemaVersionError(msg)
