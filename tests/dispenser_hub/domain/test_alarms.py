"""Alarm records: deduplication, severity that never falls, acknowledge and resolve as separate steps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from dispenser_hub.domain.alarms import (
    SYSTEM_ACTOR,
    AlarmTransitionError,
    Condition,
    acknowledge,
    raise_condition,
    resolve,
)
from dispenser_hub.domain.model import AlarmAction, AlarmStatus, SubjectKind

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _jam(severity: int = 3, detail: str = "fault: jam") -> Condition:
    return Condition("fault.jam", SubjectKind.DEVICE, "RM3-000017", severity, detail, "3.14", "RM3-000017")


def test_first_raise_opens_an_alarm_logged_as_raised_by_the_system() -> None:
    change = raise_condition(_jam(), None, T0)
    alarm = change.alarm
    assert (alarm.id, alarm.status, alarm.count, alarm.severity) == (None, AlarmStatus.ACTIVE, 1, 3)
    assert alarm.dedup_key == "device:RM3-000017:fault.jam" == _jam().dedup_key
    assert (change.action, change.actor) == (AlarmAction.RAISED, SYSTEM_ACTOR)
    entry = change.log_entry(7, T0)
    assert (entry.alarm_id, entry.action, entry.at) == (7, AlarmAction.RAISED, T0)


def test_a_repeat_updates_the_open_alarm_and_severity_never_falls() -> None:
    first = raise_condition(_jam(severity=3), None, T0).alarm
    stored = dataclasses.replace(first, id=1)
    repeat = raise_condition(_jam(severity=2, detail="again"), stored, T0 + timedelta(minutes=5))
    assert repeat.action is AlarmAction.REPEATED
    assert (repeat.alarm.id, repeat.alarm.count, repeat.alarm.severity) == (1, 2, 3)
    assert repeat.alarm.last_raised_at == T0 + timedelta(minutes=5)
    assert repeat.alarm.raised_at == T0
    assert repeat.alarm.detail == "again"
    worse = raise_condition(
        Condition("fault.jam", SubjectKind.DEVICE, "RM3-000017", 3, "x", "3.14"),
        raise_condition(_jam(severity=1), None, T0).alarm,
        T0,
    )
    assert worse.alarm.severity == 3


def test_a_resolved_alarm_is_not_reopened_the_condition_opens_a_new_one() -> None:
    alarm = raise_condition(_jam(), None, T0).alarm
    closed = resolve(alarm, by=SYSTEM_ACTOR, now=T0, resolution="fault cleared").alarm
    again = raise_condition(_jam(), closed, T0 + timedelta(hours=1))
    assert again.action is AlarmAction.RAISED
    assert again.alarm.count == 1


def test_raising_onto_an_alarm_with_another_key_is_a_programming_error() -> None:
    alarm = raise_condition(_jam(), None, T0).alarm
    other = Condition("fault.lid_open", SubjectKind.DEVICE, "RM3-000017", 1, "lid", "3.11")
    with pytest.raises(ValueError, match=r"not device:RM3-000017:fault\.lid_open"):
        raise_condition(other, alarm, T0)


def test_acknowledge_then_resolve_record_who_and_when_separately() -> None:
    alarm = raise_condition(_jam(), None, T0).alarm
    acked = acknowledge(alarm, by="operator:kari", now=T0 + timedelta(minutes=3), note="calling").alarm
    assert (acked.status, acked.acknowledged_by) == (AlarmStatus.ACKNOWLEDGED, "operator:kari")
    assert acked.acknowledged_at is not None
    assert acked.acknowledged_at - acked.raised_at == timedelta(minutes=3)  # time to acknowledge
    with pytest.raises(AlarmTransitionError, match="only an active alarm"):
        acknowledge(acked, by="operator:ola", now=T0)
    done = resolve(acked, by="operator:kari", now=T0 + timedelta(minutes=30), resolution="jam cleared")
    assert (done.alarm.status, done.alarm.resolution, done.action) == (
        AlarmStatus.RESOLVED,
        "jam cleared",
        AlarmAction.RESOLVED,
    )
    with pytest.raises(AlarmTransitionError, match="already resolved"):
        resolve(done.alarm, by="operator:kari", now=T0, resolution="again")


def test_resolved_by_the_truth_stays_unacknowledged() -> None:
    alarm = raise_condition(_jam(), None, T0).alarm
    done = resolve(alarm, by=SYSTEM_ACTOR, now=T0, resolution="device reported the fault cleared").alarm
    assert done.acknowledged_at is None
    assert done.resolved_by == SYSTEM_ACTOR


@pytest.mark.parametrize(("by", "resolution", "complaint"), [(" ", "x", "who"), ("op", " ", "say why")])
def test_transitions_need_an_actor_and_a_reason(by: str, resolution: str, complaint: str) -> None:
    alarm = raise_condition(_jam(), None, T0).alarm
    with pytest.raises(AlarmTransitionError, match=complaint):
        resolve(alarm, by=by, now=T0, resolution=resolution)


def test_severity_is_zero_to_three() -> None:
    with pytest.raises(ValueError, match="0-3"):
        _jam(severity=4)
