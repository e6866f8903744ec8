"""On-call rosters: weekly templates across both DST changes, who is on duty, uncovered gaps, validation."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.rosters import (
    RosterError,
    Shift,
    WeeklyShift,
    check_roster,
    expand,
    gaps,
    on_duty,
    roster_document,
    roster_from_document,
)
from dispenser_hub.domain.wallclock import OSLO, oslo_instant

HOUR = timedelta(hours=1)
SPRING = date(2026, 3, 29)
AUTUMN = date(2026, 10, 25)
SATURDAY = 5


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def night(person: str = "Kari", weekday: int = SATURDAY, team: str = "bergenhus") -> WeeklyShift:
    return WeeklyShift(team, person, f"contact:{person.lower()}", weekday, time(22, 0), 9 * HOUR)


def shift(start: datetime, end: datetime, person: str = "Kari", team: str = "bergenhus") -> Shift:
    return Shift(team, person, f"contact:{person.lower()}", start, end)


# Expanding templates across DST


def test_night_shift_into_spring_forward_ends_at_seven_wall_clock_after_eight_hours() -> None:
    [only] = expand([night()], date(2026, 3, 28), 1)
    assert (only.start, only.end) == (utc(2026, 3, 28, 21), utc(2026, 3, 29, 5))
    assert only.end - only.start == 8 * HOUR
    assert only.end.astimezone(OSLO).time() == time(7, 0)


def test_night_shift_into_fall_back_ends_at_seven_wall_clock_after_ten_hours() -> None:
    [only] = expand([night()], date(2026, 10, 24), 1)
    assert (only.start, only.end) == (utc(2026, 10, 24, 20), utc(2026, 10, 25, 6))
    assert only.end - only.start == 10 * HOUR


def test_ordinary_night_lasts_its_duration() -> None:
    [only] = expand([night()], date(2026, 11, 21), 1)
    assert only.end - only.start == 9 * HOUR


@pytest.mark.parametrize("sunday", [SPRING, AUTUMN])
def test_a_rota_handing_over_at_the_same_wall_clock_time_stays_contiguous_across_dst(sunday: date) -> None:
    rota = [
        WeeklyShift("bergenhus", "Kari", "contact:kari", 5, time(22, 0), 9 * HOUR),
        WeeklyShift("bergenhus", "Ola", "contact:ola", 6, time(7, 0), 8 * HOUR),
        WeeklyShift("bergenhus", "Per", "contact:per", 6, time(15, 0), 7 * HOUR),
    ]
    shifts = expand(rota, sunday - timedelta(days=1), 2)
    assert [s.person for s in shifts] == ["Kari", "Ola", "Per"]
    assert all(a.end == b.start for a, b in itertools.pairwise(shifts))
    assert gaps(shifts, "bergenhus", shifts[0].start, shifts[-1].end) == []


def test_shift_starting_or_ending_in_the_spring_gap_hands_over_when_the_clock_jumps() -> None:
    rota = [
        WeeklyShift("fana", "Kari", "contact:kari", 5, time(22, 0), timedelta(hours=4, minutes=30)),
        WeeklyShift("fana", "Ola", "contact:ola", 6, time(2, 30), timedelta(minutes=45)),
        WeeklyShift("fana", "Per", "contact:per", 6, time(2, 10), timedelta(minutes=30)),
    ]
    shifts = expand(rota, SPRING - timedelta(days=1), 2)
    jump = utc(2026, 3, 29, 1)  # 02:00 CET becomes 03:00 CEST
    assert [(s.person, s.start, s.end) for s in shifts] == [
        ("Kari", utc(2026, 3, 28, 21), jump),
        ("Ola", jump, utc(2026, 3, 29, 1, 15)),
    ]  # Per's 02:10-02:40 does not exist that day


def test_expand_only_uses_matching_weekdays_and_orders_by_start_then_template_order() -> None:
    rota = [
        WeeklyShift("fana", "B", "contact:b", 0, time(8, 0), 8 * HOUR),
        WeeklyShift("fana", "A", "contact:a", 0, time(8, 0), 8 * HOUR),
        WeeklyShift("fana", "C", "contact:c", 1, time(7, 0), 8 * HOUR),
    ]
    shifts = expand(rota, date(2026, 11, 23), 7)  # a Monday
    assert [s.person for s in shifts] == ["B", "A", "C"]
    assert expand(rota, date(2026, 11, 25), 5) == []


def test_expand_refuses_overlapping_templates_of_one_person() -> None:
    rota = [night("Kari"), WeeklyShift("bergenhus", "Kari", "contact:kari", 6, time(6, 0), 2 * HOUR)]
    with pytest.raises(RosterError) as caught:
        expand(rota, date(2026, 11, 21), 2)
    assert caught.value.field == "shifts[1].start"


# On duty and gaps


def test_on_duty_lists_the_primary_first_then_declared_order() -> None:
    shifts = [
        shift(utc(2026, 11, 23, 8), utc(2026, 11, 23, 16), "Late"),
        shift(utc(2026, 11, 23, 6), utc(2026, 11, 23, 14), "Early"),
        shift(utc(2026, 11, 23, 8), utc(2026, 11, 23, 12), "Backup"),
        shift(utc(2026, 11, 23, 6), utc(2026, 11, 23, 20), "Other", team="fana"),
    ]
    at = utc(2026, 11, 23, 9)
    assert [s.person for s in on_duty(shifts, "bergenhus", at)] == ["Early", "Late", "Backup"]
    assert [s.person for s in on_duty(shifts, "bergenhus", utc(2026, 11, 23, 14))] == ["Late"]
    assert on_duty(shifts, "bergenhus", utc(2026, 11, 23, 16)) == []
    assert [s.person for s in on_duty(shifts, "fana", at)] == ["Other"]


def test_gaps_are_the_merged_uncovered_periods_of_the_team() -> None:
    shifts = [
        shift(utc(2026, 11, 23, 8), utc(2026, 11, 23, 12), "A"),
        shift(utc(2026, 11, 23, 10), utc(2026, 11, 23, 14), "B"),
        shift(utc(2026, 11, 23, 16), utc(2026, 11, 23, 20), "C"),
        shift(utc(2026, 11, 23, 0), utc(2026, 11, 24, 0), "D", team="fana"),
    ]
    found = gaps(shifts, "bergenhus", utc(2026, 11, 23, 6), utc(2026, 11, 23, 22))
    assert found == [
        (utc(2026, 11, 23, 6), utc(2026, 11, 23, 8)),
        (utc(2026, 11, 23, 14), utc(2026, 11, 23, 16)),
        (utc(2026, 11, 23, 20), utc(2026, 11, 23, 22)),
    ]
    assert gaps(shifts, "bergenhus", utc(2026, 11, 23, 9), utc(2026, 11, 23, 13)) == []
    whole = (utc(2026, 11, 23, 0), utc(2026, 11, 24, 0))
    assert gaps(shifts, "nobody", *whole) == [whole]
    assert gaps(shifts, "fana", *whole) == []


def test_gaps_are_reported_in_utc_for_local_bounds() -> None:
    start = oslo_instant(date(2026, 11, 23), time(0, 0)).astimezone(OSLO)
    end = start + HOUR
    assert gaps([], "fana", start, end) == [(utc(2026, 11, 22, 23), utc(2026, 11, 23, 0))]


# Validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"end": utc(2026, 11, 23, 8)}, "end"),
        ({"end": utc(2026, 11, 23, 7)}, "end"),
        ({"start": datetime(2026, 11, 23, 8)}, "start"),  # noqa: DTZ001 - the naive time under test
        ({"end": datetime(2026, 11, 23, 9)}, "end"),  # noqa: DTZ001 - the naive time under test
        ({"start": oslo_instant(date(2026, 11, 23), time(8)).astimezone(OSLO)}, "start"),
        ({"contact_ref": "+47 912 34 567"}, "contact_ref"),
        ({"contact_ref": "91234567"}, "contact_ref"),
        ({"team_id": ""}, "team_id"),
        ({"person": "  "}, "person"),
    ],
)
def test_shift_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "team_id": "bergenhus",
        "person": "Kari",
        "contact_ref": "contact:kari",
        "start": utc(2026, 11, 23, 8),
        "end": utc(2026, 11, 23, 16),
    } | kwargs
    with pytest.raises(RosterError) as caught:
        Shift(**values)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weekday": 7}, "weekday"),
        ({"start": time(8, 0, tzinfo=UTC)}, "start"),
        ({"start": time(8, 0, 30)}, "start"),
        ({"duration": timedelta(0)}, "duration"),
        ({"duration": timedelta(days=7, minutes=1)}, "duration"),
        ({"duration": timedelta(minutes=90, seconds=1)}, "duration"),
    ],
)
def test_template_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "team_id": "bergenhus",
        "person": "Kari",
        "contact_ref": "contact:kari",
        "weekday": 0,
        "start": time(8),
        "duration": 8 * HOUR,
    } | kwargs
    with pytest.raises(RosterError) as caught:
        WeeklyShift(**values)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_overlapping_shifts_of_one_person_in_a_team_are_refused_naming_the_later_one() -> None:
    shifts = [
        shift(utc(2026, 11, 23, 12), utc(2026, 11, 23, 20), "Kari"),
        shift(utc(2026, 11, 23, 8), utc(2026, 11, 23, 16), "Ola"),
        shift(utc(2026, 11, 23, 6), utc(2026, 11, 23, 13), "Kari"),
    ]
    with pytest.raises(RosterError) as caught:
        check_roster(shifts)
    assert caught.value.field == "shifts[0].start"
    assert "shifts[2]" in str(caught.value)


def test_back_to_back_shifts_and_cover_of_two_teams_are_allowed() -> None:
    check_roster(
        [
            shift(utc(2026, 11, 23, 6), utc(2026, 11, 23, 14), "Kari"),
            shift(utc(2026, 11, 23, 14), utc(2026, 11, 23, 22), "Kari"),
            shift(utc(2026, 11, 23, 6), utc(2026, 11, 23, 14), "Kari", team="fana"),
        ]
    )


def test_aware_times_are_required_for_queries() -> None:
    with pytest.raises(RosterError) as caught:
        on_duty([], "fana", datetime(2026, 11, 23, 8))  # noqa: DTZ001 - the naive time under test
    assert caught.value.field == "at"
    with pytest.raises(RosterError) as caught:
        gaps([], "fana", utc(2026, 11, 23, 8), utc(2026, 11, 23, 8))
    assert caught.value.field == "end"
    with pytest.raises(RosterError) as caught:
        expand([], SPRING, 400)
    assert caught.value.field == "days"


# Properties


def _in_spring_gap(moment: datetime) -> bool:
    return moment.date() == SPRING and time(2) <= moment.time() < time(3)


@settings(max_examples=300, deadline=None)
@given(
    weekday=st.integers(0, 6),
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    minutes=st.integers(1, 7 * 24 * 60),
    first_day=st.sampled_from([SPRING, AUTUMN]).flatmap(
        lambda d: st.integers(-20, 5).map(lambda n: d + timedelta(days=n))
    ),
    days=st.integers(0, 30),
)
def test_expanded_shifts_never_overlap_and_last_their_wall_clock_duration(
    weekday: int, start: time, minutes: int, first_day: date, days: int
) -> None:
    duration = timedelta(minutes=minutes)
    template = WeeklyShift("fana", "Kari", "contact:kari", weekday, start, duration)
    shifts = expand([template], first_day, days)
    for before, after in itertools.pairwise(shifts):
        assert before.end <= after.start
    for one in shifts:
        wall_start = datetime.combine(one.start.astimezone(OSLO).date(), start)
        wall_end = wall_start + duration
        offsets = one.start.astimezone(OSLO).utcoffset(), one.end.astimezone(OSLO).utcoffset()
        assert offsets[0] is not None
        assert offsets[1] is not None
        local = [moment.astimezone(OSLO).replace(tzinfo=None) for moment in (one.start, one.end)]
        gap_start, gap_end = _in_spring_gap(wall_start), _in_spring_gap(wall_end)
        jump = datetime.combine(SPRING, time(3))
        assert local[0] == (jump if gap_start else wall_start)
        assert local[1] == (jump if gap_end else wall_end)
        if not gap_start and not gap_end:
            # the wall-clock length; across a DST change one hour more or less elapses
            assert one.end - one.start == duration + offsets[0] - offsets[1]
            if offsets[0] == offsets[1]:
                assert one.end - one.start == duration


# -- team rosters: staff, rota documents, who is on call ---------------------------------------------------

ROSTER_DOC: dict[str, object] = {
    "staff": [
        {"ref": "nurse-1", "name": "Åse", "phone": "+47 912 34 567"},
        {"ref": "nurse-2", "name": "Per", "email": "per@kommune.no"},
    ],
    "rota": [{"staff": "nurse-1", "weekday": day, "start": "22:00", "minutes": 540} for day in range(7)]
    + [{"staff": "nurse-2", "weekday": day, "start": "07:00", "minutes": 900} for day in range(5)],
}


def test_a_roster_document_round_trips_and_names_who_is_on_call() -> None:
    roster = roster_from_document("7", ROSTER_DOC)
    assert roster_from_document("7", roster_document(roster)) == roster
    # Sunday 2026-10-25 02:30 (the repeated hour): the night nurse of Saturday night.
    assert [m.ref for m in roster.on_call(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))] == ["nurse-1"]
    # Monday 12:00 Oslo: the day nurse; Saturday 12:00: nobody (a gap).
    assert [m.ref for m in roster.on_call(datetime(2026, 11, 23, 11, 0, tzinfo=UTC))] == ["nurse-2"]
    assert roster.on_call(datetime(2026, 11, 28, 11, 0, tzinfo=UTC)) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"staff": [{"ref": "n", "name": "N"}]}, "staff[0].phone"),
        ({"staff": [{"ref": "n", "name": "N", "phone": "ring me"}]}, "staff[0].phone"),
        ({"staff": [{"ref": "n", "name": "N", "email": "not-an-address"}]}, "staff[0].email"),
        ({"staff": [{"ref": "n", "name": "N", "phone": "+4791234567", "age": 3}]}, "staff[0]"),
        ({"rota": [{"staff": "ghost", "weekday": 0, "start": "07:00", "minutes": 60}]}, "rota[0].staff"),
        ({"rota": [{"staff": "nurse-1", "weekday": 7, "start": "07:00", "minutes": 60}]}, "rota[0].weekday"),
        ({"rota": [{"staff": "nurse-1", "weekday": 0, "start": "7", "minutes": 60}]}, "rota[0].start"),
        ({"rota": [{"staff": "nurse-1", "weekday": 0, "start": "07:00", "minutes": 0}]}, "rota[0].minutes"),
        (
            {
                "rota": [
                    {"staff": "nurse-1", "weekday": 0, "start": "07:00", "minutes": 600},
                    {"staff": "nurse-1", "weekday": 0, "start": "12:00", "minutes": 60},
                ]
            },
            "shifts[1].start",
        ),
        ({"extra": []}, "roster"),
    ],
)
def test_a_bad_roster_document_names_the_field_to_fix(change: dict[str, object], field: str) -> None:
    with pytest.raises(RosterError) as caught:
        roster_from_document("7", ROSTER_DOC | change)
    assert caught.value.field == field


def test_a_staff_ref_fits_a_notification_reference() -> None:
    with pytest.raises(RosterError) as caught:
        roster_from_document(
            "7", ROSTER_DOC | {"staff": [{"ref": "n" * 33, "name": "N", "phone": "+4791234567"}]}
        )
    assert caught.value.field == "staff[0].ref"
