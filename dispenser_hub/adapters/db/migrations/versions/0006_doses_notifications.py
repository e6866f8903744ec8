"""Doses and the notification outbox.

Revision ID: 0006
Revises: 0005

Written by hand in the style of ``0001``-``0005`` (explicit constraint names, plain SQLAlchemy column types,
indexes with ``op.create_index``); the rules behind the columns are in ``tables`` (``_dose_tables``). The
notification's address is stored encrypted (``address_enc``). New tables only, so no batch mode is needed on
SQLite. ``test_migrations`` checks that 0001 .. 0006 produce exactly ``tables.metadata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("dose", "notification")


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Integer(), nullable=False)


def upgrade() -> None:
    """Create the dose and notification tables with their constraints and indexes."""
    op.create_table(
        "dose",
        _id(),
        _text("device_id", nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        _text("slot_id", nullable=False),
        _time("due", nullable=False),
        _time("opens", nullable=False),
        _time("closes", nullable=False),
        _text("pouch_id", nullable=True),
        sa.Column("pot", sa.Integer(), nullable=True),
        _text("state", nullable=False),
        _time("taken_at", nullable=True),
        _time("outcome_at", nullable=True),
        _text("reason", nullable=True),
        sa.Column("reminders", sa.Integer(), nullable=False),
        _time("corrected_at", nullable=True),
        _text("skipped_by", nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["device.device_id"], name="fk_dose_device_id_device"),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_dose_patient_id_patient"),
        sa.PrimaryKeyConstraint("id", name="pk_dose"),
        sa.UniqueConstraint("device_id", "slot_id", name="uq_dose_device_id_slot_id"),
    )
    op.create_index("ix_dose_patient_id_due", "dose", ["patient_id", "due"])
    op.create_index("ix_dose_device_id_due", "dose", ["device_id", "due"])
    op.create_index("ix_dose_state", "dose", ["state"])
    op.create_table(
        "notification",
        _id(),
        _text("key", nullable=False),
        _text("channel", nullable=False),
        _text("address_enc", nullable=False),
        _text("recipient", nullable=False),
        _text("subject", nullable=False),
        _text("text", nullable=False),
        _time("created_at", nullable=False),
        _time("next_attempt_at", nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        _text("step_key", nullable=True),
        _text("status", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("sent_at", nullable=True),
        _text("last_error", nullable=True),
        _time("acknowledged_at", nullable=True),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarm.id"], name="fk_notification_alarm_id_alarm"),
        sa.PrimaryKeyConstraint("id", name="pk_notification"),
        sa.UniqueConstraint("key", name="uq_notification_key"),
    )
    op.create_index("ix_notification_status_next_attempt_at", "notification", ["status", "next_attempt_at"])
    op.create_index("ix_notification_alarm_id", "notification", ["alarm_id"])


def downgrade() -> None:
    """Drop the dose and notification tables: development databases only."""
    for table in reversed(_TABLES):
        op.drop_table(table)
