"""The SQL tables of dose-pot trays and supplies: dosett plans, tray fills, opened pots, supply records.

Rules, and why:

* **A plan version is one row; its dose times are a JSON column** (``dosett_plan.times``: a list of
  ``{"at": "HH:MM", "weekdays": [0..6, ascending], "label", "contents": [{"name", "strength", "quantity"
  (decimal text), "as_needed"}]}`` in the plan's order). Plans are history, written once and never changed,
  and only ever read whole (by patient: the list and the plan in force on a day), so one row per version
  reads in one statement; ``DosettPlan``/``PlanTime`` check their own rules whenever one is built, on write
  and on read. Quantities are decimal text (never floats), so ``Decimal("0.50")`` comes back as itself.
  ``valid_from`` is a ``DATE``, indexed with ``patient_id`` for the patient's list and ``current_plan``.
* **A tray fill is one row; its pots are a JSON column** (``tray_fill.pots``: a list of ``{"pot", "due"
  (Unix ms), "slot_id", "label"}`` in due order), for the same reasons: a fill is written once and read
  whole. Indexed by (``patient_id``, ``filled_at``) for ``current_fill`` and by (``tray_id``,
  ``filled_at``) for ``latest_fill_of_tray``. Pot dues are whole milliseconds (``PotFill``), so Unix ms is
  exact.
* **A pot is opened once per fill**: UNIQUE (``fill_id``, ``pot``) in ``opened_pot`` (like
  ``dispensed_pouch``), with a foreign key on the fill.
* **One supply row per patient** (``supply``, primary key ``patient_id``), stored whole and replaced whole
  (``put_supply``); ``runs_out_at`` is nullable (unknown) and indexed for ``running_out``. ``sent`` is the
  JSON list of the refill warning keys sent, sorted (a set: the order means nothing).
"""

from __future__ import annotations

from datetime import date, datetime  # noqa: TC003 - SQLModel reads the annotations at runtime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from dispenser_hub.adapters.db._columns import TableBase, optional_time_field, time_field


class DosettPlanRow(TableBase, table=True):
    """A version of a patient's dosett plan, its dose times as JSON."""

    __tablename__ = "dosett_plan"
    __table_args__ = (sa.Index("ix_dosett_plan_patient_id_valid_from", "patient_id", "valid_from"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    valid_from: date
    times: list[dict[str, Any]] = Field(sa_type=sa.JSON)
    note: str | None = None
    created_at: datetime = time_field()
    created_by: str


class TrayFillRow(TableBase, table=True):
    """A tray filled for a patient, its pots as JSON."""

    __tablename__ = "tray_fill"
    __table_args__ = (
        sa.Index("ix_tray_fill_patient_id_filled_at", "patient_id", "filled_at"),
        sa.Index("ix_tray_fill_tray_id_filled_at", "tray_id", "filled_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tray_id: str
    patient_id: int = Field(foreign_key="patient.id")
    filled_by: str
    filled_at: datetime = time_field()
    pots: list[dict[str, Any]] = Field(sa_type=sa.JSON)


class OpenedPotRow(TableBase, table=True):
    """A pot of a fill recorded as opened, once per (fill_id, pot)."""

    __tablename__ = "opened_pot"
    __table_args__ = (sa.UniqueConstraint("fill_id", "pot", name="uq_opened_pot_fill_id_pot"),)

    id: int | None = Field(default=None, primary_key=True)
    fill_id: int = Field(foreign_key="tray_fill.id")
    pot: int
    opened_at: datetime = time_field()


class SupplyRow(TableBase, table=True):
    """A patient's supply forecast and the refill warnings sent for it."""

    __tablename__ = "supply"

    patient_id: int = Field(
        primary_key=True, foreign_key="patient.id", sa_column_kwargs={"autoincrement": False}
    )
    source: str
    source_id: str
    runs_out_at: datetime | None = optional_time_field(index=True)
    doses_left: int | None = None
    sent: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    updated_at: datetime = time_field()
