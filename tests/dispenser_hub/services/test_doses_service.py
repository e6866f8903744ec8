"""Dose records through the services: made from the schedule, closed by the deadline timer, late truth."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.doses import DoseState
from dispenser_hub.domain.model import PauseRecord
from dispenser_hub.domain.pouches import to_ms
from dispenser_hub.domain.schedules import Pause
from dispenser_hub.services.alarm_records import PLAN_ESCALATION
from dispenser_hub.services.deadlines import DeadlineTimer
from dispenser_hub.services.doses import CLOSE, REPORT_GRACE
from dispenser_hub.services.escalations import Escalations
from dispenser_hub.services.schedules import ScheduleService
from firmware_protocol.messages import Death, DoseNotTaken, DoseTaken
from tests.dispenser_hub.services.test_rolls import D1, HOUR, Rig, make_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from dispenser_hub.domain.doses import Dose
    from dispenser_hub.domain.model import Alarm
    from dispenser_hub.domain.pouches import RollManifest


SECRET = b"0123456789abcdef-test-secret"


class DoseRig(Rig):
    """The roll rig with a roll accepted in D1 and the deadline timer."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.manifest = make_manifest(count=4, spacing=12 * HOUR)  # T0+2h, +14h, +26h, +38h
        self.add(self.manifest)
        self.load(D1, self.manifest)
        handlers = {CLOSE: ScheduleService().doses.on_close, PLAN_ESCALATION: Escalations(SECRET).on_plan}
        self.timer = DeadlineTimer(self.hub.store, self.hub.clock, handlers, holder="test")

    def doses(self) -> list[Dose]:
        with self.hub.store() as uow:
            return uow.doses.for_device(D1)

    def missed_alarms(self) -> list[Alarm]:
        with self.hub.store() as uow:
            return [a for a in uow.alarms.select(open_only=True) if a.kind == "dose.missed"]

    def dose_event(self, body: type[DoseTaken | DoseNotTaken], index: int, **fields: object) -> None:
        pouch = self.manifest.pouches[index]
        slot = self.doses()[index]
        self.send(
            D1, body, slot_id=slot.slot_id, due=to_ms(pouch.intake_at), pouch_id=pouch.pouch_id, **fields
        )


@pytest.fixture
def rig(tmp_path: Path) -> DoseRig:
    return DoseRig(tmp_path)


def _closes(manifest: RollManifest, index: int) -> timedelta:
    return (
        manifest.pouches[index].intake_at + timedelta(hours=2) + REPORT_GRACE - manifest.pouches[0].intake_at
    )


def test_each_slot_sent_becomes_a_scheduled_dose_with_a_closing_deadline(rig: DoseRig) -> None:
    doses = rig.doses()
    assert [d.pouch_id for d in doses] == [p.pouch_id for p in rig.manifest.pouches]
    assert {d.state for d in doses} == {DoseState.SCHEDULED}
    with rig.hub.store() as uow:
        pending = uow.deadlines.pending(kind=CLOSE)
    assert [d.due_at for d in pending] == [d.closes + REPORT_GRACE for d in doses]


def test_a_dose_with_no_word_from_a_connected_device_is_missed_and_reaches_a_human(rig: DoseRig) -> None:
    rig.hub.clock.advance(2 * HOUR + _closes(rig.manifest, 0))
    rig.timer.tick()
    first = rig.doses()[0]
    assert (first.state, first.reason) == (DoseState.MISSED, "no_confirmation")
    (alarm,) = rig.missed_alarms()
    assert (alarm.vkp_code, alarm.subject_id, alarm.device_id) == ("3.3", str(rig.patient_a), D1)
    assert rig.timer.tick() == 0  # fired once


def test_a_silent_device_leaves_its_doses_unknown_without_missed_dose_alarms(rig: DoseRig) -> None:
    rig.send(D1, Death)  # the device went offline
    rig.hub.clock.advance(2 * HOUR + _closes(rig.manifest, 1))
    rig.timer.tick()
    assert [d.state for d in rig.doses()[:2]] == [DoseState.UNKNOWN, DoseState.UNKNOWN]
    assert rig.missed_alarms() == []


def test_a_taken_dose_ends_taken_and_late_truth_resolves_the_missed_alarm(rig: DoseRig) -> None:
    rig.hub.clock.advance(2 * HOUR)
    rig.dose_event(DoseTaken, 0, taken_at=to_ms(rig.hub.clock.now()))
    assert rig.doses()[0].state is DoseState.TAKEN
    rig.hub.clock.advance(12 * HOUR + _closes(rig.manifest, 0))  # pouch 1's window closed unconfirmed
    rig.timer.tick()
    assert rig.doses()[1].state is DoseState.MISSED
    assert len(rig.missed_alarms()) == 1
    taken_at = rig.manifest.pouches[1].intake_at + timedelta(minutes=20)
    rig.dose_event(DoseTaken, 1, taken_at=to_ms(taken_at))  # a replay from the device: it was taken
    second = rig.doses()[1]
    assert (second.state, second.taken_at, second.reason) == (
        DoseState.TAKEN_LATE,
        taken_at,
        "no_confirmation",
    )
    assert rig.missed_alarms() == []


def test_the_devices_own_not_taken_report_closes_the_dose_before_the_deadline(rig: DoseRig) -> None:
    pouch = rig.manifest.pouches[0]
    rig.hub.clock.advance(4 * HOUR)
    rig.dose_event(DoseNotTaken, 0, closed_at=to_ms(pouch.intake_at + timedelta(hours=2)), retained=True)
    assert (rig.doses()[0].state, rig.doses()[0].reason) == (DoseState.MISSED, "not_taken")
    rig.hub.clock.advance(REPORT_GRACE)
    rig.timer.tick()  # its deadline finds the dose closed: nothing changes, no second alarm
    assert (rig.doses()[0].state, rig.doses()[0].reason) == (DoseState.MISSED, "not_taken")
    (alarm,) = rig.missed_alarms()
    assert alarm.count == 1


def test_a_pause_cancels_the_doses_in_it(rig: DoseRig) -> None:
    now = rig.hub.clock.now()
    with rig.hub.store() as uow:
        uow.schedules.add_pause(
            PauseRecord(rig.patient_a, Pause(now, now + 20 * HOUR, "hospital"), now, "op")
        )
        uow.commit()
    with rig.hub.store() as uow:
        device = uow.devices.get(D1)
        assert device is not None
        ScheduleService().refresh(uow, device, now)
        uow.commit()
    states = [d.state for d in rig.doses()]
    assert states == [DoseState.CANCELLED, DoseState.CANCELLED, DoseState.SCHEDULED, DoseState.SCHEDULED]
    rig.hub.clock.advance(30 * HOUR)
    rig.timer.tick()
    assert rig.missed_alarms() != []  # pouch 2 was due after the pause and not confirmed
    assert [d.state for d in rig.doses()[:2]] == [DoseState.CANCELLED, DoseState.CANCELLED]


def test_doses_come_back_when_their_pause_is_withdrawn(rig: DoseRig) -> None:
    now = rig.hub.clock.now()
    with rig.hub.store() as uow:
        record = uow.schedules.add_pause(
            PauseRecord(rig.patient_a, Pause(now, now + 20 * HOUR, "hospital"), now, "op")
        )
        device = uow.devices.get(D1)
        assert device is not None
        ScheduleService().refresh(uow, device, now)
        uow.commit()
    assert [d.state for d in rig.doses()[:2]] == [DoseState.CANCELLED, DoseState.CANCELLED]
    with rig.hub.store() as uow:  # the patient stayed home after all
        uow.schedules.update_pause(dataclasses.replace(record, ended_at=now, ended_by="op"))
        device = uow.devices.get(D1)
        assert device is not None
        ScheduleService().refresh(uow, device, now)
        uow.commit()
    assert [d.state for d in rig.doses()] == [DoseState.SCHEDULED] * 4
    rig.hub.clock.advance(2 * HOUR + _closes(rig.manifest, 0))
    rig.timer.tick()
    assert rig.doses()[0].state is DoseState.MISSED  # it reaches a human again
