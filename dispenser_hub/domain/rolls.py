"""Multidose rolls in dispensers: the patient a roll is for, its loads, and the verdict on a loaded roll.

The pharmacy's manifest (``RollManifest``) and the pouch check are in ``pouches``. A roll the hub accepted
in a dispenser is a ``RollLoad`` until it ends (``RollEndReason``: empty, replaced, plan changed, unbound).

Roll rules (``judge_roll``), in this order; the first that fails refuses the roll:

1. **The dispenser is bound to a patient** (OTHER): otherwise there is nobody to compare the roll with.
2. **The roll's manifest has been imported** (NO_MANIFEST): only the manifest says whose roll it is and
   what is in it. The issue's optional grace (accept on a matching printed reference alone) is not offered:
   the printed reference says nothing about the contents. The detail names the manifest to import.
3. **The manifest's patient is the bound patient** (WRONG_PATIENT), by national id number: the safety
   invariant "a roll whose patient is not the dispenser's bound patient is never accepted".
4. **The patient reference printed on the roll is the manifest's** (WRONG_PATIENT). Pharmacies assign roll
   ids and they may collide; another printed reference means the roll in the device is not the roll the
   manifest describes, most likely another patient's.
5. **What the device read agrees with the manifest** (OTHER): first and last intake time and pouch count,
   each where reported. A disagreement means a misprinted or tampered roll, or the wrong manifest.
6. **The roll was not withdrawn** (OTHER): ``withdrawn`` (any load of it ended ``plan_changed``, as the
   caller knows), or the patient's latest load is this roll and ended so. Its pouches hold an old plan.
7. **The roll is not active in another dispenser** (ALREADY_ACTIVE): one physical roll is in one place;
   the other load must end first (an operator unbinds or swaps that dispenser).
8. **Not all intake times are over** (OUT_OF_DATE): ``last_intake < now`` leaves nothing to give.
9. **The roll joins the patient's previous roll** (GAP_OR_OVERLAP): the latest accepted roll of the
   patient, in any dispenser. That same roll again (the lid was opened, the roll moved to a replacement
   dispenser) is a re-load, accepted: a roll cannot gap or overlap with itself, and dispensed pouches are
   recorded per roll, so none is given twice. Another roll:

   - *overlap*, ``first_intake <= previous.last_intake``: two rolls for the same intake times risk a dose
     given twice or from an old plan. Allowed only when the previous load ended for a reason that explains
     it (``EXPLAINS_OVERLAP``: replaced, plan changed). That is a recorded decision of a person or of the
     plan-change rules: a service must not end a load "replaced" merely because another roll was
     reported loaded, or this check means nothing.
   - *gap*, ``first_intake`` later than ``max(previous.last_intake, now)`` plus the previous roll's
     largest spacing between consecutive pouches (at least ``MIN_GAP_ALLOWANCE``, 24 h): doses would be
     missing. Measured from ``now`` when the previous roll is over already, so a patient back from a long
     hospital stay is not refused for a gap in the past that no roll could fill.

   A patient's first roll has nothing to join.

Alarms: every refusal in a bound dispenser raises the wrong-roll alarm (VKP 3.5, the issue's rule): the
dispenser stays locked and the patient gets no dose until someone acts, so each refusal must reach a
person; the detail says what to do. An unbound dispenser raises none (no patient is waiting).

Details are shown on the device and to operators: roll and dispenser ids only, never patient data (no
name, national id number or printed reference), at most ``MAX_DETAIL`` characters. Pure: callers pass
every fact and ``now``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.pouches import (
    MAX_DETAIL,
    WRONG_ROLL,
    ManifestError,
    check_national_id,
    check_text,
    check_utc,
    fit_detail,
    from_ms,
)
from firmware_protocol.messages import VerdictReason

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from dispenser_hub.domain.model import Patient
    from dispenser_hub.domain.pouches import RollManifest
    from firmware_protocol.messages import RollLoaded

MIN_GAP_ALLOWANCE: Final = timedelta(hours=24)
"""The least time allowed between the previous roll's last intake and the next roll's first."""


class RollEndReason(StrEnum):
    """Why a roll load ended (``RollLoad.end_reason``)."""

    EMPTY = "empty"
    """The device reported the roll empty."""
    REPLACED = "replaced"
    """A person recorded that the roll was taken out and replaced by another."""
    PLAN_CHANGED = "plan_changed"
    """The pharmacy changed the plan: the roll's remaining pouches are withdrawn."""
    UNBOUND = "unbound"
    """The dispenser was unbound from the patient."""


EXPLAINS_OVERLAP: Final = frozenset({RollEndReason.REPLACED, RollEndReason.PLAN_CHANGED})
"""End reasons that let the next roll overlap the ended one."""


@dataclass(frozen=True, slots=True)
class BoundPatient:
    """The patient a dispenser is bound to, as the roll and pouch checks need them: id and national id."""

    patient_id: int
    national_id: str

    def __post_init__(self) -> None:
        """The national id number is valid."""
        check_national_id("national_id", self.national_id)

    def __repr__(self) -> str:
        """Without the national id number."""
        return f"BoundPatient(patient_id={self.patient_id})"

    @classmethod
    def of(cls, patient: Patient) -> BoundPatient:
        """From a stored patient record."""
        if patient.id is None:
            msg = "the patient must be stored (have an id)"
            raise ValueError(msg)
        return cls(patient.id, patient.national_id)


@dataclass(frozen=True, slots=True)
class RollLoad:
    """A roll accepted in a dispenser for a patient, until it ends (with when and why)."""

    roll_id: str
    device_id: str
    patient_id: int
    accepted_at: datetime
    first_intake: datetime
    last_intake: datetime
    max_spacing: timedelta
    """The manifest's largest time between consecutive pouches (the gap rule's allowance)."""
    ended_at: datetime | None = None
    end_reason: str | None = None
    """A ``RollEndReason`` value, or another recorded reason."""
    id: int | None = None
    """Storage id (``None`` until stored)."""

    def __post_init__(self) -> None:
        """Aware times in order; ``ended_at`` and ``end_reason`` go together."""
        for name in ("accepted_at", "first_intake", "last_intake"):
            check_utc(name, getattr(self, name))
        if self.last_intake < self.first_intake:
            raise ManifestError("last_intake", "must not be before first_intake")
        if self.max_spacing < timedelta(0):
            raise ManifestError("max_spacing", "must not be negative")
        if (self.ended_at is None) != (self.end_reason is None):
            raise ManifestError("end_reason", "ended_at and end_reason are given together or not at all")
        if self.ended_at is not None:
            check_utc("ended_at", self.ended_at)
            if self.ended_at < self.accepted_at:
                raise ManifestError("ended_at", "must not be before accepted_at")
        if self.end_reason is not None:
            check_text("end_reason", self.end_reason)

    @property
    def active(self) -> bool:
        """Not ended yet."""
        return self.ended_at is None


def start_load(manifest: RollManifest, *, device_id: str, patient_id: int, now: datetime) -> RollLoad:
    """The load to record when ``judge_roll`` accepted ``manifest``'s roll.

    Not needed when the roll accepted is already the dispenser's active load (a re-load after the lid was
    opened): that load simply continues.
    """
    return RollLoad(
        roll_id=manifest.roll_id,
        device_id=device_id,
        patient_id=patient_id,
        accepted_at=now,
        first_intake=manifest.first_intake,
        last_intake=manifest.last_intake,
        max_spacing=manifest.max_spacing,
    )


def end_load(load: RollLoad, *, reason: str, now: datetime) -> RollLoad:
    """End an active load (``ValueError`` if it has ended already)."""
    if not load.active:
        msg = f"the load of roll {load.roll_id} has ended already"
        raise ValueError(msg)
    return dataclasses.replace(load, ended_at=now, end_reason=reason)


@dataclass(frozen=True, slots=True)
class ReportedRoll:
    """What the device read from the loaded roll (``roll.loaded``); the optional parts may be unknown."""

    roll_id: str
    printed_patient_ref: str
    first_intake: datetime | None = None
    last_intake: datetime | None = None
    pouches: int | None = None

    @classmethod
    def from_message(cls, body: RollLoaded) -> ReportedRoll:
        """The report in a ``roll.loaded`` body."""
        return cls(
            body.roll_id,
            body.printed_patient_ref,
            None if body.first_intake is None else from_ms(body.first_intake),
            None if body.last_intake is None else from_ms(body.last_intake),
            body.pouches,
        )


@dataclass(frozen=True, slots=True)
class RollDecision:
    """The verdict on a loaded roll: accept, or refuse with the protocol reason, a detail and an alarm."""

    accept: bool
    reason: VerdictReason | None
    detail: str
    alarm: bool
    """Raise the wrong-roll alarm (``alarm_kind``, VKP 3.5)."""

    def __post_init__(self) -> None:
        """A refusal has a reason; an acceptance neither reason nor alarm; the detail fits the protocol."""
        if self.accept and (self.reason is not None or self.alarm):
            msg = "an accepted roll has no refusal reason and raises no alarm"
            raise ValueError(msg)
        if not self.accept and self.reason is None:
            msg = "a refusal needs a reason"
            raise ValueError(msg)
        if len(self.detail) > MAX_DETAIL:
            msg = f"detail must be at most {MAX_DETAIL} characters"
            raise ValueError(msg)

    @property
    def alarm_kind(self) -> str | None:
        """``WRONG_ROLL`` when the decision raises the alarm."""
        return WRONG_ROLL if self.alarm else None


def _refuse(reason: VerdictReason, detail: str, *, alarm: bool = True) -> RollDecision:
    return RollDecision(accept=False, reason=reason, detail=fit_detail(detail), alarm=alarm)


@dataclass(frozen=True, slots=True)
class _Facts:
    device_id: str
    patient: BoundPatient
    manifest: RollManifest
    reported: ReportedRoll
    elsewhere: RollLoad | None
    previous: RollLoad | None
    withdrawn: bool
    now: datetime

    @property
    def roll(self) -> str:
        return self.manifest.roll_id

    @property
    def same_as_previous(self) -> bool:
        return self.previous is not None and self.previous.roll_id == self.roll


def _wrong_patient(f: _Facts) -> RollDecision | None:
    if f.manifest.patient_national_id != f.patient.national_id:
        detail = "Roll belongs to another patient. Remove it and call the pharmacy."
        return _refuse(VerdictReason.WRONG_PATIENT, detail)
    if f.reported.printed_patient_ref != f.manifest.printed_patient_ref:
        detail = f"The patient reference on roll {f.roll} does not match its manifest. Call the pharmacy."
        return _refuse(VerdictReason.WRONG_PATIENT, detail)
    return None


def _disagrees(f: _Facts) -> RollDecision | None:
    r, m = f.reported, f.manifest
    differing = [
        name
        for name, seen, expected in (
            ("first intake", r.first_intake, m.first_intake),
            ("last intake", r.last_intake, m.last_intake),
            ("pouch count", r.pouches, len(m.pouches)),
        )
        if seen is not None and seen != expected
    ]
    if not differing:
        return None
    detail = (
        f"Roll {f.roll} does not match its manifest ({', '.join(differing)}). Remove it, call the pharmacy."
    )
    return _refuse(VerdictReason.OTHER, detail)


def _withdrawn(f: _Facts) -> RollDecision | None:
    ended_so = f.previous is not None and f.previous.end_reason == RollEndReason.PLAN_CHANGED
    if not (f.withdrawn or (f.same_as_previous and ended_so)):
        return None
    detail = f"Roll {f.roll} was withdrawn after a plan change. Remove it and load the new roll."
    return _refuse(VerdictReason.OTHER, detail)


def _already_active(f: _Facts) -> RollDecision | None:
    if f.elsewhere is None:
        return None
    detail = f"Roll {f.roll} is in use in dispenser {f.elsewhere.device_id}. End it there first."
    return _refuse(VerdictReason.ALREADY_ACTIVE, detail)


def _out_of_date(f: _Facts) -> RollDecision | None:
    if f.manifest.last_intake >= f.now:
        return None
    detail = f"All intake times on roll {f.roll} are over. Remove it and load the current roll."
    return _refuse(VerdictReason.OUT_OF_DATE, detail)


def _continuity(f: _Facts) -> RollDecision | None:
    previous = f.previous
    if previous is None or f.same_as_previous:
        return None
    first = f.manifest.first_intake
    if first <= previous.last_intake:
        if previous.end_reason in EXPLAINS_OVERLAP:
            return None
        if previous.active:
            detail = f"Roll {f.roll} overlaps roll {previous.roll_id}: record that roll as replaced first."
        else:
            detail = f"Roll {f.roll} overlaps the previous roll {previous.roll_id}. Check with the pharmacy."
        return _refuse(VerdictReason.GAP_OR_OVERLAP, detail)
    covered_until = max(previous.last_intake, f.now)
    if first > covered_until + max(previous.max_spacing, MIN_GAP_ALLOWANCE):
        hours = math.ceil((first - covered_until) / timedelta(hours=1))
        detail = (
            f"Roll {f.roll} starts {hours} h after the previous roll ends (gap). Check with the pharmacy."
        )
        return _refuse(VerdictReason.GAP_OR_OVERLAP, detail)
    return None


_CHECKS: tuple[Callable[[_Facts], RollDecision | None], ...] = (
    _wrong_patient,
    _disagrees,
    _withdrawn,
    _already_active,
    _out_of_date,
    _continuity,
)
"""Rules 3-9 of the module docstring, in order."""


def judge_roll(
    *,
    device_id: str,
    patient: BoundPatient | None,
    manifest: RollManifest | None,
    reported: ReportedRoll,
    active_elsewhere: RollLoad | None,
    previous: RollLoad | None,
    withdrawn: bool,
    now: datetime,
) -> RollDecision:
    """The verdict on the roll ``reported`` loaded in ``device_id`` (the rules of the module docstring).

    ``patient`` is the dispenser's bound patient (``None``: not bound); ``manifest`` the imported manifest
    of ``reported.roll_id`` (``None``: none yet); ``active_elsewhere`` the active load of that roll id in
    another dispenser; ``previous`` the patient's latest accepted roll load (active or ended, any
    dispenser); ``withdrawn`` whether any earlier load of this roll ended ``plan_changed``. ``ValueError``
    if the facts contradict each other.
    """
    check_utc("now", now)
    if manifest is not None and manifest.roll_id != reported.roll_id:
        msg = f"the manifest passed is of roll {manifest.roll_id}, not of the reported {reported.roll_id}"
        raise ValueError(msg)
    if active_elsewhere is not None and not (
        active_elsewhere.active
        and active_elsewhere.roll_id == reported.roll_id
        and active_elsewhere.device_id != device_id
    ):
        msg = "active_elsewhere must be an active load of the reported roll in another dispenser"
        raise ValueError(msg)
    if previous is not None and patient is not None and previous.patient_id != patient.patient_id:
        msg = f"the previous load passed is of patient {previous.patient_id}, not {patient.patient_id}"
        raise ValueError(msg)
    if patient is None:
        detail = "Bind the dispenser to a patient first, then load the roll again."
        return _refuse(VerdictReason.OTHER, detail, alarm=False)
    if manifest is None:
        detail = f"Import the pharmacy's manifest for roll {reported.roll_id}, then load the roll again."
        return _refuse(VerdictReason.NO_MANIFEST, detail)
    if active_elsewhere is None and previous is not None and previous.roll_id == manifest.roll_id:
        active_elsewhere = previous if previous.active and previous.device_id != device_id else None
    facts = _Facts(device_id, patient, manifest, reported, active_elsewhere, previous, withdrawn, now)
    for check in _CHECKS:
        refusal = check(facts)
        if refusal is not None:
            return refusal
    detail = f"Roll {facts.roll} re-loaded." if facts.same_as_previous else f"Roll {facts.roll} accepted."
    return RollDecision(accept=True, reason=None, detail=fit_detail(detail), alarm=False)
