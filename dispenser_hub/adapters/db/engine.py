"""Engines for the hub's database: SQLite (one site, one process) or PostgreSQL (psycopg 3).

Nothing is built at import time: the composition root calls ``create_engine_for(url)``.

SQLite rules, and why:

* ``journal_mode=WAL``: readers do not block the writer nor the writer the readers; ``synchronous=NORMAL`` is
  durable across application crashes with WAL (a power cut may lose the last transactions, never corrupt).
* ``foreign_keys=ON``: SQLite ignores foreign keys unless told, per connection.
* ``busy_timeout``: a writer waits for the write lock instead of failing at once.
* Transactions begin with ``BEGIN IMMEDIATE``, emitted by us (the ``sqlite3`` driver's own transaction
  handling is switched off). Every unit of work is then a real transaction from its first statement
  (Python's driver would not begin one for a SELECT, so a "check, then insert" would not be atomic), and two
  writers queue for the lock at BEGIN (``busy_timeout``) rather than one failing with "database is locked"
  mid-way when its snapshot is stale. SQLite allows one writer at a time anyway.
* A file URL's parent directory is created. ``sqlite://`` (in memory) shares one connection (a second
  connection would see another, empty database).

PostgreSQL: ``postgresql://`` and ``postgres://`` URLs are rewritten to the psycopg 3 driver
(``postgresql+psycopg://``); ``pool_pre_ping`` replaces connections the server closed (restarts, idle kills).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
_POSTGRES_ALIASES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})


def normalise_url(url: str | URL) -> URL:
    """The URL with the driver this hub uses (``postgresql+psycopg``); ``ValueError`` for other databases."""
    parsed = make_url(url)
    if parsed.drivername in _POSTGRES_ALIASES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        return parsed
    msg = f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///PATH or postgresql://..."
    raise ValueError(msg)


def create_engine_for(url: str | URL) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up as the module docstring says."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in {None, "", ":memory:"}
    kwargs: dict[str, Any] = {}
    if in_memory:
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        database = url.database or ""
        if not database.startswith("file:"):  # a URI filename (?uri=true) is left to the driver
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401 - DB-API connection
    dbapi_connection.isolation_level = None  # the driver emits no BEGIN; ``_sqlite_on_begin`` does
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
