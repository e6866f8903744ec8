"""``create_engine_for``: SQLite pragmas, directory and locking; PostgreSQL URLs; refused schemes."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from dispenser_hub.adapters.db import SqlUnitOfWorkFactory, create_engine_for, migrate
from tests.support.storage import device, field_cipher

if TYPE_CHECKING:
    from pathlib import Path


def test_sqlite_file_gets_its_directory_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "hub.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert path.exists()
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 10_000}


def test_a_sqlite_unit_of_work_holds_the_write_lock_from_its_first_statement(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    migrate.upgrade(f"sqlite:///{path}")
    engine = create_engine_for(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with SqlUnitOfWorkFactory(engine, field_cipher())() as uow:
            assert uow.devices.get("RM3-000017") is None  # a read: BEGIN IMMEDIATE already ran
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            uow.devices.add(device(17))
            uow.commit()
        other.execute("BEGIN IMMEDIATE")  # free again once the unit of work ended
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_in_memory_sqlite_is_one_shared_database() -> None:
    engine = create_engine_for("sqlite://")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url", ["postgresql://hub@db/hub", "postgres://hub@db/hub", "postgresql+psycopg://hub@db/hub"]
)
def test_postgresql_urls_use_psycopg_3(url: str) -> None:
    engine = create_engine_for(url)  # connects lazily: no server needed
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.pool._pre_ping
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql://hub@db/hub", "postgresql+psycopg2://hub@db/hub"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        create_engine_for(url)


def test_no_engine_is_built_at_import() -> None:
    from dispenser_hub.adapters import db  # noqa: PLC0415 - looking at what the import left behind

    assert not [value for value in vars(db).values() if isinstance(value, sa.Engine)]
