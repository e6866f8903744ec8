"""Models of alarms and their log, dead letters, the audit trail and health."""

import base64
from typing import Any, Self

from pydantic import Field

from dispenser_hub.domain.model import (
    Alarm,
    AlarmAction,
    AlarmLogEntry,
    AlarmStatus,
    AuditEntry,
    DeadLetter,
    SubjectKind,
)
from dispenser_hub.web.schemas.common import Input, Note, Page, Public, Reason, Timestamp, stored

# -- alarms --------------------------------------------------------------------------------------------------


class AcknowledgeRequest(Input):
    """An operator takes the alarm on."""

    note: Note = Field("", description="What the operator is doing about it.")


class ResolveRequest(Input):
    """An operator closes the alarm."""

    resolution: Reason = Field(description="Why the alarm is over.", examples=["called patient, dose taken"])


class AlarmPublic(Public):
    """An alarm: one open per (subject, kind); repeats raise ``count``."""

    id: int
    kind: str = Field(description="The condition, e.g. no_contact, fault.jam, security.invalid_messages.")
    subject_kind: SubjectKind
    subject_id: str
    vkp_code: str | None = Field(description="The national welfare-technology hub's alert code, e.g. 3.10.")
    severity: int = Field(description="0-3: not reported, green, yellow, red.")
    status: AlarmStatus
    count: int
    raised_at: Timestamp
    last_raised_at: Timestamp
    detail: str
    device_id: str | None
    patient_id: int | None
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None
    resolved_at: Timestamp | None
    resolved_by: str | None
    resolution: str | None

    @classmethod
    def of(cls, alarm: Alarm) -> Self:
        """From the record."""
        return cls(
            id=stored(alarm.id),
            kind=alarm.kind,
            subject_kind=alarm.subject_kind,
            subject_id=alarm.subject_id,
            vkp_code=alarm.vkp_code,
            severity=alarm.severity,
            status=alarm.status,
            count=alarm.count,
            raised_at=alarm.raised_at,
            last_raised_at=alarm.last_raised_at,
            detail=alarm.detail,
            device_id=alarm.device_id,
            patient_id=alarm.patient_id,
            acknowledged_at=alarm.acknowledged_at,
            acknowledged_by=alarm.acknowledged_by,
            resolved_at=alarm.resolved_at,
            resolved_by=alarm.resolved_by,
            resolution=alarm.resolution,
        )


class AlarmLogEntryPublic(Public):
    """One transition of an alarm: what, when, who (``system`` for the hub itself)."""

    id: int
    at: Timestamp
    action: AlarmAction
    actor: str
    detail: str

    @classmethod
    def of(cls, entry: AlarmLogEntry) -> Self:
        """From the record."""
        return cls(
            id=stored(entry.id), at=entry.at, action=entry.action, actor=entry.actor, detail=entry.detail
        )


class AlarmDetail(AlarmPublic):
    """An alarm with its log, oldest entry first."""

    log: list[AlarmLogEntryPublic]

    @classmethod
    def with_log(cls, alarm: Alarm, log: list[AlarmLogEntry]) -> Self:
        """From the record and its log."""
        return cls(**AlarmPublic.of(alarm).model_dump(), log=[AlarmLogEntryPublic.of(entry) for entry in log])


class AlarmPage(Page):
    """A page of alarms, most recently raised first."""

    items: list[AlarmPublic]


# -- dead letters and audit ----------------------------------------------------------------------------------


class DeadLetterPublic(Public):
    """A refused device message: why, where from, and its first bytes."""

    id: int
    received_at: Timestamp
    topic: str
    device_id: str | None = Field(description="The device id in the topic, when it names one.")
    reason: str = Field(description="Protocol error code (E_SIGNATURE, E_SCHEMA...) or hub reason.")
    detail: str
    field: str | None = Field(description="The message field at fault, when one is.")
    raw_base64: str = Field(description="The stored bytes, standard base64.")
    raw_size: int = Field(description="Size of the whole payload in bytes.")
    truncated: bool = Field(description="True when only the first bytes were stored.")

    @classmethod
    def of(cls, letter: DeadLetter) -> Self:
        """From the record."""
        return cls(
            id=stored(letter.id),
            received_at=letter.received_at,
            topic=letter.topic,
            device_id=letter.device_id,
            reason=letter.reason,
            detail=letter.detail,
            field=letter.field,
            raw_base64=base64.b64encode(letter.raw).decode("ascii"),
            raw_size=letter.raw_size,
            truncated=len(letter.raw) < letter.raw_size,
        )


class DeadLetterPage(Page):
    """A page of dead letters, most recently received first."""

    items: list[DeadLetterPublic]


class AuditPublic(Public):
    """Who did what to which record."""

    id: int
    at: Timestamp
    actor: str = Field(description="The operator (API token name) or system.")
    action: str = Field(description="Dotted verb, e.g. device.register, binding.create.")
    subject: str = Field(description="What was acted on, e.g. device:RM3-000017, patient:12.")
    detail: str

    @classmethod
    def of(cls, entry: AuditEntry) -> Self:
        """From the record."""
        return cls(
            id=stored(entry.id),
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            detail=entry.detail,
        )


class AuditPage(Page):
    """A page of the audit trail, newest first."""

    items: list[AuditPublic]


class HealthPublic(Public):
    """The hub's state; no patient data."""

    status: str = Field(description="ok when the API answers.", examples=["ok"])
    version: str
    time: Timestamp = Field(description="The hub's clock.")
    details: dict[str, Any] = Field(description="MQTT connection, outbox backlog and the like, when known.")
