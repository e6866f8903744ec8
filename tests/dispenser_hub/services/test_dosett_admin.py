"""Dosett plans and tray fills through ``PatientDosett`` over the memory store."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from dispenser_hub.adapters.clock import ManualClock
from dispenser_hub.adapters.crypto.fields import FieldCipher, generate_key
from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.domain.dosett import DosettPlan, PlanTime
from dispenser_hub.domain.model import Patient, Responsibility
from dispenser_hub.domain.pouches import DrugLine
from dispenser_hub.services.dosett_admin import PatientDosett
from dispenser_hub.services.registry import NotFound, Registry, RegistryError
from firmware_protocol.messages import Family

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DRUG = DrugLine("Paracetamol", "500 mg", Decimal(1))
EVERY_DAY = frozenset(range(7))


def _plan(valid_from: date = date(2026, 11, 23), *times: tuple[time, str]) -> DosettPlan:
    given = times or (
        (time(8), "Morning"),
        (time(12), "Midday"),
        (time(17), "Afternoon"),
        (time(21), "Evening"),
    )
    return DosettPlan(tuple(PlanTime(at, EVERY_DAY, label, (DRUG,)) for at, label in given), valid_from)


class Rig:
    """A store, a clock with sub-millisecond time, the registry and the service; one patient."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0 + timedelta(microseconds=1500))
        self.store = MemoryStore()
        cipher = FieldCipher.from_settings(f"k1:{generate_key()}", generate_key())
        self.registry = Registry(self.store, cipher, self.clock)
        self.dosett = PatientDosett(self.store, self.clock)
        stored = self.registry.add_patient(
            Patient("Kari", "01019000008", Responsibility.RESPONSE_CENTRE), by="op"
        )
        assert stored.id is not None
        self.patient_id = stored.id

    def actions(self) -> list[tuple[str, str, str]]:
        with self.store() as uow:
            entries = uow.audit.select(subject=f"patient:{self.patient_id}")
        return [
            (entry.action, entry.actor, entry.detail)
            for entry in entries
            if entry.action.startswith("dosett.")
        ]

    def version(self, device_id: str) -> int:
        with self.store() as uow:
            state = uow.schedules.device_schedule(device_id)
        assert state is not None
        return state.version


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_plans_are_kept_as_history_and_the_latest_started_is_in_force(rig: Rig) -> None:
    assert rig.dosett.plans(rig.patient_id) == []
    first = rig.dosett.add_plan(rig.patient_id, _plan(), by="alice")
    later = rig.dosett.add_plan(rig.patient_id, _plan(date(2026, 12, 1), (time(9), "Morning")), by="bob")
    assert (first.created_by, first.created_at) == ("alice", T0 + timedelta(milliseconds=1))
    assert rig.dosett.plans(rig.patient_id) == [first, later]
    assert rig.dosett.plan_in_force(rig.patient_id, date(2026, 11, 22)) is None
    assert rig.dosett.plan_in_force(rig.patient_id, date(2026, 11, 30)) == first
    assert rig.dosett.plan_in_force(rig.patient_id, date(2026, 12, 1)) == later
    assert rig.actions() == [
        ("dosett.plan", "bob", f"plan {later.id} valid from 2026-12-01, 1 dose times"),
        ("dosett.plan", "alice", f"plan {first.id} valid from 2026-11-23, 4 dose times"),
    ]


def test_a_fill_uses_the_plan_in_force_on_its_first_day(rig: Rig) -> None:
    rig.dosett.add_plan(rig.patient_id, _plan(), by="alice")
    newer = rig.dosett.add_plan(
        rig.patient_id, _plan(date(2026, 11, 26), (time(9), "Late morning")), by="alice"
    )
    assert rig.dosett.fills(rig.patient_id) is None
    record = rig.dosett.fill_tray(
        rig.patient_id,
        tray_id="TRAY-1",
        first_day=date(2026, 11, 26),
        pot_count=5,
        filled_by="Berg",
        by="bob",
    )
    fill = record.fill
    assert (fill.tray_id, fill.patient_id, fill.filled_by) == ("TRAY-1", rig.patient_id, "Berg")
    assert fill.filled_at == T0 + timedelta(milliseconds=1)  # whole milliseconds
    assert [pot.slot_id for pot in fill.pots] == [f"s-202611{day}-0900" for day in range(26, 31)]
    assert {pot.label for pot in fill.pots} == {"Late morning"}
    assert rig.dosett.fills(rig.patient_id) == (record, frozenset())
    assert rig.actions()[0] == (
        "dosett.fill",
        "bob",
        f"fill {record.id} of tray TRAY-1: 5 pots from 2026-11-26 (plan {newer.id})",
    )


def test_a_default_fill_has_28_pots_with_increasing_dues(rig: Rig) -> None:
    rig.dosett.add_plan(rig.patient_id, _plan(), by="alice")
    record = rig.dosett.fill_tray(
        rig.patient_id, tray_id="TRAY-1", first_day=date(2026, 11, 24), filled_by="Berg", by="bob"
    )
    pots = record.fill.pots
    assert [pot.pot for pot in pots] == list(range(1, 29))
    assert all(a.due < b.due for a, b in itertools.pairwise(pots))
    assert pots[0].due == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert record.id is not None
    with rig.store() as uow:
        assert uow.dosett.mark_opened(record.id, 1, T0)
        uow.commit()
    current = rig.dosett.fills(rig.patient_id)
    assert current is not None
    assert current[1] == frozenset({1})
    assert current[0].fill.doses_left(current[1]) == 27


def test_refusals_name_the_field(rig: Rig) -> None:
    def fill(**changes: object) -> None:
        values: dict[str, object] = {
            "tray_id": "TRAY-1",
            "first_day": date(2026, 11, 24),
            "filled_by": "Berg",
        }
        rig.dosett.fill_tray(rig.patient_id, **(values | changes), by="bob")  # type: ignore[arg-type]

    with pytest.raises(
        RegistryError, match=r"no dosett plan in force on 2026-11-24; add one first"
    ) as no_plan:
        fill()
    assert no_plan.value.field == "first_day"
    rig.dosett.add_plan(rig.patient_id, _plan(), by="alice")
    for changes, field in (
        ({"pot_count": 65}, "pot_count"),
        ({"pot_count": 0}, "pot_count"),
        ({"tray_id": "no spaces"}, "tray_id"),
        ({"filled_by": " "}, "filled_by"),
        ({"first_day": date(2026, 11, 22)}, "first_day"),
    ):
        with pytest.raises(RegistryError) as refused:
            fill(**changes)
        assert refused.value.field == field
        assert not isinstance(refused.value, NotFound)
    assert [action for action, _, _ in rig.actions()] == ["dosett.plan"]
    assert rig.dosett.fills(rig.patient_id) is None


def test_an_unknown_patient_is_not_found(rig: Rig) -> None:
    calls = (
        lambda: rig.dosett.add_plan(999, _plan(), by="alice"),
        lambda: rig.dosett.plans(999),
        lambda: rig.dosett.plan_in_force(999, date(2026, 11, 23)),
        lambda: rig.dosett.fill_tray(999, tray_id="T", first_day=date(2026, 11, 23), filled_by="B", by="b"),
        lambda: rig.dosett.fills(999),
    )
    for call in calls:
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.field == "patient_id"


def test_the_bound_dose_pot_dispenser_gets_a_new_schedule_version(rig: Rig) -> None:
    rig.registry.register_device("PC1-000001", serial="SN-1", family=Family.DOSE_POT, model="Pot", by="op")
    rig.registry.bind("PC1-000001", rig.patient_id, by="op", reason="installed")
    before = rig.version("PC1-000001")
    rig.dosett.add_plan(rig.patient_id, _plan(), by="alice")
    after_plan = rig.version("PC1-000001")
    assert after_plan > before
    rig.dosett.fill_tray(
        rig.patient_id, tray_id="TRAY-1", first_day=date(2026, 11, 24), filled_by="B", by="b"
    )
    assert rig.version("PC1-000001") > after_plan
