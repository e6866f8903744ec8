"""Home-care teams' on-call rosters and patients' own escalation policies.

Revision ID: 0007
Revises: 0006

Written by hand in the style of ``0001``-``0006``; the rules behind the columns are in ``tables``
(``_escalation_tables``). New tables only, so no batch mode is needed on SQLite. ``test_migrations``
checks that 0001 .. 0007 produce exactly ``tables.metadata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("team_roster", "patient_policy")


def upgrade() -> None:
    """Create the roster and policy tables."""
    op.create_table(
        "team_roster",
        sa.Column("team_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document_enc", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["care_team.id"], name="fk_team_roster_team_id_care_team"),
        sa.PrimaryKeyConstraint("team_id", name="pk_team_roster"),
    )
    op.create_table(
        "patient_policy",
        sa.Column("patient_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_patient_policy_patient_id_patient"),
        sa.PrimaryKeyConstraint("patient_id", name="pk_patient_policy"),
    )


def downgrade() -> None:
    """Drop the roster and policy tables: development databases only."""
    for table in reversed(_TABLES):
        op.drop_table(table)
