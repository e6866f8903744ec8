"""Dose schedules: per-patient dose settings and pauses, per-device schedule state.

Revision ID: 0003
Revises: 0002

Written by hand in the style of ``0001`` and ``0002`` (explicit constraint names, plain SQLAlchemy column
types, indexes with ``op.create_index``); the rules behind the columns are in ``tables``
(``_schedule_tables``). New tables only, so no batch mode is needed on SQLite. ``test_migrations`` checks
that 0001 + 0002 + 0003 produce exactly ``tables.metadata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("dose_settings", "pause", "device_schedule")


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def _bigint(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    """Create the schedule tables with their constraints and indexes."""
    op.create_table(
        "dose_settings",
        sa.Column("patient_id", sa.Integer(), autoincrement=False, nullable=False),
        _int("early_s"),
        _int("late_s"),
        _int("notice_before_s"),
        _int("sound_after_s"),
        _int("repeat_every_s"),
        _int("repeat_max"),
        _time("updated_at", nullable=False),
        _text("updated_by", nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_dose_settings_patient_id_patient"),
        sa.PrimaryKeyConstraint("patient_id", name="pk_dose_settings"),
    )
    op.create_table(
        "pause",
        _int("id"),
        _int("patient_id"),
        _time("start_at", nullable=False),
        _time("end_at", nullable=False),
        _text("reason", nullable=False),
        _time("created_at", nullable=False),
        _text("created_by", nullable=False),
        _time("ended_at", nullable=True),
        _text("ended_by", nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_pause_patient_id_patient"),
        sa.PrimaryKeyConstraint("id", name="pk_pause"),
    )
    op.create_index("ix_pause_patient_id_start_at", "pause", ["patient_id", "start_at"])
    op.create_table(
        "device_schedule",
        _text("device_id", nullable=False),
        _bigint("version", nullable=False),
        _text("digest", nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _time("built_at", nullable=False),
        _text("command_msg_id", nullable=True),
        _int("slots"),
        _time("first_due", nullable=True),
        _time("last_due", nullable=True),
        _bigint("applied_version", nullable=True),
        _time("applied_at", nullable=True),
        _bigint("rejected_version", nullable=True),
        _text("rejected_reason", nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.device_id"], name="fk_device_schedule_device_id_device"
        ),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_schedule"),
    )


def downgrade() -> None:
    """Drop the schedule tables (every setting, pause and schedule state): development databases only."""
    for table in reversed(_TABLES):
        op.drop_table(table)
