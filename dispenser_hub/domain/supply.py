"""Supply forecasting: when a patient's roll or tray runs out, and when to warn staff to refill it.

Staff plan refills from an "almost empty" warning about 72 hours ahead (DOMAIN.md); refill warnings are
not urgent, so they respect quiet hours, and every warning is sent once (alarm fatigue).

Supply rules (``Supply``):

- ``runs_out_at`` is the due time of the last dose the patient has: a newly accepted roll's last intake
  (``Supply.from_manifest``) or a tray fill's last due (``Supply.from_tray_fill``). A new roll or tray *is*
  the supply from then on; ``None`` means unknown (no warnings).
- A device's almost-empty report (``after_almost_empty``) is newer truth when its ``until`` is earlier
  than the forecast (doses were taken out another way, a pouch was lost): the forecast moves to it. A
  later ``until`` changes nothing (the forecast is what was loaded; trusting it warns sooner). An empty
  report (``after_empty``) means the supply runs out now. Reports about another roll or tray than the
  supply's are stale and ignored.

Warning rules (``refill_warnings``), for each stage of the ``RefillPolicy`` (default 72 h, then 24 h
before ``runs_out_at``), in order; ``end`` is ``runs_out_at``, ``limit`` the next stage's nominal time
(``end`` for the last stage):

1. No warnings when ``end`` is unknown or not after ``now`` (the empty alarm, VKP 3.6, takes over).
2. A stage whose next stage's nominal time has come too is superseded: the later stage carries the news,
   so a hub that was down does not send two warnings at once.
3. ``earliest`` is the nominal time ``end - lead``, or ``now`` when that is past (a past stage fires once,
   at the next allowed moment; the caller records the keys sent). Outside quiet hours: ``earliest``.
4. In quiet hours: forward to the quiet end, if that is not after ``limit``.
5. Otherwise back to one minute before the quiet start (21:59 by default), or ``now`` if later, when
   ``now`` is before the quiet start: nobody is woken and nobody is left without warning.
6. Otherwise (the back slot has passed) forward to the quiet end if it is not after ``end``.
7. Otherwise every moment from ``now`` to ``end`` is quiet: quiet hours cannot be respected and the
   warning goes at ``earliest`` (the only case of a warning in quiet hours).
8. A stage is never placed before the stage before it, so times never decrease by stage.

Every warning is at or after ``now`` and never after ``end``. ``due_warnings`` are those whose time has
come and whose ``key`` (patient, roll or tray, stage) was not sent. Details carry no patient data.
Pure: callers pass ``now``; nothing here reads a clock or storage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Final, Literal

from dispenser_hub.domain.alarms import Condition
from dispenser_hub.domain.model import SubjectKind
from dispenser_hub.domain.pouches import fit_detail
from dispenser_hub.domain.wallclock import OSLO, oslo_day, oslo_instant
from firmware_protocol.codes import HUB_CONDITIONS

if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet

    from dispenser_hub.domain.pouches import RollManifest

SupplySource = Literal["roll", "tray"]
REFILL_NEEDED: Final = "refill_needed"
"""Alarm kind of a refill warning (the hub condition of VKP 3.25)."""
MAX_STAGES: Final = 4
BACK_STEP: Final = timedelta(minutes=1)
"""A warning moved back goes this long before the quiet start."""
_DAY: Final = timedelta(days=1)
_DST_HOUR: Final = (time(2, 0), time(3, 0))


class SupplyError(ValueError):
    """A supply, quiet-hours or policy value that breaks a rule; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _check_aware(field: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise SupplyError(field, "must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Supply:
    """What one patient has left: the roll or tray in use and when its last dose is due."""

    patient_id: int
    source: SupplySource
    source_id: str
    runs_out_at: datetime | None
    doses_left: int | None = None

    def __post_init__(self) -> None:
        """Known source kind, a source id, an aware ``runs_out_at``, no negative doses."""
        if self.source not in ("roll", "tray"):
            raise SupplyError("source", f"must be 'roll' or 'tray', not {self.source!r}")
        if not self.source_id.strip():
            raise SupplyError("source_id", "must not be empty")
        _check_aware("runs_out_at", self.runs_out_at)
        if self.doses_left is not None and self.doses_left < 0:
            raise SupplyError("doses_left", f"must not be negative, not {self.doses_left}")

    @classmethod
    def from_manifest(cls, patient_id: int, manifest: RollManifest) -> Supply:
        """The supply of a newly accepted roll: runs out at its last intake."""
        return cls(patient_id, "roll", manifest.roll_id, manifest.last_intake, len(manifest.pouches))

    @classmethod
    def from_tray_fill(cls, patient_id: int, tray_id: str, last_due: datetime, doses: int) -> Supply:
        """The supply of a freshly filled tray: runs out at its last pot's due time."""
        return cls(patient_id, "tray", tray_id, last_due, doses)

    def after_almost_empty(self, source_id: str, doses_left: int, until: datetime) -> Supply:
        """Apply a device's almost-empty report (``until``: due time of the last dose left)."""
        _check_aware("until", until)
        if source_id != self.source_id:
            return self
        if self.runs_out_at is not None and until >= self.runs_out_at:
            return self
        return dataclasses.replace(self, runs_out_at=until, doses_left=doses_left)

    def after_empty(self, source_id: str, *, now: datetime) -> Supply:
        """Apply a device's empty report: the supply runs out now (or has already)."""
        _check_aware("now", now)
        if source_id != self.source_id:
            return self
        end = now if self.runs_out_at is None else min(now, self.runs_out_at)
        return dataclasses.replace(self, runs_out_at=end, doses_left=0)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Europe/Oslo wall-clock hours without non-urgent notifications: ``[start, end)``, may wrap midnight.

    Start and end are whole minutes, differ, and lie outside 02:00-02:59 (the hour skipped or repeated at
    a DST change), so every day has one quiet period and at least a minute that is not quiet.
    """

    start: time = time(22, 0)
    end: time = time(7, 0)

    def __post_init__(self) -> None:
        """Validate start and end (see the class rules)."""
        for field in ("start", "end"):
            value: time = getattr(self, field)
            if value.tzinfo is not None:
                raise SupplyError(field, "is a Europe/Oslo wall-clock time and carries no time zone")
            if value.second or value.microsecond:
                raise SupplyError(field, "must be a whole minute")
            if _DST_HOUR[0] <= value < _DST_HOUR[1]:
                raise SupplyError(field, "must not be within 02:00-02:59 (skipped or repeated at DST)")
        if self.start == self.end:
            raise SupplyError("end", "must differ from start")

    def period(self, moment: datetime) -> tuple[datetime, datetime] | None:
        """The quiet period ``(start, end)`` as UTC instants that contains ``moment``, if any."""
        _check_aware("moment", moment)
        wraps = self.end < self.start
        day = oslo_day(moment)
        for first in (day - _DAY, day):
            start = oslo_instant(first, self.start)
            end = oslo_instant(first + _DAY if wraps else first, self.end)
            if start <= moment < end:
                return start, end
        return None

    def in_quiet(self, moment: datetime) -> bool:
        """Whether ``moment`` falls in quiet hours."""
        return self.period(moment) is not None

    def next_allowed(self, moment: datetime) -> datetime:
        """``moment`` itself outside quiet hours, else the end of its quiet period."""
        period = self.period(moment)
        return moment if period is None else period[1]


@dataclass(frozen=True, slots=True)
class RefillPolicy:
    """How long before the supply runs out each warning stage is due, earliest stage first."""

    leads: tuple[timedelta, ...] = (timedelta(hours=72), timedelta(hours=24))

    def __post_init__(self) -> None:
        """One to ``MAX_STAGES`` positive leads, strictly decreasing."""
        if not 1 <= len(self.leads) <= MAX_STAGES:
            raise SupplyError("leads", f"must have 1-{MAX_STAGES} stages, not {len(self.leads)}")
        for index, lead in enumerate(self.leads):
            if lead <= timedelta(0):
                raise SupplyError(f"leads[{index}]", f"must be positive, not {lead}")
            if index and lead >= self.leads[index - 1]:
                raise SupplyError(f"leads[{index}]", "must be shorter than the stage before it")


@dataclass(frozen=True, slots=True)
class RefillWarning:
    """One refill warning: stage ``stage`` (0 = first) about ``source_id``, to be sent at ``at``."""

    patient_id: int
    source: SupplySource
    source_id: str
    stage: int
    lead: timedelta
    at: datetime
    runs_out_at: datetime

    @property
    def key(self) -> str:
        """Stable per (patient, roll or tray, stage): a warning with a sent key is never sent again."""
        return f"refill:{self.patient_id}:{self.source_id}:{self.stage}"

    @property
    def detail(self) -> str:
        """Operator-readable, without patient data."""
        local = self.runs_out_at.astimezone(OSLO)
        return fit_detail(
            f"supply on {self.source} {self.source_id} runs out {local:%Y-%m-%d %H:%M} (Europe/Oslo)"
        )

    def condition(self, device_id: str | None = None) -> Condition:
        """The refill-needed alarm condition about the patient (one open alarm per patient)."""
        mapping = HUB_CONDITIONS[REFILL_NEEDED]
        return Condition(
            kind=REFILL_NEEDED,
            subject_kind=SubjectKind.PATIENT,
            subject_id=str(self.patient_id),
            severity=int(mapping.severity),
            detail=self.detail,
            vkp_code=mapping.vkp,
            device_id=device_id,
            patient_id=self.patient_id,
        )


def refill_warnings(
    supply: Supply, policy: RefillPolicy, quiet: QuietHours, *, now: datetime
) -> list[RefillWarning]:
    """The warnings still to come or due, one per stage not superseded, placed by the module rules."""
    _check_aware("now", now)
    end = supply.runs_out_at
    if end is None or end <= now:
        return []
    nominal = [end - lead for lead in policy.leads]
    warnings: list[RefillWarning] = []
    previous: datetime | None = None
    for stage, lead in enumerate(policy.leads):
        last = stage + 1 == len(nominal)
        limit = end if last else nominal[stage + 1]
        if not last and limit <= now:
            continue
        at = _place(max(nominal[stage], now), limit, end, quiet, now)
        if previous is not None:
            at = max(at, previous)
        previous = at
        warnings.append(
            RefillWarning(supply.patient_id, supply.source, supply.source_id, stage, lead, at, end)
        )
    return warnings


def due_warnings(
    supply: Supply, policy: RefillPolicy, quiet: QuietHours, *, now: datetime, sent: AbstractSet[str]
) -> list[RefillWarning]:
    """The warnings whose time has come and whose key is not in ``sent``."""
    return [
        warning
        for warning in refill_warnings(supply, policy, quiet, now=now)
        if warning.at <= now and warning.key not in sent
    ]


def _place(earliest: datetime, limit: datetime, end: datetime, quiet: QuietHours, now: datetime) -> datetime:
    """Rules 3-7 for one stage."""
    period = quiet.period(earliest)
    if period is None:
        return earliest
    quiet_start, quiet_end = period
    if quiet_end <= limit:
        return quiet_end
    if now < quiet_start:
        return max(quiet_start - BACK_STEP, now)
    if quiet_end <= end:
        return quiet_end
    return earliest
