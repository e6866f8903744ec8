"""Dose-pot (carousel) dispensers: the dosett plan, filling a tray from it, and checking tray and pot events.

Staff fill a tray of pots (typically 28: 7 days x 4 times; the protocol allows up to 64) from the patient's
``DosettPlan`` and load it; the device opens one pot per dose.

Plan rules (``PlanTime``, ``DosettPlan``; ``PlanError`` names the field, importers prefix their position):

- A plan time is a naive Europe/Oslo wall-clock time in whole minutes, on a non-empty set of weekdays
  (0 = Monday .. 6 = Sunday), with a non-blank label and at least one drug line. As-needed ("ved behov")
  drugs are not filled in pots: a pot is opened at its time, whether needed or not.
- A plan has at least one time; on each weekday its times are listed in time-of-day order, at most one
  dose per minute, and at most ``MAX_DOSES_PER_DAY`` doses.
- ``doses_on(day)`` gives UTC instants via ``oslo_instant`` (one instant per plan time and day, none
  skipped or repeated at a DST change), none before ``valid_from``. On the spring-forward day a time in the
  gap (02:MM) moves to 03:MM CEST; if that is the instant of another plan time (03:MM), the later plan time
  is given one minute after the earlier, so that every pot has its own due instant.

Fill rules (``fill_tray``, ``TrayFill``): pots are numbered 1.. in due order, from the first plan time of
``first_day`` (on or after ``valid_from``) onward, exactly ``pot_count`` (1..64) pots. A pot's slot id is
``s-YYYYMMDD-HHMM`` of its due instant in Oslo local time (the time actually given, so 02:30 on the
spring-forward day is ``-0330``): deterministic, a protocol ``Ref``, and unique because due instants are
whole minutes and strictly increase. A fill has 1..64 pots with unique numbers 1..64, strictly increasing
due instants (UTC, whole ms) and unique slot ids.

Tray rule (``judge_tray_loaded``), in this order; the first that fails refuses the tray:

1. The dispenser is bound to a patient (NOT_BOUND, no alarm: nobody is waiting for a dose).
2. There is a fill to compare with (NO_FILL): only the fill says what is in the tray.
3. The fill is the bound patient's (WRONG_PATIENT): a tray is never accepted for another patient.
4. The tray is the fill's tray (WRONG_TRAY): another tray is an old tray or another patient's.
5. The device counts as many filled pots as the fill has (POT_COUNT): a mis-filled or other tray.
6. The fill is not stale (STALE): its last dose is not past (``last_due >= now``).

Every refusal in a bound dispenser raises the wrong-roll alarm (``WRONG_ROLL``, VKP 3.5). Decision: a tray
that does not match the patient's fill is the dose-pot equivalent of a wrong roll (the codes have no
tray-specific one): the patient gets no checked dose until a person acts.

Pot rules (``judge_pot_opened``), in this order. The device has opened the pot already, so the judgement
says whether the opening fits the fill, whether to record the pot as opened (``mark_opened``: it is now
empty, so it leaves the remaining schedule) and which alarm to raise:

1. The pot is of the current fill's tray (WRONG_TRAY) and 2. a pot of the fill (UNKNOWN_POT): otherwise a
   dose no fill describes may have been given: wrong-roll alarm (3.5), nothing recorded.
3. Not opened before (OPENED_TWICE): an open pot is empty, so no dose is given twice; most likely the report
   was repeated. No alarm (alarm fatigue): if the carousel really is out of step, the pot that should have
   opened stays closed and the missed-dose alarm (VKP 3.3, ``dose.not_taken``) follows. Nothing recorded.
4. The reported slot id, if any, is the pot's slot (WRONG_SLOT): the device's schedule and the tray
   disagree, so the dose may be at the wrong time: wrong-roll alarm (3.5); the pot is recorded as opened.
5. Opened within ``[due - opens_early, due + closes_after]`` (OPENED_EARLY, OPENED_LATE). Decision: a dose
   event, not a safety alarm: the right pot of the right tray was opened, only at another time (staff
   opened it, a trip, a late patient). No alarm kind; the pot is recorded as opened and the caller records
   the dose as taken early or late (``dose.taken_early`` maps to no VKP alert either). A device clock
   problem reaches the hub as ``fault.clock_lost`` (VKP 3.4).

Details are shown on devices and to operators: tray ids, pot numbers and slot ids only, never patient data.
Pure: callers pass every fact and ``now``; nothing here reads a clock or storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final, TypeVar

from dispenser_hub.domain.pouches import (
    MAX_DETAIL,
    WRONG_ROLL,
    DrugLine,
    ManifestError,
    check_ref,
    check_text,
    check_utc,
    fit_detail,
)
from dispenser_hub.domain.schedules import slot_id_for
from dispenser_hub.domain.wallclock import oslo_instant
from firmware_protocol.codes import HUB_CONDITIONS

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Set as AbstractSet

MAX_POTS: Final = 64
"""Pots on a carousel (the protocol's ``PotIndex``)."""
MAX_DOSES_PER_DAY: Final = 8
"""The most doses a plan may give on one day."""
ALARM_VKP: Final[dict[str, str | None]] = {WRONG_ROLL: HUB_CONDITIONS[WRONG_ROLL].vkp}
"""The VKP alert code of each alarm kind raised here."""
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MINUTE: Final = timedelta(minutes=1)
_V = TypeVar("_V")


class PlanError(ManifestError):
    """A plan, plan time or tray fill that breaks a rule; ``field`` names where, the message what to fix."""


def _checked(check: Callable[[str, _V], None], field: str, value: _V) -> None:
    """Run a ``pouches`` check, raising its error as a ``PlanError``."""
    try:
        check(field, value)
    except PlanError:
        raise
    except ManifestError as error:
        raise PlanError(field, str(error).removeprefix(f"{field}: ")) from error


@dataclass(frozen=True, slots=True)
class PlanTime:
    """One dose time of a plan: wall-clock ``at`` on ``weekdays`` (0 = Monday), the pot's ``contents``."""

    at: time
    weekdays: frozenset[int]
    label: str
    contents: tuple[DrugLine, ...]

    def __post_init__(self) -> None:
        """Naive whole-minute time; weekdays 0..6, at least one; a label; fixed-time drug lines."""
        if self.at.tzinfo is not None:
            raise PlanError("at", "must be a wall-clock time without time zone (Europe/Oslo is implied)")
        if self.at.second or self.at.microsecond:
            raise PlanError("at", "must be whole minutes (HH:MM)")
        if not self.weekdays:
            raise PlanError("weekdays", "give at least one weekday (0 = Monday .. 6 = Sunday)")
        if not self.weekdays <= frozenset(range(7)):
            raise PlanError("weekdays", "weekdays are 0 (Monday) .. 6 (Sunday)")
        _checked(check_text, "label", self.label)
        if not self.contents:
            raise PlanError("contents", "a pot holds at least one drug line")
        for number, line in enumerate(self.contents):
            if line.as_needed:
                raise PlanError(f"contents[{number}].as_needed", "as-needed drugs are not filled in pots")


@dataclass(frozen=True, slots=True)
class DosettPlan:
    """A patient's dosett plan: the dose times of the week, valid from ``valid_from``."""

    times: tuple[PlanTime, ...]
    valid_from: date
    note: str | None = None

    def __post_init__(self) -> None:
        """At least one time; per weekday in time order, one per minute, at most ``MAX_DOSES_PER_DAY``."""
        if not self.times:
            raise PlanError("times", "a plan has at least one dose time")
        if self.note is not None:
            _checked(check_text, "note", self.note)
        last: dict[int, tuple[int, time]] = {}
        count: dict[int, int] = {}
        for number, plan_time in enumerate(self.times):
            for day in sorted(plan_time.weekdays):
                before = last.get(day)
                if before is not None and plan_time.at <= before[1]:
                    problem = "is the same as" if plan_time.at == before[1] else "is before"
                    msg = (
                        f"{plan_time.at:%H:%M} {problem} times[{before[0]}] ({before[1]:%H:%M}) on "
                        f"{WEEKDAYS[day]}: list times in time-of-day order, one dose per minute per weekday"
                    )
                    raise PlanError(f"times[{number}].at", msg)
                last[day] = (number, plan_time.at)
                count[day] = count.get(day, 0) + 1
                if count[day] > MAX_DOSES_PER_DAY:
                    msg = (
                        f"{WEEKDAYS[day]} has more than {MAX_DOSES_PER_DAY} doses: remove a time or a weekday"
                    )
                    raise PlanError(f"times[{number}].weekdays", msg)

    def doses_on(self, day: date) -> list[tuple[datetime, PlanTime]]:
        """The doses of ``day`` as (UTC instant, plan time), in time order (module rules)."""
        if day < self.valid_from:
            return []
        doses = [(oslo_instant(day, t.at), t) for t in self.times if day.weekday() in t.weekdays]
        doses.sort(key=lambda dose: dose[0])  # a time moved out of the spring gap may pass a later one
        for number in range(1, len(doses)):
            if doses[number][0] <= doses[number - 1][0]:
                doses[number] = (doses[number - 1][0] + _MINUTE, doses[number][1])
        return doses


@dataclass(frozen=True, slots=True)
class PotFill:
    """One filled pot: its number on the carousel (from 1), due instant, slot id and the plan's label."""

    pot: int
    due: datetime
    slot_id: str
    label: str

    def __post_init__(self) -> None:
        """Pot 1..64, aware UTC whole-ms due, a protocol ``Ref`` slot id, a label."""
        if not 1 <= self.pot <= MAX_POTS:
            raise PlanError("pot", f"pot numbers are 1..{MAX_POTS}")
        _checked(check_utc, "due", self.due)
        _checked(check_ref, "slot_id", self.slot_id)
        _checked(check_text, "label", self.label)


@dataclass(frozen=True, slots=True)
class TrayFill:
    """A tray filled for a patient: who filled it, when, and every pot in due order."""

    tray_id: str
    patient_id: int
    filled_by: str
    filled_at: datetime
    pots: tuple[PotFill, ...]

    def __post_init__(self) -> None:
        """Valid ids and time; 1..64 pots, unique numbers, strictly increasing dues, unique slot ids."""
        _checked(check_ref, "tray_id", self.tray_id)
        _checked(check_text, "filled_by", self.filled_by)
        _checked(check_utc, "filled_at", self.filled_at)
        if not 1 <= len(self.pots) <= MAX_POTS:
            raise PlanError("pots", f"a tray has 1..{MAX_POTS} filled pots")
        numbers: set[int] = set()
        slots: set[str] = set()
        for number, pot in enumerate(self.pots):
            if pot.pot in numbers:
                raise PlanError(f"pots[{number}].pot", f"pot {pot.pot} is filled twice")
            if pot.slot_id in slots:
                raise PlanError(f"pots[{number}].slot_id", f"slot id {pot.slot_id} is repeated")
            if number and pot.due <= self.pots[number - 1].due:
                raise PlanError(f"pots[{number}].due", f"pot {pot.pot} is not due after the pot before it")
            numbers.add(pot.pot)
            slots.add(pot.slot_id)

    @property
    def last_due(self) -> datetime:
        """When the supply runs out: the due instant of the last pot."""
        return self.pots[-1].due

    def pot(self, number: int) -> PotFill | None:
        """The pot with this number, if the tray has it filled."""
        return next((pot for pot in self.pots if pot.pot == number), None)

    def doses_left(self, opened: AbstractSet[int]) -> int:
        """Filled pots not opened yet (``opened``: pot numbers)."""
        return sum(pot.pot not in opened for pot in self.pots)


def fill_tray(
    plan: DosettPlan,
    *,
    tray_id: str,
    patient_id: int,
    first_day: date,
    pot_count: int = 28,
    filled_by: str,
    filled_at: datetime,
) -> TrayFill:
    """The fill of ``pot_count`` pots from ``plan``, from ``first_day``'s first plan time (module rules)."""
    if not 1 <= pot_count <= MAX_POTS:
        raise PlanError("pot_count", f"a tray has 1..{MAX_POTS} pots")
    if first_day < plan.valid_from:
        raise PlanError("first_day", f"the plan is valid from {plan.valid_from.isoformat()}: start then")
    pots: list[PotFill] = []
    day, empty_days = first_day, 0
    while len(pots) < pot_count:
        doses = plan.doses_on(day)
        empty_days = 0 if doses else empty_days + 1
        if empty_days > len(WEEKDAYS):
            raise PlanError("times", "the plan has no doses")
        for due, plan_time in doses[: pot_count - len(pots)]:
            pots.append(PotFill(len(pots) + 1, due, slot_id_for(due), plan_time.label))
        day += timedelta(days=1)
    return TrayFill(tray_id, patient_id, filled_by, filled_at, tuple(pots))


def pot_doses(fill: TrayFill, opened: AbstractSet[int]) -> list[tuple[str, datetime, int]]:
    """(slot id, due, pot) of every pot not opened yet, in due order: the schedule builder's input."""
    return [(pot.slot_id, pot.due, pot.pot) for pot in fill.pots if pot.pot not in opened]


class TrayRefusal(StrEnum):
    """Why a loaded tray was refused (tray rules 1-6 of the module docstring)."""

    NOT_BOUND = "not_bound"
    NO_FILL = "no_fill"
    WRONG_PATIENT = "wrong_patient"
    WRONG_TRAY = "wrong_tray"
    POT_COUNT = "pot_count"
    STALE = "stale"


class PotRefusal(StrEnum):
    """Why a pot opening does not fit the fill (pot rules of the module docstring)."""

    WRONG_TRAY = "wrong_tray"
    UNKNOWN_POT = "unknown_pot"
    OPENED_TWICE = "opened_twice"
    WRONG_SLOT = "wrong_slot"
    OPENED_EARLY = "opened_early"
    OPENED_LATE = "opened_late"


POT_ALARMS: Final[dict[PotRefusal, str | None]] = {
    PotRefusal.WRONG_TRAY: WRONG_ROLL,
    PotRefusal.UNKNOWN_POT: WRONG_ROLL,
    PotRefusal.OPENED_TWICE: None,
    PotRefusal.WRONG_SLOT: WRONG_ROLL,
    PotRefusal.OPENED_EARLY: None,
    PotRefusal.OPENED_LATE: None,
}
"""The alarm kind each pot refusal raises (``None``: none; see the pot rules)."""
NOT_RECORDED: Final = frozenset({PotRefusal.WRONG_TRAY, PotRefusal.UNKNOWN_POT, PotRefusal.OPENED_TWICE})
"""Pot refusals after which the pot is not recorded as opened (it is no newly opened pot of the fill)."""


@dataclass(frozen=True, slots=True)
class _Decision:
    detail: str

    def __post_init__(self) -> None:
        """The detail fits the protocol's text."""
        if len(self.detail) > MAX_DETAIL:
            msg = f"detail must be at most {MAX_DETAIL} characters"
            raise ValueError(msg)

    @property
    def alarm_kind(self) -> str | None:
        """The alarm to raise, if any."""
        return None

    @property
    def vkp_code(self) -> str | None:
        """The VKP alert code of the alarm to raise, if any."""
        return None if self.alarm_kind is None else ALARM_VKP[self.alarm_kind]


@dataclass(frozen=True, slots=True)
class TrayDecision(_Decision):
    """The verdict on a loaded tray: accepted (no reason) or refused with a reason; a detail for people."""

    reason: TrayRefusal | None = None

    @property
    def accept(self) -> bool:
        """The tray is accepted."""
        return self.reason is None

    @property
    def alarm_kind(self) -> str | None:
        """``WRONG_ROLL`` for every refusal in a bound dispenser, else ``None``."""
        return None if self.reason in {None, TrayRefusal.NOT_BOUND} else WRONG_ROLL


@dataclass(frozen=True, slots=True)
class PotDecision(_Decision):
    """Whether a pot opening fits the fill (no reason) or not (a reason); a detail for people."""

    reason: PotRefusal | None = None

    @property
    def ok(self) -> bool:
        """The opening fits the fill."""
        return self.reason is None

    @property
    def alarm_kind(self) -> str | None:
        """The alarm to raise (``POT_ALARMS``), if any."""
        return None if self.reason is None else POT_ALARMS[self.reason]

    @property
    def mark_opened(self) -> bool:
        """Record the pot as opened: a pot of the fill, opened for the first time (now empty)."""
        return self.reason not in NOT_RECORDED


def judge_tray_loaded(  # noqa: PLR0911 - one return per rule of the module docstring, in its order
    fill: TrayFill | None,
    *,
    bound_patient_id: int | None,
    tray_id: str,
    pots_filled: int,
    now: datetime,
) -> TrayDecision:
    """The verdict on tray ``tray_id`` with ``pots_filled`` pots loaded (the tray rules, in order).

    ``fill`` must say what is in the tray now (``None``: nothing recorded): the latest fill recorded for
    ``tray_id`` (a refill supersedes it), or the bound patient's current fill provided that a refill of its
    tray for another patient ends it. Both patient and tray are compared, so either lookup is safe.
    """
    _checked(check_utc, "now", now)
    if bound_patient_id is None:
        detail = "Bind the dispenser to a patient first, then load the tray again."
        return TrayDecision(reason=TrayRefusal.NOT_BOUND, detail=detail)
    if fill is None:
        detail = f"No fill is recorded for tray {tray_id}. Record the fill, then load the tray again."
        return TrayDecision(reason=TrayRefusal.NO_FILL, detail=fit_detail(detail))
    if fill.patient_id != bound_patient_id:
        detail = f"Tray {fill.tray_id} was filled for another patient. Remove it, load this patient's tray."
        return TrayDecision(reason=TrayRefusal.WRONG_PATIENT, detail=fit_detail(detail))
    if fill.tray_id != tray_id:
        detail = f"Tray {tray_id} is not the tray filled for this patient ({fill.tray_id}). Load that tray."
        return TrayDecision(reason=TrayRefusal.WRONG_TRAY, detail=fit_detail(detail))
    if pots_filled != len(fill.pots):
        detail = f"Tray {tray_id} has {pots_filled} filled pots, its fill {len(fill.pots)}. Check the tray."
        return TrayDecision(reason=TrayRefusal.POT_COUNT, detail=fit_detail(detail))
    if fill.last_due < now:
        detail = f"All doses in tray {tray_id} are past. Fill a new tray from the current plan."
        return TrayDecision(reason=TrayRefusal.STALE, detail=fit_detail(detail))
    return TrayDecision(reason=None, detail=fit_detail(f"Tray {tray_id} accepted."))


def judge_pot_opened(  # noqa: PLR0911 - one return per rule of the module docstring, in its order
    fill: TrayFill | None,
    *,
    tray_id: str,
    pot: int,
    slot_id: str | None,
    opened_at: datetime,
    opened_before: AbstractSet[int],
    opens_early: timedelta,
    closes_after: timedelta,
) -> PotDecision:
    """Does the opening of ``pot`` in ``tray_id`` fit ``fill``, the device's accepted fill? (pot rules).

    ``opened_before``: pot numbers of the fill already recorded as opened; ``opens_early`` and
    ``closes_after`` the dose window around each pot's due instant (both ends included).
    """
    _checked(check_utc, "opened_at", opened_at)
    if opens_early < timedelta(0) or closes_after <= timedelta(0):
        raise PlanError("opens_early", "the window needs opens_early >= 0 and closes_after > 0")
    which = f"Pot {pot} of tray {tray_id}"
    if fill is None or fill.tray_id != tray_id:
        detail = f"{which} was opened, but that tray is not accepted. Check the dispenser."
        return PotDecision(reason=PotRefusal.WRONG_TRAY, detail=fit_detail(detail))
    filled = fill.pot(pot)
    if filled is None:
        detail = f"{which} was opened, but it is not filled. Check the tray."
        return PotDecision(reason=PotRefusal.UNKNOWN_POT, detail=fit_detail(detail))
    if pot in opened_before:
        return PotDecision(reason=PotRefusal.OPENED_TWICE, detail=fit_detail(f"{which} was opened before."))
    if slot_id is not None and slot_id != filled.slot_id:
        detail = f"{which} opened for slot {slot_id} but filled for {filled.slot_id}. Check the schedule."
        return PotDecision(reason=PotRefusal.WRONG_SLOT, detail=fit_detail(detail))
    if opened_at < filled.due - opens_early:
        return PotDecision(reason=PotRefusal.OPENED_EARLY, detail=fit_detail(f"{which} opened early."))
    if opened_at > filled.due + closes_after:
        return PotDecision(reason=PotRefusal.OPENED_LATE, detail=fit_detail(f"{which} opened late."))
    return PotDecision(reason=None, detail=fit_detail(f"{which} opened."))
