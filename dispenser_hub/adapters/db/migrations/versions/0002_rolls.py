"""Multidose rolls: pharmacy roll manifests, roll loads (rolls accepted in dispensers), dispensed pouches.

Revision ID: 0002
Revises: 0001

Written by hand in the style of ``0001`` (explicit constraint names, plain SQLAlchemy column types, indexes
with ``op.create_index``); the rules behind the columns are in ``tables`` (``_roll_tables``). New tables
only, so no batch mode is needed on SQLite. ``test_migrations`` checks that 0001 + 0002 produce exactly
``tables.metadata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("roll_manifest", "roll_load", "dispensed_pouch")


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Integer(), nullable=False)


def upgrade() -> None:
    """Create the roll tables with their constraints and indexes."""
    op.create_table(
        "roll_manifest",
        _id(),
        _text("roll_id", nullable=False),
        _text("patient_national_id_enc", nullable=False),
        _text("patient_national_id_hash", nullable=False),
        _text("printed_patient_ref", nullable=False),
        _text("pharmacy", nullable=False),
        _time("packed_at", nullable=False),
        _time("first_intake", nullable=False),
        _time("last_intake", nullable=False),
        sa.Column("pouches", sa.JSON(), nullable=False),
        _text("content_digest", nullable=False),
        _time("imported_at", nullable=False),
        _text("imported_by", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roll_manifest"),
        sa.UniqueConstraint("roll_id", name="uq_roll_manifest_roll_id"),
    )
    op.create_index(
        "ix_roll_manifest_patient_national_id_hash_first_intake",
        "roll_manifest",
        ["patient_national_id_hash", "first_intake"],
    )
    op.create_table(
        "roll_load",
        _id(),
        _text("roll_id", nullable=False),
        _text("device_id", nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        _time("accepted_at", nullable=False),
        _time("first_intake", nullable=False),
        _time("last_intake", nullable=False),
        sa.Column("max_spacing_us", sa.BigInteger(), nullable=False),
        _time("ended_at", nullable=True),
        _text("end_reason", nullable=True),
        _text("active_device_id", nullable=True),
        _text("active_roll_id", nullable=True),
        sa.ForeignKeyConstraint(
            ["roll_id"], ["roll_manifest.roll_id"], name="fk_roll_load_roll_id_roll_manifest"
        ),
        sa.ForeignKeyConstraint(["device_id"], ["device.device_id"], name="fk_roll_load_device_id_device"),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_roll_load_patient_id_patient"),
        sa.PrimaryKeyConstraint("id", name="pk_roll_load"),
        sa.UniqueConstraint("active_device_id", name="uq_roll_load_active_device_id"),
        sa.UniqueConstraint("active_roll_id", name="uq_roll_load_active_roll_id"),
    )
    op.create_index("ix_roll_load_device_id_accepted_at", "roll_load", ["device_id", "accepted_at"])
    op.create_index("ix_roll_load_patient_id_accepted_at", "roll_load", ["patient_id", "accepted_at"])
    op.create_index("ix_roll_load_roll_id_accepted_at", "roll_load", ["roll_id", "accepted_at"])
    op.create_table(
        "dispensed_pouch",
        _id(),
        _text("roll_id", nullable=False),
        _text("pouch_id", nullable=False),
        _text("device_id", nullable=False),
        _time("dispensed_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["roll_id"], ["roll_manifest.roll_id"], name="fk_dispensed_pouch_roll_id_roll_manifest"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.device_id"], name="fk_dispensed_pouch_device_id_device"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dispensed_pouch"),
        sa.UniqueConstraint("roll_id", "pouch_id", name="uq_dispensed_pouch_roll_id_pouch_id"),
    )


def downgrade() -> None:
    """Drop the roll tables (and so every manifest, load and dispensed pouch): development databases only."""
    for table in reversed(_TABLES):
        op.drop_table(table)
