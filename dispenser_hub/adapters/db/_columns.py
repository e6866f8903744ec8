"""The building blocks of the hub's SQL tables (``tables``): the base class, its metadata, the UTC time type.

Kept apart from ``tables`` so that the table modules (``tables``, ``_roll_tables``) can share them without
importing each other; ``tables`` re-exports everything here, and is the module the rest of the code imports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from typing_extensions import override

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only takes aware values and always returns aware UTC ones."""

    impl = sa.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    @override
    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """UTC; naive wall time on SQLite (which would drop or mangle an offset)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            msg = "naive datetime: every time stored is timezone-aware (UTC inside)"
            raise ValueError(msg)
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    @override
    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Aware UTC (SQLite gives naive UTC wall time back)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TableBase(SQLModel, registry=registry(metadata=sa.MetaData(naming_convention=NAMING_CONVENTION))):
    """Base of the hub's tables: its own ``MetaData`` (not SQLModel's global one) with named constraints."""


metadata = TableBase.metadata
"""Every table of the hub: what the migrations create and what ``test_migrations`` compares them with."""


def time_field(*, index: bool = False) -> Any:  # noqa: ANN401 - SQLModel's Field is typed as Any
    """A required ``UtcDateTime`` column."""
    return Field(sa_type=UtcDateTime, index=index)


def optional_time_field(*, index: bool = False) -> Any:  # noqa: ANN401 - SQLModel's Field is typed as Any
    """A nullable ``UtcDateTime`` column (``None`` by default)."""
    return Field(default=None, sa_type=UtcDateTime, index=index)
