"""Dose schedules: windows and reminders, planned doses, pauses, slot ids, overlap, range, trips, DST.

The rules are in ``dispenser_hub.domain.schedules``'s docstring; the property tests check, for any plan,
window, pauses and ``now``, the invariants a device relies on (sorted slots, unique valid ids,
``opens <= due < closes``, no overlapping windows) and that every dose is exactly one of scheduled,
cancelled or out of range.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.pouches import REF_PATTERN, DrugLine, Pouch, RollManifest, from_ms, to_ms
from dispenser_hub.domain.schedules import (
    ALARM_VKP,
    MAX_SLOTS,
    NO_SCHEDULE,
    TRIP_SHORT,
    CancelledDose,
    DoseWindow,
    Pause,
    PlannedDose,
    Schedule,
    ScheduleError,
    derive_schedule,
    paused_until,
    roll_doses,
    schedule_condition,
    slot_id_for,
    to_wire_slots,
    trip_doses,
)
from dispenser_hub.domain.wallclock import oslo_day, oslo_days, oslo_instant
from firmware_protocol.codes import mapping_for
from firmware_protocol.messages.downlink import Config, Reminders
from firmware_protocol.messages.uplink import DosePredispensed, T

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn

T0 = from_ms(T)
"""2026-11-23 07:00 UTC, 08:00 in Oslo (the protocol examples' time)."""
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)
WINDOW = DoseWindow()
FAR = timedelta(days=30)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def dose(due: datetime, pouch_id: str | None = None, pot: int | None = None) -> PlannedDose:
    """A pouch dose named after its due time unless a pot is given."""
    if pot is None and pouch_id is None:
        pouch_id = f"P-{to_ms(due)}"
    return PlannedDose(due=due, pouch_id=pouch_id, pot=pot)


def schedule(*doses: PlannedDose, pauses: tuple[Pause, ...] = (), now: datetime = T0 - DAY) -> Schedule:
    """The default window, a 30-day horizon."""
    return derive_schedule(doses, WINDOW, pauses, now=now, horizon=FAR)


# --- windows and reminders ----------------------------------------------------------------------------


def test_default_window_is_the_protocol_example() -> None:
    assert WINDOW.early == 60 * MIN
    assert WINDOW.late == 120 * MIN
    assert WINDOW.reminders() == Reminders.model_validate(Config.EXAMPLE["reminders"])


def test_reminders_converts_to_seconds() -> None:
    window = DoseWindow(
        notice_before=timedelta(0),
        sound_after=timedelta(seconds=90),
        repeat_every=timedelta(hours=4),
        repeat_max=20,
    )
    assert window.reminders() == Reminders(
        notice_before_s=0, sound_after_s=90, repeat_every_s=14_400, repeat_max=20
    )


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"early": timedelta(seconds=-1)}, "early", "0:00:00 to 6:00:00"),
        ({"early": timedelta(hours=6, seconds=1)}, "early", "0:00:00 to 6:00:00"),
        ({"early": timedelta(milliseconds=1500)}, "early", "whole seconds"),
        ({"late": timedelta(minutes=5) - timedelta(seconds=1)}, "late", "0:05:00 to 5:00:00"),
        ({"late": timedelta(hours=5, seconds=1)}, "late", "0:05:00 to 5:00:00"),
        ({"notice_before": timedelta(seconds=14_401)}, "notice_before", "to 4:00:00"),
        ({"notice_before": timedelta(seconds=-1)}, "notice_before", "0:00:00 to"),
        ({"sound_after": timedelta(seconds=14_401)}, "sound_after", "to 4:00:00"),
        ({"sound_after": timedelta(hours=2)}, "sound_after", "shorter than the window"),
        ({"late": timedelta(minutes=5), "sound_after": timedelta(minutes=5)}, "sound_after", "shorter"),
        ({"sound_after": timedelta(seconds=30, microseconds=1)}, "sound_after", "whole seconds"),
        ({"repeat_every": timedelta(seconds=59)}, "repeat_every", "0:01:00 to 4:00:00"),
        ({"repeat_every": timedelta(seconds=14_401)}, "repeat_every", "0:01:00 to 4:00:00"),
        ({"repeat_max": 21}, "repeat_max", "0 to 20"),
        ({"repeat_max": -1}, "repeat_max", "0 to 20"),
    ],
)
def test_window_validation_names_the_field(changes: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        DoseWindow(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"early": timedelta(0)},
        {"early": timedelta(hours=6)},
        {"late": timedelta(minutes=5), "sound_after": timedelta(minutes=4, seconds=59)},
        {"late": timedelta(hours=5)},
        {"notice_before": timedelta(hours=4), "sound_after": timedelta(0)},
        {"repeat_every": timedelta(minutes=1), "repeat_max": 0},
        {"repeat_every": timedelta(hours=4), "repeat_max": 20},
    ],
)
def test_window_limits_are_inclusive(changes: dict[str, timedelta | int]) -> None:
    window = DoseWindow(**changes)  # type: ignore[arg-type]
    assert isinstance(window.reminders(), Reminders)


# --- planned doses, pauses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"due": datetime(2026, 11, 23, 7), "pot": 1}, "due"),  # noqa: DTZ001 - the naive time is the point
        ({"due": T0.astimezone(timezone(HOUR)), "pot": 1}, "due"),
        ({"due": T0 + timedelta(microseconds=500), "pot": 1}, "due"),
        ({"due": T0}, "pouch_id"),
        ({"due": T0, "pouch_id": "P-1", "pot": 1}, "pouch_id"),
        ({"due": T0, "pouch_id": "-bad"}, "pouch_id"),
        ({"due": T0, "pot": 0}, "pot"),
        ({"due": T0, "pot": 65}, "pot"),
        ({"due": T0, "pot": 3, "label": "  "}, "label"),
    ],
)
def test_planned_dose_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        PlannedDose(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_planned_dose_accepts_a_pouch_or_a_pot() -> None:
    assert PlannedDose(T0, pouch_id="P-4711-0042").pot is None
    assert PlannedDose(T0, pot=64, label="morning").pouch_id is None


def test_roll_doses_are_the_undispensed_pouches_in_order() -> None:
    drugs = (DrugLine("Metformin", "500 mg", Decimal(1)),)
    pouches = tuple(Pouch(f"P-{n}", T0 + n * 12 * HOUR, drugs) for n in range(4))
    manifest = RollManifest("R-1", "01819010001", "PX-A", "Apotek 1", T0 - DAY, pouches)
    doses = roll_doses(manifest, {"P-0", "P-2"})
    assert doses == [PlannedDose(T0 + 12 * HOUR, pouch_id="P-1"), PlannedDose(T0 + 36 * HOUR, pouch_id="P-3")]


@pytest.mark.parametrize(
    ("start", "end", "reason", "field"),
    [
        (datetime(2026, 11, 23), T0, "hospital", "start"),  # noqa: DTZ001 - the naive time is the point
        (T0, datetime(2026, 11, 24), "hospital", "end"),  # noqa: DTZ001 - the naive time is the point
        (T0, T0, "hospital", "end"),
        (T0, T0 - MS, "travel", "end"),
        (T0, T0 + DAY, " ", "reason"),
    ],
)
def test_pause_validation_names_the_field(start: datetime, end: datetime, reason: str, field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Pause(start, end, reason)
    assert caught.value.field == field


# --- slot ids -----------------------------------------------------------------------------------------


def test_slot_id_is_the_oslo_local_minute() -> None:
    assert slot_id_for(T0) == "s-20261123-0800"  # CET, UTC+1
    assert slot_id_for(datetime(2026, 7, 1, 18, 0, 59, tzinfo=UTC)) == "s-20260701-2000"  # CEST, UTC+2
    assert slot_id_for(T0, 3) == "s-20261123-0800-3"
    assert re.fullmatch(REF_PATTERN, slot_id_for(T0, 2))


def test_slot_id_needs_an_aware_time_and_a_positive_number() -> None:
    with pytest.raises(ScheduleError, match="due: must be timezone-aware"):
        slot_id_for(datetime(2026, 11, 23, 8))  # noqa: DTZ001 - the naive time is the point
    with pytest.raises(ScheduleError, match="nth: must be 1 or more"):
        slot_id_for(T0, 0)


def test_doses_sharing_a_minute_get_numbered_ids_in_due_order() -> None:
    doses = [dose(T0 + 40 * 1000 * MS), dose(T0), dose(T0 + 20 * 1000 * MS), dose(T0 + MIN)]
    ids = [slot.slot_id for slot in schedule(*doses).slots]
    assert ids == ["s-20261123-0800", "s-20261123-0800-2", "s-20261123-0800-3", "s-20261123-0801"]


def test_numbered_ids_do_not_change_when_the_first_dose_of_the_minute_leaves() -> None:
    first, second = dose(T0), dose(T0 + 10 * 1000 * MS)
    before = schedule(first, second, now=T0 - MS).slots
    after = schedule(first, second, now=T0 + MS).slots  # the first closed where the second opened
    assert [slot.slot_id for slot in before] == ["s-20261123-0800", "s-20261123-0800-2"]
    assert [slot.slot_id for slot in after] == ["s-20261123-0800-2"]
    assert after[0] == before[1]


def test_the_repeated_october_hour_gets_distinct_ids() -> None:
    cest, cet = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    ids = [slot.slot_id for slot in schedule(dose(cest), dose(cet), now=cest - DAY).slots]
    assert ids == ["s-20261025-0230", "s-20261025-0230-2"]


# --- windows and overlap ------------------------------------------------------------------------------


def test_windows_far_apart_are_as_configured_and_match_the_protocol_example() -> None:
    plan = schedule(dose(T0, "P-4711-0042"), dose(T0 + 12 * HOUR, "P-4711-0043"))
    slot = plan.slots[0]
    assert (slot.opens, slot.due, slot.closes) == (T0 - HOUR, T0, T0 + 2 * HOUR)
    wire = [slot.model_dump(exclude_none=True) for slot in to_wire_slots(plan)]
    assert wire == Config.EXAMPLE["slots"]


def test_an_overlapping_window_closes_where_the_next_opens() -> None:
    slots = schedule(dose(T0), dose(T0 + 2 * HOUR)).slots
    assert slots[0].closes == T0 + HOUR == slots[1].opens
    assert slots[1].closes == T0 + 4 * HOUR
    assert slots[0].opens == T0 - HOUR


def test_windows_that_only_touch_are_not_clipped() -> None:
    slots = schedule(dose(T0), dose(T0 + 3 * HOUR)).slots
    assert (slots[0].closes, slots[1].opens) == (T0 + 2 * HOUR, T0 + 2 * HOUR)


def test_a_next_dose_opening_before_the_earlier_due_opens_just_after_it() -> None:
    slots = schedule(dose(T0), dose(T0 + 30 * MIN), dose(T0 + 30 * MIN + MS)).slots
    assert [(s.opens, s.closes) for s in slots] == [
        (T0 - HOUR, T0 + MS),
        (T0 + MS, T0 + 30 * MIN + MS),
        (T0 + 30 * MIN + MS, T0 + 30 * MIN + 2 * HOUR + MS),
    ]
    assert all(s.opens <= s.due < s.closes for s in slots)


def test_doses_due_at_the_same_instant_are_an_error() -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule(dose(T0, "P-1"), dose(T0, "P-2"))
    assert caught.value.field == "doses"
    assert "at least 1 ms apart" in str(caught.value)


def test_doses_in_any_order_come_out_sorted() -> None:
    dues = [T0 + 5 * HOUR, T0, T0 + 10 * HOUR]
    assert [slot.due for slot in schedule(*map(dose, dues)).slots] == sorted(dues)


def test_pot_doses_keep_their_pot() -> None:
    plan = schedule(dose(T0, pot=7))
    assert (plan.slots[0].pot, plan.slots[0].pouch_id) == (7, None)
    assert to_wire_slots(plan)[0].pot == 7


# --- range: now, horizon, max_slots -------------------------------------------------------------------


def test_a_dose_stays_while_its_window_is_open() -> None:
    doses = (dose(T0),)
    now_open = derive_schedule(doses, WINDOW, (), now=T0 + 2 * HOUR - MS, horizon=HOUR).slots
    now_closed = derive_schedule(doses, WINDOW, (), now=T0 + 2 * HOUR, horizon=HOUR).slots
    assert [slot.due for slot in now_open] == [T0]
    assert now_closed == ()


def test_the_horizon_end_is_exclusive() -> None:
    doses = (dose(T0), dose(T0 + DAY - MS), dose(T0 + DAY))
    plan = derive_schedule(doses, WINDOW, (), now=T0, horizon=DAY)
    assert [slot.due for slot in plan.slots] == [T0, T0 + DAY - MS]


def test_max_slots_keeps_the_earliest_and_counts_the_rest() -> None:
    doses = [dose(T0 + n * 12 * HOUR) for n in range(5)]
    plan = derive_schedule(doses, WINDOW, (), now=T0, horizon=FAR, max_slots=3)
    assert [slot.due for slot in plan.slots] == [T0, T0 + 12 * HOUR, T0 + DAY]
    assert plan.left_out == 2
    assert derive_schedule(doses, WINDOW, (), now=T0, horizon=FAR).left_out == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"horizon": timedelta(0)}, "horizon"),
        ({"max_slots": 0}, "max_slots"),
        ({"max_slots": MAX_SLOTS + 1}, "max_slots"),
        ({"now": datetime(2026, 11, 23)}, "now"),  # noqa: DTZ001 - the naive time is the point
    ],
)
def test_schedule_request_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"now": T0, "horizon": DAY, **kwargs}
    with pytest.raises(ScheduleError) as caught:
        derive_schedule([dose(T0)], WINDOW, (), **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- pauses -------------------------------------------------------------------------------------------


def test_a_pause_cancels_doses_from_its_start_up_to_its_end() -> None:
    pause = Pause(T0, T0 + DAY, "hospital")
    dues = [T0 - MS, T0, T0 + DAY - MS, T0 + DAY]
    plan = schedule(*map(dose, dues), pauses=(pause,))
    assert [slot.due for slot in plan.slots] == [T0 - MS, T0 + DAY]
    assert plan.cancelled == (
        CancelledDose(dose(T0), "hospital"),
        CancelledDose(dose(T0 + DAY - MS), "hospital"),
    )


def test_cancelled_doses_do_not_clip_their_neighbours() -> None:
    pause = Pause(T0 + HOUR, T0 + 2 * HOUR, "travel")
    plan = schedule(dose(T0), dose(T0 + HOUR), dose(T0 + 3 * HOUR), pauses=(pause,))
    assert [(s.opens, s.closes) for s in plan.slots] == [
        (T0 - HOUR, T0 + 2 * HOUR),
        (T0 + 2 * HOUR, T0 + 5 * HOUR),
    ]


def test_cancelled_doses_outside_the_range_are_not_listed() -> None:
    pause = Pause(T0 - 10 * DAY, T0 + 10 * DAY, "hospital")
    doses = (dose(T0 - 2 * HOUR), dose(T0 - 2 * HOUR + MS), dose(T0 + DAY - MS), dose(T0 + DAY))
    plan = derive_schedule(doses, WINDOW, (pause,), now=T0, horizon=DAY)
    assert plan.slots == ()
    assert [c.dose.due for c in plan.cancelled] == [T0 - 2 * HOUR + MS, T0 + DAY - MS]


def test_paused_until_is_the_end_of_the_pause_in_force() -> None:
    hospital = Pause(T0, T0 + DAY, "hospital")
    assert paused_until([hospital], T0 - MS) is None
    assert paused_until([hospital], T0) == T0 + DAY
    assert paused_until([hospital], T0 + DAY - MS) == T0 + DAY
    assert paused_until([hospital], T0 + DAY) is None


def test_paused_until_follows_adjoining_and_overlapping_pauses() -> None:
    pauses = [
        Pause(T0, T0 + DAY, "hospital"),
        Pause(T0 + DAY, T0 + 2 * DAY, "travel"),
        Pause(T0 + 2 * DAY - HOUR, T0 + 3 * DAY, "travel"),
        Pause(T0 + 3 * DAY + MS, T0 + 9 * DAY, "travel"),
    ]
    assert paused_until(pauses, T0 + HOUR) == T0 + 3 * DAY
    nested = [Pause(T0, T0 + 5 * DAY, "hospital"), Pause(T0, T0 + DAY, "travel")]
    assert paused_until(nested, T0 + HOUR) == T0 + 5 * DAY


def test_no_schedule_is_raised_only_without_slots_and_without_a_pause() -> None:
    pause = Pause(T0, T0 + DAY, "hospital")
    empty = Schedule(slots=())
    assert schedule_condition(empty, [], T0) == NO_SCHEDULE
    assert schedule_condition(empty, [pause], T0) is None
    assert schedule_condition(schedule(dose(T0)), [], T0) is None
    assert ALARM_VKP[NO_SCHEDULE] == "3.8"


# --- trips --------------------------------------------------------------------------------------------


def test_a_trip_requests_the_doses_due_in_its_range() -> None:
    dues = [T0 + DAY, T0 - MS, T0, T0 + 2 * DAY, T0 + DAY - MS]
    trip = trip_doses(map(dose, dues), T0, T0 + DAY)
    assert [d.due for d in trip.requested] == [T0, T0 + DAY - MS]


@pytest.mark.parametrize(("dispensed", "missing"), [(0, 3), (2, 1), (3, 0)])
def test_a_short_predispense_is_the_trip_alarm(dispensed: int, missing: int) -> None:
    trip = trip_doses([dose(T0 + n * 8 * HOUR) for n in range(3)], T0, T0 + DAY)
    assert trip.missing(dispensed) == missing
    expected = TRIP_SHORT if missing else None
    assert trip.short_alarm(dispensed) == expected
    report = DosePredispensed.model_validate(
        {
            "from": to_ms(T0),
            "until": to_ms(T0 + DAY),
            "slot_ids": [f"s-{n}" for n in range(dispensed)],
            "requested": len(trip.requested),
            "dispensed": dispensed,
        }
    )
    mapping = mapping_for(report)
    assert mapping is not None
    assert mapping.vkp == (ALARM_VKP[TRIP_SHORT] if missing else None)


def test_trip_validation_names_the_field() -> None:
    assert ALARM_VKP[TRIP_SHORT] == "3.15"
    with pytest.raises(ScheduleError, match="end: must be after start"):
        trip_doses([], T0, T0)
    with pytest.raises(ScheduleError, match="dispensed: must be 0 or more"):
        trip_doses([], T0, T0 + DAY).missing(-1)


# --- daylight saving ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "first", "expected_utc"),
    [
        (time(8), date(2026, 3, 27), ["07:00", "07:00", "06:00", "06:00", "06:00"]),
        (time(2, 30), date(2026, 3, 27), ["01:30", "01:30", "01:30", "00:30", "00:30"]),
        (time(8), date(2026, 10, 23), ["06:00", "06:00", "07:00", "07:00", "07:00"]),
        (time(2, 30), date(2026, 10, 23), ["00:30", "00:30", "00:30", "01:30", "01:30"]),
    ],
)
def test_a_daily_plan_across_a_dst_change_gives_one_dose_per_day(
    at: time, first: date, expected_utc: list[str]
) -> None:
    days = oslo_days(first, 5)
    doses = [dose(oslo_instant(day, at)) for day in days]
    plan = derive_schedule(doses, WINDOW, (), now=oslo_instant(first, time(0)), horizon=6 * DAY)
    assert [slot.due.strftime("%m-%d %H:%M") for slot in plan.slots] == [
        f"{day:%m-%d} {utc}" for day, utc in zip(days, expected_utc, strict=True)
    ]
    assert [oslo_day(slot.due) for slot in plan.slots] == days
    ids = [slot.slot_id for slot in plan.slots]
    assert len(set(ids)) == len(ids) == 5
    local = "0330" if at == time(2, 30) and first.month == 3 else f"{at:%H%M}"
    assert ids[2] == f"s-{days[2]:%Y%m%d}-{local}"


@given(
    first=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)),
    at=st.times(),
    count=st.integers(1, 40),
)
@PROPERTY_SETTINGS
def test_any_daily_plan_gives_exactly_one_slot_per_day(first: date, at: time, count: int) -> None:
    at = at.replace(microsecond=0)
    days = oslo_days(first, count)
    doses = [dose(oslo_instant(day, at)) for day in days]
    now = oslo_instant(first, time(0)) - DAY
    plan = derive_schedule(doses, WINDOW, (), now=now, horizon=(count + 2) * DAY)
    assert [oslo_day(slot.due) for slot in plan.slots] == days
    assert len({slot.slot_id for slot in plan.slots}) == count


# --- properties ---------------------------------------------------------------------------------------


@st.composite
def windows(draw: DrawFn) -> DoseWindow:
    """Any valid window."""
    late = draw(st.integers(300, 5 * 3600))
    return DoseWindow(
        early=timedelta(seconds=draw(st.integers(0, 6 * 3600))),
        late=timedelta(seconds=late),
        notice_before=timedelta(seconds=draw(st.integers(0, 14_400))),
        sound_after=timedelta(seconds=draw(st.integers(0, min(late - 1, 14_400)))),
        repeat_every=timedelta(seconds=draw(st.integers(60, 14_400))),
        repeat_max=draw(st.integers(0, 20)),
    )


SPAN_MS = 4 * 24 * 3_600_000
offsets = st.one_of(st.integers(0, SPAN_MS), st.integers(0, SPAN_MS // 10_000).map(lambda n: n * 10_000))


@dataclass(frozen=True)
class Plan:
    """Dose offsets, pauses, ``now`` (ms from ``T0``) and the horizon (ms) for the property test."""

    dues: list[int]
    pauses: list[Pause]
    now_ms: int
    horizon_ms: int


@st.composite
def plans(draw: DrawFn) -> Plan:
    """Up to 40 doses and 3 pauses; pause ends, ``now`` and the end of the horizon often exactly at a dose."""
    dues = draw(st.lists(offsets, unique=True, max_size=40))
    moments = st.sampled_from(dues) | offsets if dues else offsets
    paused = []
    for _ in range(draw(st.integers(0, 3))):
        first, last = sorted((draw(moments), draw(moments)))
        last += draw(st.sampled_from([0, 0, 1]))
        if first < last:
            paused.append(Pause(T0 + first * MS, T0 + last * MS, "travel"))
    now_ms = draw(moments | st.integers(-SPAN_MS // 4, SPAN_MS))
    at_dose = moments.map(lambda moment: moment - now_ms).filter(lambda horizon: horizon > 0)
    horizon_ms = draw(st.integers(1, SPAN_MS) | at_dose)
    return Plan(dues, paused, now_ms, horizon_ms)


@given(
    given_plan=plans(),
    window=windows(),
    max_slots=st.one_of(st.integers(1, 8), st.just(MAX_SLOTS)),
    later_ms=st.integers(0, SPAN_MS // 2),
)
@PROPERTY_SETTINGS
def test_any_plan_gives_a_valid_schedule_and_accounts_for_every_dose(
    given_plan: Plan,
    window: DoseWindow,
    max_slots: int,
    later_ms: int,
) -> None:
    paused = given_plan.pauses
    doses = [dose(T0 + offset * MS) for offset in given_plan.dues]
    now = T0 + given_plan.now_ms * MS
    horizon = given_plan.horizon_ms * MS
    until = now + horizon
    plan = derive_schedule(doses, window, paused, now=now, horizon=horizon, max_slots=max_slots)
    slots = plan.slots

    assert len(slots) <= max_slots
    assert plan.left_out == 0 or len(slots) == max_slots
    assert [slot.due for slot in slots] == sorted({slot.due for slot in slots})
    assert len({slot.slot_id for slot in slots}) == len(slots)
    for slot in slots:
        assert re.fullmatch(REF_PATTERN, slot.slot_id)
        assert slot.slot_id.startswith(slot_id_for(slot.due))
        assert slot.due - window.early <= slot.opens <= slot.due < slot.closes <= slot.due + window.late
        assert slot.closes > now
        assert slot.due < until
    for before, after in itertools.pairwise(slots):
        assert before.closes <= after.opens
    Config.model_validate({**Config.EXAMPLE, "slots": [s.model_dump() for s in to_wire_slots(plan)]})

    scheduled = {slot.due for slot in slots}
    cancelled = {c.dose.due for c in plan.cancelled}
    assert not scheduled & cancelled
    missing_in_range = []
    for planned in doses:
        due = planned.due
        covering = [p for p in paused if p.start <= due < p.end]
        in_range = due < until and due + window.late > now
        if covering:
            assert due not in scheduled
            assert (due in cancelled) == in_range
            if in_range:
                assert next(c for c in plan.cancelled if c.dose == planned).reason == covering[0].reason
        else:
            assert due not in cancelled
            if not in_range:
                assert due not in scheduled
            elif now <= due and due not in scheduled:
                missing_in_range.append(due)
    if missing_in_range:
        assert plan.left_out >= len(missing_in_range)
        assert min(missing_in_range) > slots[-1].due

    later = derive_schedule(doses, window, paused, now=now + later_ms * MS, horizon=FAR)
    earlier = {slot.due: slot for slot in slots}
    for slot in later.slots:
        assert earlier.get(slot.due, slot) == slot  # ids and windows do not depend on now
