"""Alarm records: raise with deduplication, acknowledge, resolve, and the log entry of each transition.

Rules (DOMAIN.md, escalation):

- **One open alarm per (subject, kind)** (``Alarm.dedup_key``). Raising a condition that already has an
  open alarm does not make a second one: the open alarm's ``count`` and ``last_raised_at`` go up, its
  severity rises if the repeat is more severe (never falls: an operator must not see a red alarm turn
  yellow because a milder repeat came in), and the log records ``repeated``. A resolved alarm is closed
  for good; the same condition later opens a new alarm.
- **Acknowledge and resolve are separate.** Acknowledging records who took the alarm on and when (time to
  acknowledge is reported to supervisors); it is allowed once, on an active alarm. Resolving records who
  ended it (``system`` when the device reported the condition over) and why; it is allowed on an active or
  acknowledged alarm, once. Resolving an alarm nobody acknowledged keeps ``acknowledged_at`` empty, so
  reports can tell "resolved by the truth" from "handled by a person".
- Severities are 0-3 (not reported, green, yellow, red) as in VKP.

Pure: callers pass the open alarm (if any) and ``now``; functions return the new record and the log entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import Alarm, AlarmAction, AlarmLogEntry, AlarmStatus, SubjectKind

if TYPE_CHECKING:
    from datetime import datetime

SYSTEM_ACTOR = "system"
"""The actor recorded for what the hub does by itself."""
MAX_SEVERITY = 3


class AlarmTransitionError(ValueError):
    """An acknowledge or resolve that the alarm's state does not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class Condition:
    """Something that should be (or stay) an alarm: what, about whom, how bad."""

    kind: str
    subject_kind: SubjectKind
    subject_id: str
    severity: int
    detail: str
    vkp_code: str | None = None
    device_id: str | None = None
    patient_id: int | None = None

    def __post_init__(self) -> None:
        """Severity is 0-3."""
        if not 0 <= self.severity <= MAX_SEVERITY:
            msg = f"severity must be 0-3, not {self.severity}"
            raise ValueError(msg)

    @property
    def dedup_key(self) -> str:
        """The key of the alarm this condition raises (see ``Alarm.dedup_key``)."""
        return f"{self.subject_kind.value}:{self.subject_id}:{self.kind}"


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """The alarm to store (new when ``alarm.id`` is None) and the log entry's action and detail."""

    alarm: Alarm
    action: AlarmAction
    actor: str
    detail: str

    def log_entry(self, alarm_id: int, at: datetime) -> AlarmLogEntry:
        """The log entry, once the alarm has its storage id."""
        return AlarmLogEntry(alarm_id, at, self.action, self.actor, self.detail)


def raise_condition(condition: Condition, open_alarm: Alarm | None, now: datetime) -> AlarmChange:
    """Open an alarm for ``condition``, or update ``open_alarm`` (same dedup key) as a repeat."""
    if open_alarm is None or not open_alarm.open:
        alarm = Alarm(
            kind=condition.kind,
            subject_kind=condition.subject_kind,
            subject_id=condition.subject_id,
            vkp_code=condition.vkp_code,
            severity=condition.severity,
            raised_at=now,
            last_raised_at=now,
            detail=condition.detail,
            device_id=condition.device_id,
            patient_id=condition.patient_id,
        )
        return AlarmChange(alarm, AlarmAction.RAISED, SYSTEM_ACTOR, condition.detail)
    if open_alarm.dedup_key != condition.dedup_key:
        msg = f"alarm {open_alarm.id} is {open_alarm.dedup_key}, not {condition.dedup_key}"
        raise ValueError(msg)
    alarm = dataclasses.replace(
        open_alarm,
        count=open_alarm.count + 1,
        last_raised_at=max(now, open_alarm.last_raised_at),
        severity=max(open_alarm.severity, condition.severity),
        detail=condition.detail,
    )
    return AlarmChange(alarm, AlarmAction.REPEATED, SYSTEM_ACTOR, condition.detail)


def acknowledge(alarm: Alarm, *, by: str, now: datetime, note: str = "") -> AlarmChange:
    """Record that ``by`` took the alarm on (only an active alarm, once)."""
    if alarm.status is not AlarmStatus.ACTIVE:
        msg = f"alarm {alarm.id} is {alarm.status.value}; only an active alarm can be acknowledged"
        raise AlarmTransitionError(msg)
    _require_actor(by)
    changed = dataclasses.replace(
        alarm, status=AlarmStatus.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by
    )
    return AlarmChange(changed, AlarmAction.ACKNOWLEDGED, by, note)


def resolve(alarm: Alarm, *, by: str, now: datetime, resolution: str) -> AlarmChange:
    """Close the alarm: the condition is over (``by`` is a person or ``SYSTEM_ACTOR``)."""
    if not alarm.open:
        msg = f"alarm {alarm.id} is already resolved"
        raise AlarmTransitionError(msg)
    _require_actor(by)
    if not resolution.strip():
        msg = "say why the alarm is resolved (resolution must not be empty)"
        raise AlarmTransitionError(msg)
    changed = dataclasses.replace(
        alarm, status=AlarmStatus.RESOLVED, resolved_at=now, resolved_by=by, resolution=resolution
    )
    return AlarmChange(changed, AlarmAction.RESOLVED, by, resolution)


def _require_actor(by: str) -> None:
    if not by.strip():
        msg = "who did it must be given"
        raise AlarmTransitionError(msg)
