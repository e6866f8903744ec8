"""Supply forecasting: 72 h and 24 h refill warnings, quiet hours (DST, midnight), sent once, never late."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.model import SubjectKind
from dispenser_hub.domain.pouches import DrugLine, Pouch, RollManifest
from dispenser_hub.domain.supply import (
    QuietHours,
    RefillPolicy,
    Supply,
    SupplyError,
    due_warnings,
    refill_warnings,
)
from dispenser_hub.domain.wallclock import oslo_instant

if TYPE_CHECKING:
    from collections.abc import Callable

HOUR = timedelta(hours=1)
QUIET = QuietHours()
POLICY = RefillPolicy()


def oslo(day: date, hour: int, minute: int = 0) -> datetime:
    return oslo_instant(day, time(hour, minute))


NOV = date(2026, 11, 26)
NOW = oslo(date(2026, 11, 20), 12)


def _roll(runs_out_at: datetime | None, source_id: str = "R-1", doses: int | None = 12) -> Supply:
    return Supply(7, "roll", source_id, runs_out_at, doses)


def _times(supply: Supply, now: datetime = NOW, policy: RefillPolicy = POLICY) -> list[datetime]:
    return [warning.at for warning in refill_warnings(supply, policy, QUIET, now=now)]


# Stages


def test_default_stages_warn_72_and_24_hours_before_the_supply_runs_out() -> None:
    end = oslo(NOV, 8)
    warnings = refill_warnings(_roll(end), POLICY, QUIET, now=NOW)
    assert [(w.stage, w.lead, w.at) for w in warnings] == [
        (0, 72 * HOUR, oslo(date(2026, 11, 23), 8)),
        (1, 24 * HOUR, oslo(date(2026, 11, 25), 8)),
    ]
    assert all(w.runs_out_at == end for w in warnings)


def test_a_stage_at_0300_moves_forward_to_0700() -> None:
    assert _times(_roll(oslo(NOV, 3))) == [oslo(date(2026, 11, 23), 7), oslo(date(2026, 11, 25), 7)]


def test_a_stage_whose_quiet_end_is_after_runs_out_moves_back_before_2200() -> None:
    policy = RefillPolicy((3 * HOUR,))
    assert _times(_roll(oslo(NOV, 6)), policy=policy) == [oslo(date(2026, 11, 25), 21, 59)]


def test_a_stage_whose_quiet_end_is_after_the_next_stage_moves_back_and_order_is_kept() -> None:
    policy = RefillPolicy((72 * HOUR, 71 * HOUR))
    # nominal 05:30 and 06:30: 07:00 would be after the next stage, so the first goes back to 21:59
    times = _times(_roll(oslo(NOV, 5, 30)), policy=policy)
    assert times == [oslo(date(2026, 11, 22), 21, 59), oslo(date(2026, 11, 23), 7)]


def test_quiet_end_exactly_at_the_next_stage_is_allowed() -> None:
    policy = RefillPolicy((72 * HOUR, 71 * HOUR))
    assert _times(_roll(oslo(NOV, 6)), policy=policy) == [oslo(date(2026, 11, 23), 7)] * 2


def test_a_stage_moved_back_never_goes_before_the_stage_before_it() -> None:
    policy = RefillPolicy((timedelta(hours=7, seconds=30), 6 * HOUR))
    # first stage at 21:59:30 (allowed); the second (23:00) moves back to 21:59 but not before the first
    expected = oslo(date(2026, 11, 25), 21, 59) + timedelta(seconds=30)
    assert _times(_roll(oslo(NOV, 5)), policy=policy) == [expected, expected]


# Quiet hours


def test_quiet_hours_wrap_midnight() -> None:
    day = date(2026, 11, 23)
    assert not QUIET.in_quiet(oslo(day, 21, 59))
    assert QUIET.in_quiet(oslo(day, 22))
    assert QUIET.in_quiet(oslo(day, 23, 59))
    assert QUIET.in_quiet(oslo(day, 0, 1))
    assert not QUIET.in_quiet(oslo(day, 7))
    assert QUIET.next_allowed(oslo(day, 23)) == oslo(day + timedelta(days=1), 7)
    assert QUIET.next_allowed(oslo(day, 1)) == oslo(day, 7)
    assert QUIET.next_allowed(oslo(day, 12)) == oslo(day, 12)


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(time(12), time(13, 30))
    day = date(2026, 11, 23)
    assert lunch.in_quiet(oslo(day, 12, 15))
    assert not lunch.in_quiet(oslo(day, 23))
    assert lunch.next_allowed(oslo(day, 12, 15)) == oslo(day, 13, 30)


def test_quiet_hours_across_spring_forward() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; quiet is 21:00 UTC (22:00 CET) to 05:00 UTC (07:00 CEST)
    assert not QUIET.in_quiet(datetime(2026, 3, 28, 20, 59, tzinfo=UTC))
    assert QUIET.in_quiet(datetime(2026, 3, 28, 21, 0, tzinfo=UTC))
    assert QUIET.in_quiet(datetime(2026, 3, 29, 4, 59, tzinfo=UTC))
    assert not QUIET.in_quiet(datetime(2026, 3, 29, 5, 0, tzinfo=UTC))
    assert QUIET.next_allowed(datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == datetime(2026, 3, 29, 5, tzinfo=UTC)
    end = oslo(date(2026, 4, 1), 3, 30)
    assert _times(_roll(end), now=datetime(2026, 3, 20, tzinfo=UTC))[0] == datetime(
        2026, 3, 29, 5, tzinfo=UTC
    )


def test_quiet_hours_across_fall_back() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; quiet is 20:00 UTC (22:00 CEST) to 06:00 UTC (07:00 CET)
    assert not QUIET.in_quiet(datetime(2026, 10, 24, 19, 59, tzinfo=UTC))
    assert QUIET.in_quiet(datetime(2026, 10, 24, 20, 0, tzinfo=UTC))
    assert QUIET.in_quiet(datetime(2026, 10, 25, 5, 59, tzinfo=UTC))
    assert not QUIET.in_quiet(datetime(2026, 10, 25, 6, 0, tzinfo=UTC))
    assert QUIET.next_allowed(datetime(2026, 10, 25, 1, 0, tzinfo=UTC)) == datetime(
        2026, 10, 25, 6, tzinfo=UTC
    )
    assert QUIET.in_quiet(datetime(2026, 10, 25, 21, 0, tzinfo=UTC))  # 22:00 CET the same evening
    # 07:00 CET would be after runs-out at 06:30 CET: back to 21:59 CEST the evening before
    end = datetime(2026, 10, 25, 5, 30, tzinfo=UTC)
    warnings = refill_warnings(
        _roll(end), RefillPolicy((3 * HOUR,)), QUIET, now=datetime(2026, 10, 20, tzinfo=UTC)
    )
    assert [w.at for w in warnings] == [datetime(2026, 10, 24, 19, 59, tzinfo=UTC)]


# Past stages, sent once, never late


def test_a_past_stage_fires_once_at_the_next_allowed_moment() -> None:
    end = oslo(NOV, 8)
    now = oslo(date(2026, 11, 24), 10)  # 72 h stage passed while the hub was down
    [first, second] = refill_warnings(_roll(end), POLICY, QUIET, now=now)
    assert (first.stage, first.at, second.at) == (0, now, oslo(date(2026, 11, 25), 8))
    assert due_warnings(_roll(end), POLICY, QUIET, now=now, sent=set()) == [first]
    assert due_warnings(_roll(end), POLICY, QUIET, now=now + HOUR, sent={first.key}) == []


def test_a_past_stage_in_quiet_hours_waits_for_the_quiet_end() -> None:
    end = oslo(NOV, 8)
    night = oslo(date(2026, 11, 23), 23)
    assert _times(_roll(end), now=night)[0] == oslo(date(2026, 11, 24), 7)
    assert due_warnings(_roll(end), POLICY, QUIET, now=night, sent=set()) == []
    [due] = due_warnings(_roll(end), POLICY, QUIET, now=oslo(date(2026, 11, 24), 7), sent=set())
    assert due.stage == 0


def test_a_past_stage_is_superseded_when_the_next_stage_is_due_too() -> None:
    end = oslo(NOV, 8)
    now = oslo(date(2026, 11, 25), 12)
    [only] = due_warnings(_roll(end), POLICY, QUIET, now=now, sent=set())
    assert (only.stage, only.at) == (1, now)


def test_no_warning_once_the_supply_has_run_out_or_is_unknown() -> None:
    end = oslo(NOV, 8)
    assert refill_warnings(_roll(end), POLICY, QUIET, now=end) == []
    assert refill_warnings(_roll(end), POLICY, QUIET, now=end + HOUR) == []
    assert refill_warnings(_roll(None), POLICY, QUIET, now=NOW) == []


def test_unavoidable_quiet_warning_when_everything_until_runs_out_is_quiet() -> None:
    # 23:00, the last dose is at 05:00: there is no allowed moment before it, so warn now
    now = oslo(date(2026, 11, 25), 23)
    end = oslo(NOV, 5)
    warnings = refill_warnings(_roll(end), POLICY, QUIET, now=now)
    assert [(w.stage, w.at) for w in warnings] == [(1, now)]
    assert QUIET.in_quiet(warnings[0].at)


def test_dedup_key_is_per_patient_source_and_stage_and_a_repeat_is_not_due_again() -> None:
    end = oslo(NOV, 8)
    first, second = refill_warnings(_roll(end), POLICY, QUIET, now=NOW)
    assert (first.key, second.key) == ("refill:7:R-1:0", "refill:7:R-1:1")
    assert refill_warnings(_roll(end, "R-2"), POLICY, QUIET, now=NOW)[0].key == "refill:7:R-2:0"
    earlier = _roll(end).after_almost_empty("R-1", 3, end - 2 * HOUR)
    now = oslo(date(2026, 11, 23), 9)
    assert due_warnings(earlier, POLICY, QUIET, now=now, sent={first.key}) == []


def test_condition_is_a_green_refill_alarm_about_the_patient_without_patient_data() -> None:
    [first, _] = refill_warnings(_roll(oslo(NOV, 8)), POLICY, QUIET, now=NOW)
    condition = first.condition(device_id="RM3-000017")
    assert (condition.kind, condition.subject_kind, condition.subject_id) == (
        "refill_needed",
        SubjectKind.PATIENT,
        "7",
    )
    assert (condition.severity, condition.vkp_code, condition.device_id, condition.patient_id) == (
        1,
        "3.25",
        "RM3-000017",
        7,
    )
    assert condition.detail == "supply on roll R-1 runs out 2026-11-26 08:00 (Europe/Oslo)"
    assert condition.dedup_key == "patient:7:refill_needed"


# Supply updates


def test_supply_from_manifest_and_tray_fill() -> None:
    line = DrugLine("Paracetamol", "500 mg", Decimal(2))
    pouches = tuple(Pouch(f"P-{n}", oslo(NOV, 8) - n * 24 * HOUR, (line,)) for n in (2, 1, 0))
    manifest = RollManifest("R-9", "01819010001", "PX-A", "Apotek", NOW, pouches)
    assert Supply.from_manifest(7, manifest) == Supply(7, "roll", "R-9", oslo(NOV, 8), 3)
    assert Supply.from_tray_fill(7, "T-1", oslo(NOV, 8), 28) == Supply(7, "tray", "T-1", oslo(NOV, 8), 28)


def test_an_earlier_almost_empty_report_moves_the_forecast_a_later_one_does_not() -> None:
    supply = _roll(oslo(NOV, 8))
    earlier = supply.after_almost_empty("R-1", 4, oslo(date(2026, 11, 25), 20))
    assert (earlier.runs_out_at, earlier.doses_left) == (oslo(date(2026, 11, 25), 20), 4)
    assert supply.after_almost_empty("R-1", 6, oslo(NOV, 20)) == supply
    assert supply.after_almost_empty("R-1", 6, oslo(NOV, 8)) == supply
    assert supply.after_almost_empty("R-OLD", 1, oslo(date(2026, 11, 21), 8)) == supply
    assert _times(earlier)[1] == oslo(date(2026, 11, 24), 20)


def test_unknown_forecast_takes_the_almost_empty_report() -> None:
    until = oslo(NOV, 8)
    assert _roll(None, doses=None).after_almost_empty("R-1", 5, until) == _roll(until, doses=5)


def test_an_empty_report_means_the_supply_runs_out_now() -> None:
    supply = _roll(oslo(NOV, 8))
    empty = supply.after_empty("R-1", now=NOW)
    assert (empty.runs_out_at, empty.doses_left) == (NOW, 0)
    assert refill_warnings(empty, POLICY, QUIET, now=NOW) == []
    assert _roll(None).after_empty("R-1", now=NOW).runs_out_at == NOW
    assert supply.after_empty("R-OLD", now=NOW) == supply


# Validation


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Supply(7, "pot", "R-1", None), "source"),  # type: ignore[arg-type]
        (lambda: Supply(7, "roll", " ", None), "source_id"),
        (lambda: Supply(7, "roll", "R-1", datetime(2026, 11, 26, 8)), "runs_out_at"),  # noqa: DTZ001
        (lambda: Supply(7, "roll", "R-1", None, -1), "doses_left"),
        (lambda: _roll(None).after_almost_empty("R-1", 1, datetime(2026, 11, 26)), "until"),  # noqa: DTZ001
        (lambda: QuietHours(time(22), time(22)), "end"),
        (lambda: QuietHours(time(22, 0, 30)), "start"),
        (lambda: QuietHours(end=time(2, 30)), "end"),
        (lambda: QuietHours(start=time(22, tzinfo=UTC)), "start"),
        (lambda: RefillPolicy(()), "leads"),
        (lambda: RefillPolicy(tuple(n * HOUR for n in (96, 72, 48, 24, 12))), "leads"),
        (lambda: RefillPolicy((72 * HOUR, timedelta(0))), "leads[1]"),
        (lambda: RefillPolicy((24 * HOUR, 72 * HOUR)), "leads[1]"),
        (lambda: RefillPolicy((24 * HOUR, 24 * HOUR)), "leads[1]"),
        (lambda: refill_warnings(_roll(None), POLICY, QUIET, now=datetime(2026, 11, 26)), "now"),  # noqa: DTZ001
    ],
)
def test_validation_errors_name_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(SupplyError) as caught:
        build()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


# Properties

_MINUTE_TIMES = st.builds(time, st.sampled_from([*range(2), *range(3, 24)]), st.integers(0, 59))
_QUIET = st.one_of(
    st.just(QUIET),
    st.tuples(_MINUTE_TIMES, _MINUTE_TIMES).filter(lambda t: t[0] != t[1]).map(lambda t: QuietHours(*t)),
)
_LEADS = st.lists(st.integers(1, 7 * 24 * 60), min_size=1, max_size=4, unique=True).map(
    lambda minutes: RefillPolicy(tuple(timedelta(minutes=m) for m in sorted(minutes, reverse=True)))
)
_INSTANTS = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001


def _always_quiet(quiet: QuietHours, start: datetime, end: datetime) -> bool:
    """Every moment of ``[start, end]`` is quiet (checked exactly: quiet periods are intervals)."""
    period = quiet.period(start)
    return period is not None and end < period[1]


@settings(max_examples=400, deadline=None)
@given(
    quiet=_QUIET,
    policy=_LEADS,
    now=_INSTANTS,
    supply_minutes=st.integers(1, 9 * 24 * 60),
)
def test_warnings_avoid_quiet_hours_are_never_late_and_keep_stage_order(
    quiet: QuietHours, policy: RefillPolicy, now: datetime, supply_minutes: int
) -> None:
    end = now + timedelta(minutes=supply_minutes, seconds=17)
    warnings = refill_warnings(_roll(end), policy, quiet, now=now)
    assert warnings, "a supply that has not run out always has at least its last stage"
    assert warnings[-1].stage == len(policy.leads) - 1
    stages = [w.stage for w in warnings]
    assert stages == sorted(set(stages))
    times = [w.at for w in warnings]
    assert times == sorted(times)
    for warning in warnings:
        assert now <= warning.at <= end
        # the only quiet warning: nothing between now and runs-out is allowed
        assert not quiet.in_quiet(warning.at) or _always_quiet(quiet, now, end)
        nominal = end - warning.lead
        if nominal > now and not quiet.in_quiet(nominal):
            assert warning.at == nominal  # moved only when its own time is quiet
