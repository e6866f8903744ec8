"""Time-driven work: deadlines and named leases.

Revision ID: 0005
Revises: 0004

Written by hand in the style of ``0001``-``0004`` (explicit constraint names, plain SQLAlchemy column types,
indexes with ``op.create_index``); the rules behind the columns are in ``tables`` (``_deadline_tables``).
``ix_deadline_pending_due_at`` is a partial index (pending rows only), with the same condition on
PostgreSQL and SQLite. New tables only, so no batch mode is needed on SQLite. ``test_migrations`` checks
that 0001 .. 0005 produce exactly ``tables.metadata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("deadline", "lease")
_PENDING = "fired_at IS NULL AND cancelled_at IS NULL"


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def upgrade() -> None:
    """Create the deadline and lease tables with their constraints and indexes."""
    op.create_table(
        "deadline",
        sa.Column("id", sa.Integer(), nullable=False),
        _text("key", nullable=False),
        _text("kind", nullable=False),
        _time("due_at", nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _time("created_at", nullable=False),
        _time("fired_at", nullable=True),
        _time("cancelled_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _text("last_error", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deadline"),
        sa.UniqueConstraint("key", name="uq_deadline_key"),
    )
    op.create_index(
        "ix_deadline_pending_due_at",
        "deadline",
        ["due_at"],
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )
    op.create_table(
        "lease",
        _text("name", nullable=False),
        _text("holder", nullable=False),
        _time("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_lease"),
    )


def downgrade() -> None:
    """Drop the deadline and lease tables: development databases only."""
    for table in reversed(_TABLES):
        op.drop_table(table)
