"""The hub's records: patients and the people around them, devices, bindings, events, commands, alarms.

Plain data (frozen dataclasses and enums), no behaviour beyond small derived properties; the rules that
create and change these records live in the neighbouring domain modules and take ``now`` from the caller.
Every time is timezone-aware UTC. Records read from storage carry their storage id (``id``); records not
yet stored have ``id = None``.

Patient identifiers (national id number, phone numbers) are plaintext here: encryption at rest is the
storage adapter's job, and ``__repr__`` of the records that hold them masks them, so a record that ends up
in a log line does not leak them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.dosett import DosettPlan, TrayFill
    from dispenser_hub.domain.escalation import Policy
    from dispenser_hub.domain.rosters import TeamRoster
    from dispenser_hub.domain.schedules import DoseWindow, Pause
    from dispenser_hub.domain.supply import Supply
    from firmware_protocol.messages import Family


class Responsibility(enum.StrEnum):
    """Who follows up a patient's medication (DOMAIN.md, levels of help): decides the escalation path."""

    PATIENT_OR_RELATIVE = "patient_or_relative"
    """Level 3 without a home-care decision: the relative first, the response centre follows the device."""
    RESPONSE_CENTRE = "response_centre"
    """The response centre follows up doses and device."""
    HOME_CARE = "home_care"
    """A home-care decision: the patient's home-care team (district) follows up."""


@dataclass(frozen=True, slots=True)
class CareTeam:
    """A home-care team (district, e.g. Åsane): who gets escalations for its patients."""

    name: str
    phone: str | None = None
    email: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Patient:
    """A person with a dispenser. ``national_id`` is the 11 validated digits (see ``national_id``)."""

    name: str
    national_id: str
    responsibility: Responsibility
    phone: str | None = None
    address: str | None = None
    team_id: int | None = None
    created_at: datetime | None = None
    id: int | None = None

    def __repr__(self) -> str:
        """Without the national id number, name and phone (no patient data in logs)."""
        return f"Patient(id={self.id}, responsibility={self.responsibility.value}, team_id={self.team_id})"


@dataclass(frozen=True, slots=True)
class Contact:
    """A relative (or other person) to tell about a patient, in ``priority`` order (1 first)."""

    patient_id: int
    name: str
    phone: str | None = None
    email: str | None = None
    relation: str = "relative"
    priority: int = 1
    id: int | None = None

    def __repr__(self) -> str:
        """Without name and phone."""
        return f"Contact(id={self.id}, patient_id={self.patient_id}, priority={self.priority})"


class DeviceStatus(enum.StrEnum):
    """A device's life: registered by an operator, enrolled with a certificate, active once it spoke."""

    REGISTERED = "registered"
    """Known by serial and id; holds an enrollment code; has no key yet."""
    ENROLLED = "enrolled"
    """Its key is registered and its certificate issued; it has not been born yet."""
    ACTIVE = "active"
    """It has sent a valid birth: in service."""
    RETIRED = "retired"
    """Taken out of service: its key is revoked and every message from it is refused."""


@dataclass(frozen=True, slots=True)
class Presence:
    """What the hub knows of a device's connection and the state it last reported."""

    online: bool = False
    last_seen_at: datetime | None = None
    """Time of the last valid message from the device (hub clock)."""
    since: datetime | None = None
    """When ``online`` last changed."""
    boot_id: str | None = None
    connection: int | None = None
    """Connection number within ``boot_id`` from the latest birth (tells a stale will from a current one)."""
    last_seq: int | None = None
    """Highest sequence number stored for ``boot_id``."""
    battery_pct: int | None = None
    on_mains: bool | None = None
    schedule_version: int | None = None
    """The schedule (config) version the device reports holding."""
    capabilities: tuple[str, ...] = ()
    supply_doses_left: int | None = None
    supply_until: datetime | None = None
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    """A dispenser. ``device_id`` is the protocol id in its topics (e.g. ``RM3-000017``)."""

    device_id: str
    serial: str
    family: Family
    model: str
    status: DeviceStatus = DeviceStatus.REGISTERED
    firmware: str | None = None
    public_key: str | None = None
    """Raw Ed25519 public key, base64url (as in ``prov.accepted``); ``None`` until enrolled."""
    kid: str | None = None
    certificate_pem: str | None = None
    certificate_serial: int | None = None
    registered_at: datetime | None = None
    enrolled_at: datetime | None = None
    retired_at: datetime | None = None
    presence: Presence = field(default_factory=Presence)


@dataclass(frozen=True, slots=True)
class EnrollmentCode:
    """A one-time code an installer types into a device. Only its keyed hash is stored."""

    device_id: str
    code_hash: str
    expires_at: datetime
    created_at: datetime
    created_by: str
    used_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """A device bound to a patient for a period, with who and why at both ends (history is kept)."""

    device_id: str
    patient_id: int
    bound_at: datetime
    bound_by: str
    reason: str
    unbound_at: datetime | None = None
    unbound_by: str | None = None
    unbind_reason: str | None = None
    id: int | None = None

    @property
    def active(self) -> bool:
        """Still in force."""
        return self.unbound_at is None


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One accepted uplink message, stored append-only exactly once per (device, msg_id)."""

    device_id: str
    msg_id: str
    type: str
    boot_id: str
    seq: int
    device_ts: datetime
    received_at: datetime
    body: dict[str, object]
    corr_id: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message: why, where from, and its first bytes (size-capped) for investigation."""

    received_at: datetime
    topic: str
    reason: str
    """The protocol error code (``E_SIGNATURE``, ``E_SCHEMA``, ...) or a hub reason (``E_UNKNOWN_DEVICE``)."""
    detail: str
    raw: bytes
    raw_size: int
    """Size of the whole payload (``raw`` may be cut)."""
    device_id: str | None = None
    """The device id in the topic, when the topic names one."""
    field: str | None = None
    id: int | None = None


class CommandStatus(enum.StrEnum):
    """A downlink command's life in the outbox."""

    PENDING = "pending"
    """Waiting to be (re)sent."""
    SENT = "sent"
    """Published; waiting for the device's ack."""
    ACKED = "acked"
    NACKED = "nacked"
    """The device refused it; ``result`` says why."""
    EXPIRED = "expired"
    """Not acknowledged before its deadline."""
    SUPERSEDED = "superseded"
    """Replaced by a newer command of the same kind before it was answered (a newer config version)."""


@dataclass(frozen=True, slots=True)
class Command:
    """A downlink command to one device; signed when published, retried until acknowledged or expired."""

    msg_id: str
    device_id: str
    type: str
    body: dict[str, object]
    created_at: datetime
    expires_at: datetime
    created_by: str
    status: CommandStatus = CommandStatus.PENDING
    corr_id: str | None = None
    """The uplink message this answers (provisioning answers carry the request's ``msg_id``)."""
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    finished_at: datetime | None = None
    result: str | None = None
    id: int | None = None


class AlarmStatus(enum.StrEnum):
    """Acknowledge and resolve are separate: someone took it on, then the condition was over."""

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class SubjectKind(enum.StrEnum):
    """What an alarm is about."""

    DEVICE = "device"
    PATIENT = "patient"
    DOSE = "dose"
    CHANNEL = "channel"
    """A notification channel (SMS gateway, SMTP, webhooks) that keeps failing."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """A condition a person must see. One open alarm per ``dedup_key``; repeats raise ``count``."""

    kind: str
    """The event or condition it comes from (``fault.jam``, ``no_contact``, ``security.burst``...)."""
    subject_kind: SubjectKind
    subject_id: str
    vkp_code: str | None
    severity: int
    """0-3: not reported, green, yellow, red."""
    raised_at: datetime
    last_raised_at: datetime
    detail: str
    status: AlarmStatus = AlarmStatus.ACTIVE
    count: int = 1
    device_id: str | None = None
    patient_id: int | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    id: int | None = None

    @property
    def dedup_key(self) -> str:
        """``subject_kind:subject_id:kind``: at most one alarm with this key is open at a time."""
        return f"{self.subject_kind.value}:{self.subject_id}:{self.kind}"

    @property
    def open(self) -> bool:
        """Not resolved yet (active or acknowledged)."""
        return self.status is not AlarmStatus.RESOLVED


class AlarmAction(enum.StrEnum):
    """An entry of the append-only alarm log."""

    RAISED = "raised"
    REPEATED = "repeated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlarmLogEntry:
    """What happened to an alarm, when, and who did it (``system`` for the hub itself)."""

    alarm_id: int
    at: datetime
    action: AlarmAction
    actor: str
    detail: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An operator or system action on records (never patient data in ``detail``)."""

    at: datetime
    actor: str
    action: str
    """Dotted verb, e.g. ``device.register``, ``binding.create``, ``alarm.acknowledge``."""
    subject: str
    """What was acted on, e.g. ``device:RM3-000017``, ``patient:12``."""
    detail: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DoseSettings:
    """A patient's dose window and reminder ladder (``schedules.DoseWindow``), and who set them when."""

    patient_id: int
    window: DoseWindow
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class PauseRecord:
    """A pause of a patient's doses (hospital, travel): who entered it, and who ended it early, if anyone."""

    patient_id: int
    pause: Pause
    created_at: datetime
    created_by: str
    ended_at: datetime | None = None
    ended_by: str | None = None
    id: int | None = None

    def effective(self) -> Pause | None:
        """The pause as it stands: cut at ``ended_at``; ``None`` if it was ended before it began."""
        if self.ended_at is None or self.ended_at >= self.pause.end:
            return self.pause
        if self.ended_at <= self.pause.start:
            return None
        return dataclasses.replace(self.pause, end=self.ended_at)


@dataclass(frozen=True, slots=True)
class DeviceSchedule:
    """The schedule (``config``) the hub last built for a device, and what the device answered.

    ``digest`` identifies the content apart from the version: a rebuild with the same digest is not sent
    again. ``applied_version`` is the version the device last reported applied (``schedule.applied``, or
    ``birth``/``state``); ``rejected_*`` the last ``schedule.rejected``.
    """

    device_id: str
    version: int
    digest: str
    config: dict[str, object]
    """The ``config`` body as sent (JSON)."""
    built_at: datetime
    command_msg_id: str | None = None
    slots: int = 0
    first_due: datetime | None = None
    last_due: datetime | None = None
    applied_version: int | None = None
    applied_at: datetime | None = None
    rejected_version: int | None = None
    rejected_reason: str | None = None


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A patient's dosett plan as entered: by whom and when (plans are kept as history, never edited)."""

    patient_id: int
    plan: DosettPlan
    created_at: datetime
    created_by: str
    id: int | None = None


@dataclass(frozen=True, slots=True)
class FillRecord:
    """A tray fill as registered (``dosett.TrayFill``: tray, patient, who filled it when, the pots)."""

    fill: TrayFill
    id: int | None = None


@dataclass(frozen=True, slots=True)
class SupplyRecord:
    """A patient's supply forecast (``supply.Supply``) and the refill warnings already sent for it."""

    supply: Supply
    updated_at: datetime
    sent: frozenset[str] = frozenset()
    """``RefillWarning.key``s sent: each stage notifies once."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """Something that must happen at ``due_at`` (a dose window's end, an escalation step...), as a row.

    The database is the source of truth for time-driven work (ARCHITECTURE.md, Time): a timer fires what is
    due, and marks it ``fired_at`` in the same transaction as its effect, so a crash means a retry, never a
    loss or a double. ``key`` is unique and names the purpose (``dose:<device>:<slot>:close``), so the
    same deadline is never scheduled twice.
    """

    key: str
    kind: str
    """Which handler fires it (e.g. ``dose.close``, ``escalation.step``)."""
    due_at: datetime
    created_at: datetime
    payload: dict[str, object] = field(default_factory=dict)
    fired_at: datetime | None = None
    cancelled_at: datetime | None = None
    attempts: int = 0
    """Failed firings so far (a handler that raised); the timer retries with backoff."""
    last_error: str | None = None
    id: int | None = None

    @property
    def pending(self) -> bool:
        """Neither fired nor cancelled."""
        return self.fired_at is None and self.cancelled_at is None


class NotificationStatus(enum.StrEnum):
    """A notification's life in the outbox."""

    PENDING = "pending"
    """Waiting for its (next) attempt."""
    SENT = "sent"
    """Handed to the channel, which accepted it."""
    FAILED = "failed"
    """Given up after ``max_attempts`` (the escalation moves on; a failing channel raises an alarm)."""
    CANCELLED = "cancelled"
    """Not needed any more: the alarm was acknowledged or resolved before it went out, or a later repeat of
    its step speaks for it (the hub was down)."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one recipient over one channel, in the outbox (never sent twice: ``key`` is unique).

    ``address`` is the channel's address (phone number, e-mail address, webhook URL, console user) and is
    stored encrypted where it identifies a person; ``text`` never holds patient-identifying data.
    """

    key: str
    """Idempotency key, e.g. ``esc:<alarm id>:<step>:<repeat>:<count>:<recipient>:<channel>``."""
    channel: str
    """``sms``, ``email``, ``webhook`` or ``console``."""
    address: str
    recipient: str
    """Who it is for, for people: a contact or roster reference, a team, "response centre"."""
    subject: str
    text: str
    created_at: datetime
    next_attempt_at: datetime
    alarm_id: int | None = None
    step_key: str | None = None
    status: NotificationStatus = NotificationStatus.PENDING
    attempts: int = 0
    sent_at: datetime | None = None
    last_error: str | None = None
    acknowledged_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one attempt at a stored notification came to: the columns the outbox records for it.

    ``status`` ``SENT`` (accepted), ``FAILED`` (given up) or ``PENDING`` (to be tried again at
    ``next_attempt_at``, or released unsent); ``attempts`` counts this one if it was made.
    """

    id: int
    status: NotificationStatus
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None = None
    last_error: str | None = None

    def applied_to(self, notification: Notification) -> Notification:
        """``notification`` with this outcome's columns (nothing else of it changes)."""
        return replace(
            notification,
            status=self.status,
            attempts=self.attempts,
            next_attempt_at=self.next_attempt_at,
            sent_at=self.sent_at,
            last_error=self.last_error,
        )


@dataclass(frozen=True, slots=True)
class RosterRecord:
    """A home-care team's stored roster (``rosters.TeamRoster``; its ``team_id`` is ``str(team_id)``)."""

    team_id: int
    roster: TeamRoster
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A patient's own escalation policy, used instead of the default of their responsibility level."""

    patient_id: int
    policy: Policy
    updated_at: datetime
    updated_by: str
