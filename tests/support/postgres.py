"""A real PostgreSQL for tests: each test gets a fresh, empty schema in one shared database.

The server is found at ``$DISPENSER_TEST_POSTGRES_URL`` if set, else at ``postgresql://127.0.0.1:5432/test``
as user ``postgres``, then as the current OS user (trust authentication, as ``.ci/run`` sets it up).
``fresh_schema()`` creates ``t_<uuid hex>``, yields a URL whose connections use it as their ``search_path``
(``options=-csearch_path=...``, and ``synchronous_commit=off``), and drops it with everything in it
afterwards; tests never see each other's tables and leave nothing behind. Without a reachable server,
``service_unavailable("postgresql")`` skips the test locally and fails it under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import uuid
from functools import cache
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.support.services import service_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import URL

POSTGRES_ENV = "DISPENSER_TEST_POSTGRES_URL"
DEFAULT_HOST = "127.0.0.1:5432"
DEFAULT_DATABASE = "test"
CONNECT_TIMEOUT_S = 3


def _candidates() -> list[URL]:
    configured = os.environ.get(POSTGRES_ENV, "").strip()
    if configured:
        return [make_url(configured)]
    users = dict.fromkeys(["postgres", getpass.getuser()])
    return [make_url(f"postgresql://{user}@{DEFAULT_HOST}/{DEFAULT_DATABASE}") for user in users]


def _libpq(url: URL) -> str:
    """The URL as psycopg takes it (no SQLAlchemy driver suffix, password kept)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def _server() -> tuple[URL | None, str]:
    """The first candidate URL that connects, or None and why none did (probed once per session)."""
    failures: list[str] = []
    for url in _candidates():
        try:
            with psycopg.connect(_libpq(url), connect_timeout=CONNECT_TIMEOUT_S) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failures.append(f"{url.render_as_string(hide_password=True)}: {first_line}")
        else:
            return url, ""
    reason = "; ".join(failures) + f" (start one, or point ${POSTGRES_ENV} at a server with a database)"
    return None, reason


def server_url() -> URL:
    """The reachable test server's URL (SQLAlchemy form); skips (locally) or fails (CI) without one."""
    url, reason = _server()
    if url is None:
        service_unavailable("postgresql", reason=reason)
    return url


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A ``postgresql+psycopg://`` URL whose ``search_path`` is a new empty schema, dropped afterwards."""
    base = server_url()
    schema = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(_libpq(base), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        # synchronous_commit=off: a test schema needs no durability, and commits stop waiting for fsync.
        options = f"-csearch_path={schema} -csynchronous_commit=off"
        url = base.set(drivername="postgresql+psycopg").update_query_dict({"options": options})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(base), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
