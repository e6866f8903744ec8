"""Escalation policies: who is told about an open alarm, when, until someone acknowledges it.

A ``Policy`` is an ordered ladder of ``Step``s (wait ``after`` from the raise; notify the relative, the
response centre, the home-care team on call or a named person; repeat every ``repeat_every`` up to
``repeat_max`` times). Rules:

- **Validation** (``EscalationError`` names the field): a name; 1-``MAX_STEPS`` steps with strictly
  increasing ``after`` (0-24 h, whole seconds); ``person`` given iff the target is ``NAMED_PERSON``;
  ``repeat_every`` (at least 5 min, alarm fatigue) given iff ``repeat_max`` is 1-``MAX_REPEATS``; a step's
  repeats end before the next step begins (the ladder climbs, it never interleaves).
- **Defaults** (``default_policy``), from DOMAIN.md: the device itself reminds at dose time (the
  ``schedules.DoseWindow`` ladder, not a hub step); the hub tells the relative after 30 min, the response
  centre after 60, home care after 90. ``PATIENT_OR_RELATIVE``: relative 30, response centre 60 (a level-3
  patient without a home-care decision). ``RESPONSE_CENTRE``: the response centre at 30 (it is the first
  responder, so nobody waits for a relative step that is not in its path). ``HOME_CARE``: relative 30,
  response centre 60, home care on call 90. The last step of every default repeats every 30 min twice, so
  an unanswered alarm stays in front of a human. Device faults (``device_fault_policy``) go to the response
  centre, which follows up the technology whatever the patient's level (table ``FAULT_POLICIES``).
- **Snapshot**: an alarm keeps the policy it was raised with (``Snapshot``); policies are immutable values,
  so a later edit makes a new policy and never changes alarms in flight.
- **Plan** (``plan_steps``): each step and repeat at ``raised_at + after + k * repeat_every``, with a key
  ``esc:<alarm id>:<step>:<repeat>`` that does not depend on the placement, so a step is never notified
  twice. A step inside a ``Silence`` (hospital, travel) is postponed to the silence end, never dropped,
  so a fault still open then reaches a human; but a missed-dose alarm raised inside a silence gets no
  steps (its dose was cancelled by the pause; the patient is in someone else's care). A non-urgent
  alarm's steps then move out of quiet hours (``QuietHours.next_allowed``); urgent steps are never moved
  by quiet hours. The plan is sorted by time; no step is before ``raised_at``.
- **Due** (``next_due``): only an active alarm escalates; acknowledgement (or resolution) stops every
  further step. Of a step's due repeats only the latest unsent one is returned (a hub that was down does
  not send the same step three times at once). ``time_to_acknowledge`` is reported to supervisors.
- **Console only** (``CONSOLE_ONLY_KINDS``): a dispenser's goodbye (``death``, its Last Will) is shown in
  the console at once but calls nobody: if it stays silent past the threshold the ``no_contact`` alarm
  escalates, so a short outage wakes no one and one outage is one escalation.
- **Inhibition** (``inhibited``): a missed-dose alarm (``dose.not_taken`` from the device, VKP 3.3, or
  ``dose.missed``, the hub's own window-closed-without-report condition) is not raised for a device whose
  ``no_contact`` alarm is open: that alarm reaches a human about the silent device and its unknown doses,
  and the device reports the truth when it is back. ``dose.not_dispensed`` (red, empty) is not inhibited.

Pure: callers pass every time; nothing here reads a clock or storage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.model import Alarm, AlarmStatus, Responsibility, SubjectKind
from dispenser_hub.domain.presence import NO_CONTACT

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from collections.abc import Set as AbstractSet

    from dispenser_hub.domain.supply import QuietHours

MAX_STEPS: Final = 8
MAX_REPEATS: Final = 10
MAX_AFTER: Final = timedelta(hours=24)
MIN_REPEAT_EVERY: Final = timedelta(minutes=5)
RED: Final = 3
DOSE_NOT_TAKEN: Final = "dose.not_taken"
DOSE_MISSED: Final = "dose.missed"
"""The hub's own missed-dose condition: the window closed and the device reported nothing."""
MISSED_DOSE_KINDS: Final = frozenset({DOSE_NOT_TAKEN, DOSE_MISSED})
URGENT_KINDS: Final = MISSED_DOSE_KINDS | {NO_CONTACT, "roll.empty", "tray.empty", "fault.tray_full"}
"""Besides red alarms: a dose is at stake now, so quiet hours do not wait for these."""
CONSOLE_ONLY_KINDS: Final = frozenset({"death"})
"""Alarm kinds that escalate to nobody (module rules)."""
_ZERO: Final = timedelta(0)


class EscalationError(ValueError):
    """A step, policy, silence or time that breaks a rule; ``field`` names where, the message what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def _check_aware(field: str, value: datetime) -> None:
    if value.tzinfo is None:
        raise EscalationError(field, "must be timezone-aware")


class Target(enum.StrEnum):
    """Who a step notifies."""

    RELATIVE = "relative"
    RESPONSE_CENTRE = "response_centre"
    HOME_CARE_ON_CALL = "home_care_on_call"
    """The on-call nurse of the patient's home-care team (district)."""
    NAMED_PERSON = "named_person"


@dataclass(frozen=True, slots=True)
class Step:
    """Notify ``target`` ``after`` the raise, then every ``repeat_every`` up to ``repeat_max`` more times."""

    after: timedelta
    target: Target
    person: str | None = None
    """Reference of the named person (staff or contact id), only for ``Target.NAMED_PERSON``."""
    repeat_every: timedelta | None = None
    repeat_max: int = 0

    def __post_init__(self) -> None:
        """Validate (see the module rules)."""
        if not _ZERO <= self.after <= MAX_AFTER or self.after % timedelta(seconds=1):
            raise EscalationError("after", f"must be whole seconds in 0-24 h, not {self.after}")
        named = self.target is Target.NAMED_PERSON
        if named and (self.person is None or not self.person.strip()):
            raise EscalationError("person", "a named-person step must name the person")
        if not named and self.person is not None:
            raise EscalationError("person", f"only a named-person step names a person, not {self.target}")
        if not 0 <= self.repeat_max <= MAX_REPEATS:
            raise EscalationError("repeat_max", f"must be 0-{MAX_REPEATS}, not {self.repeat_max}")
        if self.repeat_every is None:
            if self.repeat_max:
                raise EscalationError("repeat_every", "must be given when repeat_max is")
        elif not self.repeat_max:
            raise EscalationError("repeat_max", "must be 1 or more when repeat_every is given")
        elif not MIN_REPEAT_EVERY <= self.repeat_every <= MAX_AFTER:
            raise EscalationError("repeat_every", f"must be 5 min-24 h, not {self.repeat_every}")

    @property
    def last(self) -> timedelta:
        """When the step's last repeat is due, from the raise."""
        return self.after + (self.repeat_every or _ZERO) * self.repeat_max


@dataclass(frozen=True, slots=True)
class Policy:
    """A named escalation ladder, steps in ``after`` order."""

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        """Validate (see the module rules)."""
        if not self.name.strip():
            raise EscalationError("name", "must not be empty")
        if not 1 <= len(self.steps) <= MAX_STEPS:
            raise EscalationError("steps", f"must have 1-{MAX_STEPS} steps, not {len(self.steps)}")
        for index in range(1, len(self.steps)):
            before, step = self.steps[index - 1], self.steps[index]
            if step.after <= before.after:
                raise EscalationError(f"steps[{index}].after", "must be later than the step before it")
            if before.last >= step.after:
                raise EscalationError(
                    f"steps[{index - 1}].repeat_max", "its repeats must end before the next step"
                )


def _step(minutes: int, target: Target, *, repeats: int = 0) -> Step:
    every = timedelta(minutes=30) if repeats else None
    return Step(timedelta(minutes=minutes), target, repeat_every=every, repeat_max=repeats)


_T = Target
DEFAULT_POLICIES: Final[dict[Responsibility, Policy]] = {
    Responsibility.PATIENT_OR_RELATIVE: Policy(
        "default patient or relative", (_step(30, _T.RELATIVE), _step(60, _T.RESPONSE_CENTRE, repeats=2))
    ),
    Responsibility.RESPONSE_CENTRE: Policy(
        "default response centre", (_step(30, _T.RESPONSE_CENTRE, repeats=2),)
    ),
    Responsibility.HOME_CARE: Policy(
        "default home care",
        (
            _step(30, _T.RELATIVE),
            _step(60, _T.RESPONSE_CENTRE),
            _step(90, _T.HOME_CARE_ON_CALL, repeats=2),
        ),
    ),
}
"""Dose alarms by responsibility level (module rules); adjustable per patient by storing another policy."""


def default_policy(responsibility: Responsibility) -> Policy:
    """The default dose-alarm policy of a responsibility level."""
    return DEFAULT_POLICIES[responsibility]


def _fault(name: str, minutes: int, every: int = 0, repeats: int = 0) -> Policy:
    repeat_every = timedelta(minutes=every) if repeats else None
    step = Step(timedelta(minutes=minutes), _T.RESPONSE_CENTRE, repeat_every=repeat_every, repeat_max=repeats)
    return Policy(name, (step,))


_RED_FAULT = _fault("fault red", 0, 15, 3)
"""Jam, break-in, dead battery, empty with a dose not dispensed: a dose or the medicines are at stake now."""
_YELLOW_FAULT = _fault("fault yellow", 15, 60, 1)
"""Tilted, unreadable pouch, tray full: 15 min lets the device auto-resolve (set upright) first."""
_GREEN_FAULT = _fault("fault green", 30)
"""Lid open, mains lost: usually over within minutes (lid closed, plug back); 30 min avoids noise."""
FAULT_POLICIES: Final[dict[str, Policy]] = {
    NO_CONTACT: _fault("no contact", 0, 30, 2),  # the hub already waited for the silence threshold
    "fault.battery_low": _fault("battery low", 0),  # days of battery left: non-urgent, waits for quiet hours
    "fault.lid_open": _GREEN_FAULT,
    "fault.mains_lost": _GREEN_FAULT,
    "fault.tray_full": _YELLOW_FAULT,
    "fault.jam": _RED_FAULT,
    "fault.break_in": _RED_FAULT,
    "fault.battery_dead": _RED_FAULT,
}
"""Device-fault policies by alarm kind; other kinds by severity (``device_fault_policy``)."""


def device_fault_policy(kind: str, severity: int) -> Policy:
    """The policy of a device-fault alarm: by kind (``FAULT_POLICIES``), else by severity 0-3."""
    if not 0 <= severity <= RED:
        raise EscalationError("severity", f"must be 0-3, not {severity}")
    if kind in FAULT_POLICIES:
        return FAULT_POLICIES[kind]
    return _RED_FAULT if severity == RED else _YELLOW_FAULT if severity == RED - 1 else _GREEN_FAULT


def is_urgent(kind: str, severity: int) -> bool:
    """Whether an alarm ignores quiet hours: red, or a kind where a dose is at stake (``URGENT_KINDS``)."""
    return severity >= RED or kind in URGENT_KINDS


@dataclass(frozen=True, slots=True)
class Silence:
    """Escalation paused in ``[start, end)`` for a patient (hospital, travel): who entered it and why."""

    start: datetime
    end: datetime
    reason: str
    by: str

    def __post_init__(self) -> None:
        """Aware times, start before end, a reason and who."""
        _check_aware("start", self.start)
        _check_aware("end", self.end)
        if self.end <= self.start:
            raise EscalationError("end", "must be after start")
        if not self.reason.strip():
            raise EscalationError("reason", "must not be empty (e.g. hospital, travel)")
        if not self.by.strip():
            raise EscalationError("by", "who entered the silence must be given")

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` lies in the silence (start inclusive, end exclusive)."""
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The policy an alarm was raised with, kept with the alarm (edits to the policy do not reach it)."""

    alarm_id: int
    kind: str
    policy: Policy

    @classmethod
    def of(cls, alarm: Alarm, policy: Policy) -> Snapshot:
        """Snapshot ``policy`` for a stored ``alarm``."""
        if alarm.id is None:
            raise EscalationError("alarm.id", "the alarm must be stored before its policy is snapshot")
        return cls(alarm.id, alarm.kind, policy)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One notification of a plan: step ``index``, repeat ``repeat`` (0 = first), at ``at``."""

    index: int
    repeat: int
    at: datetime
    target: Target
    key: str
    """``esc:<alarm id>:<index>:<repeat>``: sent at most once."""
    nominal: datetime
    """Before silences and quiet hours moved it."""
    person: str | None = None


def step_key(alarm_id: int, index: int, repeat: int) -> str:
    """``esc:<alarm id>:<index>:<repeat>``, the key of one planned notification (``PlannedStep.key``)."""
    return f"esc:{alarm_id}:{index}:{repeat}"


def plan_steps(
    snapshot: Snapshot,
    raised_at: datetime,
    *,
    silences: Sequence[Silence] = (),
    quiet: QuietHours | None,
    urgent: bool,
) -> list[PlannedStep]:
    """Every notification of the alarm, placed by the module rules, sorted by time."""
    _check_aware("raised_at", raised_at)
    if snapshot.kind in MISSED_DOSE_KINDS and any(s.covers(raised_at) for s in silences):
        return []
    plan: list[PlannedStep] = []
    for index, step in enumerate(snapshot.policy.steps):
        for repeat in range(step.repeat_max + 1):
            nominal = raised_at + step.after + (step.repeat_every or _ZERO) * repeat
            at = _place(nominal, silences, None if urgent else quiet)
            key = step_key(snapshot.alarm_id, index, repeat)
            plan.append(PlannedStep(index, repeat, at, step.target, key, nominal, step.person))
    plan.sort(key=lambda planned: (planned.at, planned.nominal, planned.index))
    return plan


def _place(moment: datetime, silences: Sequence[Silence], quiet: QuietHours | None) -> datetime:
    """Out of every silence, then out of quiet hours, until neither moves it (each move goes forward)."""
    while True:
        moved = moment
        for silence in silences:
            if silence.covers(moved):
                moved = silence.end
        if quiet is not None:
            moved = quiet.next_allowed(moved)
        if moved == moment:
            return moment
        moment = moved


def next_due(
    plan: Sequence[PlannedStep],
    sent_keys: AbstractSet[str],
    now: datetime,
    *,
    status: AlarmStatus = AlarmStatus.ACTIVE,
) -> list[PlannedStep]:
    """The notifications to send now: due, unsent, latest due repeat per step; none unless active."""
    _check_aware("now", now)
    if status is not AlarmStatus.ACTIVE:
        return []
    latest: dict[int, PlannedStep] = {}
    for planned in plan:
        if planned.at <= now and planned.repeat >= latest.get(planned.index, planned).repeat:
            latest[planned.index] = planned
    return sorted(
        (planned for planned in latest.values() if planned.key not in sent_keys),
        key=lambda planned: (planned.at, planned.index),
    )


def next_deadline(plan: Sequence[PlannedStep], sent_keys: AbstractSet[str], now: datetime) -> datetime | None:
    """When the next unsent notification after ``now`` is due (the deadline row to store), if any."""
    _check_aware("now", now)
    return min((p.at for p in plan if p.at > now and p.key not in sent_keys), default=None)


def on_acknowledged(plan: Sequence[PlannedStep], sent_keys: AbstractSet[str]) -> list[PlannedStep]:
    """The notifications an acknowledgement cancels (every unsent one), for the alarm log."""
    return [planned for planned in plan if planned.key not in sent_keys]


def time_to_acknowledge(raised_at: datetime, acknowledged_at: datetime) -> timedelta:
    """How long the alarm waited for a person (reported to supervisors)."""
    _check_aware("raised_at", raised_at)
    _check_aware("acknowledged_at", acknowledged_at)
    if acknowledged_at < raised_at:
        raise EscalationError("acknowledged_at", "must not be before raised_at")
    return acknowledged_at - raised_at


def inhibited(kind: str, device_id: str | None, open_alarms: Iterable[Alarm]) -> bool:
    """Whether a missed-dose alarm about ``device_id`` is not raised: the device's ``no_contact`` is open."""
    if kind not in MISSED_DOSE_KINDS or device_id is None:
        return False
    return any(
        alarm.open
        and alarm.kind == NO_CONTACT
        and alarm.subject_kind is SubjectKind.DEVICE
        and alarm.subject_id == device_id
        for alarm in open_alarms
    )


def recipients_needed(policy: Policy) -> set[Target]:
    """The kinds of recipient the policy notifies (the service resolves each to people)."""
    return {step.target for step in policy.steps}


@dataclass(frozen=True, slots=True)
class Undeliverable:
    """A step the patient's records cannot deliver: the service warns operators."""

    index: int
    target: Target
    reason: str


def validate_for_patient(policy: Policy, *, has_relative: bool, has_team: bool) -> list[Undeliverable]:
    """The steps that cannot reach anyone for this patient (no relative, no home-care team)."""
    problems: list[Undeliverable] = []
    for index, step in enumerate(policy.steps):
        if step.target is Target.RELATIVE and not has_relative:
            problems.append(Undeliverable(index, step.target, "the patient has no relative to notify"))
        elif step.target is Target.HOME_CARE_ON_CALL and not has_team:
            problems.append(Undeliverable(index, step.target, "the patient has no home-care team"))
    return problems


_STEP_KEYS: Final = frozenset({"after_minutes", "target", "person", "repeat_every_minutes", "repeats"})


def policy_document(policy: Policy) -> dict[str, object]:
    """The policy as a JSON document (the API's and the store's shape; ``policy_from_document`` reads it)."""
    return {
        "name": policy.name,
        "steps": [
            {
                "after_minutes": step.after / timedelta(minutes=1),
                "target": step.target.value,
                "person": step.person,
                "repeat_every_minutes": None
                if step.repeat_every is None
                else step.repeat_every / timedelta(minutes=1),
                "repeats": step.repeat_max,
            }
            for step in policy.steps
        ],
    }


def policy_from_document(document: object) -> Policy:
    """Read a policy document (``policy_document``'s shape); ``EscalationError`` names the field to fix.

    Minutes may be fractional only to whole seconds; ``person``, ``repeat_every_minutes`` and ``repeats``
    may be left out.
    """
    if not isinstance(document, dict) or set(document) != {"name", "steps"}:
        raise EscalationError("policy", "must be an object with 'name' and 'steps'")
    name, items = document["name"], document["steps"]
    if not isinstance(name, str):
        raise EscalationError("name", "must be a string")
    if not isinstance(items, list):
        raise EscalationError("steps", "must be a list of steps")
    return Policy(name, tuple(_step_from(f"steps[{i}]", item) for i, item in enumerate(items)))


def _step_from(where: str, item: object) -> Step:
    if not isinstance(item, dict) or not {"after_minutes", "target"} <= set(item) <= _STEP_KEYS:
        raise EscalationError(
            where, f"must be an object with after_minutes, target and optionally {_OPTIONAL}"
        )
    try:
        target = Target(item["target"])
    except ValueError:
        options = ", ".join(t.value for t in Target)
        raise EscalationError(f"{where}.target", f"must be one of {options}") from None
    person = item.get("person")
    if person is not None and not isinstance(person, str):
        raise EscalationError(f"{where}.person", "must be a staff ref")
    repeats = item.get("repeats", 0)
    if type(repeats) is not int:
        raise EscalationError(f"{where}.repeats", "must be a whole number")
    every = item.get("repeat_every_minutes")
    try:
        return Step(
            _minutes(f"{where}.after_minutes", item["after_minutes"]),
            target,
            person=person,
            repeat_every=None if every is None else _minutes(f"{where}.repeat_every_minutes", every),
            repeat_max=repeats,
        )
    except EscalationError as error:
        if error.field.startswith(where):
            raise
        raise EscalationError(f"{where}.{_FIELDS.get(error.field, error.field)}", error.reason) from None


_OPTIONAL: Final = "person, repeat_every_minutes and repeats"
_FIELDS: Final = {"after": "after_minutes", "repeat_every": "repeat_every_minutes", "repeat_max": "repeats"}


def _minutes(field: str, value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EscalationError(field, "must be a number of minutes")
    if not 0 <= value <= MAX_AFTER / timedelta(minutes=1):
        raise EscalationError(field, "must be 0-1440 minutes")
    return timedelta(seconds=round(value * 60))
