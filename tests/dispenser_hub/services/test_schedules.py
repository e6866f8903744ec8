"""Schedules through the hub's services over the memory store: configs built, sent, applied, refused, 3.8."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.model import CommandStatus, DoseSettings, PauseRecord
from dispenser_hub.domain.pouches import to_ms
from dispenser_hub.domain.schedules import DoseWindow, Pause
from dispenser_hub.services.registry import Conflict, RegistryError
from dispenser_hub.services.schedule_admin import PatientSchedules
from dispenser_hub.services.schedules import ScheduleService, ScheduleSweep
from firmware_protocol.messages import (
    Config,
    DosePredispensed,
    Heartbeat,
    RollAlmostEmpty,
    RollEmpty,
    ScheduleApplied,
    ScheduleRejected,
)
from tests.dispenser_hub.services.test_rolls import D1, D2, HOUR, Rig, make_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from dispenser_hub.domain.model import Alarm, DeviceSchedule
    from firmware_protocol import Received

DAY = timedelta(days=1)


class ScheduleRig(Rig):
    """The roll rig plus the schedule sweep, and helpers to read configs and the 3.8 alarm."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.sweep = ScheduleSweep(self.hub.store, self.hub.clock, ScheduleService())

    def configs(self) -> list[tuple[Config, Received]]:
        return [(r.envelope.body, r) for r in self.published() if isinstance(r.envelope.body, Config)]

    def state(self, device_id: str = D1) -> DeviceSchedule:
        with self.hub.store() as uow:
            state = uow.schedules.device_schedule(device_id)
        assert state is not None
        return state

    def no_schedule(self) -> list[Alarm]:
        with self.hub.store() as uow:
            return [a for a in uow.alarms.select(open_only=True) if a.kind == "no_schedule"]

    def command_status(self, msg_id: str | None) -> CommandStatus:
        assert msg_id is not None
        with self.hub.store() as uow:
            command = uow.commands.get(msg_id)
        assert command is not None
        return command.status

    def apply(self, version: int, received: Received, device_id: str = D1) -> None:
        self.send(device_id, ScheduleApplied, version=version, slots=1, corr_id=received.envelope.msg_id)


@pytest.fixture
def rig(tmp_path: Path) -> ScheduleRig:
    return ScheduleRig(tmp_path)


def test_binding_without_a_roll_sends_an_empty_schedule_and_raises_no_schedule(rig: ScheduleRig) -> None:
    state = rig.state()
    assert (state.version, state.slots) == (1, 0)
    (alarm,) = rig.no_schedule()
    assert (alarm.vkp_code, alarm.severity, alarm.subject_id, alarm.patient_id) == (
        "3.8",
        2,
        D1,
        rig.patient_a,
    )
    assert "offers no dose" in alarm.detail
    with rig.hub.store() as uow:
        assert uow.schedules.device_schedule(D2) is None  # not bound: no schedule built


def test_an_accepted_roll_becomes_a_signed_retained_config_with_a_slot_per_pouch(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=6, spacing=12 * HOUR)
    rig.add(manifest)
    rig.load(D1, manifest)

    ((config, received),) = rig.configs()
    assert (config.version, config.roll_id, config.timezone, config.paused_until) == (
        2,
        "R-1",
        "Europe/Oslo",
        None,
    )
    window = DoseWindow()
    assert [s.pouch_id for s in config.slots] == [p.pouch_id for p in manifest.pouches]
    first = config.slots[0]
    due = manifest.pouches[0].intake_at
    assert (first.due, first.opens, first.closes) == (
        to_ms(due),
        to_ms(due - window.early),
        to_ms(due + window.late),
    )
    assert first.slot_id == "s-20261123-1100"  # 10:00 UTC is 11:00 in Oslo in November
    assert config.reminders == window.reminders()
    assert received.envelope.topic.endswith("/down/config")
    assert rig.hub.published.messages[-1][2] is True  # retained

    rig.apply(2, received)
    state = rig.state()
    assert (state.version, state.applied_version, state.slots) == (2, 2, 6)
    assert rig.command_status(state.command_msg_id) is CommandStatus.ACKED
    assert rig.no_schedule() == []  # the empty schedule's alarm is resolved


def test_nothing_new_is_sent_while_the_schedule_is_unchanged(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=4)
    rig.add(manifest)
    rig.load(D1, manifest)
    ((_, received),) = rig.configs()
    rig.apply(2, received)
    rig.hub.clock.advance(HOUR)
    assert rig.sweep.sweep() == 0
    assert rig.configs() == []
    rig.hub.clock.advance(
        12 * HOUR
    )  # a dose's window closed, so fewer doses are left in 72 h: no new version
    assert rig.sweep.sweep() == 0


def test_new_settings_send_a_new_version_and_supersede_an_unanswered_one(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=4)
    rig.add(manifest)
    rig.load(D1, manifest)
    first = rig.state()
    late = DoseWindow(early=timedelta(minutes=30), late=timedelta(hours=4))
    with rig.hub.store() as uow:
        uow.schedules.put_settings(DoseSettings(rig.patient_a, late, rig.hub.clock.now(), "op"))
        uow.commit()
    assert rig.sweep.sweep() == 1
    configs = rig.configs()
    assert [c.version for c, _ in configs] == [3]  # version 2 was superseded before it went out
    newest = configs[-1][0]
    assert newest.slots[0].closes - newest.slots[0].due == 4 * 3_600_000
    assert rig.command_status(first.command_msg_id) is CommandStatus.SUPERSEDED


def test_a_pause_cancels_its_doses_and_says_until_when(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=6, spacing=12 * HOUR)  # 10:00, 22:00, 10:00 ...
    rig.add(manifest)
    rig.load(D1, manifest)
    now = rig.hub.clock.now()
    pause = Pause(now + 12 * HOUR, now + 36 * HOUR, "hospital")  # covers pouches 1 and 2 (22:00 and 10:00)
    with rig.hub.store() as uow:
        uow.schedules.add_pause(PauseRecord(rig.patient_a, pause, now, "op"))
        uow.commit()
    rig.sweep.sweep()
    config, _ = rig.configs()[-1]
    assert [s.pouch_id for s in config.slots] == [manifest.pouches[n].pouch_id for n in (0, 3, 4, 5)]
    assert config.paused_until is None  # not in force yet
    rig.hub.clock.advance(13 * HOUR)
    rig.sweep.sweep()
    config, _ = rig.configs()[-1]
    assert config.paused_until == to_ms(pause.end)


def test_a_refused_schedule_raises_no_schedule_with_the_devices_reason(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=4)
    rig.add(manifest)
    rig.load(D1, manifest)
    ((_, received),) = rig.configs()
    rig.send(
        D1,
        ScheduleRejected,
        version=2,
        reason="E_NOT_SUPPORTED",
        field="body.slots.0.pot",
        detail="no carousel",
        corr_id=received.envelope.msg_id,
    )
    state = rig.state()
    assert rig.command_status(state.command_msg_id) is CommandStatus.NACKED
    (alarm,) = rig.no_schedule()
    assert "refused schedule version 2" in alarm.detail
    assert "E_NOT_SUPPORTED" in alarm.detail
    rig.send(D1, Heartbeat, schedule_version=2)  # refused once (say, before its clock was set), applied now
    assert rig.no_schedule() == []
    assert rig.state().rejected_version is None


def test_a_schedule_not_applied_in_time_raises_no_schedule_until_a_heartbeat_shows_it(
    rig: ScheduleRig,
) -> None:
    manifest = make_manifest(count=4)
    rig.add(manifest)
    rig.load(D1, manifest)
    assert rig.no_schedule() == [] or "offers no dose" in rig.no_schedule()[0].detail
    rig.hub.clock.advance(timedelta(minutes=31))
    rig.sweep.sweep()
    (alarm,) = rig.no_schedule()
    assert "has not applied schedule version 2 within 30 minutes" in alarm.detail
    rig.send(D1, Heartbeat, schedule_version=2)  # the applied answer was lost; the heartbeat shows it
    assert rig.no_schedule() == []
    assert rig.state().applied_version == 2


def test_the_horizon_moves_on_once_the_held_schedule_covers_less_than_half_of_it(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=40, spacing=12 * HOUR)  # 20 days of pouches
    rig.add(manifest)
    rig.load(D1, manifest)
    ((config, received),) = rig.configs()
    rig.apply(2, received)
    assert to_ms(rig.hub.clock.now() + 7 * DAY) >= config.slots[-1].due
    rig.hub.clock.advance(3 * DAY)
    assert rig.sweep.sweep() == 0  # four days still held: nothing sent
    rig.hub.clock.advance(DAY)
    assert rig.sweep.sweep() == 1
    ((later, _),) = rig.configs()
    assert later.version == 3
    assert later.slots[-1].due > config.slots[-1].due


def test_unbinding_sends_an_empty_schedule_so_the_old_patients_doses_are_gone(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=4)
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.configs()
    rig.hub.registry.unbind(D1, by="op", reason="moved")
    ((config, _),) = rig.configs()
    assert (config.slots, config.roll_id) == ([], None)
    assert rig.no_schedule() == []  # not bound: nothing to alarm about


def test_a_trip_within_the_roll_is_predispensed_and_one_beyond_it_raises_not_enough_doses(
    rig: ScheduleRig,
) -> None:
    manifest = make_manifest(count=6, spacing=12 * HOUR)  # T0+2h .. T0+62h
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.configs()
    admin = PatientSchedules(rig.hub.store, rig.hub.clock)
    now = rig.hub.clock.now()
    trip = admin.predispense(D1, now + HOUR, now + DAY + HOUR, by="op")
    assert (trip.doses, trip.enough) == (2, True)
    with rig.hub.store() as uow:
        command = uow.commands.get(trip.command_msg_id)
        assert command is not None
        assert (command.type, command.body["from"], command.body["until"]) == (
            "cmd.predispense",
            to_ms(now + HOUR),
            to_ms(now + DAY + HOUR),
        )
        assert [a for a in uow.alarms.select(open_only=True) if a.vkp_code == "3.15"] == []
    long_trip = admin.predispense(D1, now + DAY, now + 5 * DAY, by="op")
    assert (long_trip.doses, long_trip.enough) == (4, False)
    with rig.hub.store() as uow:
        (alarm,) = [a for a in uow.alarms.select(open_only=True) if a.vkp_code == "3.15"]
    assert alarm.subject_id == D1
    assert "not enough doses for the trip" in alarm.detail
    with pytest.raises(RegistryError, match="until"):
        admin.predispense(D1, now + DAY, now + HOUR, by="op")
    with pytest.raises(Conflict):
        admin.predispense(D2, now + HOUR, now + DAY, by="op")  # not bound


def test_a_device_that_gave_out_fewer_doses_than_asked_raises_not_enough_doses(rig: ScheduleRig) -> None:
    now = rig.hub.clock.now()
    rig.send(
        D1,
        DosePredispensed,
        **{
            "from": to_ms(now),
            "until": to_ms(now + DAY),
            "slot_ids": ["s-1"],
            "requested": 2,
            "dispensed": 1,
        },
    )
    with rig.hub.store() as uow:
        (alarm,) = [a for a in uow.alarms.select(open_only=True) if a.vkp_code == "3.15"]
    assert alarm.subject_id == D1
    rig.send(
        D1,
        DosePredispensed,
        **{
            "from": to_ms(now),
            "until": to_ms(now + DAY),
            "slot_ids": ["s-2"],
            "requested": 1,
            "dispensed": 1,
        },
    )
    with rig.hub.store() as uow:
        assert len([a for a in uow.alarms.select(open_only=True) if a.vkp_code == "3.15"]) == 1


def test_the_supply_follows_the_roll_the_next_roll_packed_and_the_devices_reports(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=6, spacing=12 * HOUR)
    rig.add(manifest)
    rig.load(D1, manifest)
    with rig.hub.store() as uow:
        record = uow.supplies.supply(rig.patient_a)
    assert record is not None
    assert (record.supply.source, record.supply.source_id) == ("roll", "R-1")
    assert (record.supply.runs_out_at, record.supply.doses_left) == (manifest.last_intake, 6)

    nxt = make_manifest(
        "R-2", start=manifest.last_intake + 12 * HOUR, count=4
    )  # the pharmacy packed the next
    rig.add(nxt)
    rig.sweep.sweep()
    with rig.hub.store() as uow:
        record = uow.supplies.supply(rig.patient_a)
    assert record is not None
    assert (record.supply.runs_out_at, record.supply.doses_left) == (nxt.last_intake, 10)

    until = rig.hub.clock.now() + 24 * HOUR  # the device knows better: a pouch was lost
    rig.send(D1, RollAlmostEmpty, roll_id="R-1", doses_left=2, until=to_ms(until))
    with rig.hub.store() as uow:
        record = uow.supplies.supply(rig.patient_a)
    assert record is not None
    assert record.supply.runs_out_at == until

    rig.hub.registry.unbind(D1, by="op", reason="moved")
    with rig.hub.store() as uow:
        record = uow.supplies.supply(rig.patient_a)
    assert record is not None
    assert record.supply.runs_out_at is None


def test_an_empty_roll_raises_its_own_alarm_and_no_no_schedule_besides(rig: ScheduleRig) -> None:
    manifest = make_manifest(count=2, spacing=12 * HOUR)
    rig.add(manifest)
    rig.load(D1, manifest)
    for version, received in [(c.version, r) for c, r in rig.configs()]:
        rig.apply(version, received)
    assert rig.no_schedule() == []
    rig.send(D1, RollEmpty, roll_id=manifest.roll_id)
    rig.sweep.sweep()
    with rig.hub.store() as uow:
        kinds = sorted(a.kind for a in uow.alarms.select(open_only=True))
    assert kinds == ["roll.empty"]  # one cause, one alarm: no "no schedule" (3.8) beside it
    assert rig.state().slots == 0
