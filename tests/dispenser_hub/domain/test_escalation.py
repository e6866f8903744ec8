"""Escalation: validation, defaults per level, plans (repeats, keys, quiet, silences), ack, inhibition."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.escalation import (
    DEFAULT_POLICIES,
    DOSE_MISSED,
    DOSE_NOT_TAKEN,
    EscalationError,
    PlannedStep,
    Policy,
    Silence,
    Snapshot,
    Step,
    Target,
    default_policy,
    device_fault_policy,
    inhibited,
    is_urgent,
    next_deadline,
    next_due,
    on_acknowledged,
    plan_steps,
    policy_document,
    policy_from_document,
    recipients_needed,
    time_to_acknowledge,
    validate_for_patient,
)
from dispenser_hub.domain.model import Alarm, AlarmStatus, Responsibility, SubjectKind
from dispenser_hub.domain.supply import QuietHours
from dispenser_hub.domain.wallclock import oslo_instant

MIN = timedelta(minutes=1)
DAY = date(2026, 11, 20)
NOON = oslo_instant(DAY, time(12, 0))
QUIET = QuietHours()
LADDER = Policy(
    "test",
    (
        Step(30 * MIN, Target.RELATIVE, repeat_every=10 * MIN, repeat_max=2),
        Step(60 * MIN, Target.RESPONSE_CENTRE),
        Step(90 * MIN, Target.NAMED_PERSON, person="staff:7"),
    ),
)
SNAP = Snapshot(41, DOSE_NOT_TAKEN, LADDER)


def plan(
    snapshot: Snapshot = SNAP,
    raised_at: datetime = NOON,
    *,
    silences: tuple[Silence, ...] = (),
    quiet: QuietHours | None = QUIET,
    urgent: bool = True,
) -> list[PlannedStep]:
    return plan_steps(snapshot, raised_at, silences=silences, quiet=quiet, urgent=urgent)


def offsets(planned: list[PlannedStep], raised_at: datetime = NOON) -> list[tuple[int, int, int, Target]]:
    return [(p.index, p.repeat, int((p.at - raised_at) / MIN), p.target) for p in planned]


def alarm(kind: str, subject_id: str, *, status: AlarmStatus = AlarmStatus.ACTIVE, **kwargs: object) -> Alarm:
    fields: dict[str, object] = {
        "kind": kind,
        "subject_kind": SubjectKind.DEVICE,
        "subject_id": subject_id,
        "vkp_code": None,
        "severity": 2,
        "raised_at": NOON,
        "last_raised_at": NOON,
        "detail": "",
        "status": status,
        "id": 9,
    }
    fields.update(kwargs)
    return Alarm(**fields)  # type: ignore[arg-type]


# --- validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Step(-MIN, Target.RELATIVE), "after"),
        (lambda: Step(timedelta(hours=25), Target.RELATIVE), "after"),
        (lambda: Step(timedelta(milliseconds=5), Target.RELATIVE), "after"),
        (lambda: Step(MIN, Target.NAMED_PERSON), "person"),
        (lambda: Step(MIN, Target.NAMED_PERSON, person="  "), "person"),
        (lambda: Step(MIN, Target.RELATIVE, person="staff:1"), "person"),
        (lambda: Step(MIN, Target.RELATIVE, repeat_max=2), "repeat_every"),
        (lambda: Step(MIN, Target.RELATIVE, repeat_every=10 * MIN), "repeat_max"),
        (lambda: Step(MIN, Target.RELATIVE, repeat_every=10 * MIN, repeat_max=11), "repeat_max"),
        (lambda: Step(MIN, Target.RELATIVE, repeat_every=MIN, repeat_max=1), "repeat_every"),
        (lambda: Policy(" ", (Step(MIN, Target.RELATIVE),)), "name"),
        (lambda: Policy("p", ()), "steps"),
        (lambda: Policy("p", tuple(Step(i * MIN, Target.RELATIVE) for i in range(9))), "steps"),
        (
            lambda: Policy("p", (Step(MIN, Target.RELATIVE), Step(MIN, Target.HOME_CARE_ON_CALL))),
            "steps[1].after",
        ),
        (lambda: Policy("p", (Step(2 * MIN, Target.RELATIVE), Step(MIN, Target.RELATIVE))), "steps[1].after"),
        (
            lambda: Policy(
                "p",
                (
                    Step(30 * MIN, Target.RELATIVE, repeat_every=15 * MIN, repeat_max=2),
                    Step(60 * MIN, Target.RESPONSE_CENTRE),
                ),
            ),
            "steps[0].repeat_max",
        ),
        (lambda: Silence(NOON, NOON, "hospital", "nurse"), "end"),
        (lambda: Silence(NOON.replace(tzinfo=None), NOON + MIN, "hospital", "nurse"), "start"),
        (lambda: Silence(NOON, NOON + MIN, " ", "nurse"), "reason"),
        (lambda: Silence(NOON, NOON + MIN, "travel", ""), "by"),
        (lambda: time_to_acknowledge(NOON, NOON - MIN), "acknowledged_at"),
        (lambda: device_fault_policy("fault.x", 4), "severity"),
        (lambda: Snapshot.of(alarm("no_contact", "RM3-1", id=None), LADDER), "alarm.id"),
        (lambda: plan(raised_at=NOON.replace(tzinfo=None)), "raised_at"),
    ],
)
def test_validation_errors_name_the_field(make: object, field: str) -> None:
    assert callable(make)
    with pytest.raises(EscalationError) as caught:
        make()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_repeats_ending_just_before_the_next_step_are_valid() -> None:
    policy = Policy(
        "p",
        (
            Step(30 * MIN, Target.RELATIVE, repeat_every=14 * MIN, repeat_max=2),
            Step(60 * MIN, Target.RESPONSE_CENTRE),
        ),
    )
    assert policy.steps[0].last == 58 * MIN


# --- defaults ---------------------------------------------------------------------------------------------


def minutes(policy: Policy) -> list[tuple[int, Target, int]]:
    return [(int(s.after / MIN), s.target, s.repeat_max) for s in policy.steps]


def test_default_policies_per_responsibility_level() -> None:
    assert minutes(default_policy(Responsibility.PATIENT_OR_RELATIVE)) == [
        (30, Target.RELATIVE, 0),
        (60, Target.RESPONSE_CENTRE, 2),
    ]
    assert minutes(default_policy(Responsibility.RESPONSE_CENTRE)) == [(30, Target.RESPONSE_CENTRE, 2)]
    assert minutes(default_policy(Responsibility.HOME_CARE)) == [
        (30, Target.RELATIVE, 0),
        (60, Target.RESPONSE_CENTRE, 0),
        (90, Target.HOME_CARE_ON_CALL, 2),
    ]
    for level in Responsibility:
        assert default_policy(level).steps[-1].repeat_every == 30 * MIN


@pytest.mark.parametrize(
    ("kind", "severity", "first", "repeats"),
    [
        ("no_contact", 2, 0, 2),
        ("fault.jam", 3, 0, 3),
        ("fault.break_in", 3, 0, 3),
        ("fault.battery_dead", 3, 0, 3),
        ("fault.battery_low", 2, 0, 0),
        ("fault.lid_open", 1, 30, 0),
        ("fault.mains_lost", 1, 30, 0),
        ("fault.tray_full", 2, 15, 1),
        ("fault.tilted", 2, 15, 1),
        ("wrong_roll", 3, 0, 3),
        ("fault.unknown", 0, 30, 0),
    ],
)
def test_device_fault_policies_go_to_the_response_centre(
    kind: str, severity: int, first: int, repeats: int
) -> None:
    policy = device_fault_policy(kind, severity)
    assert recipients_needed(policy) == {Target.RESPONSE_CENTRE}
    assert (int(policy.steps[0].after / MIN), policy.steps[0].repeat_max) == (first, repeats)


def test_urgency() -> None:
    assert is_urgent("fault.jam", 3)
    assert is_urgent(DOSE_NOT_TAKEN, 2)
    assert is_urgent(DOSE_MISSED, 2)
    assert is_urgent("no_contact", 2)
    assert not is_urgent("fault.battery_low", 2)
    assert not is_urgent("refill_needed", 1)
    assert not is_urgent("fault.lid_open", 1)


# --- planning ---------------------------------------------------------------------------------------------


def test_plan_orders_steps_and_repeats_with_stable_unique_keys() -> None:
    planned = plan()
    assert offsets(planned) == [
        (0, 0, 30, Target.RELATIVE),
        (0, 1, 40, Target.RELATIVE),
        (0, 2, 50, Target.RELATIVE),
        (1, 0, 60, Target.RESPONSE_CENTRE),
        (2, 0, 90, Target.NAMED_PERSON),
    ]
    assert [p.key for p in planned] == ["esc:41:0:0", "esc:41:0:1", "esc:41:0:2", "esc:41:1:0", "esc:41:2:0"]
    assert planned[-1].person == "staff:7"
    assert planned[0].person is None
    silenced = plan(silences=(Silence(NOON, NOON + 45 * MIN, "hospital", "nurse"),), snapshot=_fault_snap())
    assert {p.key for p in silenced} == {p.key.replace("41", "42") for p in planned}


def _fault_snap() -> Snapshot:
    return Snapshot(42, "fault.jam", LADDER)


def test_urgent_steps_ignore_quiet_hours_non_urgent_steps_wait() -> None:
    late = oslo_instant(DAY, time(21, 0))
    urgent = plan(raised_at=late, urgent=True)
    assert [p.at for p in urgent] == [p.nominal for p in urgent]
    waiting = plan(raised_at=late, urgent=False)
    seven = oslo_instant(DAY + timedelta(days=1), time(7, 0))
    assert [p.at for p in waiting] == [late + 30 * MIN, late + 40 * MIN, late + 50 * MIN, seven, seven]
    assert [p.index for p in waiting] == [0, 0, 0, 1, 2]
    assert [p.at for p in plan(raised_at=late, urgent=False, quiet=None)] == [p.nominal for p in waiting]


def test_steps_in_a_silence_are_postponed_to_its_end() -> None:
    snap = Snapshot(5, "fault.jam", LADDER)
    end = NOON + 55 * MIN
    planned = plan(snap, silences=(Silence(NOON + 35 * MIN, end, "travel", "nurse"),))
    assert offsets(planned) == [
        (0, 0, 30, Target.RELATIVE),
        (0, 1, 55, Target.RELATIVE),
        (0, 2, 55, Target.RELATIVE),
        (1, 0, 60, Target.RESPONSE_CENTRE),
        (2, 0, 90, Target.NAMED_PERSON),
    ]


def test_chained_silences_and_quiet_hours_all_apply() -> None:
    snap = Snapshot(5, "refill_needed", Policy("p", (Step(0 * MIN, Target.RELATIVE),)))
    first = Silence(NOON, oslo_instant(DAY, time(22, 30)), "hospital", "nurse")
    second = Silence(
        oslo_instant(DAY + timedelta(days=1), time(7, 0)), NOON + timedelta(days=1), "rest", "nurse"
    )
    (planned,) = plan(snap, silences=(second, first), urgent=False)
    assert planned.at == NOON + timedelta(days=1)


def test_missed_dose_raised_inside_a_silence_does_not_escalate() -> None:
    silence = Silence(NOON - MIN, NOON + timedelta(days=3), "hospital", "nurse")
    assert plan(Snapshot(5, DOSE_NOT_TAKEN, LADDER), silences=(silence,)) == []
    assert plan(Snapshot(5, DOSE_MISSED, LADDER), silences=(silence,)) == []
    faults = plan(Snapshot(5, "fault.break_in", LADDER), silences=(silence,))
    assert len(faults) == 5
    assert all(p.at == silence.end for p in faults)


def test_snapshot_is_independent_of_later_policy_edits() -> None:
    policy = default_policy(Responsibility.PATIENT_OR_RELATIVE)
    snap = Snapshot.of(alarm(DOSE_NOT_TAKEN, "RM3-1", id=77), policy)
    before = plan(snap)
    edited = dataclasses.replace(policy, steps=(Step(5 * MIN, Target.RESPONSE_CENTRE),))
    assert edited != policy
    assert snap.policy == default_policy(Responsibility.PATIENT_OR_RELATIVE)
    assert plan(snap) == before
    assert before[0].key == "esc:77:0:0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.steps = ()  # type: ignore[misc]


# --- due, acknowledgement ---------------------------------------------------------------------------------


def test_next_due_sends_each_step_once_and_only_while_active() -> None:
    planned = plan()
    assert next_due(planned, set(), NOON + 29 * MIN) == []
    (first,) = next_due(planned, set(), NOON + 30 * MIN)
    assert first.key == "esc:41:0:0"
    assert next_due(planned, {first.key}, NOON + 39 * MIN) == []
    assert [p.key for p in next_due(planned, {first.key}, NOON + 40 * MIN)] == ["esc:41:0:1"]
    assert next_deadline(planned, {first.key}, NOON + 30 * MIN) == NOON + 40 * MIN
    assert next_deadline(planned, {p.key for p in planned}, NOON) is None
    for status in (AlarmStatus.ACKNOWLEDGED, AlarmStatus.RESOLVED):
        assert next_due(planned, set(), NOON + timedelta(days=1), status=status) == []


def test_after_downtime_each_level_is_reached_once_with_its_latest_repeat() -> None:
    planned = plan()
    due = next_due(planned, set(), NOON + 65 * MIN)
    assert [p.key for p in due] == ["esc:41:0:2", "esc:41:1:0"]
    assert next_due(planned, {p.key for p in due}, NOON + 65 * MIN) == []


def test_acknowledgement_cancels_every_unsent_step() -> None:
    planned = plan()
    sent = {"esc:41:0:0", "esc:41:0:1"}
    cancelled = on_acknowledged(planned, sent)
    assert [p.key for p in cancelled] == ["esc:41:0:2", "esc:41:1:0", "esc:41:2:0"]
    assert time_to_acknowledge(NOON, NOON + 42 * MIN) == 42 * MIN


# --- inhibition and routing -------------------------------------------------------------------------------


def test_open_no_contact_inhibits_missed_dose_alarms_of_that_device_only() -> None:
    silent = alarm("no_contact", "RM3-1")
    assert inhibited(DOSE_NOT_TAKEN, "RM3-1", [silent])
    assert inhibited(DOSE_MISSED, "RM3-1", [alarm("no_contact", "RM3-1", status=AlarmStatus.ACKNOWLEDGED)])
    assert not inhibited(DOSE_NOT_TAKEN, "RM3-2", [silent])
    assert not inhibited(DOSE_NOT_TAKEN, None, [silent])
    assert not inhibited("dose.not_dispensed", "RM3-1", [silent])
    assert not inhibited("fault.jam", "RM3-1", [silent])
    assert not inhibited(DOSE_NOT_TAKEN, "RM3-1", [alarm("no_contact", "RM3-1", status=AlarmStatus.RESOLVED)])
    assert not inhibited(DOSE_NOT_TAKEN, "RM3-1", [alarm("fault.jam", "RM3-1")])
    assert not inhibited(
        DOSE_NOT_TAKEN, "RM3-1", [alarm("no_contact", "RM3-1", subject_kind=SubjectKind.PATIENT)]
    )
    assert not inhibited(DOSE_NOT_TAKEN, "RM3-1", [])


def test_recipients_and_undeliverable_steps() -> None:
    home = default_policy(Responsibility.HOME_CARE)
    assert recipients_needed(home) == {Target.RELATIVE, Target.RESPONSE_CENTRE, Target.HOME_CARE_ON_CALL}
    assert validate_for_patient(home, has_relative=True, has_team=True) == []
    problems = validate_for_patient(home, has_relative=False, has_team=False)
    assert [(p.index, p.target) for p in problems] == [(0, Target.RELATIVE), (2, Target.HOME_CARE_ON_CALL)]
    assert all(p.reason for p in problems)
    assert validate_for_patient(LADDER, has_relative=True, has_team=False) == []


# --- properties -------------------------------------------------------------------------------------------

TARGETS = st.sampled_from(list(Target))
START = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    count = draw(st.integers(1, 5))
    steps: list[Step] = []
    start = draw(st.integers(0, 120))
    for _ in range(count):
        target = draw(TARGETS)
        repeats = draw(st.integers(0, 3))
        every = draw(st.integers(5, 60)) if repeats else None
        steps.append(
            Step(
                start * MIN,
                target,
                person="staff:1" if target is Target.NAMED_PERSON else None,
                repeat_every=None if every is None else every * MIN,
                repeat_max=repeats,
            )
        )
        start += (every or 0) * repeats + draw(st.integers(1, 120))
        if start > 24 * 60:
            break
    return Policy("generated", tuple(steps))


MOMENTS = st.integers(0, 2 * 365 * 24 * 3600).map(lambda s: START + timedelta(seconds=s))
SILENCES = st.lists(
    st.tuples(MOMENTS, st.integers(1, 3 * 24 * 60)).map(
        lambda t: Silence(t[0], t[0] + t[1] * MIN, "travel", "x")
    ),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(policies(), MOMENTS, SILENCES, st.booleans(), st.sampled_from([DOSE_NOT_TAKEN, "fault.jam"]))
def test_plans_are_ordered_unique_never_early_and_urgent_never_moved_by_quiet_hours(
    policy: Policy, raised_at: datetime, silences: list[Silence], urgent: bool, kind: str
) -> None:
    snap = Snapshot(3, kind, policy)
    planned = plan_steps(snap, raised_at, silences=silences, quiet=QUIET, urgent=urgent)
    times = [p.at for p in planned]
    assert times == sorted(times)
    assert len({p.key for p in planned}) == len(planned)
    assert all(p.at >= p.nominal >= raised_at for p in planned)
    assert all(not any(s.covers(p.at) for s in silences) for p in planned)
    if not urgent:
        assert all(not QUIET.in_quiet(p.at) for p in planned)
    bare = plan_steps(snap, raised_at, quiet=QUIET, urgent=True)
    assert [p.at for p in bare] == [p.nominal for p in bare]
    assert len(bare) == sum(step.repeat_max + 1 for step in policy.steps)
    for index in range(len(policy.steps)):
        repeats = [p for p in planned if p.index == index]
        assert [p.at for p in repeats] == sorted(p.at for p in repeats)
        assert [p.repeat for p in repeats] == list(range(len(repeats)))


def test_a_policy_document_round_trips() -> None:
    policy = Policy(
        "own",
        (
            Step(timedelta(minutes=20), Target.RELATIVE),
            Step(timedelta(minutes=45), Target.NAMED_PERSON, person="nurse-1"),
            Step(
                timedelta(minutes=70),
                Target.RESPONSE_CENTRE,
                repeat_every=timedelta(minutes=15),
                repeat_max=2,
            ),
        ),
    )
    assert policy_from_document(policy_document(policy)) == policy
    for default in DEFAULT_POLICIES.values():
        assert policy_from_document(policy_document(default)) == default


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([], "steps"),
        ([{"after_minutes": 10, "target": "neighbour"}], "steps[0].target"),
        ([{"after_minutes": -1, "target": "relative"}], "steps[0].after_minutes"),
        ([{"after_minutes": "10", "target": "relative"}], "steps[0].after_minutes"),
        ([{"after_minutes": 10, "target": "named_person"}], "steps[0].person"),
        ([{"after_minutes": 10, "target": "relative", "repeats": 2}], "steps[0].repeat_every_minutes"),
        ([{"after_minutes": 10, "target": "relative", "when": 1}], "steps[0]"),
        (
            [{"after_minutes": 30, "target": "relative"}, {"after_minutes": 20, "target": "response_centre"}],
            "steps[1].after",
        ),
    ],
)
def test_a_bad_policy_document_names_the_field_to_fix(steps: list[object], field: str) -> None:
    with pytest.raises(EscalationError) as caught:
        policy_from_document({"name": "own", "steps": steps})
    assert caught.value.field == field
