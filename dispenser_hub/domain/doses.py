"""The dose lifecycle: from a scheduled slot to exactly one terminal outcome, and late truth.

A ``Dose`` is one slot of a patient's schedule on one device (``dose_key``: device id and slot id). It moves
forward through ``SCHEDULED`` -> ``DUE`` -> ``REMINDED`` -> ``PRESENTED`` (open states; events may skip
steps, and never move a dose back) and ends in exactly one terminal outcome. The record holds the current
state only; the caller logs each ``DoseChange.transition``. Rules:

- **Time**: ``on_due`` turns ``SCHEDULED`` into ``DUE`` once ``now >= due``. A reminder counts
  (``reminders``) and makes an open dose ``REMINDED`` (a ``PRESENTED`` dose stays presented); ``presented``
  makes it ``PRESENTED``. Neither raises an alarm (3.24 "medicine waiting" is not reported).
- **Taken** (``dose.taken``, ``dose.taken_early``, ``dose.assisted``): ``taken_at`` is the body's time
  (``at`` when absent). The window is the agreed tolerance, so a dose taken at or before ``closes`` is
  ``TAKEN`` (also when taken a little before ``opens``: a device clock may drift) and no point inside the
  window counts as late; taken after ``closes`` (a device that kept the dose available, or a replay that
  arrives before the deadline ran) is ``TAKEN_LATE``. Never an alarm.
- **Missed**: ``dose.not_taken`` -> ``MISSED`` (reason ``not_taken``), alarm ``dose.missed`` (VKP 3.3);
  ``dose.not_dispensed`` -> ``MISSED`` (reason ``not_dispensed:<why>``), alarm ``dose.not_dispensed``
  (VKP 3.7, red). A device message proves contact, so these always alarm (a replay after a reconnect
  comes after ``birth`` resolved the device's ``no_contact``).
- **Deadline** (``on_deadline``, called by the hub at or after ``closes``, plus whatever grace it allows for
  the device's own report): an open dose with no word from the device is ``UNKNOWN`` (reason
  ``device_silent``) with **no** alarm when the device is silent (inhibition: its ``no_contact`` alarm,
  VKP 3.10, covers every dose it holds; DOMAIN.md: no missed-dose alarm per pouch of a silent device);
  otherwise ``MISSED`` (reason ``no_confirmation``) with alarm ``dose.missed`` (3.3). Before ``closes`` it
  changes nothing (``not_yet``).
- **Staff and plan**: ``skip`` (staff: who and why required) -> ``SKIPPED``; ``cancel`` (plan change,
  pause) -> ``CANCELLED``; ``dose.predispensed`` (the dose left the device for a trip) -> ``CANCELLED``
  with reason ``predispensed``. Only from an open state.
- **Terminal outcomes never change**, except by late truth:

  - a taken report for a ``MISSED`` or ``UNKNOWN`` dose -> ``TAKEN_LATE`` (transition ``late_truth``). The
    record keeps ``outcome_at`` and ``reason`` (when and why it was closed as missed/unknown), gets
    ``taken_at`` (the device's time: on time or not, reports can tell) and ``corrected_at`` (``now``: when
    the truth arrived). ``resolve_kinds`` names the dose's alarm kind, for the caller to resolve as the
    system (``UNKNOWN`` raised none);
  - a not-taken or not-dispensed report for an ``UNKNOWN`` dose -> ``MISSED`` with its alarm (transition
    ``late_missed``): the ``no_contact`` alarm that covered it ends when the device comes back, so a dose
    known to be missed must reach a human on its own.

  So ``TAKEN_LATE`` means "taken, but not confirmed within the window". Everything else on a terminal dose
  is a no-op that says why: the same outcome again (``duplicate``: replays, redeliveries), a taken report
  for a ``SKIPPED`` or ``CANCELLED`` dose (``late_report_ignored``: a staff or plan decision is not
  rewritten by a device), any other report (``ignored``, e.g. a replayed reminder or a not-taken after a
  taken: a taken report is positive evidence and wins).
- **Refusals**: device input (``on_event``) and the hub's timers (``on_due``, ``on_deadline``) never raise:
  what cannot apply is a no-op change. Staff and plan input (``skip``, ``cancel``) is validated and a
  terminal dose refuses with ``DoseError`` (its ``field`` names what to fix). An event type that is not a
  dose event is a caller error (``DoseError``): the protocol receiver lets no unknown type through.
- **Alarms are about the patient** (``SubjectKind.PATIENT``, ``subject_id`` the patient id, ``device_id``
  set): one open ``dose.missed`` (and one ``dose.not_dispensed``) per patient; further missed doses
  repeat it (``count`` goes up), so several pouches do not make several alarms. Because the alarm is
  shared, resolve a kind only when no other dose of the patient is still missed for it:
  ``kinds_to_resolve`` does that check.

Pure: callers pass ``now`` and the dose; no clock, no storage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.alarms import Condition
from dispenser_hub.domain.model import SubjectKind
from firmware_protocol.codes import EVENT_MAPPINGS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from dispenser_hub.domain.schedules import ScheduledSlot


class DoseState(StrEnum):
    """Where a dose is: four open states, then exactly one of six terminal outcomes."""

    SCHEDULED = "scheduled"
    DUE = "due"
    REMINDED = "reminded"
    PRESENTED = "presented"
    TAKEN = "taken"
    TAKEN_LATE = "taken_late"
    MISSED = "missed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


S = DoseState
OPEN: Final = frozenset({S.SCHEDULED, S.DUE, S.REMINDED, S.PRESENTED})
TERMINAL: Final = frozenset({S.TAKEN, S.TAKEN_LATE, S.MISSED, S.SKIPPED, S.CANCELLED, S.UNKNOWN})
TAKEN_STATES: Final = frozenset({S.TAKEN, S.TAKEN_LATE})
NOT_TAKEN_STATES: Final = frozenset({S.MISSED, S.UNKNOWN})
"""The outcomes that must reach a human (or a ``no_contact`` alarm) and that late truth may correct."""
LATE_TRUTH: Final = frozenset({(S.MISSED, S.TAKEN_LATE), (S.UNKNOWN, S.TAKEN_LATE), (S.UNKNOWN, S.MISSED)})
"""The only ways a terminal outcome changes: (from, to)."""
_RANK: Final = {S.SCHEDULED: 0, S.DUE: 1, S.REMINDED: 2, S.PRESENTED: 3}

TAKEN_EVENTS: Final = frozenset({"dose.taken", "dose.taken_early", "dose.assisted"})
MISSED_EVENTS: Final = frozenset({"dose.not_taken", "dose.not_dispensed"})
DOSE_EVENTS: Final = TAKEN_EVENTS | MISSED_EVENTS | {"dose.reminder", "dose.presented", "dose.predispensed"}

DOSE_MISSED: Final = "dose.missed"
"""Alarm kind of a dose not taken or not confirmed (VKP 3.3)."""
DOSE_NOT_DISPENSED: Final = "dose.not_dispensed"
"""Alarm kind of a dose the device could not present (VKP 3.7)."""
_ALARM_SOURCE: Final = {DOSE_MISSED: "dose.not_taken", DOSE_NOT_DISPENSED: "dose.not_dispensed"}

NOT_TAKEN: Final = "not_taken"
NO_CONFIRMATION: Final = "no_confirmation"
DEVICE_SILENT: Final = "device_silent"
PREDISPENSED: Final = "predispensed"
NOT_DISPENSED_PREFIX: Final = "not_dispensed:"
NO_CHANGE: Final = frozenset({"duplicate", "ignored", "late_report_ignored", "not_yet"})
"""Transitions that leave the dose as it was."""
_ZERO: Final = timedelta(0)


class DoseError(ValueError):
    """A dose record or a staff/plan request that breaks a rule; ``field`` names where, the message what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def is_terminal(state: DoseState) -> bool:
    """Whether ``state`` is an outcome (see ``TERMINAL``)."""
    return state in TERMINAL


def dose_key(device_id: str, slot_id: str) -> str:
    """The key of a dose: ``device_id/slot_id`` (slot ids are unique within a device's plan)."""
    return f"{device_id}/{slot_id}"


def _check_utc(field: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() != _ZERO):
        raise DoseError(field, "must be timezone-aware UTC")


@dataclass(frozen=True, slots=True)
class Dose:
    """One scheduled dose and its current state (see the module rules); transitions are not stored here."""

    device_id: str
    patient_id: int
    slot_id: str
    due: datetime
    opens: datetime
    closes: datetime
    pouch_id: str | None = None
    pot: int | None = None
    state: DoseState = DoseState.SCHEDULED
    taken_at: datetime | None = None
    """When the device says it was taken."""
    outcome_at: datetime | None = None
    """When the first terminal outcome happened (kept when late truth corrects it)."""
    reason: str | None = None
    """Why missed, unknown, skipped or cancelled."""
    reminders: int = 0
    corrected_at: datetime | None = None
    """When late truth changed the outcome (hub time)."""
    skipped_by: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        """Aware UTC times with ``opens <= due < closes``; exactly one of pouch or pot; ids given."""
        for name in ("due", "opens", "closes", "taken_at", "outcome_at", "corrected_at"):
            _check_utc(name, getattr(self, name))
        if not self.opens <= self.due < self.closes:
            raise DoseError("closes", "the window must hold opens <= due < closes")
        if (self.pouch_id is None) == (self.pot is None):
            raise DoseError("pouch_id", "give exactly one of pouch_id (multidose) or pot (dose-pot)")
        if not self.device_id.strip() or not self.slot_id.strip():
            raise DoseError("slot_id", "device_id and slot_id must not be empty")
        if self.reminders < 0:
            raise DoseError("reminders", f"must be 0 or more, not {self.reminders}")

    @property
    def key(self) -> str:
        """``dose_key`` of this dose."""
        return dose_key(self.device_id, self.slot_id)

    @property
    def alarm_kind(self) -> str | None:
        """The alarm kind this dose keeps open: ``dose.missed``/``dose.not_dispensed`` while ``MISSED``."""
        if self.state is not DoseState.MISSED:
            return None
        return _missed_kind(self.reason)


def _missed_kind(reason: str | None) -> str:
    return DOSE_NOT_DISPENSED if (reason or "").startswith(NOT_DISPENSED_PREFIX) else DOSE_MISSED


def from_slot(device_id: str, patient_id: int, slot: ScheduledSlot) -> Dose:
    """A new ``SCHEDULED`` dose for ``slot`` of ``device_id``'s schedule."""
    return Dose(
        device_id=device_id,
        patient_id=patient_id,
        slot_id=slot.slot_id,
        due=slot.due,
        opens=slot.opens,
        closes=slot.closes,
        pouch_id=slot.pouch_id,
        pot=slot.pot,
    )


@dataclass(frozen=True, slots=True)
class DoseChange:
    """The dose to store, what happened (for the caller's log), an alarm to raise, alarm kinds to resolve."""

    dose: Dose
    transition: str
    alarm: Condition | None = None
    resolve_kinds: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the dose record changed (``False`` for the no-op transitions, ``NO_CHANGE``)."""
        return self.transition not in NO_CHANGE


def missed_condition(dose: Dose, kind: str = DOSE_MISSED) -> Condition:
    """The patient alarm of a missed dose (``kind``: ``DOSE_MISSED`` or ``DOSE_NOT_DISPENSED``)."""
    mapping = EVENT_MAPPINGS[_ALARM_SOURCE[kind]]
    what = "could not be dispensed" if kind == DOSE_NOT_DISPENSED else "was not confirmed taken"
    why = f" ({dose.reason})" if dose.reason else ""
    return Condition(
        kind=kind,
        subject_kind=SubjectKind.PATIENT,
        subject_id=str(dose.patient_id),
        severity=int(mapping.severity),
        detail=f"dose {dose.slot_id} {what}{why}",  # no patient data: slot ids carry only the due time
        vkp_code=mapping.vkp,
        device_id=dose.device_id,
        patient_id=dose.patient_id,
    )


def _noop(dose: Dose, transition: str) -> DoseChange:
    return DoseChange(dose, transition)


def _missed(dose: Dose, *, reason: str, at: datetime, transition: str, now: datetime) -> DoseChange:
    corrected = now if dose.state is DoseState.UNKNOWN else None
    missed = dataclasses.replace(
        dose, state=DoseState.MISSED, reason=reason, outcome_at=dose.outcome_at or at, corrected_at=corrected
    )
    return DoseChange(missed, transition, alarm=missed_condition(missed, _missed_kind(reason)))


def on_due(dose: Dose, *, now: datetime) -> DoseChange:
    """``SCHEDULED`` -> ``DUE`` once ``now >= due``; otherwise a no-op (``not_yet`` or ``ignored``)."""
    if dose.state is not DoseState.SCHEDULED:
        return _noop(dose, "ignored")
    if now < dose.due:
        return _noop(dose, "not_yet")
    return DoseChange(dataclasses.replace(dose, state=DoseState.DUE), "due")


def on_event(
    dose: Dose,
    event_type: str,
    *,
    at: datetime,
    now: datetime,
    taken_at: datetime | None = None,
    reason: str | None = None,
) -> DoseChange:
    """Apply a device's dose event (``at``: the event's time; ``reason``: of ``dose.not_dispensed``).

    Never raises for what a device reports (see the module rules); only a non-dose ``event_type``.
    """
    if event_type not in DOSE_EVENTS:
        raise DoseError("event_type", f"{event_type!r} is not a dose event")
    if event_type in TAKEN_EVENTS:
        return _taken(dose, taken_at or at, now=now)
    if event_type in MISSED_EVENTS:
        why = NOT_TAKEN if event_type == "dose.not_taken" else f"{NOT_DISPENSED_PREFIX}{reason or 'unknown'}"
        return _not_taken(dose, why, at=at, now=now)
    return _progress(dose, event_type, at=at)


def _not_taken(dose: Dose, why: str, *, at: datetime, now: datetime) -> DoseChange:
    if dose.state in OPEN:
        return _missed(dose, reason=why, at=at, transition="missed", now=now)
    if dose.state is DoseState.UNKNOWN:
        return _missed(dose, reason=why, at=at, transition="late_missed", now=now)
    same = dose.state is DoseState.MISSED and dose.reason == why
    return _noop(dose, "duplicate" if same else "ignored")


def _progress(dose: Dose, event_type: str, *, at: datetime) -> DoseChange:
    if dose.state not in OPEN:
        same = event_type == "dose.predispensed" and dose.reason == PREDISPENSED
        return _noop(dose, "duplicate" if same else "ignored")
    if event_type == "dose.predispensed":
        cancelled = dataclasses.replace(dose, state=DoseState.CANCELLED, reason=PREDISPENSED, outcome_at=at)
        return DoseChange(cancelled, "cancelled")
    if event_type == "dose.presented":
        if dose.state is DoseState.PRESENTED:
            return _noop(dose, "duplicate")
        return DoseChange(dataclasses.replace(dose, state=DoseState.PRESENTED), "presented")
    state = max(dose.state, DoseState.REMINDED, key=_RANK.__getitem__)
    return DoseChange(dataclasses.replace(dose, state=state, reminders=dose.reminders + 1), "reminded")


def _taken(dose: Dose, taken_at: datetime, *, now: datetime) -> DoseChange:
    if dose.state in OPEN:
        late = taken_at > dose.closes
        state = DoseState.TAKEN_LATE if late else DoseState.TAKEN
        taken = dataclasses.replace(dose, state=state, taken_at=taken_at, outcome_at=taken_at)
        return DoseChange(taken, "taken_late" if late else "taken")
    if dose.state in NOT_TAKEN_STATES:
        kind = dose.alarm_kind
        corrected = dataclasses.replace(dose, state=DoseState.TAKEN_LATE, taken_at=taken_at, corrected_at=now)
        return DoseChange(corrected, "late_truth", resolve_kinds=() if kind is None else (kind,))
    if dose.state in TAKEN_STATES:
        return _noop(dose, "duplicate")
    return _noop(dose, "late_report_ignored")


def on_deadline(dose: Dose, *, now: datetime, device_silent: bool) -> DoseChange:
    """Close an open dose at its window's end: ``UNKNOWN`` (no alarm) if silent, else ``MISSED`` (3.3)."""
    if dose.state not in OPEN:
        return _noop(dose, "ignored")
    if now < dose.closes:
        return _noop(dose, "not_yet")
    if device_silent:
        unknown = dataclasses.replace(dose, state=DoseState.UNKNOWN, reason=DEVICE_SILENT, outcome_at=now)
        return DoseChange(unknown, "unknown")
    return _missed(dose, reason=NO_CONFIRMATION, at=now, transition="missed", now=now)


def _require_open(dose: Dose, action: str) -> None:
    if dose.state not in OPEN:
        msg = f"dose {dose.key} is already {dose.state.value}; only an open dose can be {action}"
        raise DoseError("state", msg)


def skip(dose: Dose, *, by: str, reason: str, now: datetime) -> DoseChange:
    """Staff decide the dose is not to be taken (``by`` and ``reason`` required, open doses only)."""
    if not by.strip():
        raise DoseError("by", "who skips the dose must be given")
    if not reason.strip():
        raise DoseError("reason", "say why the dose is skipped")
    _check_utc("now", now)
    _require_open(dose, "skipped")
    skipped = dataclasses.replace(dose, state=DoseState.SKIPPED, reason=reason, skipped_by=by, outcome_at=now)
    return DoseChange(skipped, "skipped")


def cancel(dose: Dose, *, reason: str, now: datetime) -> DoseChange:
    """A plan change or pause removes the dose (``reason`` required, open doses only)."""
    if not reason.strip():
        raise DoseError("reason", "say why the dose is cancelled (plan change, hospital, travel...)")
    _check_utc("now", now)
    _require_open(dose, "cancelled")
    cancelled = dataclasses.replace(dose, state=DoseState.CANCELLED, reason=reason, outcome_at=now)
    return DoseChange(cancelled, "cancelled")


def kinds_to_resolve(change: DoseChange, others: Iterable[Dose]) -> tuple[str, ...]:
    """The kinds of ``change.resolve_kinds`` no other ``MISSED`` dose of the same patient still needs."""
    needed = {
        other.alarm_kind
        for other in others
        if other.patient_id == change.dose.patient_id and other.key != change.dose.key
    }
    return tuple(kind for kind in change.resolve_kinds if kind not in needed)
