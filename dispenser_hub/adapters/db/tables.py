"""The hub's SQL tables (SQLModel), for SQLite and PostgreSQL alike. The migrations create exactly these.

Rules, and why:

* **Time** columns are ``UtcDateTime``: timezone-aware in, timezone-aware UTC out, on both databases (SQLite
  has no time zones: the value is stored as UTC wall time and gets UTC attached when read). Naive values are
  refused: a naive datetime inside the hub is a bug.
* **Partial uniqueness, portably.** "One open alarm per dedup key" and "one active binding per device and per
  patient" are UNIQUE constraints on columns that hold the key while the row is open/active and NULL after
  (``alarm.open_key``, ``binding.active_device_id``, ``binding.active_patient_id``): NULLs never collide on
  SQLite nor PostgreSQL, so no partial index (whose syntax differs) is needed.
* **Patient identifiers are ciphertext** (``*_enc`` columns, ``FieldProtector`` tokens); ``national_id_hash``
  is the keyed lookup hash that makes ``find_by_national_id`` and its uniqueness work without decrypting.
* **Rolls** (manifests with their pouches as JSON, roll loads, dispensed pouches) are in ``_roll_tables``,
  re-exported here, with their own rules; so are **schedules** (dose settings, pauses, device schedule
  state) in ``_schedule_tables``, **dose-pot trays and supplies** (dosett plans, tray fills, opened
  pots, supply records) in ``_dosett_tables``, **time-driven work** (deadlines, leases) in
  ``_deadline_tables``, and **doses and the notification outbox** in ``_dose_tables``.
* **Enums are stored as their string values** (no database enum types: adding a value needs no migration).
* **Named constraints** (``NAMING_CONVENTION``): the migrations and the error mapping in ``_base`` refer to
  constraints by name, the same on every database.
* ``device.certificate_serial`` is text: X.509 serial numbers have up to 159 bits, more than a BIGINT.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLModel reads the annotations at runtime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from dispenser_hub.adapters.db._columns import (
    NAMING_CONVENTION,
    TableBase,
    UtcDateTime,
    metadata,
    optional_time_field,
    time_field,
)
from dispenser_hub.adapters.db._deadline_tables import DeadlineRow, LeaseRow
from dispenser_hub.adapters.db._dose_tables import DoseRow, NotificationRow
from dispenser_hub.adapters.db._dosett_tables import DosettPlanRow, OpenedPotRow, SupplyRow, TrayFillRow
from dispenser_hub.adapters.db._escalation_tables import PatientPolicyRow, TeamRosterRow
from dispenser_hub.adapters.db._roll_tables import DispensedPouchRow, RollLoadRow, RollManifestRow
from dispenser_hub.adapters.db._schedule_tables import DeviceScheduleRow, DoseSettingsRow, PauseRow

__all__ = [
    "NAMING_CONVENTION",
    "AlarmLogRow",
    "AlarmRow",
    "AuditLogRow",
    "BindingRow",
    "CareTeamRow",
    "CommandRow",
    "ContactRow",
    "DeadLetterRow",
    "DeadlineRow",
    "DeviceEventRow",
    "DeviceRow",
    "DeviceScheduleRow",
    "DispensedPouchRow",
    "DoseRow",
    "DoseSettingsRow",
    "DosettPlanRow",
    "EnrollmentCodeRow",
    "LeaseRow",
    "NotificationRow",
    "OpenedPotRow",
    "PatientPolicyRow",
    "PatientRow",
    "PauseRow",
    "RollLoadRow",
    "RollManifestRow",
    "SupplyRow",
    "TableBase",
    "TeamRosterRow",
    "TrayFillRow",
    "UtcDateTime",
    "metadata",
]


class CareTeamRow(TableBase, table=True):
    """A home-care team."""

    __tablename__ = "care_team"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_care_team_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    phone: str | None = None
    email: str | None = None


class PatientRow(TableBase, table=True):
    """A patient; national id number and phone encrypted."""

    __tablename__ = "patient"
    __table_args__ = (sa.UniqueConstraint("national_id_hash", name="uq_patient_national_id_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    national_id_enc: str
    national_id_hash: str
    responsibility: str
    phone_enc: str | None = None
    address: str | None = None
    team_id: int | None = Field(default=None, foreign_key="care_team.id", index=True)
    created_at: datetime | None = optional_time_field()


class ContactRow(TableBase, table=True):
    """A patient's contact; phone encrypted."""

    __tablename__ = "contact"
    __table_args__ = (sa.Index("ix_contact_patient_id_priority", "patient_id", "priority"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    name: str
    phone_enc: str | None = None
    email: str | None = None
    relation: str
    priority: int


class DeviceRow(TableBase, table=True):
    """A dispenser, and what it last reported (``Presence``: the columns from ``online`` on)."""

    __tablename__ = "device"
    __table_args__ = (
        sa.UniqueConstraint("device_id", name="uq_device_device_id"),
        sa.UniqueConstraint("serial", name="uq_device_serial"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: str
    serial: str
    family: str
    model: str
    status: str = Field(index=True)
    firmware: str | None = None
    public_key: str | None = None
    kid: str | None = None
    certificate_pem: str | None = None
    certificate_serial: str | None = None
    registered_at: datetime | None = optional_time_field()
    enrolled_at: datetime | None = optional_time_field()
    retired_at: datetime | None = optional_time_field()
    online: bool = False
    last_seen_at: datetime | None = optional_time_field(index=True)
    online_since: datetime | None = optional_time_field()
    boot_id: str | None = None
    connection: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    battery_pct: int | None = None
    on_mains: bool | None = None
    schedule_version: int | None = Field(default=None, sa_type=sa.BigInteger)
    capabilities: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    supply_doses_left: int | None = None
    supply_until: datetime | None = optional_time_field()
    reported_firmware: str | None = None


class EnrollmentCodeRow(TableBase, table=True):
    """A one-time enrollment code (its keyed hash)."""

    __tablename__ = "enrollment_code"
    __table_args__ = (sa.UniqueConstraint("code_hash", name="uq_enrollment_code_code_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="device.device_id", index=True)
    code_hash: str
    expires_at: datetime = time_field()
    created_at: datetime = time_field()
    created_by: str
    used_at: datetime | None = optional_time_field()


class BindingRow(TableBase, table=True):
    """A device bound to a patient for a period."""

    __tablename__ = "binding"
    __table_args__ = (
        sa.UniqueConstraint("active_device_id", name="uq_binding_active_device_id"),
        sa.UniqueConstraint("active_patient_id", name="uq_binding_active_patient_id"),
        sa.Index("ix_binding_device_id_bound_at", "device_id", "bound_at"),
        sa.Index("ix_binding_patient_id_bound_at", "patient_id", "bound_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="device.device_id")
    patient_id: int = Field(foreign_key="patient.id")
    bound_at: datetime = time_field()
    bound_by: str
    reason: str
    unbound_at: datetime | None = optional_time_field()
    unbound_by: str | None = None
    unbind_reason: str | None = None
    active_device_id: str | None = None
    """``device_id`` while active, NULL once ended (one active binding per device)."""
    active_patient_id: int | None = None
    """``patient_id`` while active, NULL once ended (one active binding per patient)."""


class DeviceEventRow(TableBase, table=True):
    """An accepted uplink message, once per (device_id, msg_id)."""

    __tablename__ = "device_event"
    __table_args__ = (
        sa.UniqueConstraint("device_id", "msg_id", name="uq_device_event_device_id_msg_id"),
        sa.Index("ix_device_event_device_id_id", "device_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="device.device_id")
    msg_id: str
    type: str
    boot_id: str
    seq: int = Field(sa_type=sa.BigInteger)
    device_ts: datetime = time_field()
    received_at: datetime = time_field()
    body: dict[str, Any] = Field(sa_type=sa.JSON)
    corr_id: str | None = None


class DeadLetterRow(TableBase, table=True):
    """A refused message (its device may be unknown: no foreign key)."""

    __tablename__ = "dead_letter"
    __table_args__ = (sa.Index("ix_dead_letter_device_id_received_at", "device_id", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = time_field(index=True)
    topic: str
    reason: str
    detail: str
    raw: bytes = Field(sa_type=sa.LargeBinary)
    raw_size: int
    device_id: str | None = None
    field: str | None = None


class CommandRow(TableBase, table=True):
    """A downlink command in the outbox."""

    __tablename__ = "command"
    __table_args__ = (
        sa.UniqueConstraint("msg_id", name="uq_command_msg_id"),
        sa.Index("ix_command_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_command_device_id_id", "device_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    msg_id: str
    device_id: str = Field(foreign_key="device.device_id")
    type: str
    body: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = time_field()
    expires_at: datetime = time_field()
    created_by: str
    status: str
    corr_id: str | None = None
    attempts: int
    next_attempt_at: datetime | None = optional_time_field()
    sent_at: datetime | None = optional_time_field()
    finished_at: datetime | None = optional_time_field()
    result: str | None = None


class AlarmRow(TableBase, table=True):
    """An alarm; ``open_key`` is its dedup key while open, NULL once resolved."""

    __tablename__ = "alarm"
    __table_args__ = (
        sa.UniqueConstraint("open_key", name="uq_alarm_open_key"),
        sa.Index("ix_alarm_last_raised_at", "last_raised_at"),
        sa.Index("ix_alarm_status_last_raised_at", "status", "last_raised_at"),
        sa.Index("ix_alarm_device_id_last_raised_at", "device_id", "last_raised_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    subject_kind: str
    subject_id: str
    dedup_key: str = Field(index=True)
    open_key: str | None = None
    vkp_code: str | None = None
    severity: int
    status: str
    count: int
    raised_at: datetime = time_field()
    last_raised_at: datetime = time_field()
    detail: str
    device_id: str | None = None
    patient_id: int | None = None
    acknowledged_at: datetime | None = optional_time_field()
    acknowledged_by: str | None = None
    resolved_at: datetime | None = optional_time_field()
    resolved_by: str | None = None
    resolution: str | None = None


class AlarmLogRow(TableBase, table=True):
    """An entry of the append-only alarm log."""

    __tablename__ = "alarm_log"
    __table_args__ = (sa.Index("ix_alarm_log_alarm_id_id", "alarm_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    alarm_id: int = Field(foreign_key="alarm.id")
    at: datetime = time_field()
    action: str
    actor: str
    detail: str


class AuditLogRow(TableBase, table=True):
    """An entry of the append-only audit log."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_subject_id", "subject", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = time_field()
    actor: str
    action: str
    subject: str
    detail: str
