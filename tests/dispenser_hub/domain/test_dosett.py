"""Dose-pot dispensers: dosett plans, tray fills, and the tray and pot checks (``domain.dosett``)."""

from __future__ import annotations

import dataclasses
import itertools
import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.dosett import (
    MAX_DOSES_PER_DAY,
    DosettPlan,
    PlanError,
    PlanTime,
    PotDecision,
    PotFill,
    PotRefusal,
    TrayDecision,
    TrayFill,
    TrayRefusal,
    fill_tray,
    judge_pot_opened,
    judge_tray_loaded,
    pot_doses,
)
from dispenser_hub.domain.pouches import REF_PATTERN, WRONG_ROLL, DrugLine, ManifestError
from dispenser_hub.domain.schedules import slot_id_for
from dispenser_hub.domain.wallclock import OSLO, oslo_instant

if TYPE_CHECKING:
    from collections.abc import Callable

DRUG = (DrugLine("Paracetamol", "500 mg", Decimal(1)),)
EVERY_DAY = frozenset(range(7))
FOUR_TIMES = DosettPlan(
    tuple(
        PlanTime(time(hour), EVERY_DAY, label, DRUG)
        for hour, label in ((8, "morning"), (13, "midday"), (18, "evening"), (22, "night"))
    ),
    valid_from=date(2026, 1, 1),
)
FILLED_AT = datetime(2026, 5, 31, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
T0D = date(2026, 1, 1)
HOUR = timedelta(hours=1)
WINDOW = {"opens_early": timedelta(minutes=30), "closes_after": timedelta(hours=2)}


def plan_time(at: time, weekdays: frozenset[int] = EVERY_DAY, label: str = "dose") -> PlanTime:
    return PlanTime(at, weekdays, label, DRUG)


def fill(
    plan: DosettPlan = FOUR_TIMES,
    *,
    tray_id: str = "T-1",
    patient_id: int = 1,
    first_day: date = date(2026, 6, 1),
    pot_count: int = 28,
) -> TrayFill:
    return fill_tray(
        plan,
        tray_id=tray_id,
        patient_id=patient_id,
        first_day=first_day,
        pot_count=pot_count,
        filled_by="nurse on duty",
        filled_at=FILLED_AT,
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- plan rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: plan_time(time(8, tzinfo=UTC)), "at"),
        (lambda: plan_time(time(8, 0, 30)), "at"),
        (lambda: plan_time(time(8, 0, 0, 1000)), "at"),
        (lambda: plan_time(time(8), frozenset()), "weekdays"),
        (lambda: plan_time(time(8), frozenset({0, 7})), "weekdays"),
        (lambda: plan_time(time(8), frozenset({-1})), "weekdays"),
        (lambda: plan_time(time(8), label="  "), "label"),
        (lambda: PlanTime(time(8), EVERY_DAY, "morning", ()), "contents"),
        (
            lambda: PlanTime(
                time(8), EVERY_DAY, "m", (*DRUG, DrugLine("Oxycodone", "5 mg", Decimal(1), as_needed=True))
            ),
            "contents[1].as_needed",
        ),
    ],
)
def test_a_bad_plan_time_is_refused_naming_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(PlanError) as caught:
        build()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ManifestError)


def test_a_plan_needs_a_time() -> None:
    with pytest.raises(PlanError) as caught:
        DosettPlan((), date(2026, 1, 1))
    assert caught.value.field == "times"


def test_a_plan_lists_times_in_order_per_weekday() -> None:
    times = (plan_time(time(8)), plan_time(time(13)), plan_time(time(12)))
    with pytest.raises(PlanError, match=r"before times\[1\]") as caught:
        DosettPlan(times, date(2026, 1, 1))
    assert caught.value.field == "times[2].at"


def test_a_plan_has_one_dose_per_minute_per_weekday() -> None:
    times = (plan_time(time(8), frozenset({0, 1})), plan_time(time(8), frozenset({1, 2})))
    with pytest.raises(PlanError, match=r"same as times\[0\].*Tuesday") as caught:
        DosettPlan(times, date(2026, 1, 1))
    assert caught.value.field == "times[1].at"


def test_the_same_minute_and_any_order_on_different_weekdays_is_allowed() -> None:
    monday, tuesday, both = frozenset({0}), frozenset({1}), frozenset({0, 1})
    with pytest.raises(PlanError) as caught:  # 08:00 after 20:00 on Monday
        DosettPlan((plan_time(time(20), monday), plan_time(time(8), tuesday), plan_time(time(8), both)), T0D)
    assert caught.value.field == "times[2].at"
    ok = (plan_time(time(20), monday), plan_time(time(8), tuesday), plan_time(time(20), tuesday))
    assert [(d, t.at) for d, t in DosettPlan(ok, T0D).doses_on(date(2026, 6, 2))] == [
        (utc(2026, 6, 2, 6, 0), time(8)),
        (utc(2026, 6, 2, 18, 0), time(20)),
    ]


def test_a_plan_gives_at_most_eight_doses_a_day() -> None:
    times = tuple(plan_time(time(6 + n)) for n in range(MAX_DOSES_PER_DAY))
    assert DosettPlan(times, date(2026, 1, 1)).times
    nine = (*times, plan_time(time(23), frozenset({4})))
    with pytest.raises(PlanError, match="Friday") as caught:
        DosettPlan(nine, date(2026, 1, 1))
    assert caught.value.field == "times[8].weekdays"
    other_days = (*times[:-1], plan_time(time(23), frozenset({4})))
    assert DosettPlan(other_days, date(2026, 1, 1)).times


def test_a_note_is_not_blank() -> None:
    with pytest.raises(PlanError) as caught:
        DosettPlan(FOUR_TIMES.times, date(2026, 1, 1), note=" ")
    assert caught.value.field == "note"
    assert DosettPlan(FOUR_TIMES.times, date(2026, 1, 1), note="crush tablets").note == "crush tablets"


def test_doses_on_a_day_follow_its_weekday_in_utc_and_none_before_valid_from() -> None:
    plan = DosettPlan(
        (plan_time(time(8), frozenset({0, 2}), "morning"), plan_time(time(21, 15), frozenset({0}), "night")),
        valid_from=date(2026, 6, 1),
    )
    monday, tuesday, wednesday = date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)
    assert [(due, t.label) for due, t in plan.doses_on(monday)] == [
        (utc(2026, 6, 1, 6, 0), "morning"),
        (utc(2026, 6, 1, 19, 15), "night"),
    ]
    assert plan.doses_on(tuesday) == []
    assert [due for due, _ in plan.doses_on(wednesday)] == [utc(2026, 6, 3, 6, 0)]
    assert plan.doses_on(date(2026, 5, 25)) == []  # a Monday before valid_from


# --- DST -------------------------------------------------------------------------------------------------

DST_PLAN = DosettPlan(
    (plan_time(time(2, 30), label="night"), plan_time(time(8), label="morning")), date(2026, 1, 1)
)


@pytest.mark.parametrize(
    ("first_day", "expected"),
    [
        (
            date(2026, 3, 28),  # spring forward on Sunday 29 March: 02:30 does not exist, given at 03:30 CEST
            [
                (utc(2026, 3, 28, 1, 30), "s-20260328-0230"),
                (utc(2026, 3, 28, 7, 0), "s-20260328-0800"),
                (utc(2026, 3, 29, 1, 30), "s-20260329-0330"),
                (utc(2026, 3, 29, 6, 0), "s-20260329-0800"),
                (utc(2026, 3, 30, 0, 30), "s-20260330-0230"),
                (utc(2026, 3, 30, 6, 0), "s-20260330-0800"),
            ],
        ),
        (
            date(2026, 10, 24),  # fall back on Sunday 25 October: 02:30 exists twice, given once (CEST)
            [
                (utc(2026, 10, 24, 0, 30), "s-20261024-0230"),
                (utc(2026, 10, 24, 6, 0), "s-20261024-0800"),
                (utc(2026, 10, 25, 0, 30), "s-20261025-0230"),
                (utc(2026, 10, 25, 7, 0), "s-20261025-0800"),
                (utc(2026, 10, 26, 1, 30), "s-20261026-0230"),
                (utc(2026, 10, 26, 7, 0), "s-20261026-0800"),
            ],
        ),
    ],
)
def test_a_dst_change_neither_skips_nor_repeats_a_pot(
    first_day: date, expected: list[tuple[datetime, str]]
) -> None:
    tray = fill(DST_PLAN, first_day=first_day, pot_count=6)
    assert [(pot.due, pot.slot_id) for pot in tray.pots] == expected
    assert [pot.label for pot in tray.pots] == ["night", "morning"] * 3
    assert [pot.pot for pot in tray.pots] == [1, 2, 3, 4, 5, 6]


def test_a_time_moved_out_of_the_spring_gap_onto_another_is_given_a_minute_later() -> None:
    plan = DosettPlan(
        (plan_time(time(2, 30), label="a"), plan_time(time(3, 30), label="b")), date(2026, 1, 1)
    )
    doses = plan.doses_on(date(2026, 3, 29))
    assert [(due, t.label) for due, t in doses] == [
        (utc(2026, 3, 29, 1, 30), "a"),
        (utc(2026, 3, 29, 1, 31), "b"),
    ]
    tray = fill(plan, first_day=date(2026, 3, 29), pot_count=2)
    assert [pot.slot_id for pot in tray.pots] == ["s-20260329-0330", "s-20260329-0331"]


def test_a_time_moved_out_of_the_gap_may_pass_a_later_plan_time() -> None:
    plan = DosettPlan(
        (plan_time(time(2, 45), label="a"), plan_time(time(3, 15), label="b")), date(2026, 1, 1)
    )
    doses = plan.doses_on(date(2026, 3, 29))
    assert [(due, t.label) for due, t in doses] == [
        (utc(2026, 3, 29, 1, 15), "b"),
        (utc(2026, 3, 29, 1, 45), "a"),
    ]


# --- filling a tray --------------------------------------------------------------------------------------


def test_a_tray_is_filled_with_pot_count_pots_in_due_order_from_the_first_days_first_time() -> None:
    tray = fill()
    assert len(tray.pots) == 28
    assert [pot.pot for pot in tray.pots] == list(range(1, 29))
    assert tray.pots[0] == PotFill(1, utc(2026, 6, 1, 6, 0), "s-20260601-0800", "morning")
    assert tray.pots[3] == PotFill(4, utc(2026, 6, 1, 20, 0), "s-20260601-2200", "night")
    assert tray.last_due == utc(2026, 6, 7, 20, 0)
    assert tray.pots[-1].slot_id == "s-20260607-2200"
    assert (tray.tray_id, tray.patient_id, tray.filled_by, tray.filled_at) == (
        "T-1",
        1,
        "nurse on duty",
        FILLED_AT,
    )


def test_a_tray_can_end_mid_day_and_skip_weekdays_without_doses() -> None:
    plan = DosettPlan(
        (plan_time(time(9), frozenset({0, 3}), "a"), plan_time(time(19), frozenset({3}), "b")),
        date(2026, 1, 1),
    )
    tray = fill(plan, first_day=date(2026, 6, 2), pot_count=4)  # a Tuesday
    assert [pot.slot_id for pot in tray.pots] == [
        "s-20260604-0900",
        "s-20260604-1900",
        "s-20260608-0900",
        "s-20260611-0900",
    ]
    assert len(fill(pot_count=1).pots) == 1
    assert len(fill(pot_count=64).pots) == 64


@pytest.mark.parametrize("pot_count", [0, -1, 65])
def test_pot_count_is_1_to_64(pot_count: int) -> None:
    with pytest.raises(PlanError) as caught:
        fill(pot_count=pot_count)
    assert caught.value.field == "pot_count"


def test_a_tray_is_not_filled_from_before_the_plan_is_valid() -> None:
    with pytest.raises(PlanError) as caught:
        fill(first_day=date(2025, 12, 31))
    assert caught.value.field == "first_day"


def test_a_plan_without_doses_fills_no_tray() -> None:
    never = plan_time(time(8))
    object.__setattr__(never, "weekdays", frozenset())  # only by bypassing the validation
    with pytest.raises(PlanError) as caught:
        fill(DosettPlan((never,), date(2026, 1, 1)))
    assert caught.value.field == "times"


def test_slot_ids_are_oslo_local_due_times_and_protocol_refs() -> None:
    assert slot_id_for(utc(2026, 1, 15, 7, 5)) == "s-20260115-0805"
    assert slot_id_for(utc(2026, 7, 15, 22, 30)) == "s-20260716-0030"
    assert all(re.fullmatch(REF_PATTERN, pot.slot_id) for pot in fill(pot_count=64).pots)


# --- fill validation -------------------------------------------------------------------------------------


def pots_of(*specs: tuple[int, datetime, str]) -> tuple[PotFill, ...]:
    return tuple(PotFill(pot, due, slot, "dose") for pot, due, slot in specs)


T = utc(2026, 6, 1, 6, 0)


@pytest.mark.parametrize(
    ("pots", "field"),
    [
        ((), "pots"),
        (pots_of((1, T, "s-a"), (1, T + HOUR, "s-b")), "pots[1].pot"),
        (pots_of((1, T, "s-a"), (2, T + HOUR, "s-a")), "pots[1].slot_id"),
        (pots_of((1, T, "s-a"), (2, T, "s-b")), "pots[1].due"),
        (pots_of((2, T, "s-a"), (1, T - HOUR, "s-b")), "pots[1].due"),
        (pots_of(*((min(n, 64), T + n * HOUR, f"s-{n}") for n in range(1, 66))), "pots"),
    ],
)
def test_a_bad_fill_is_refused_naming_the_field(pots: tuple[PotFill, ...], field: str) -> None:
    with pytest.raises(PlanError) as caught:
        TrayFill("T-1", 1, "nurse", FILLED_AT, pots)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: PotFill(0, T, "s-a", "dose"), "pot"),
        (lambda: PotFill(65, T, "s-a", "dose"), "pot"),
        (lambda: PotFill(1, T.replace(tzinfo=None), "s-a", "dose"), "due"),
        (lambda: PotFill(1, T.astimezone(timezone(HOUR)), "s-a", "dose"), "due"),
        (lambda: PotFill(1, T + timedelta(microseconds=1), "s-a", "dose"), "due"),
        (lambda: PotFill(1, T, "s a", "dose"), "slot_id"),
        (lambda: PotFill(1, T, "s-a", ""), "label"),
        (lambda: TrayFill("-T", 1, "nurse", FILLED_AT, pots_of((1, T, "s-a"))), "tray_id"),
        (lambda: TrayFill("T-1", 1, " ", FILLED_AT, pots_of((1, T, "s-a"))), "filled_by"),
        (
            lambda: TrayFill("T-1", 1, "nurse", FILLED_AT.replace(tzinfo=None), pots_of((1, T, "s-a"))),
            "filled_at",
        ),
    ],
)
def test_bad_pot_and_fill_fields_are_refused_naming_the_field(
    build: Callable[[], object], field: str
) -> None:
    with pytest.raises(PlanError) as caught:
        build()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_doses_left_pot_lookup_and_the_schedule_of_unopened_pots() -> None:
    tray = fill(pot_count=6)
    assert tray.doses_left(set()) == 6
    assert tray.doses_left({1, 2, 40}) == 4
    assert tray.pot(3) == tray.pots[2]
    assert tray.pot(7) is None
    assert pot_doses(tray, {1, 3}) == [
        ("s-20260601-1300", utc(2026, 6, 1, 11, 0), 2),
        ("s-20260601-2200", utc(2026, 6, 1, 20, 0), 4),
        ("s-20260602-0800", utc(2026, 6, 2, 6, 0), 5),
        ("s-20260602-1300", utc(2026, 6, 2, 11, 0), 6),
    ]
    assert pot_doses(tray, set(range(1, 7))) == []


# --- the tray check --------------------------------------------------------------------------------------

NOW = utc(2026, 6, 1, 5, 0)


def load(tray: TrayFill | None, /, **changes: object) -> TrayDecision:
    facts: dict[str, object] = {"bound_patient_id": 1, "tray_id": "T-1", "pots_filled": 28, "now": NOW}
    facts.update(changes)
    return judge_tray_loaded(tray, **facts)  # type: ignore[arg-type]


def test_the_patients_own_tray_is_accepted() -> None:
    decision = load(fill())
    assert decision.accept
    assert (decision.reason, decision.alarm_kind, decision.vkp_code) == (None, None, None)
    assert "T-1" in decision.detail


@pytest.mark.parametrize(
    ("tray", "changes", "reason"),
    [
        (fill(), {"bound_patient_id": None}, TrayRefusal.NOT_BOUND),
        (None, {}, TrayRefusal.NO_FILL),
        (fill(patient_id=2), {}, TrayRefusal.WRONG_PATIENT),
        (fill(tray_id="T-2"), {}, TrayRefusal.WRONG_TRAY),
        (fill(), {"pots_filled": 27}, TrayRefusal.POT_COUNT),
        (fill(), {"pots_filled": 29}, TrayRefusal.POT_COUNT),
        (fill(), {"now": utc(2026, 6, 7, 20, 0) + timedelta(milliseconds=1)}, TrayRefusal.STALE),
        (fill(patient_id=2, tray_id="T-2"), {"bound_patient_id": None}, TrayRefusal.NOT_BOUND),
        (fill(patient_id=2, tray_id="T-2"), {}, TrayRefusal.WRONG_PATIENT),
    ],
)
def test_a_tray_that_breaks_a_rule_is_refused(
    tray: TrayFill | None, changes: dict[str, object], reason: str
) -> None:
    decision = load(tray, **changes)
    assert not decision.accept
    assert decision.reason == reason
    if reason == TrayRefusal.NOT_BOUND:
        assert decision.alarm_kind is None
    else:
        assert (decision.alarm_kind, decision.vkp_code) == (WRONG_ROLL, "3.5")
    assert "nurse" not in decision.detail
    assert not re.search(r"patient \d", decision.detail)


def test_a_tray_is_accepted_until_its_last_dose_is_past() -> None:
    assert load(fill(), now=utc(2026, 6, 7, 20, 0)).accept


def test_the_tray_check_needs_an_aware_now() -> None:
    with pytest.raises(PlanError):
        load(fill(), now=NOW.replace(tzinfo=None))


def test_a_detail_longer_than_the_protocol_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        TrayDecision(detail="x" * 201, reason=TrayRefusal.STALE)
    with pytest.raises(ValueError, match="at most"):
        PotDecision(detail="x" * 201, reason=None)


# --- the pot check ---------------------------------------------------------------------------------------

TRAY = fill(pot_count=8)
POT_3_DUE = utc(2026, 6, 1, 16, 0)


def opened(tray: TrayFill | None = TRAY, /, **changes: object) -> PotDecision:
    facts: dict[str, object] = {
        "tray_id": "T-1",
        "pot": 3,
        "slot_id": "s-20260601-1800",
        "opened_at": POT_3_DUE,
        "opened_before": frozenset({1, 2}),
        **WINDOW,
    }
    facts.update(changes)
    return judge_pot_opened(tray, **facts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"slot_id": None},
        {"opened_at": POT_3_DUE - timedelta(minutes=30)},
        {"opened_at": POT_3_DUE + timedelta(hours=2)},
        {"opened_before": frozenset()},
    ],
)
def test_the_due_pot_opened_in_its_window_is_ok(changes: dict[str, object]) -> None:
    decision = opened(**changes)
    assert decision.ok
    assert decision.mark_opened
    assert (decision.reason, decision.alarm_kind, decision.vkp_code) == (None, None, None)


@pytest.mark.parametrize(
    ("tray", "changes", "reason", "alarm", "mark"),
    [
        (None, {}, PotRefusal.WRONG_TRAY, WRONG_ROLL, False),
        (TRAY, {"tray_id": "T-9"}, PotRefusal.WRONG_TRAY, WRONG_ROLL, False),
        (TRAY, {"pot": 9}, PotRefusal.UNKNOWN_POT, WRONG_ROLL, False),
        (TRAY, {"opened_before": frozenset({3})}, PotRefusal.OPENED_TWICE, None, False),
        (TRAY, {"slot_id": "s-20260601-1300"}, PotRefusal.WRONG_SLOT, WRONG_ROLL, True),
        (
            TRAY,
            {"opened_at": POT_3_DUE - timedelta(minutes=30, milliseconds=1)},
            PotRefusal.OPENED_EARLY,
            None,
            True,
        ),
        (
            TRAY,
            {"opened_at": POT_3_DUE + timedelta(hours=2, milliseconds=1)},
            PotRefusal.OPENED_LATE,
            None,
            True,
        ),
        (TRAY, {"pot": 9, "opened_before": frozenset({9})}, PotRefusal.UNKNOWN_POT, WRONG_ROLL, False),
        (TRAY, {"opened_before": frozenset({3}), "slot_id": "x"}, PotRefusal.OPENED_TWICE, None, False),
        (TRAY, {"slot_id": "x", "opened_at": POT_3_DUE + 9 * HOUR}, PotRefusal.WRONG_SLOT, WRONG_ROLL, True),
    ],
)
def test_a_pot_opening_that_breaks_a_rule_is_reported(
    tray: TrayFill | None, changes: dict[str, object], reason: str, alarm: str | None, mark: bool
) -> None:
    decision = opened(tray, **changes)
    assert not decision.ok
    assert (decision.reason, decision.alarm_kind, decision.mark_opened) == (reason, alarm, mark)
    assert decision.vkp_code == ("3.5" if alarm else None)
    assert "Pot" in decision.detail


def test_the_pot_window_must_be_sane_and_opened_at_aware() -> None:
    with pytest.raises(PlanError):
        opened(opens_early=-MINUTE)
    with pytest.raises(PlanError):
        opened(closes_after=timedelta(0))
    with pytest.raises(PlanError):
        opened(opened_at=POT_3_DUE.replace(tzinfo=None))


# --- properties ------------------------------------------------------------------------------------------

SETTINGS = settings(max_examples=150, deadline=None)


MINUTES = st.integers(0, 24 * 60 - 1) | st.integers(2 * 60, 4 * 60 - 1) | st.sampled_from((150, 210))
"""Minutes of the day, often in and next to the spring-forward gap and the repeated autumn hour."""
DAYS_BEFORE_DST = st.dates(date(2026, 3, 23), date(2026, 3, 29)) | st.dates(
    date(2026, 10, 19), date(2026, 10, 25)
)


@st.composite
def plans(draw: st.DrawFn) -> DosettPlan:
    minutes = draw(st.lists(MINUTES, min_size=1, max_size=MAX_DOSES_PER_DAY, unique=True))
    times = tuple(
        plan_time(
            time(minute // 60, minute % 60),
            draw(st.frozensets(st.integers(0, 6), min_size=1)),
        )
        for minute in sorted(minutes)
    )
    return DosettPlan(times, date(2026, 1, 1))


@SETTINGS
@given(
    plan=plans(),
    first_day=st.dates(date(2026, 3, 15), date(2026, 11, 5)) | DAYS_BEFORE_DST,
    pot_count=st.integers(1, 64),
)
def test_fill_tray_always_yields_pot_count_pots_increasing_unique_and_complete(
    plan: DosettPlan, first_day: date, pot_count: int
) -> None:
    tray = fill(plan, first_day=first_day, pot_count=pot_count)
    assert [pot.pot for pot in tray.pots] == list(range(1, pot_count + 1))
    dues = [pot.due for pot in tray.pots]
    assert all(a < b for a, b in itertools.pairwise(dues))
    assert len({pot.slot_id for pot in tray.pots}) == pot_count
    assert all(re.fullmatch(REF_PATTERN, pot.slot_id) for pot in tray.pots)
    assert all(pot.slot_id == slot_id_for(pot.due) for pot in tray.pots)
    # every plan time of every day is one pot, from the first day's first time: none skipped or repeated
    day, expected = first_day, list[datetime]()
    while len(expected) < pot_count:
        expected += [due for due, _ in plan.doses_on(day)]
        day += timedelta(days=1)
    assert dues == expected[:pot_count]
    for due, pot in zip(dues, tray.pots, strict=True):
        local = due.astimezone(OSLO)
        assert pot.slot_id == f"s-{local:%Y%m%d-%H%M}"
        planned = [t.at for t in plan.times if local.weekday() in t.weekdays]
        assert any(abs(due - oslo_instant(local.date(), at)) <= 8 * MINUTE for at in planned)


@dataclasses.dataclass
class Hub:
    """A hub reduced to bindings and tray fills; asserts on every accepted tray whose tray it is."""

    now: datetime = NOW
    bound: int | None = None
    tray_fills: dict[str, TrayFill] = dataclasses.field(default_factory=dict)
    """The latest fill of each tray: what is physically in it."""
    patient_fills: dict[int, TrayFill] = dataclasses.field(default_factory=dict)
    """Each patient's current fill; ended when its tray is refilled for another patient."""
    accepted: int = 0

    def step(self, op: tuple[object, ...]) -> None:
        if op[0] == "bind":
            self.bound = cast("int | None", op[1])
        elif op[0] == "time":
            self.now += cast("int", op[1]) * HOUR
        elif op[0] == "fill":
            patient, tray_id, offset, count = cast("tuple[int, str, int, int]", op[1:])
            first_day = self.now.date() + timedelta(days=offset)
            new = fill(patient_id=patient, tray_id=tray_id, first_day=first_day, pot_count=count)
            old = self.tray_fills.get(tray_id)
            if old is not None and self.patient_fills.get(old.patient_id) is old:
                del self.patient_fills[old.patient_id]
            self.tray_fills[tray_id] = self.patient_fills[patient] = new
        else:
            self.load(*cast("tuple[str, int, bool]", op[1:]))

    def load(self, tray_id: str, count_error: int, by_tray: bool) -> None:
        """Load ``tray_id``; the service looks the fill up by tray or by the bound patient."""
        if by_tray:
            current = self.tray_fills.get(tray_id)
        else:
            current = None if self.bound is None else self.patient_fills.get(self.bound)
        in_tray = self.tray_fills.get(tray_id)
        pots = (0 if in_tray is None else len(in_tray.pots)) + count_error
        decision = judge_tray_loaded(
            current, bound_patient_id=self.bound, tray_id=tray_id, pots_filled=pots, now=self.now
        )
        if decision.accept:
            self.accepted += 1
            assert self.bound is not None
            assert in_tray is not None
            assert in_tray.patient_id == self.bound
            assert current is in_tray


PATIENT_IDS = st.sampled_from((1, 2, 3))
TRAY_IDS = st.sampled_from(("T-1", "T-2", "T-3"))
OPS = st.one_of(
    st.tuples(st.just("bind"), st.none() | PATIENT_IDS),
    st.tuples(st.just("time"), st.integers(0, 72)),
    st.tuples(st.just("fill"), PATIENT_IDS, TRAY_IDS, st.integers(-8, 2), st.integers(1, 28)),
    st.tuples(st.just("load"), TRAY_IDS, st.sampled_from((0, 0, 0, -1, 1)), st.booleans()),
)


@SETTINGS
@given(ops=st.lists(OPS, max_size=40))
def test_a_tray_is_never_accepted_for_a_patient_other_than_its_fills(ops: list[tuple[object, ...]]) -> None:
    hub = Hub()
    for op in ops:
        hub.step(op)


def test_the_reference_hub_lets_the_right_tray_through() -> None:
    hub = Hub()
    script: list[tuple[object, ...]] = [
        ("fill", 1, "T-1", 0, 28),
        ("fill", 2, "T-2", 0, 28),
        ("bind", 1),
        ("load", "T-1", 0, True),
        ("load", "T-1", 0, False),
        ("load", "T-2", 0, True),  # patient 2's tray: refused
        ("fill", 2, "T-1", 0, 28),  # T-1 refilled for patient 2: patient 1's fill ends
        ("load", "T-1", 0, True),
        ("load", "T-1", 0, False),
        ("bind", 2),
        ("load", "T-1", 0, False),
    ]
    for op in script:
        hub.step(op)
    assert hub.accepted == 3
