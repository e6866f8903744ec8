"""Supply forecasts and refill warnings (VKP 3.25) over the memory store: stages, quiet hours, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.clock import ManualClock
from dispenser_hub.adapters.crypto.fields import FieldCipher, generate_key
from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.domain.model import AlarmAction, AlarmStatus, Patient, Responsibility, SubjectKind
from dispenser_hub.domain.supply import RefillPolicy
from dispenser_hub.domain.wallclock import OSLO
from dispenser_hub.services.registry import Registry
from dispenser_hub.services.supply import COVERED, NO_SOURCE, SupplyService, SupplySweep, refill_key
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from dispenser_hub.domain.model import Alarm, SupplyRecord
    from dispenser_hub.domain.supply import SupplySource

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
"""Monday 09:00 Europe/Oslo (CET, UTC+1)."""
END = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
"""Friday 03:00 Oslo: both nominal stages (72 h, 24 h before) fall at 03:00 Oslo, in quiet hours."""
STAGE_0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
"""Tuesday 07:00 Oslo: the 72 h stage moved forward to the quiet end."""
STAGE_1 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
"""Thursday 07:00 Oslo: the 24 h stage moved forward to the quiet end."""
DEVICE = "RM3-000017"
NAME = "Kari Nordmann"


class Rig:
    """A patient bound to a dispenser, the supply service and its sweep over one memory store."""

    def __init__(self, service: SupplyService | None = None) -> None:
        self.clock = ManualClock(T0)
        self.store = MemoryStore()
        cipher = FieldCipher.from_settings(f"k1:{generate_key()}", generate_key())
        self.registry = Registry(self.store, cipher, self.clock)
        stored = self.registry.add_patient(
            Patient(NAME, "01019000008", Responsibility.RESPONSE_CENTRE), by="op"
        )
        assert stored.id is not None
        self.patient_id = stored.id
        self.registry.register_device(
            DEVICE, serial="SN-1", family=Family.MULTIDOSE_ROLL, model="RollMate 3", by="op"
        )
        self.registry.bind(DEVICE, self.patient_id, by="op", reason="installed")
        self.service = service or SupplyService()
        self.sweeper = SupplySweep(self.store, self.clock, self.service)

    def at(self, moment: datetime) -> None:
        self.clock.advance(moment - self.clock.now())

    def sweep_at(self, moment: datetime) -> int:
        self.at(moment)
        return self.sweeper.sweep()

    def set_source(
        self,
        source_id: str = "R-1",
        runs_out_at: datetime | None = END,
        *,
        source: SupplySource = "roll",
        doses_left: int | None = 14,
    ) -> SupplyRecord:
        with self.store() as uow:
            record = self.service.set_source(
                uow,
                self.patient_id,
                source=source,
                source_id=source_id,
                runs_out_at=runs_out_at,
                doses_left=doses_left,
                now=self.clock.now(),
            )
            uow.commit()
        return record

    def record(self) -> SupplyRecord | None:
        with self.store() as uow:
            return uow.supplies.supply(self.patient_id)

    def alarms(self) -> list[Alarm]:
        with self.store() as uow:
            return [alarm for alarm in uow.alarms.select() if alarm.kind == "refill_needed"]

    def raised_log(self) -> list[datetime]:
        """When the refill alarm was raised or repeated (its log), oldest first."""
        with self.store() as uow:
            entries = [entry for alarm in self.alarms() for entry in uow.alarms.history(stored_id(alarm))]
        return sorted(
            entry.at for entry in entries if entry.action in {AlarmAction.RAISED, AlarmAction.REPEATED}
        )


def stored_id(alarm: Alarm) -> int:
    assert alarm.id is not None
    return alarm.id


@pytest.fixture
def rig() -> Rig:
    return Rig()


def oslo_hour(moment: datetime) -> int:
    return moment.astimezone(OSLO).hour


def test_each_stage_raises_once_at_the_quiet_end_never_at_night(rig: Rig) -> None:
    rig.set_source()
    assert rig.sweep_at(T0) == 0
    assert rig.sweep_at(STAGE_0 - timedelta(hours=4)) == 0  # 03:00 Oslo: the nominal time, quiet
    assert rig.sweep_at(STAGE_0 - timedelta(minutes=1)) == 0
    assert rig.sweep_at(STAGE_0) == 1
    (alarm,) = rig.alarms()
    assert (alarm.kind, alarm.vkp_code, alarm.severity) == ("refill_needed", "3.25", 1)
    assert (alarm.subject_kind, alarm.subject_id) == (SubjectKind.PATIENT, str(rig.patient_id))
    assert (alarm.patient_id, alarm.device_id, alarm.count) == (rig.patient_id, DEVICE, 1)
    assert alarm.dedup_key == refill_key(rig.patient_id)
    assert "R-1" in alarm.detail
    assert "Kari" not in alarm.detail
    assert "01019000008" not in alarm.detail
    assert oslo_hour(alarm.raised_at) == 7
    assert rig.sweep_at(STAGE_0) == 0  # a second sweep does not notify again
    assert rig.sweep_at(STAGE_0 + timedelta(hours=5)) == 0
    assert rig.sweep_at(STAGE_1 - timedelta(hours=4)) == 0  # 03:00 Oslo
    assert rig.sweep_at(STAGE_1) == 1
    assert rig.sweep_at(STAGE_1 + timedelta(minutes=5)) == 0
    assert rig.sweep_at(END + timedelta(hours=1)) == 0
    (alarm,) = rig.alarms()
    assert alarm.count == 2  # the 24 h stage repeats the open alarm
    assert rig.raised_log() == [STAGE_0, STAGE_1]
    assert all(oslo_hour(moment) == 7 for moment in rig.raised_log())
    record = rig.record()
    assert record is not None
    assert rig.service.sent_stages(record) == [0, 1]


def test_a_stage_that_cannot_move_forward_goes_back_before_quiet_hours() -> None:
    rig = Rig(SupplyService(RefillPolicy(leads=(timedelta(hours=4),))))
    end = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # 05:00 Oslo: 07:00 would be too late
    rig.set_source(runs_out_at=end)
    back = datetime(2026, 11, 23, 20, 59, tzinfo=UTC)  # 21:59 Oslo
    with rig.store() as uow:
        view = rig.service.view(uow, rig.patient_id, T0)
    assert view.next_warning_at == back
    assert rig.sweep_at(back - timedelta(minutes=1)) == 0
    assert rig.sweep_at(back) == 1
    assert rig.sweep_at(end - timedelta(hours=4)) == 0  # the nominal 01:00 Oslo: sent already
    assert rig.raised_log() == [back]


def test_a_restarted_sweep_does_not_repeat_sent_stages(rig: Rig) -> None:
    rig.set_source()
    assert rig.sweep_at(STAGE_0) == 1
    again = SupplySweep(rig.store, rig.clock, SupplyService())
    assert again.sweep() == 0
    rig.at(STAGE_1)
    assert again.sweep() == 1
    assert SupplySweep(rig.store, rig.clock, SupplyService()).sweep() == 0
    assert len(rig.raised_log()) == 2


def test_the_same_roll_again_keeps_the_stages_sent(rig: Rig) -> None:
    rig.set_source()
    assert rig.sweep_at(STAGE_0) == 1
    record = rig.set_source(doses_left=9)  # the same roll reported again
    assert rig.service.sent_stages(record) == [0]
    assert rig.sweep_at(STAGE_0 + timedelta(hours=1)) == 0
    (alarm,) = rig.alarms()
    assert alarm.status is not AlarmStatus.RESOLVED


def test_a_new_roll_starts_fresh_and_ends_the_alarm(rig: Rig) -> None:
    rig.set_source()
    assert rig.sweep_at(STAGE_0) == 1
    rig.at(STAGE_0 + timedelta(hours=2))
    record = rig.set_source("R-2", rig.clock.now() + timedelta(days=10))
    assert record.sent == frozenset()
    (alarm,) = rig.alarms()
    assert alarm.status is AlarmStatus.RESOLVED
    assert alarm.resolution == COVERED
    assert rig.sweep_at(STAGE_1) == 0  # the old roll's 24 h stage is gone
    assert record.supply.runs_out_at is not None
    new_stage_0 = record.supply.runs_out_at - timedelta(hours=72)
    assert oslo_hour(new_stage_0) == 9
    assert rig.sweep_at(new_stage_0) == 1
    assert [a.status for a in rig.alarms()].count(AlarmStatus.ACTIVE) == 1


def test_a_new_roll_that_runs_out_soon_keeps_the_alarm_and_warns_for_itself(rig: Rig) -> None:
    rig.set_source()
    assert rig.sweep_at(STAGE_0) == 1
    rig.at(STAGE_0 + timedelta(hours=3))  # 10:00 Oslo
    rig.set_source("R-2", rig.clock.now() + timedelta(hours=48))  # within the 72 h stage
    (alarm,) = rig.alarms()
    assert alarm.open
    assert rig.sweeper.sweep() == 1  # the new roll's past first stage, at once
    assert rig.sweeper.sweep() == 0


def test_an_earlier_almost_empty_report_brings_the_warning_earlier(rig: Rig) -> None:
    rig.set_source(runs_out_at=T0 + timedelta(days=10))
    assert rig.sweep_at(T0) == 0
    with rig.store() as uow:
        later = rig.service.almost_empty(
            uow, rig.patient_id, source_id="R-1", doses_left=3, until=T0 + timedelta(days=20), now=T0
        )
        stale = rig.service.almost_empty(
            uow, rig.patient_id, source_id="R-0", doses_left=1, until=T0 + timedelta(hours=1), now=T0
        )
        uow.commit()
    assert later.supply.runs_out_at == stale.supply.runs_out_at == T0 + timedelta(days=10)
    assert rig.sweep_at(T0 + timedelta(minutes=1)) == 0
    rig.at(T0 + timedelta(hours=1))  # 10:00 Oslo
    with rig.store() as uow:
        record = rig.service.almost_empty(
            uow,
            rig.patient_id,
            source_id="R-1",
            doses_left=4,
            until=T0 + timedelta(days=2),
            now=rig.clock.now(),
        )
        uow.commit()
    assert (record.supply.runs_out_at, record.supply.doses_left) == (T0 + timedelta(days=2), 4)
    assert rig.sweeper.sweep() == 1  # the 72 h stage is past: at once
    assert rig.sweep_at(T0 + timedelta(days=1)) == 1  # the 24 h stage, on time (09:00 Oslo)
    assert rig.sweeper.sweep() == 0


def test_an_almost_empty_report_at_night_warns_at_the_quiet_end(rig: Rig) -> None:
    night = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)  # 23:00 Oslo
    rig.at(night)
    with rig.store() as uow:  # no record yet: the report is the forecast
        record = rig.service.almost_empty(
            uow,
            rig.patient_id,
            source_id="R-9",
            doses_left=1,
            until=night + timedelta(hours=13),
            now=night,
        )
        uow.commit()
    assert (record.supply.source, record.supply.source_id) == ("roll", "R-9")
    assert rig.sweeper.sweep() == 0
    assert rig.sweep_at(datetime(2026, 11, 24, 5, 59, tzinfo=UTC)) == 0
    assert rig.sweep_at(datetime(2026, 11, 24, 6, 0, tzinfo=UTC)) == 1  # 07:00 Oslo
    assert rig.sweeper.sweep() == 0


def test_an_empty_report_ends_the_forecast_now_and_leaves_it_to_the_empty_alarm(rig: Rig) -> None:
    rig.set_source()
    rig.at(T0 + timedelta(hours=2))
    with rig.store() as uow:
        stale = rig.service.empty(uow, rig.patient_id, source_id="R-0", now=rig.clock.now())
        assert stale.supply.runs_out_at == END
        record = rig.service.empty(uow, rig.patient_id, source_id="R-1", now=rig.clock.now())
        view = rig.service.view(uow, rig.patient_id, rig.clock.now())
        uow.commit()
    assert (record.supply.runs_out_at, record.supply.doses_left) == (rig.clock.now(), 0)
    assert view.next_warning_at is None  # domain rule 1: the empty alarm (VKP 3.6) takes over
    assert rig.sweeper.sweep() == 0
    assert rig.alarms() == []


def test_an_empty_report_without_a_record_creates_one(rig: Rig) -> None:
    with rig.store() as uow:
        record = rig.service.empty(uow, rig.patient_id, source_id="T-1", now=T0, source="tray")
        uow.commit()
    assert (record.supply.source, record.supply.runs_out_at, record.supply.doses_left) == ("tray", T0, 0)


def test_clear_removes_the_forecast_and_ends_the_alarm(rig: Rig) -> None:
    rig.set_source()
    assert rig.sweep_at(STAGE_0) == 1
    with rig.store() as uow:
        record = rig.service.clear(uow, rig.patient_id, rig.clock.now())
        uow.commit()
    assert record is not None
    assert (record.supply.runs_out_at, record.supply.doses_left) == (None, None)
    (alarm,) = rig.alarms()
    assert (alarm.status, alarm.resolution) == (AlarmStatus.RESOLVED, NO_SOURCE)
    assert rig.sweep_at(STAGE_1) == 0
    with rig.store() as uow:
        assert rig.service.view(uow, rig.patient_id, rig.clock.now()).next_warning_at is None
        assert rig.service.clear(uow, rig.patient_id + 1, rig.clock.now()) is None


def test_a_supply_without_an_end_warns_nobody_and_keeps_the_alarm(rig: Rig) -> None:
    rig.set_source()
    assert rig.sweep_at(STAGE_0) == 1
    rig.set_source("R-2", None, doses_left=None)
    (alarm,) = rig.alarms()
    assert alarm.open
    assert rig.sweep_at(STAGE_1) == 0
