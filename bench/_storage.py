"""Storage helpers shared by the escalation benchmarks: bench keys, a migrated database, versions.

``database`` gives a migrated, empty SQLite file, or a fresh schema on a PostgreSQL server (dropped
afterwards); ``find_postgres("auto")`` finds the test server as the tests do (``DISPENSER_TEST_POSTGRES_URL``,
then the usual local URLs).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from dispenser_hub.adapters.crypto.fields import FieldCipher
from dispenser_hub.adapters.db import migrate

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine

POSTGRES_ENV = "DISPENSER_TEST_POSTGRES_URL"


def field_cipher() -> FieldCipher:
    """Fixed bench keys (the hub's AES-GCM tokens and lookup hashes, as in production)."""
    return FieldCipher({"bench": bytes(range(32))}, "bench", lookup_key=bytes(range(100, 132)))


def find_postgres(configured: str | None) -> str | None:
    """``--database-url`` if given, else None (SQLite); ``auto`` tries the test server's usual URLs."""
    if configured != "auto":
        return configured
    candidates = [os.environ[POSTGRES_ENV]] if os.environ.get(POSTGRES_ENV) else []
    candidates += [f"postgresql://{user}@127.0.0.1:5432/test" for user in ("postgres", getpass.getuser())]
    for url in candidates:
        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(_libpq(url), connect_timeout=3) as connection:
                connection.execute("SELECT 1")
            return url
    msg = "no PostgreSQL server answered at " + ", ".join(candidates)
    raise SystemExit(msg)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def database(url: str | None, workdir: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file in ``workdir``, or a fresh schema at ``url`` (dropped)."""
    if url is None:
        sqlite_url = f"sqlite:///{workdir / 'hub.db'}"
        migrate.upgrade(sqlite_url)
        yield sqlite_url
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(url), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        scoped = make_url(url).set(drivername="postgresql+psycopg")
        scoped = scoped.update_query_dict({"options": f"-csearch_path={schema}"})
        scoped_url = scoped.render_as_string(hide_password=False)
        migrate.upgrade(scoped_url)
        yield scoped_url
    finally:
        with psycopg.connect(_libpq(url), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def database_version(engine: Engine) -> str:
    """SQLite or PostgreSQL, with its version."""
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL)"
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT current_setting('server_version'), current_setting('synchronous_commit')")
        ).one()
    return f"PostgreSQL {row[0]} (synchronous_commit={row[1]})"


def cpu_model() -> str:
    """The CPU model name, as the OS reports it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
