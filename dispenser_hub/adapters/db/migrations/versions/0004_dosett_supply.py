"""Dose-pot trays and supplies: dosett plans, tray fills, opened pots, supply records.

Revision ID: 0004
Revises: 0003

Written by hand in the style of ``0001``-``0003`` (explicit constraint names, plain SQLAlchemy column types,
indexes with ``op.create_index``); the rules behind the columns are in ``tables`` (``_dosett_tables``). New
tables only, so no batch mode is needed on SQLite. ``test_migrations`` checks that 0001 .. 0004 produce
exactly ``tables.metadata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("dosett_plan", "tray_fill", "opened_pot", "supply")


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def upgrade() -> None:
    """Create the dosett and supply tables with their constraints and indexes."""
    op.create_table(
        "dosett_plan",
        _int("id"),
        _int("patient_id"),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("times", sa.JSON(), nullable=False),
        _text("note", nullable=True),
        _time("created_at", nullable=False),
        _text("created_by", nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_dosett_plan_patient_id_patient"),
        sa.PrimaryKeyConstraint("id", name="pk_dosett_plan"),
    )
    op.create_index("ix_dosett_plan_patient_id_valid_from", "dosett_plan", ["patient_id", "valid_from"])
    op.create_table(
        "tray_fill",
        _int("id"),
        _text("tray_id", nullable=False),
        _int("patient_id"),
        _text("filled_by", nullable=False),
        _time("filled_at", nullable=False),
        sa.Column("pots", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_tray_fill_patient_id_patient"),
        sa.PrimaryKeyConstraint("id", name="pk_tray_fill"),
    )
    op.create_index("ix_tray_fill_patient_id_filled_at", "tray_fill", ["patient_id", "filled_at"])
    op.create_index("ix_tray_fill_tray_id_filled_at", "tray_fill", ["tray_id", "filled_at"])
    op.create_table(
        "opened_pot",
        _int("id"),
        _int("fill_id"),
        _int("pot"),
        _time("opened_at", nullable=False),
        sa.ForeignKeyConstraint(["fill_id"], ["tray_fill.id"], name="fk_opened_pot_fill_id_tray_fill"),
        sa.PrimaryKeyConstraint("id", name="pk_opened_pot"),
        sa.UniqueConstraint("fill_id", "pot", name="uq_opened_pot_fill_id_pot"),
    )
    op.create_table(
        "supply",
        sa.Column("patient_id", sa.Integer(), autoincrement=False, nullable=False),
        _text("source", nullable=False),
        _text("source_id", nullable=False),
        _time("runs_out_at", nullable=True),
        _int("doses_left", nullable=True),
        sa.Column("sent", sa.JSON(), nullable=False),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_supply_patient_id_patient"),
        sa.PrimaryKeyConstraint("patient_id", name="pk_supply"),
    )
    op.create_index("ix_supply_runs_out_at", "supply", ["runs_out_at"])


def downgrade() -> None:
    """Drop the dosett and supply tables (plans, fills, opened pots, supplies): development databases only."""
    for table in reversed(_TABLES):
        op.drop_table(table)
