"""The SQL tables of escalation set-up: home-care teams' on-call rosters and patients' own policies.

Rules, and why:

* **One row per team** (``team_roster``, primary key ``team_id``) and **one per patient** (``patient_policy``,
  primary key ``patient_id``): each is edited and replaced whole, as a document, so the key is the reference.
* The roster's document holds staff phone numbers and e-mail addresses, so it is stored encrypted
  (``document_enc``, context ``team_roster.document``); a policy names no person but staff references and is
  plain JSON.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLModel reads the annotations at runtime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from dispenser_hub.adapters.db._columns import TableBase, time_field


class TeamRosterRow(TableBase, table=True):
    """A team's staff and weekly rota (``rosters.roster_document``), encrypted."""

    __tablename__ = "team_roster"

    team_id: int = Field(
        primary_key=True, foreign_key="care_team.id", sa_column_kwargs={"autoincrement": False}
    )
    document_enc: str
    updated_at: datetime = time_field()
    updated_by: str


class PatientPolicyRow(TableBase, table=True):
    """A patient's own escalation policy (``escalation.policy_document``)."""

    __tablename__ = "patient_policy"

    patient_id: int = Field(
        primary_key=True, foreign_key="patient.id", sa_column_kwargs={"autoincrement": False}
    )
    document: dict[str, Any] = Field(sa_type=sa.JSON)
    updated_at: datetime = time_field()
    updated_by: str
