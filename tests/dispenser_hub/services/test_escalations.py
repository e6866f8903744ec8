"""Escalation through the hub's services: a missed dose's alarm becomes steps, steps become notifications."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.model import Contact, NotificationStatus, Patient, Responsibility
from dispenser_hub.domain.pouches import to_ms
from dispenser_hub.services.alarm_records import PLAN_ESCALATION
from dispenser_hub.services.deadlines import DeadlineTimer
from dispenser_hub.services.doses import CLOSE
from dispenser_hub.services.escalations import STEP, Escalations
from dispenser_hub.services.routing import RESPONSE_CENTRE
from dispenser_hub.services.schedules import ScheduleService
from firmware_protocol.messages import DoseTaken
from tests.dispenser_hub.services.test_rolls import D1, HOUR, NID_A, Rig, make_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from dispenser_hub.domain.model import Alarm, Notification

SECRET = b"0123456789abcdef-test-secret"
MINUTE = timedelta(minutes=1)


class EscalationRig(Rig):
    """A patient whose relative follows up (level 3), a roll in D1, and the full deadline timer."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.manifest = make_manifest(count=4, spacing=12 * HOUR)
        self.add(self.manifest)
        self.load(D1, self.manifest)
        escalations = Escalations(SECRET)
        handlers = {
            CLOSE: ScheduleService().doses.on_close,
            PLAN_ESCALATION: escalations.on_plan,
            STEP: escalations.on_step,
        }
        self.timer = DeadlineTimer(self.hub.store, self.hub.clock, handlers, holder="test")

    def patient(self, name: str, national_id: str) -> int:
        stored = self.hub.registry.add_patient(
            Patient(name, national_id, Responsibility.PATIENT_OR_RELATIVE), by="op"
        )
        assert stored.id is not None
        return stored.id

    def miss_first_dose(self) -> Alarm:
        """Let the first pouch's window close unconfirmed; the missed-dose alarm opens and is planned."""
        self.hub.clock.advance(2 * HOUR + 2 * HOUR + 5 * MINUTE)
        self.timer.tick()
        with self.hub.store() as uow:
            (alarm,) = [a for a in uow.alarms.select(open_only=True) if a.kind == "dose.missed"]
        return alarm

    def notifications(self, alarm: Alarm) -> list[Notification]:
        assert alarm.id is not None
        with self.hub.store() as uow:
            return uow.notifications.for_alarm(alarm.id)


@pytest.fixture
def rig(tmp_path: Path) -> EscalationRig:
    return EscalationRig(tmp_path)


def test_a_missed_dose_reaches_the_relative_then_the_response_centre(rig: EscalationRig) -> None:
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", phone="+4791234567", priority=1), by="op")
    alarm = rig.miss_first_dose()
    assert rig.notifications(alarm) == []
    rig.hub.clock.advance(30 * MINUTE)
    rig.timer.tick()
    (sms,) = rig.notifications(alarm)
    assert (sms.channel, sms.address, sms.status) == ("sms", "+4791234567", NotificationStatus.PENDING)
    assert NID_A not in sms.text
    assert "Kari" not in sms.text
    assert D1 in sms.text
    rig.hub.clock.advance(30 * MINUTE)
    rig.timer.tick()
    assert [(n.channel, n.address) for n in rig.notifications(alarm)] == [
        ("sms", "+4791234567"),
        ("console", RESPONSE_CENTRE),
    ]
    rig.timer.tick()
    assert len(rig.notifications(alarm)) == 2  # no step notifies twice


def test_acknowledgement_stops_the_chain_and_cancels_what_was_not_sent(rig: EscalationRig) -> None:
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", phone="+4791234567", priority=1), by="op")
    alarm = rig.miss_first_dose()
    rig.hub.clock.advance(30 * MINUTE)
    rig.timer.tick()
    assert alarm.id is not None
    rig.hub.registry.acknowledge_alarm(alarm.id, by="operator:kari")
    (sms,) = rig.notifications(alarm)
    assert sms.status is NotificationStatus.CANCELLED
    rig.hub.clock.advance(2 * HOUR)
    rig.timer.tick()
    assert len(rig.notifications(alarm)) == 1


def test_without_a_relative_to_reach_the_first_step_goes_to_the_response_centre(rig: EscalationRig) -> None:
    alarm = rig.miss_first_dose()
    rig.hub.clock.advance(30 * MINUTE)
    rig.timer.tick()
    (note,) = rig.notifications(alarm)
    assert (note.channel, note.address) == ("console", RESPONSE_CENTRE)
    assert "no relative" in note.text


def test_late_truth_resolves_the_alarm_and_nothing_more_goes_out(rig: EscalationRig) -> None:
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", phone="+4791234567", priority=1), by="op")
    alarm = rig.miss_first_dose()
    rig.hub.clock.advance(30 * MINUTE)
    rig.timer.tick()
    pouch = rig.manifest.pouches[0]
    with rig.hub.store() as uow:
        dose = uow.doses.for_device(D1)[0]
    rig.send(
        D1,
        DoseTaken,
        slot_id=dose.slot_id,
        due=to_ms(pouch.intake_at),
        pouch_id=pouch.pouch_id,
        taken_at=to_ms(pouch.intake_at + 10 * MINUTE),
    )
    (sms,) = rig.notifications(alarm)
    assert sms.status is NotificationStatus.CANCELLED
    rig.hub.clock.advance(2 * HOUR)
    rig.timer.tick()
    assert len(rig.notifications(alarm)) == 1


def test_a_new_missed_dose_after_an_acknowledgement_escalates_again(rig: EscalationRig) -> None:
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", phone="+4791234567", priority=1), by="op")
    alarm = rig.miss_first_dose()
    rig.hub.clock.advance(30 * MINUTE)
    rig.timer.tick()
    assert alarm.id is not None
    rig.hub.registry.acknowledge_alarm(alarm.id, by="operator:kari")
    rig.hub.clock.advance(12 * HOUR)  # pouch 1's window closes unconfirmed too
    rig.timer.tick()
    with rig.hub.store() as uow:
        again = uow.alarms.get(alarm.id)
    assert again is not None
    assert (again.count, again.status.value) == (2, "active")
    rig.hub.clock.advance(30 * MINUTE)
    rig.timer.tick()
    sent = rig.notifications(alarm)
    assert [n.status for n in sent] == [NotificationStatus.CANCELLED, NotificationStatus.PENDING]
    assert sent[0].key != sent[1].key
