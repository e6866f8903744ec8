"""Storing alarm transitions inside a caller's transaction: the alarm row and its log entry together.

Every service that raises or ends alarms goes through these two functions, so the rules of
``domain.alarms`` (one open alarm per dedup key, repeats counted, resolve by the system with a reason)
and the append-only log are applied the same way everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dispenser_hub.domain.alarms import SYSTEM_ACTOR, Condition, raise_condition, resolve
from dispenser_hub.domain.model import AlarmStatus, Deadline, SubjectKind
from dispenser_hub.services.escalations import Escalations
from firmware_protocol.codes import EVENT_MAPPINGS, HUB_CONDITIONS

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Alarm
    from dispenser_hub.ports import UnitOfWork


def device_condition(kind: str, device_id: str, patient_id: int | None, detail: str) -> Condition:
    """A hub-detected condition of a dispenser (``kind`` a hub condition or an event type of the code tables).

    Severity and VKP code come from the protocol's code tables (``firmware_protocol.codes``), so every
    service raises the same kind the same way.
    """
    mapping = HUB_CONDITIONS[kind] if kind in HUB_CONDITIONS else EVENT_MAPPINGS[kind]
    return Condition(
        kind=kind,
        subject_kind=SubjectKind.DEVICE,
        subject_id=device_id,
        severity=int(mapping.severity),
        detail=detail,
        vkp_code=mapping.vkp,
        device_id=device_id,
        patient_id=patient_id,
    )


EACH_ONE_NEEDS_A_HUMAN = frozenset({"dose.missed", "dose.not_dispensed"})
"""Alarm kinds whose repeat after an acknowledgement escalates again (a new missed dose is new news)."""
PLAN_ESCALATION = "escalation.plan"
"""Deadline kind that plans a new alarm's escalation (``services.escalations``), due when it opens."""


def raise_alarm(uow: UnitOfWork, condition: Condition, now: datetime) -> Alarm:
    """Open the condition's alarm, or count a repeat on the open one; log it.

    A newly opened alarm also gets its escalation planned, as a deadline due now in the same transaction
    (so an alarm never exists without its escalation, and the deadline timer plans it within a tick). So
    does a repeat of an acknowledged missed-dose alarm (``EACH_ONE_NEEDS_A_HUMAN``): it becomes active
    again, because the acknowledgement was for the earlier dose; the earlier chain's links and reply codes
    are spent (``acknowledged_at`` set), so only the new chain's acknowledge it.
    """
    change = raise_condition(condition, uow.alarms.open_by_key(condition.dedup_key), now)
    new = change.alarm.id is None
    alarm = change.alarm
    again = not new and alarm.status is AlarmStatus.ACKNOWLEDGED and alarm.kind in EACH_ONE_NEEDS_A_HUMAN
    if (
        again
    ):  # someone took the earlier dose on, not this one: the chain starts again (the log keeps the ack)
        alarm = dataclasses.replace(
            alarm, status=AlarmStatus.ACTIVE, acknowledged_at=None, acknowledged_by=None
        )
        _spend_links(uow, alarm, now)
    stored = uow.alarms.add(alarm) if new else uow.alarms.update(alarm)
    assert stored.id is not None  # noqa: S101 - stored alarms have ids
    uow.alarms.log(change.log_entry(stored.id, now))
    if new or again:
        uow.deadlines.schedule(
            Deadline(
                key=f"{PLAN_ESCALATION}:{stored.id}:{stored.count}",
                kind=PLAN_ESCALATION,
                due_at=now,
                created_at=now,
                payload={"alarm_id": stored.id},
            )
        )
    return stored


def _spend_links(uow: UnitOfWork, alarm: Alarm, now: datetime) -> None:
    """The earlier chain's links and reply codes acknowledge nothing more: the new dose needs its own."""
    if alarm.id is None:  # pragma: no cover - an alarm that is raised again is stored
        return
    for notification in uow.notifications.for_alarm(alarm.id):
        if notification.acknowledged_at is None:
            uow.notifications.update(dataclasses.replace(notification, acknowledged_at=now))


def end_alarm(uow: UnitOfWork, dedup_key: str, resolution: str, now: datetime) -> Alarm | None:
    """Resolve the open alarm with ``dedup_key`` as the system (``None`` if there is none)."""
    alarm = uow.alarms.open_by_key(dedup_key)
    if alarm is None or alarm.id is None:
        return None
    change = resolve(alarm, by=SYSTEM_ACTOR, now=now, resolution=resolution)
    stored = uow.alarms.update(change.alarm)
    uow.alarms.log(change.log_entry(alarm.id, now))
    Escalations.on_acknowledged(uow, stored, now)  # resolved: nothing more goes out about it
    return stored
