"""Dose-pot trays through ingest over the memory store: tray verdicts, pot checks, schedules from fills."""

from __future__ import annotations

from datetime import date, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.dosett import DosettPlan, PlanTime, fill_tray
from dispenser_hub.domain.model import FillRecord, Patient, PlanRecord, Responsibility
from dispenser_hub.domain.pouches import DrugLine, to_ms
from dispenser_hub.services.dosett_admin import PatientDosett
from dispenser_hub.services.ingest import Verdict
from firmware_protocol import KeyRing, decode, verify
from firmware_protocol.messages import Config, Family, Lock, PotOpened, TrayLoaded
from tests.dispenser_hub.services.support import Device, HubUnderTest, enrolled

if TYPE_CHECKING:
    from pathlib import Path

    from dispenser_hub.domain.model import Alarm

DP1 = "DP5-000001"
DRUG = (DrugLine("Paracetamol", "500 mg", Decimal(1)),)
PLAN = DosettPlan(
    (
        PlanTime(time(9), frozenset(range(7)), "morning", DRUG),
        PlanTime(time(21), frozenset(range(7)), "evening", DRUG),
    ),
    valid_from=date(2026, 11, 1),
)
NID_A, NID_B = "01819010001", "05928510052"


class TrayRig:
    """A hub with an enrolled dose-pot dispenser bound to patient A; patient B has no dispenser."""

    def __init__(self, tmp_path: Path) -> None:
        self.hub = HubUnderTest(tmp_path)
        self.device = Device.create(DP1, Family.DOSE_POT)
        enrolled(self.hub, self.device)
        self.patient_a = self._patient("Kari", NID_A)
        self.patient_b = self._patient("Ola", NID_B)
        self.hub.registry.bind(DP1, self.patient_a, by="op", reason="installed")
        self.hub.commands.send_due()
        self.seen = len(self.hub.published.messages)

    def _patient(self, name: str, national_id: str) -> int:
        stored = self.hub.registry.add_patient(
            Patient(name, national_id, Responsibility.RESPONSE_CENTRE), by="op"
        )
        assert stored.id is not None
        return stored.id

    def fill(self, patient_id: int, tray_id: str = "T-1") -> FillRecord:
        now = self.hub.clock.now()
        fill = fill_tray(
            PLAN,
            tray_id=tray_id,
            patient_id=patient_id,
            first_day=date(2026, 11, 23),
            pot_count=14,
            filled_by="nurse",
            filled_at=now,
        )
        with self.hub.store() as uow:
            uow.dosett.add_plan(PlanRecord(patient_id, PLAN, now, "op"))
            stored = uow.dosett.add_fill(FillRecord(fill))
            uow.commit()
        return stored

    def send(self, body: type[Any], **fields: Any) -> None:
        message = self.device.message(body, self.hub.clock.now(), **fields)
        assert self.hub.deliver(message) == [Verdict.STORED]

    def published(self) -> list[Any]:
        self.hub.commands.send_due()
        ring = KeyRing()
        ring.add(None, self.hub.ca.hub_signer.public_key)
        out = []
        for topic, payload, _retain in self.hub.published.messages[self.seen :]:
            received = decode(payload, topic)
            verify(received, ring)
            out.append(received.envelope.body)
        self.seen = len(self.hub.published.messages)
        return out

    def wrong_tray_alarms(self) -> list[Alarm]:
        with self.hub.store() as uow:
            return [a for a in uow.alarms.select(open_only=True) if a.kind == "wrong_roll"]


@pytest.fixture
def rig(tmp_path: Path) -> TrayRig:
    return TrayRig(tmp_path)


def test_the_patients_filled_tray_is_accepted_and_its_pots_become_the_schedule(rig: TrayRig) -> None:
    record = rig.fill(rig.patient_a)
    rig.published()
    rig.send(TrayLoaded, tray_id="T-1", pots_filled=14)
    (config,) = [b for b in rig.published() if isinstance(b, Config)]
    assert [s.pot for s in config.slots] == list(range(1, 15))
    assert [s.due for s in config.slots] == [to_ms(p.due) for p in record.fill.pots]
    assert config.slots[0].slot_id == "s-20261123-0900"
    assert rig.wrong_tray_alarms() == []


def test_a_tray_filled_for_another_patient_is_refused_locked_and_alarmed(rig: TrayRig) -> None:
    rig.fill(rig.patient_b)
    rig.published()
    rig.send(TrayLoaded, tray_id="T-1", pots_filled=14)
    bodies = rig.published()
    assert any(isinstance(b, Lock) for b in bodies)
    assert all(not b.slots for b in bodies if isinstance(b, Config))
    (alarm,) = rig.wrong_tray_alarms()
    assert (alarm.vkp_code, alarm.severity, alarm.subject_id, alarm.patient_id) == (
        "3.5",
        3,
        DP1,
        rig.patient_a,
    )
    assert NID_B not in alarm.detail


def test_a_refill_of_the_tray_for_someone_else_takes_its_pots_away(rig: TrayRig) -> None:
    rig.fill(rig.patient_a)
    rig.send(TrayLoaded, tray_id="T-1", pots_filled=14)
    rig.published()
    rig.fill(rig.patient_b)  # the same tray, refilled for B (and not loaded back here)
    rig.hub.clock.advance(timedelta(minutes=5))
    rig.send(TrayLoaded, tray_id="T-1", pots_filled=14)
    configs = [b for b in rig.published() if isinstance(b, Config)]
    assert configs[-1].slots == []


def test_opened_pots_are_recorded_and_a_foreign_pot_raises_the_alarm(rig: TrayRig) -> None:
    record = rig.fill(rig.patient_a)
    assert record.id is not None
    rig.send(TrayLoaded, tray_id="T-1", pots_filled=14)
    rig.hub.clock.advance(timedelta(hours=1))  # 09:00 Oslo = 08:00 UTC; the first pot is due
    rig.send(PotOpened, tray_id="T-1", pot=1, slot_id="s-20261123-0900")
    with rig.hub.store() as uow:
        assert uow.dosett.opened(record.id) == {1}
    assert rig.wrong_tray_alarms() == []
    rig.send(PotOpened, tray_id="T-9", pot=2, slot_id=None)
    (alarm,) = rig.wrong_tray_alarms()
    assert "T-9" in alarm.detail
    with rig.hub.store() as uow:
        assert uow.dosett.opened(record.id) == {1}


def test_a_pot_opened_before_a_new_tray_in_one_batch_is_judged_against_the_old_tray(rig: TrayRig) -> None:
    """A buffered replay: the last pot of the old tray, then the new tray, delivered in one batch."""
    old = rig.fill(rig.patient_a, "T-1")
    rig.send(TrayLoaded, tray_id="T-1", pots_filled=14)
    rig.fill(rig.patient_a, "T-2")
    rig.hub.clock.advance(timedelta(hours=1))
    now = rig.hub.clock.now()
    batch = [
        rig.device.message(PotOpened, now, tray_id="T-1", pot=1, slot_id="s-20261123-0900"),
        rig.device.message(TrayLoaded, now, tray_id="T-2", pots_filled=14),
    ]
    assert rig.hub.deliver(*batch) == [Verdict.STORED, Verdict.STORED]
    assert old.id is not None
    with rig.hub.store() as uow:
        assert uow.dosett.opened(old.id) == {1}
    assert rig.wrong_tray_alarms() == []


def test_refilling_the_tray_for_another_patient_empties_the_old_dispensers_schedule_at_once(
    rig: TrayRig,
) -> None:
    rig.fill(rig.patient_a)
    rig.send(TrayLoaded, tray_id="T-1", pots_filled=14)
    rig.published()
    office = PatientDosett(rig.hub.store, rig.hub.clock)
    office.add_plan(rig.patient_b, PLAN, by="op")
    office.fill_tray(rig.patient_b, tray_id="T-1", first_day=date(2026, 11, 23), filled_by="nurse", by="op")
    configs = [b for b in rig.published() if isinstance(b, Config)]
    assert configs
    assert configs[-1].slots == []
