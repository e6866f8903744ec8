"""The SQL tables of time-driven work: deadlines and named leases.

Rules, and why:

* **A deadline is one row, unique by its purpose** (``deadline.key``, UNIQUE ``uq_deadline_key``): the same
  deadline is never scheduled twice, and a fired or cancelled row stays as the record that its purpose was
  served. ``payload`` is the handler's JSON object; ``attempts``/``last_error`` count failed firings.
* **The timer's query reads an index of pending rows only**: ``ix_deadline_pending_due_at`` is a partial
  index on ``due_at`` ``WHERE fired_at IS NULL AND cancelled_at IS NULL`` (PostgreSQL and SQLite both have
  partial indexes, with the same syntax), so fired history never slows ``due`` down. The timer selects
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (``_deadlines``).
* **A lease is one row per name** (``lease``, primary key ``name``): its holder and until when. Taking it is
  an ``INSERT ... ON CONFLICT DO NOTHING`` and a conditional ``UPDATE`` (``_deadlines``), so two hubs racing
  for it never both win.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLModel reads the annotations at runtime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from dispenser_hub.adapters.db._columns import TableBase, optional_time_field, time_field

PENDING = "fired_at IS NULL AND cancelled_at IS NULL"
"""The condition of the partial index ``ix_deadline_pending_due_at`` (also written in migration 0005)."""


class DeadlineRow(TableBase, table=True):
    """Something due at ``due_at``, once per ``key``."""

    __tablename__ = "deadline"
    __table_args__ = (
        sa.UniqueConstraint("key", name="uq_deadline_key"),
        sa.Index(
            "ix_deadline_pending_due_at",
            "due_at",
            postgresql_where=sa.text(PENDING),
            sqlite_where=sa.text(PENDING),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str
    kind: str
    due_at: datetime = time_field()
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = time_field()
    fired_at: datetime | None = optional_time_field()
    cancelled_at: datetime | None = optional_time_field()
    attempts: int = 0
    last_error: str | None = None


class LeaseRow(TableBase, table=True):
    """A named lease: its holder until ``expires_at``."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime = time_field()
