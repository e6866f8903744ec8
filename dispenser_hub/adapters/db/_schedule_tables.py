"""The SQL tables of dose schedules: per-patient dose settings and pauses, per-device schedule state.

Rules, and why:

* **One settings row per patient** (``dose_settings``, primary key ``patient_id``) and **one schedule row per
  device** (``device_schedule``, primary key ``device_id``): both are stored whole and replaced whole
  (``put_settings``, ``put_device_schedule``), so the key is the reference itself, not a surrogate id.
* **Durations are whole seconds** (``*_s`` integers): ``DoseWindow`` only accepts whole seconds, and integers
  round-trip exactly on both databases.
* **Pauses** are rows of their own (``pause``), indexed by (``patient_id``, ``start_at``) for the patient's
  list by start; ``ended_at``/``ended_by`` record who ended a pause early (``PauseRecord.effective``).
* The device's ``config`` is the body as sent (a JSON column, like ``device_event.body``); versions are
  ``BIGINT`` like ``device.schedule_version``.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLModel reads the annotations at runtime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from dispenser_hub.adapters.db._columns import TableBase, optional_time_field, time_field


class DoseSettingsRow(TableBase, table=True):
    """A patient's dose window and reminder ladder (durations in whole seconds)."""

    __tablename__ = "dose_settings"

    patient_id: int = Field(
        primary_key=True, foreign_key="patient.id", sa_column_kwargs={"autoincrement": False}
    )
    early_s: int
    late_s: int
    notice_before_s: int
    sound_after_s: int
    repeat_every_s: int
    repeat_max: int
    updated_at: datetime = time_field()
    updated_by: str


class PauseRow(TableBase, table=True):
    """A pause of a patient's doses, and who ended it early, if anyone."""

    __tablename__ = "pause"
    __table_args__ = (sa.Index("ix_pause_patient_id_start_at", "patient_id", "start_at"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    start_at: datetime = time_field()
    end_at: datetime = time_field()
    reason: str
    created_at: datetime = time_field()
    created_by: str
    ended_at: datetime | None = optional_time_field()
    ended_by: str | None = None


class DeviceScheduleRow(TableBase, table=True):
    """The schedule (``config``) last built for a device, and what the device answered."""

    __tablename__ = "device_schedule"

    device_id: str = Field(primary_key=True, foreign_key="device.device_id")
    version: int = Field(sa_type=sa.BigInteger)
    digest: str
    config: dict[str, Any] = Field(sa_type=sa.JSON)
    built_at: datetime = time_field()
    command_msg_id: str | None = None
    slots: int
    first_due: datetime | None = optional_time_field()
    last_due: datetime | None = optional_time_field()
    applied_version: int | None = Field(default=None, sa_type=sa.BigInteger)
    applied_at: datetime | None = optional_time_field()
    rejected_version: int | None = Field(default=None, sa_type=sa.BigInteger)
    rejected_reason: str | None = None
