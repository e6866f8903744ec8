"""Repository contract, part 5: dose-pot trays and supplies (dosett plans, tray fills, opened pots, supplies).

The same backends as part 1 (``test_repository_contract.py``): memory, SQLite, PostgreSQL. A plan and a fill
are what staff entered and what is in the tray: they must come back exactly as written (every time, weekday,
label, drug line, decimal quantity and due time). Plans are history: the plan in force on a day is the one
with the latest start at or before it. A pot is opened once per fill. A patient's supply record is replaced
whole, and the records running out are found by their end. References to patients and fills are checked
(``NotFoundError``), every time comes back as the same instant in UTC, and nothing is kept without a commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from dispenser_hub.domain.dosett import DosettPlan, PlanTime, PotFill, TrayFill, fill_tray
from dispenser_hub.domain.model import FillRecord, PlanRecord, SupplyRecord
from dispenser_hub.domain.pouches import DrugLine
from dispenser_hub.domain.supply import Supply
from dispenser_hub.ports import NotFoundError
from tests.support.storage import BACKENDS, T0, Backend, migrated_sqlite_template, open_backend, patient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

DAY = timedelta(days=1)
OPERATOR = "operator:kari"
PLUS_TWO = timezone(timedelta(hours=2))
MONDAY = date(2026, 11, 23)
"""``T0``'s day (Europe/Oslo)."""
ALL_WEEK = frozenset(range(7))
HALF = DrugLine("Paracetamol", "500 mg", Decimal("0.5"))
MORNING = PlanTime(
    time(8, 0),
    ALL_WEEK,
    "Morgen",
    (
        HALF,
        DrugLine("Levaxin", "50 µg", Decimal("1.50")),
        DrugLine("Ødemin «forte» 💊", "2,5 mg/ml", Decimal("12.125")),
    ),
)
EVENING = PlanTime(
    time(20, 30), frozenset({0, 2, 4}), "Kveld, før søvn", (DrugLine("Sobril", "10 mg", Decimal(2)),)
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


def _patients(backend: Backend) -> tuple[int, int]:
    """Two patients (their ids)."""
    with backend.uow_factory() as uow:
        kari = uow.patients.add(patient(1)).id or 0
        ola = uow.patients.add(patient(2)).id or 0
        uow.commit()
    return kari, ola


def _plan(
    patient_id: int, valid_from: date = MONDAY, *, note: str | None = None, **changes: Any
) -> PlanRecord:
    plan = DosettPlan(times=(MORNING, EVENING), valid_from=valid_from, note=note)
    record = PlanRecord(patient_id=patient_id, plan=plan, created_at=T0, created_by=OPERATOR)
    return replace(record, **changes)


def _fill(
    patient_id: int,
    tray_id: str = "TRAY-0001",
    *,
    at: datetime = T0,
    pots: int = 28,
    first_day: date = MONDAY,
) -> FillRecord:
    fill = fill_tray(
        _plan(patient_id).plan,
        tray_id=tray_id,
        patient_id=patient_id,
        first_day=first_day,
        pot_count=pots,
        filled_by=OPERATOR,
        filled_at=at,
    )
    return FillRecord(fill=fill)


def _supply(
    patient_id: int,
    runs_out_at: datetime | None,
    *,
    sent: frozenset[str] = frozenset(),
    **changes: Any,
) -> SupplyRecord:
    supply = Supply(patient_id, "tray", "TRAY-0001", runs_out_at, 28)
    return SupplyRecord(supply=replace(supply, **changes), updated_at=T0, sent=sent)


# -- plans -----------------------------------------------------------------------------------------------


def test_a_plan_round_trips_exactly(backend: Backend) -> None:
    kari, ola = _patients(backend)
    record = _plan(
        kari,
        note="Knuses; gis med syltetøy",
        created_at=(T0 + timedelta(microseconds=7)).astimezone(PLUS_TWO),
    )
    with backend.uow_factory() as uow:
        assert uow.dosett.plans(kari) == []
        added = uow.dosett.add_plan(record)
        uow.commit()
    assert added.id is not None
    assert added == replace(record, id=added.id)
    assert added.created_at.tzinfo is UTC
    with backend.uow_factory() as uow:
        stored = uow.dosett.plans(kari)
        assert uow.dosett.plans(ola) == []
    assert stored == [added]
    plan = stored[0].plan
    assert plan.times == (MORNING, EVENING)
    assert plan.times[0].contents[0].quantity == Decimal("0.5")
    assert str(plan.times[0].contents[1].quantity) == "1.50"
    assert plan.times[0].contents[2].name == "Ødemin «forte» 💊"
    assert plan.times[1].weekdays == frozenset({0, 2, 4})
    assert plan.times[1].at == time(20, 30)
    assert plan.note == "Knuses; gis med syltetøy"
    assert stored[0].created_at == T0 + timedelta(microseconds=7)
    assert stored[0].created_at.tzinfo is UTC


def test_plans_come_by_start_then_id_and_the_current_one_is_the_latest_started(backend: Backend) -> None:
    kari, ola = _patients(backend)
    with backend.uow_factory() as uow:
        later = uow.dosett.add_plan(_plan(kari, MONDAY + 7 * DAY))
        first = uow.dosett.add_plan(_plan(kari, MONDAY))
        same_day = uow.dosett.add_plan(_plan(kari, MONDAY, note="corrected"))
        other = uow.dosett.add_plan(_plan(ola, MONDAY - 30 * DAY))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.plans(kari) == [first, same_day, later]
        assert uow.dosett.plans(ola) == [other]
        assert uow.dosett.plans(999) == []
        # None before the first plan starts.
        assert uow.dosett.current_plan(kari, MONDAY - DAY) is None
        # Same valid_from: the newest id wins.
        assert uow.dosett.current_plan(kari, MONDAY) == same_day
        assert uow.dosett.current_plan(kari, MONDAY + 6 * DAY) == same_day
        # Valid from its first day on.
        assert uow.dosett.current_plan(kari, MONDAY + 7 * DAY) == later
        assert uow.dosett.current_plan(kari, MONDAY + 365 * DAY) == later
        assert uow.dosett.current_plan(ola, MONDAY) == other
        assert uow.dosett.current_plan(999, MONDAY) is None


def test_a_later_added_plan_with_an_earlier_start_is_not_current_after_a_later_start(
    backend: Backend,
) -> None:
    kari, _ = _patients(backend)
    with backend.uow_factory() as uow:
        started = uow.dosett.add_plan(_plan(kari, MONDAY + 2 * DAY))
        backdated = uow.dosett.add_plan(_plan(kari, MONDAY))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.plans(kari) == [backdated, started]
        assert uow.dosett.current_plan(kari, MONDAY + DAY) == backdated
        assert uow.dosett.current_plan(kari, MONDAY + 2 * DAY) == started


def test_a_plan_needs_a_known_patient(backend: Backend) -> None:
    kari, _ = _patients(backend)
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.dosett.add_plan(_plan(999))
        with pytest.raises(ValueError, match="naive"):
            uow.dosett.add_plan(_plan(kari, created_at=T0.replace(tzinfo=None)))
        assert uow.dosett.plans(999) == []
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.plans(kari) == []


# -- fills -----------------------------------------------------------------------------------------------


def test_a_fill_round_trips_exactly(backend: Backend) -> None:
    kari, _ = _patients(backend)
    record = _fill(kari, at=T0 + timedelta(milliseconds=3))
    with backend.uow_factory() as uow:
        assert uow.dosett.current_fill(kari) is None
        added = uow.dosett.add_fill(record)
        uow.commit()
    assert added.id is not None
    assert added == replace(record, id=added.id)
    with backend.uow_factory() as uow:
        stored = uow.dosett.get_fill(added.id)
        assert uow.dosett.get_fill(added.id + 1000) is None
    assert stored == added
    assert stored is not None
    assert len(stored.fill.pots) == 28
    assert stored.fill.pots == record.fill.pots
    assert stored.fill.filled_at == T0 + timedelta(milliseconds=3)
    assert stored.fill.last_due == record.fill.last_due
    times = [stored.fill.filled_at, *(pot.due for pot in stored.fill.pots)]
    assert all(moment.tzinfo is UTC for moment in times)


def test_fill_times_in_another_utc_zone_come_back_in_utc(backend: Backend) -> None:
    kari, _ = _patients(backend)
    zone = ZoneInfo("UTC")
    pots = (
        PotFill(1, (T0 + timedelta(hours=1, milliseconds=5)).astimezone(zone), "s-20261123-0900", "Morgen"),
        PotFill(3, (T0 + timedelta(hours=13)).astimezone(zone), "s-20261123-2100", "Kveld, før søvn"),
    )
    fill = TrayFill("TRAY-0002", kari, "operator:åse", T0.astimezone(zone), pots)
    with backend.uow_factory() as uow:
        added = uow.dosett.add_fill(FillRecord(fill))
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.dosett.get_fill(added.id or 0)
    assert stored == added
    assert stored is not None
    assert stored.fill == fill
    assert stored.fill.filled_by == "operator:åse"
    assert stored.fill.pots[0].due == T0 + timedelta(hours=1, milliseconds=5)
    times = [stored.fill.filled_at, *(pot.due for pot in stored.fill.pots)]
    assert all(moment.tzinfo is UTC for moment in times)


def test_the_current_fill_is_the_patients_latest_and_a_tray_belongs_to_its_latest_fill(
    backend: Backend,
) -> None:
    kari, ola = _patients(backend)
    with backend.uow_factory() as uow:
        late = uow.dosett.add_fill(_fill(kari, "TRAY-0001", at=T0 + 7 * DAY, first_day=MONDAY + 7 * DAY))
        early = uow.dosett.add_fill(_fill(kari, "TRAY-0002", at=T0))
        same_time = uow.dosett.add_fill(_fill(kari, "TRAY-0003", at=T0 + 7 * DAY, first_day=MONDAY + 7 * DAY))
        uow.commit()
    with backend.uow_factory() as uow:
        # Latest filled_at; ties: the newest id.
        assert uow.dosett.current_fill(kari) == same_time
        assert uow.dosett.current_fill(ola) is None
        assert uow.dosett.current_fill(999) is None
        assert uow.dosett.latest_fill_of_tray("TRAY-0001") == late
        assert uow.dosett.latest_fill_of_tray("TRAY-0002") == early
        assert uow.dosett.latest_fill_of_tray("TRAY-0099") is None

    # Another patient's later fill of the same tray wins the tray; each patient keeps their own current fill.
    with backend.uow_factory() as uow:
        reused = uow.dosett.add_fill(_fill(ola, "TRAY-0001", at=T0 + 8 * DAY, first_day=MONDAY + 8 * DAY))
        older = uow.dosett.add_fill(_fill(kari, "TRAY-0001", at=T0 + 7 * DAY - timedelta(seconds=1)))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.latest_fill_of_tray("TRAY-0001") == reused
        assert uow.dosett.current_fill(ola) == reused
        assert uow.dosett.current_fill(kari) == same_time
        assert uow.dosett.get_fill(older.id or 0) == older


def test_a_fill_needs_a_known_patient(backend: Backend) -> None:
    kari, _ = _patients(backend)
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.dosett.add_fill(_fill(999))
        assert uow.dosett.current_fill(999) is None
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.current_fill(kari) is None
        assert uow.dosett.latest_fill_of_tray("TRAY-0001") is None


# -- opened pots -----------------------------------------------------------------------------------------


def test_a_pot_is_opened_once_per_fill(backend: Backend) -> None:
    kari, _ = _patients(backend)
    with backend.uow_factory() as uow:
        first = uow.dosett.add_fill(_fill(kari))
        second = uow.dosett.add_fill(_fill(kari, "TRAY-0002"))
        uow.commit()
    first_id, second_id = first.id or 0, second.id or 0
    with backend.uow_factory() as uow:
        assert uow.dosett.opened(first_id) == frozenset()
        assert uow.dosett.mark_opened(first_id, 1, T0) is True
        assert uow.dosett.mark_opened(first_id, 1, T0 + DAY) is False
        assert uow.dosett.mark_opened(first_id, 2, (T0 + timedelta(hours=12)).astimezone(PLUS_TWO)) is True
        assert uow.dosett.mark_opened(second_id, 1, T0) is True
        assert uow.dosett.opened(first_id) == frozenset({1, 2})
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.opened(first_id) == frozenset({1, 2})
        assert uow.dosett.opened(second_id) == frozenset({1})
        assert uow.dosett.opened(999) == frozenset()
        # A second mark in a later transaction is still a repeat, and the unit of work stays usable.
        assert uow.dosett.mark_opened(first_id, 2, T0 + DAY) is False
        assert uow.dosett.mark_opened(second_id, 28, T0 + DAY) is True
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.opened(second_id) == frozenset({1, 28})


def test_opening_a_pot_needs_a_known_fill_and_an_aware_time(backend: Backend) -> None:
    kari, _ = _patients(backend)
    with backend.uow_factory() as uow:
        fill_id = uow.dosett.add_fill(_fill(kari)).id or 0
        uow.commit()
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=rf"^tray fill {fill_id + 1000} does not exist$"):
            uow.dosett.mark_opened(fill_id + 1000, 1, T0)
        with pytest.raises(ValueError, match="naive"):
            uow.dosett.mark_opened(fill_id, 1, T0.replace(tzinfo=None))
        assert uow.dosett.opened(fill_id) == frozenset()
        assert uow.dosett.mark_opened(fill_id, 1, T0) is True
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.opened(fill_id) == frozenset({1})
        assert uow.dosett.opened(fill_id + 1000) == frozenset()


# -- supplies --------------------------------------------------------------------------------------------


def test_a_supply_round_trips_and_is_replaced_whole(backend: Backend) -> None:
    kari, ola = _patients(backend)
    record = _supply(kari, (T0 + 3 * DAY + timedelta(microseconds=11)).astimezone(PLUS_TWO))
    with backend.uow_factory() as uow:
        assert uow.supplies.supply(kari) is None
        returned = uow.supplies.put_supply(record)
        uow.commit()
    assert returned == record
    assert returned.supply.runs_out_at is not None
    assert returned.supply.runs_out_at.tzinfo is UTC
    with backend.uow_factory() as uow:
        stored = uow.supplies.supply(kari)
        assert uow.supplies.supply(ola) is None
    assert stored == record
    assert stored is not None
    assert stored.sent == frozenset()
    assert stored.supply.runs_out_at == T0 + 3 * DAY + timedelta(microseconds=11)
    assert stored.supply.runs_out_at is not None
    assert stored.supply.runs_out_at.tzinfo is UTC
    assert stored.updated_at.tzinfo is UTC

    sent = frozenset({f"refill:{kari}:R-1:0", f"refill:{kari}:R-1:1", "refill:ærlig:💊"})
    replaced = SupplyRecord(
        Supply(kari, "roll", "R-1", None, None), updated_at=(T0 + DAY).astimezone(PLUS_TWO), sent=sent
    )
    with backend.uow_factory() as uow:
        assert uow.supplies.put_supply(replaced) == replaced
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.supplies.supply(kari)
        assert uow.supplies.supply(ola) is None
    assert stored == replaced
    assert stored is not None
    assert stored.sent == sent
    assert isinstance(stored.sent, frozenset)
    assert stored.supply.runs_out_at is None
    assert stored.supply.doses_left is None
    assert stored.supply.source == "roll"
    assert stored.updated_at == T0 + DAY
    assert stored.updated_at.tzinfo is UTC


def test_supplies_running_out_before_a_time_come_by_their_end_then_patient(backend: Backend) -> None:
    kari, ola = _patients(backend)
    with backend.uow_factory() as uow:
        third = uow.patients.add(patient(3)).id or 0
        fourth = uow.patients.add(patient(4)).id or 0
        uow.supplies.put_supply(_supply(fourth, T0 + 2 * DAY))
        uow.supplies.put_supply(_supply(ola, T0 + DAY, sent=frozenset({"refill:x:0"})))
        uow.supplies.put_supply(_supply(kari, T0 + 2 * DAY))
        uow.supplies.put_supply(_supply(third, None))
        uow.commit()
    with backend.uow_factory() as uow:
        everyone = uow.supplies.running_out(T0 + 30 * DAY)
        assert [record.supply.patient_id for record in everyone] == [ola, kari, fourth]
        assert everyone[0] == _supply(ola, T0 + DAY, sent=frozenset({"refill:x:0"}))
        # Strictly before: a supply running out exactly then is not included.
        assert [r.supply.patient_id for r in uow.supplies.running_out(T0 + 2 * DAY)] == [ola]
        just_after = (T0 + 2 * DAY + timedelta(microseconds=1)).astimezone(PLUS_TWO)
        assert [r.supply.patient_id for r in uow.supplies.running_out(just_after)] == [ola, kari, fourth]
        assert uow.supplies.running_out(T0 + DAY) == []
        with pytest.raises(ValueError, match="naive"):
            uow.supplies.running_out(T0.replace(tzinfo=None))

    # Replacing a record moves it (or takes it out of the list when its end becomes unknown).
    with backend.uow_factory() as uow:
        uow.supplies.put_supply(_supply(ola, None))
        uow.supplies.put_supply(_supply(fourth, T0 + DAY))
        uow.commit()
    with backend.uow_factory() as uow:
        found = uow.supplies.running_out(T0 + 30 * DAY)
    assert [record.supply.patient_id for record in found] == [fourth, kari]


def test_a_supply_needs_a_known_patient(backend: Backend) -> None:
    kari, _ = _patients(backend)
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.supplies.put_supply(_supply(999, T0))
        with pytest.raises(ValueError, match="naive"):
            uow.supplies.put_supply(replace(_supply(kari, T0), updated_at=T0.replace(tzinfo=None)))
        assert uow.supplies.supply(999) is None
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.supplies.supply(kari) is None
        assert uow.supplies.running_out(T0 + 30 * DAY) == []


# -- transactions ----------------------------------------------------------------------------------------


def test_nothing_is_kept_without_a_commit(backend: Backend) -> None:
    kari, _ = _patients(backend)
    with backend.uow_factory() as uow:
        fill = uow.dosett.add_fill(_fill(kari))
        uow.commit()
    fill_id = fill.id or 0
    with backend.uow_factory() as uow:
        plan = uow.dosett.add_plan(_plan(kari))
        other = uow.dosett.add_fill(_fill(kari, "TRAY-0002", at=T0 + DAY))
        assert uow.dosett.mark_opened(fill_id, 1, T0) is True
        uow.supplies.put_supply(_supply(kari, T0 + DAY))
        assert uow.dosett.plans(kari) == [plan]
        assert uow.dosett.current_fill(kari) == other
        assert uow.supplies.running_out(T0 + 2 * DAY) == [_supply(kari, T0 + DAY)]
    with backend.uow_factory() as uow:
        assert uow.dosett.plans(kari) == []
        assert uow.dosett.current_plan(kari, MONDAY) is None
        assert uow.dosett.current_fill(kari) == fill
        assert uow.dosett.get_fill(other.id or 0) is None
        assert uow.dosett.opened(fill_id) == frozenset()
        assert uow.supplies.supply(kari) is None
        assert uow.supplies.running_out(T0 + 2 * DAY) == []

    with backend.uow_factory() as uow:
        uow.dosett.add_plan(_plan(kari))
        uow.dosett.mark_opened(fill_id, 1, T0)
        uow.rollback()
        assert uow.dosett.plans(kari) == []
        assert uow.dosett.opened(fill_id) == frozenset()
        assert uow.dosett.mark_opened(fill_id, 2, T0) is True
        uow.supplies.put_supply(_supply(kari, None))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dosett.plans(kari) == []
        assert uow.dosett.opened(fill_id) == frozenset({2})
        assert uow.supplies.supply(kari) == _supply(kari, None)
