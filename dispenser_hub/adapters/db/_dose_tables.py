"""The SQL tables of doses and of the notification outbox.

Rules, and why:

* **A dose is one row per slot of a device's schedule** (``dose``, UNIQUE ``uq_dose_device_id_slot_id``):
  ``put`` is an ``INSERT ... ON CONFLICT (device_id, slot_id) DO UPDATE`` (``_doses``), so the row and its id
  stay while the dose moves through its states. ``state`` is the ``DoseState`` value (text, like every enum
  here). Lists are read through ``ix_dose_patient_id_due`` and ``ix_dose_device_id_due``; ``in_states``
  (open or missed doses of a patient) through ``ix_dose_state`` and the patient index.
* **A notification is one row per message** (``notification``, UNIQUE ``uq_notification_key``): ``add`` is
  an ``INSERT ... ON CONFLICT (key) DO NOTHING``, so a message is never queued (nor sent) twice. The
  sender's query reads ``ix_notification_status_next_attempt_at`` and locks ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL (``_doses``); an alarm's notifications come through ``ix_notification_alarm_id``.
* **The address is ciphertext** (``address_enc``, a ``FieldProtector`` token bound to the context
  ``notification.address``): it is a phone number or an e-mail address of a person. ``text`` never holds
  patient-identifying data, so it is stored as it is.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLModel reads the annotations at runtime

import sqlalchemy as sa
from sqlmodel import Field

from dispenser_hub.adapters.db._columns import TableBase, optional_time_field, time_field


class DoseRow(TableBase, table=True):
    """One scheduled dose of a device's slot and its current state."""

    __tablename__ = "dose"
    __table_args__ = (
        sa.UniqueConstraint("device_id", "slot_id", name="uq_dose_device_id_slot_id"),
        sa.Index("ix_dose_patient_id_due", "patient_id", "due"),
        sa.Index("ix_dose_device_id_due", "device_id", "due"),
        sa.Index("ix_dose_state", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="device.device_id")
    patient_id: int = Field(foreign_key="patient.id")
    slot_id: str
    due: datetime = time_field()
    opens: datetime = time_field()
    closes: datetime = time_field()
    pouch_id: str | None = None
    pot: int | None = None
    state: str
    taken_at: datetime | None = optional_time_field()
    outcome_at: datetime | None = optional_time_field()
    reason: str | None = None
    reminders: int
    corrected_at: datetime | None = optional_time_field()
    skipped_by: str | None = None


class NotificationRow(TableBase, table=True):
    """One message to one recipient over one channel; ``address_enc`` is the encrypted address."""

    __tablename__ = "notification"
    __table_args__ = (
        sa.UniqueConstraint("key", name="uq_notification_key"),
        sa.Index("ix_notification_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_notification_alarm_id", "alarm_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str
    channel: str
    address_enc: str
    recipient: str
    subject: str
    text: str
    created_at: datetime = time_field()
    next_attempt_at: datetime = time_field()
    alarm_id: int | None = Field(default=None, foreign_key="alarm.id")
    step_key: str | None = None
    status: str
    attempts: int
    sent_at: datetime | None = optional_time_field()
    last_error: str | None = None
    acknowledged_at: datetime | None = optional_time_field()
