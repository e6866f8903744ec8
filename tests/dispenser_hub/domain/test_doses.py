"""The dose lifecycle: transitions, refusals, silent devices, late truth, duplicates, safety properties.

The rules are in ``dispenser_hub.domain.doses``'s docstring. The property test drives one dose through any
sequence hypothesis invents (device events with any times, the hub's due and deadline timers with a silent or
live device, staff skips and plan cancels) and checks ARCHITECTURE.md's invariant: once the deadline has
passed the dose is in exactly one terminal outcome; a terminal outcome changes only by late truth; a taken
dose never raises an alarm; each dose raises at most one alarm and late truth resolves the one it raised.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.alarms import raise_condition
from dispenser_hub.domain.doses import (
    DEVICE_SILENT,
    DOSE_EVENTS,
    DOSE_MISSED,
    DOSE_NOT_DISPENSED,
    LATE_TRUTH,
    NO_CONFIRMATION,
    OPEN,
    TAKEN_STATES,
    TERMINAL,
    Dose,
    DoseChange,
    DoseError,
    DoseState,
    cancel,
    dose_key,
    from_slot,
    is_terminal,
    kinds_to_resolve,
    on_deadline,
    on_due,
    on_event,
    skip,
)
from dispenser_hub.domain.model import AlarmAction, SubjectKind
from dispenser_hub.domain.schedules import DoseWindow, PlannedDose, derive_schedule
from dispenser_hub.domain.wallclock import OSLO

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn

DUE = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
OPENS = DUE - timedelta(hours=1)
CLOSES = DUE + timedelta(hours=2)
MIN = timedelta(minutes=1)
S = DoseState


def make(state: DoseState = S.SCHEDULED, **changes: Any) -> Dose:
    """A multidose dose of patient 7 on RM3-000017, due 08:00 Oslo, in ``state``."""
    dose = Dose("RM3-000017", 7, "s-20260601-0800", DUE, OPENS, CLOSES, pouch_id="P-1")
    return dataclasses.replace(dose, state=state, **changes)


def missed(reason: str = "not_taken") -> Dose:
    return make(S.MISSED, reason=reason, outcome_at=CLOSES)


def event(dose: Dose, kind: str, **kwargs: Any) -> DoseChange:
    at = kwargs.pop("at", DUE)
    now = kwargs.pop("now", DUE + MIN)
    return on_event(dose, kind, at=at, now=now, **kwargs)


# --- records ------------------------------------------------------------------------------------------


def test_state_sets_partition_the_states() -> None:
    assert set(DoseState) == OPEN | TERMINAL
    assert not OPEN & TERMINAL
    assert TAKEN_STATES < TERMINAL
    assert [state for state in DoseState if is_terminal(state)] == [
        S.TAKEN,
        S.TAKEN_LATE,
        S.MISSED,
        S.SKIPPED,
        S.CANCELLED,
        S.UNKNOWN,
    ]
    assert all(old in TERMINAL and new in TERMINAL for old, new in LATE_TRUTH)


def test_from_slot_copies_the_slot_and_starts_scheduled() -> None:
    plan = [PlannedDose(due=DUE, pot=3)]
    schedule = derive_schedule(
        plan, DoseWindow(), [], now=DUE - timedelta(hours=3), horizon=timedelta(days=1)
    )
    dose = from_slot("DP-000002", 9, schedule.slots[0])
    assert (dose.slot_id, dose.due, dose.opens, dose.closes) == ("s-20260601-0800", DUE, OPENS, CLOSES)
    assert (dose.pot, dose.pouch_id, dose.patient_id) == (3, None, 9)
    assert dose.state is S.SCHEDULED
    assert dose.reminders == 0
    assert dose.id is None
    assert dose.key == dose_key("DP-000002", "s-20260601-0800") == "DP-000002/s-20260601-0800"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"due": datetime(2026, 6, 1, 6, 0)}, "due"),  # noqa: DTZ001 - naive on purpose
        ({"opens": DUE + MIN}, "closes"),
        ({"closes": DUE}, "closes"),
        ({"pouch_id": None}, "pouch_id"),
        ({"pot": 2}, "pouch_id"),
        ({"slot_id": " "}, "slot_id"),
        ({"reminders": -1}, "reminders"),
        ({"taken_at": DUE.astimezone(OSLO)}, "taken_at"),
    ],
)
def test_a_dose_record_refuses_broken_fields(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(DoseError) as caught:
        dataclasses.replace(make(), **changes)
    assert caught.value.field == field


# --- time ---------------------------------------------------------------------------------------------


def test_on_due_turns_scheduled_into_due_at_the_due_time() -> None:
    assert on_due(make(), now=DUE - MIN).transition == "not_yet"
    assert on_due(make(), now=DUE - MIN).dose.state is S.SCHEDULED
    change = on_due(make(), now=DUE)
    assert (change.dose.state, change.transition, change.alarm) == (S.DUE, "due", None)
    assert on_due(make(S.REMINDED), now=DUE).dose.state is S.REMINDED
    assert not on_due(make(S.TAKEN), now=DUE).changed


# --- open progress ------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.SCHEDULED, S.DUE, S.REMINDED])
def test_a_reminder_counts_and_makes_the_dose_reminded(state: DoseState) -> None:
    change = event(make(state, reminders=2), "dose.reminder")
    assert (change.dose.state, change.dose.reminders, change.transition) == (S.REMINDED, 3, "reminded")
    assert change.alarm is None


def test_a_reminder_after_presented_counts_but_never_moves_back() -> None:
    change = event(make(S.PRESENTED), "dose.reminder")
    assert (change.dose.state, change.dose.reminders) == (S.PRESENTED, 1)


@pytest.mark.parametrize("state", [S.SCHEDULED, S.DUE, S.REMINDED])
def test_presented_makes_the_dose_presented_without_an_alarm(state: DoseState) -> None:
    change = event(make(state), "dose.presented")
    assert (change.dose.state, change.transition, change.alarm) == (S.PRESENTED, "presented", None)


def test_a_repeated_presented_is_a_duplicate() -> None:
    dose = make(S.PRESENTED, reminders=1)
    change = event(dose, "dose.presented")
    assert (change.dose, change.transition, change.changed) == (dose, "duplicate", False)


@pytest.mark.parametrize("state", sorted(TERMINAL))
@pytest.mark.parametrize("kind", ["dose.reminder", "dose.presented"])
def test_progress_events_on_a_terminal_dose_are_ignored(state: DoseState, kind: str) -> None:
    dose = make(state, reason="x")
    change = event(dose, kind)
    assert (change.dose, change.transition, change.changed) == (dose, "ignored", False)


def test_a_non_dose_event_type_is_a_caller_error() -> None:
    assert "roll.loaded" not in DOSE_EVENTS
    with pytest.raises(DoseError) as caught:
        event(make(), "roll.loaded")
    assert caught.value.field == "event_type"


# --- taken --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dose.taken", "dose.taken_early", "dose.assisted"])
@pytest.mark.parametrize("taken_at", [OPENS - MIN, OPENS, DUE + 90 * MIN, CLOSES])
def test_taken_inside_the_window_is_taken(kind: str, taken_at: datetime) -> None:
    change = event(make(S.PRESENTED), kind, taken_at=taken_at)
    assert (change.dose.state, change.transition) == (S.TAKEN, "taken")
    assert change.dose.taken_at == change.dose.outcome_at == taken_at
    assert (change.alarm, change.resolve_kinds) == (None, ())


def test_taken_after_the_window_is_taken_late() -> None:
    change = event(make(S.REMINDED), "dose.taken", taken_at=CLOSES + MIN, now=CLOSES + 5 * MIN)
    assert (change.dose.state, change.transition, change.alarm) == (S.TAKEN_LATE, "taken_late", None)
    assert change.dose.taken_at == CLOSES + MIN


def test_taken_without_a_body_time_uses_the_event_time() -> None:
    assert event(make(), "dose.taken", at=DUE + MIN).dose.taken_at == DUE + MIN


@pytest.mark.parametrize("state", [S.TAKEN, S.TAKEN_LATE])
def test_a_repeated_taken_is_a_duplicate(state: DoseState) -> None:
    dose = make(state, taken_at=DUE, outcome_at=DUE)
    change = event(dose, "dose.taken", taken_at=DUE + 5 * MIN)
    assert (change.dose, change.transition, change.changed) == (dose, "duplicate", False)


@pytest.mark.parametrize("state", [S.SKIPPED, S.CANCELLED])
def test_a_taken_report_does_not_rewrite_a_staff_or_plan_decision(state: DoseState) -> None:
    dose = make(state, reason="hospital", outcome_at=DUE)
    change = event(dose, "dose.taken", taken_at=DUE + MIN)
    assert (change.dose, change.transition, change.alarm) == (dose, "late_report_ignored", None)


# --- missed -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(OPEN))
def test_not_taken_is_missed_with_a_patient_alarm_3_3(state: DoseState) -> None:
    change = event(make(state), "dose.not_taken", at=CLOSES, now=CLOSES + MIN)
    assert (change.dose.state, change.dose.reason, change.transition) == (S.MISSED, "not_taken", "missed")
    assert change.dose.outcome_at == CLOSES
    alarm = change.alarm
    assert alarm is not None
    assert (alarm.kind, alarm.vkp_code, alarm.severity) == (DOSE_MISSED, "3.3", 2)
    assert (alarm.subject_kind, alarm.subject_id) == (SubjectKind.PATIENT, "7")
    assert (alarm.device_id, alarm.patient_id) == ("RM3-000017", 7)
    assert change.dose.alarm_kind == DOSE_MISSED


def test_not_dispensed_is_missed_with_its_reason_and_a_red_alarm_3_7() -> None:
    change = event(make(S.DUE), "dose.not_dispensed", reason="jam")
    assert (change.dose.state, change.dose.reason) == (S.MISSED, "not_dispensed:jam")
    assert change.alarm is not None
    assert (change.alarm.kind, change.alarm.vkp_code, change.alarm.severity) == (DOSE_NOT_DISPENSED, "3.7", 3)
    assert "jam" in change.alarm.detail
    assert change.dose.alarm_kind == DOSE_NOT_DISPENSED


def test_a_repeated_not_taken_is_a_duplicate_without_a_second_alarm() -> None:
    dose = missed()
    change = event(dose, "dose.not_taken")
    assert (change.dose, change.transition, change.alarm) == (dose, "duplicate", None)
    other = event(dose, "dose.not_dispensed", reason="empty")
    assert (other.dose, other.transition, other.alarm) == (dose, "ignored", None)


@pytest.mark.parametrize("state", [S.TAKEN, S.TAKEN_LATE, S.SKIPPED, S.CANCELLED])
@pytest.mark.parametrize("kind", ["dose.not_taken", "dose.not_dispensed"])
def test_a_not_taken_report_never_overrides_another_outcome(state: DoseState, kind: str) -> None:
    dose = make(state, taken_at=DUE, outcome_at=DUE)
    change = event(dose, kind, reason="empty")
    assert (change.dose, change.transition, change.alarm) == (dose, "ignored", None)


def test_missed_doses_of_one_patient_share_one_alarm() -> None:
    first = event(make(), "dose.not_taken").alarm
    later = dataclasses.replace(make(), slot_id="s-20260601-1400", pouch_id="P-2")
    second = event(later, "dose.not_taken").alarm
    assert first is not None
    assert second is not None
    assert first.dedup_key == second.dedup_key == "patient:7:dose.missed"
    opened = raise_condition(first, None, DUE)
    repeat = raise_condition(second, opened.alarm, DUE + MIN)
    assert (repeat.action, repeat.alarm.count) == (AlarmAction.REPEATED, 2)


# --- deadline -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(OPEN))
def test_the_deadline_with_a_live_device_is_missed_with_3_3(state: DoseState) -> None:
    change = on_deadline(make(state), now=CLOSES, device_silent=False)
    assert (change.dose.state, change.dose.reason, change.dose.outcome_at) == (
        S.MISSED,
        NO_CONFIRMATION,
        CLOSES,
    )
    assert change.alarm is not None
    assert (change.alarm.kind, change.alarm.vkp_code) == (DOSE_MISSED, "3.3")


@pytest.mark.parametrize("state", sorted(OPEN))
def test_the_deadline_with_a_silent_device_is_unknown_without_an_alarm(state: DoseState) -> None:
    change = on_deadline(make(state), now=CLOSES + MIN, device_silent=True)
    assert (change.dose.state, change.dose.reason, change.transition) == (S.UNKNOWN, DEVICE_SILENT, "unknown")
    assert change.alarm is None
    assert change.dose.alarm_kind is None


def test_the_deadline_before_closes_changes_nothing() -> None:
    dose = make(S.PRESENTED)
    change = on_deadline(dose, now=CLOSES - MIN, device_silent=False)
    assert (change.dose, change.transition, change.alarm) == (dose, "not_yet", None)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_the_deadline_leaves_an_outcome_alone(state: DoseState) -> None:
    dose = make(state, reason="x")
    change = on_deadline(dose, now=CLOSES, device_silent=False)
    assert (change.dose, change.transition, change.alarm) == (dose, "ignored", None)


# --- late truth ---------------------------------------------------------------------------------------


def test_late_truth_moves_a_missed_dose_to_taken_late_and_resolves_its_alarm() -> None:
    dose = missed()
    now = CLOSES + timedelta(hours=3)
    change = event(dose, "dose.taken", at=DUE + 10 * MIN, taken_at=DUE + 10 * MIN, now=now)
    assert (change.dose.state, change.transition, change.alarm) == (S.TAKEN_LATE, "late_truth", None)
    assert change.resolve_kinds == (DOSE_MISSED,)
    # the record keeps when and why it was closed as missed, and adds the truth and when it arrived
    assert (change.dose.outcome_at, change.dose.reason) == (CLOSES, "not_taken")
    assert (change.dose.taken_at, change.dose.corrected_at) == (DUE + 10 * MIN, now)


def test_late_truth_resolves_a_not_dispensed_alarm() -> None:
    change = event(missed("not_dispensed:empty"), "dose.assisted", taken_at=CLOSES + MIN)
    assert change.resolve_kinds == (DOSE_NOT_DISPENSED,)


def test_late_truth_moves_an_unknown_dose_to_taken_late_with_nothing_to_resolve() -> None:
    dose = make(S.UNKNOWN, reason=DEVICE_SILENT, outcome_at=CLOSES)
    change = event(dose, "dose.taken_early", taken_at=OPENS + MIN, now=CLOSES + timedelta(days=1))
    assert (change.dose.state, change.transition) == (S.TAKEN_LATE, "late_truth")
    assert (change.alarm, change.resolve_kinds) == (None, ())
    assert (change.dose.outcome_at, change.dose.reason, change.dose.taken_at) == (
        CLOSES,
        DEVICE_SILENT,
        OPENS + MIN,
    )


@pytest.mark.parametrize(
    ("kind", "reason"), [("dose.not_taken", "not_taken"), ("dose.not_dispensed", "not_dispensed:empty")]
)
def test_a_late_not_taken_moves_an_unknown_dose_to_missed_with_its_alarm(kind: str, reason: str) -> None:
    dose = make(S.UNKNOWN, reason=DEVICE_SILENT, outcome_at=CLOSES)
    now = CLOSES + timedelta(hours=5)
    change = event(dose, kind, at=CLOSES, reason="empty", now=now)
    assert (change.dose.state, change.dose.reason, change.transition) == (S.MISSED, reason, "late_missed")
    assert (change.dose.outcome_at, change.dose.corrected_at) == (CLOSES, now)
    assert change.alarm is not None
    assert change.alarm.kind == change.dose.alarm_kind


def test_kinds_to_resolve_keeps_a_shared_alarm_another_missed_dose_still_needs() -> None:
    change = event(missed(), "dose.taken", taken_at=CLOSES + MIN)
    still = dataclasses.replace(missed(), slot_id="s-20260601-1400")
    other_patient = dataclasses.replace(still, patient_id=8)
    taken = dataclasses.replace(still, state=S.TAKEN)
    assert kinds_to_resolve(change, [still]) == ()
    assert kinds_to_resolve(change, [other_patient, taken]) == (DOSE_MISSED,)
    assert kinds_to_resolve(change, [missed()]) == (DOSE_MISSED,)  # the dose itself does not count
    assert kinds_to_resolve(change, [dataclasses.replace(still, reason="not_dispensed:jam")]) == (
        DOSE_MISSED,
    )


# --- staff and plan -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(OPEN))
def test_staff_skip_an_open_dose_with_a_reason(state: DoseState) -> None:
    change = skip(make(state), by="nurse-4", reason="patient in hospital since morning", now=DUE)
    assert (change.dose.state, change.transition, change.alarm) == (S.SKIPPED, "skipped", None)
    assert (change.dose.skipped_by, change.dose.reason, change.dose.outcome_at) == (
        "nurse-4",
        "patient in hospital since morning",
        DUE,
    )


@pytest.mark.parametrize(("by", "reason", "field"), [("", "why", "by"), ("nurse-4", "  ", "reason")])
def test_a_skip_needs_who_and_why(by: str, reason: str, field: str) -> None:
    with pytest.raises(DoseError) as caught:
        skip(make(), by=by, reason=reason, now=DUE)
    assert caught.value.field == field


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_skip_and_cancel_refuse_a_terminal_dose(state: DoseState) -> None:
    with pytest.raises(DoseError, match="already") as caught:
        skip(make(state), by="nurse-4", reason="why", now=DUE)
    assert caught.value.field == "state"
    with pytest.raises(DoseError, match="already"):
        cancel(make(state), reason="plan changed", now=DUE)


@pytest.mark.parametrize("state", sorted(OPEN))
def test_cancel_an_open_dose_for_a_plan_change(state: DoseState) -> None:
    change = cancel(make(state), reason="plan changed by pharmacy", now=DUE - MIN)
    assert (change.dose.state, change.dose.reason, change.transition) == (
        S.CANCELLED,
        "plan changed by pharmacy",
        "cancelled",
    )
    with pytest.raises(DoseError) as caught:
        cancel(make(state), reason="", now=DUE)
    assert caught.value.field == "reason"


def test_a_predispensed_dose_is_cancelled_and_repeats_are_duplicates() -> None:
    change = event(make(S.DUE), "dose.predispensed", at=DUE - timedelta(days=1))
    assert (change.dose.state, change.dose.reason) == (S.CANCELLED, "predispensed")
    assert event(change.dose, "dose.predispensed").transition == "duplicate"
    assert on_deadline(change.dose, now=CLOSES, device_silent=False).alarm is None


# --- properties ---------------------------------------------------------------------------------------

OFFSETS = st.integers(min_value=-120, max_value=400).map(lambda minutes: DUE + minutes * MIN)


@st.composite
def steps(draw: DrawFn) -> tuple[str, object, datetime, datetime | None]:
    """One thing that may happen to a dose: (what, detail, at/now, taken_at)."""
    what = draw(st.sampled_from([*sorted(DOSE_EVENTS), "due", "deadline", "skip", "cancel"]))
    detail: object = draw(st.booleans()) if what == "deadline" else draw(st.sampled_from(["empty", "jam"]))
    return what, detail, draw(OFFSETS), draw(st.none() | OFFSETS)


def apply(dose: Dose, step: tuple[str, object, datetime, datetime | None]) -> DoseChange | None:
    what, detail, moment, taken_at = step
    if what == "due":
        return on_due(dose, now=moment)
    if what == "deadline":
        return on_deadline(dose, now=moment, device_silent=bool(detail))
    try:
        if what == "skip":
            return skip(dose, by="nurse-4", reason="visit", now=moment)
        if what == "cancel":
            return cancel(dose, reason="pause", now=moment)
    except DoseError:
        assert dose.state in TERMINAL  # staff input is refused only on an outcome
        return None
    return on_event(dose, what, at=moment, now=moment, taken_at=taken_at, reason=str(detail))


@settings(max_examples=400, deadline=None)
@given(st.lists(steps(), max_size=25), st.booleans())
def test_every_dose_ends_in_one_outcome_that_only_late_truth_changes(
    history: list[tuple[str, object, datetime, datetime | None]], silent: bool
) -> None:
    dose = make()
    alarms = []
    for step in [*history, ("deadline", silent, CLOSES, None)]:
        change = apply(dose, step)
        if change is None:
            continue
        old, new = dose.state, change.dose.state
        assert (change.dose != dose) == change.changed
        if old in TERMINAL and new != old:
            assert (old, new) in LATE_TRUTH
        if new in TAKEN_STATES or new in {S.UNKNOWN, S.SKIPPED, S.CANCELLED}:
            assert change.alarm is None
        if change.alarm is not None:
            assert new is S.MISSED
            assert change.alarm.kind == change.dose.alarm_kind
            alarms.append(change.alarm)
        if change.resolve_kinds:
            assert old is S.MISSED
            assert change.resolve_kinds == (dose.alarm_kind,)
        if step[0] == "deadline" and step[2] >= CLOSES:
            assert new in TERMINAL
        dose = change.dose
    assert dose.state in TERMINAL
    assert len(alarms) <= 1
    assert dose.outcome_at is not None
    if dose.state in TAKEN_STATES:
        assert dose.taken_at is not None


def test_the_property_machine_reaches_every_outcome() -> None:
    """The steps the property test invents do lead to each terminal state (the property is not vacuous)."""
    reached = [
        apply(make(), ("dose.taken", "", DUE, None)),
        apply(make(), ("dose.taken", "", CLOSES + MIN, None)),
        apply(make(), ("dose.not_taken", "", CLOSES, None)),
        apply(make(), ("skip", "", DUE, None)),
        apply(make(), ("cancel", "", DUE, None)),
        apply(make(), ("deadline", True, CLOSES, None)),
    ]
    assert {change.dose.state for change in reached if change is not None} == TERMINAL
