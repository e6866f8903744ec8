"""Dose schedules: from planned doses to the slots a device offers (``config.slots``), with pauses and trips.

A ``PlannedDose`` is an absolute UTC instant (wall-clock plans are converted by ``wallclock.oslo_instant``,
which settles daylight saving: nothing here does time-zone arithmetic except naming slots). Rules:

- **Windows** (``DoseWindow``): a dose is accessible from ``early`` before its due time and its window
  closes ``late`` after it; the device reminds by the ladder ``notice_before`` / ``sound_after`` /
  ``repeat_every`` x ``repeat_max``. Limits: ``early`` 0-6 h (field products allow "several hours"),
  ``late`` 5 min-5 h (DOMAIN.md: windows of 5 minutes to 5 hours), the reminder fields within the
  protocol's ``Reminders`` limits, ``sound_after`` shorter than ``late`` (a sound after the window closed
  reminds of nothing), every duration in whole seconds. Defaults follow the protocol's ``Config`` example
  and the field facts: open 60 min early (consumer devices allow 30 min, carousels hours), close 120 min
  after due (between the pouch robots' 45/75 min and the consumer devices' 4 h), notice 15 min before,
  sound 5 min after, repeat every 10 min up to 6 times (the last sound 65 min after due, well inside the
  window, and before the pouch robots' 75 min notification).
- **Range**: a slot is sent only if its window has not closed by ``now`` and it is due before
  ``now + horizon``; of those, the earliest ``max_slots`` (at most 256, the protocol's limit), sorted by due;
  ``Schedule.left_out`` counts the rest.
- **Pauses** (hospital, travel): a dose due in ``[start, end)`` is cancelled, not missed
  (``CancelledDose``, listed when due before ``now + horizon`` and its unclipped window is still open at
  ``now``). Cancelled doses take no part in window clipping. ``paused_until`` is ``Config.paused_until``.
- **No overlap**: when a window would open before the previous one closes, the earlier window closes
  where the next one opens (moved to 1 ms after the earlier due if the next would open before it; doses less
  than 1 ms apart are a ``ScheduleError``). Chosen over splitting at the midpoint: the next dose's early
  access stays as configured, and the earlier dose is reported untaken before the next one is offered, so a
  late patient never has two doses on offer at once. Always ``opens <= due < closes``; a clipped window may be
  shorter than 5 minutes. Clipping uses every offered dose passed in, so a window does not change when its
  neighbour leaves the range.
- **Slot ids** (``slot_id_for``): ``s-YYYYMMDD-HHMM`` of the Europe/Oslo local due time, as in the protocol
  example. Later doses sharing a local minute (close doses; the repeated hour in October) get ``-2``,
  ``-3``... in due order, counted over every dose passed in (cancelled ones too), so an id stays the same as
  long as the plan does, whatever ``now`` is.
- **Trips** (``trip_doses``): the doses due in ``[start, end)`` are requested from ``cmd.predispense``; a
  ``dose.predispensed`` with fewer dispensed than requested is the alarm ``TRIP_SHORT`` (VKP 3.15). An empty
  schedule while no pause is in force is the hub condition ``NO_SCHEDULE`` (VKP 3.8).

``ScheduleError`` names the field and says what to fix. Pure: callers pass ``now``; no clock, no storage.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.pouches import REF_PATTERN, to_ms
from dispenser_hub.domain.wallclock import OSLO
from firmware_protocol.codes import EVENT_MAPPINGS, HUB_CONDITIONS
from firmware_protocol.messages.downlink import Reminders, Slot

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Set as AbstractSet

    from dispenser_hub.domain.pouches import RollManifest

MAX_SLOTS: Final = 256
"""The protocol's limit on ``Config.slots``."""
MAX_REMINDER: Final = timedelta(seconds=14_400)
"""The protocol's limit on every ``Reminders`` duration."""
MAX_REPEATS: Final = 20
MAX_POT: Final = 64
TRIP_SHORT: Final = "dose.predispensed"
"""Alarm kind of a trip pre-dispense with fewer doses than requested (the event type, as device alarms)."""
NO_SCHEDULE: Final = "no_schedule"
"""Alarm kind (hub condition) of a device with nothing to offer and no pause in force."""
ALARM_VKP: Final[dict[str, str | None]] = {
    TRIP_SHORT: EVENT_MAPPINGS[TRIP_SHORT].vkp,
    NO_SCHEDULE: HUB_CONDITIONS[NO_SCHEDULE].vkp,
}
"""The VKP alert code of each alarm kind."""
_REF = re.compile(REF_PATTERN)
_MS: Final = timedelta(milliseconds=1)
_ZERO: Final = timedelta(0)


class ScheduleError(ValueError):
    """A window, dose, pause or request that breaks a rule; ``field`` names where, the message what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _check_aware(field: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(field, "must be timezone-aware")


def _check_between(field: str, value: timedelta, low: timedelta, high: timedelta) -> None:
    if not low <= value <= high:
        raise ScheduleError(field, f"must be {low} to {high}, not {value}")
    if value.microseconds:
        raise ScheduleError(field, f"must be whole seconds, not {value}")


@dataclass(frozen=True, slots=True)
class DoseWindow:
    """When a dose may be taken around its due time, and how the device reminds (see the module rules)."""

    early: timedelta = timedelta(minutes=60)
    late: timedelta = timedelta(minutes=120)
    notice_before: timedelta = timedelta(minutes=15)
    sound_after: timedelta = timedelta(minutes=5)
    repeat_every: timedelta = timedelta(minutes=10)
    repeat_max: int = 6

    def __post_init__(self) -> None:
        """Every field within its limits, in whole seconds; the sound starts before the window closes."""
        _check_between("early", self.early, _ZERO, timedelta(hours=6))
        _check_between("late", self.late, timedelta(minutes=5), timedelta(hours=5))
        _check_between("notice_before", self.notice_before, _ZERO, MAX_REMINDER)
        _check_between("sound_after", self.sound_after, _ZERO, MAX_REMINDER)
        _check_between("repeat_every", self.repeat_every, timedelta(seconds=60), MAX_REMINDER)
        if not 0 <= self.repeat_max <= MAX_REPEATS:
            raise ScheduleError("repeat_max", f"must be 0 to {MAX_REPEATS}, not {self.repeat_max}")
        if self.sound_after >= self.late:
            msg = f"must be shorter than the window after due (late = {self.late}), not {self.sound_after}"
            raise ScheduleError("sound_after", msg)

    def reminders(self) -> Reminders:
        """The reminder ladder as the device receives it (``Config.reminders``)."""
        return Reminders(
            notice_before_s=int(self.notice_before.total_seconds()),
            sound_after_s=int(self.sound_after.total_seconds()),
            repeat_every_s=int(self.repeat_every.total_seconds()),
            repeat_max=self.repeat_max,
        )


@dataclass(frozen=True, slots=True)
class PlannedDose:
    """One dose to offer at ``due``: a multidose pouch (``pouch_id``) or a carousel pot (``pot``)."""

    due: datetime
    pouch_id: str | None = None
    pot: int | None = None
    label: str | None = None
    """For people (e.g. "morning"); not sent to the device."""

    def __post_init__(self) -> None:
        """Aware UTC due in whole ms; exactly one of a valid pouch id or a pot 1-64; a label is not blank."""
        if self.due.tzinfo is None or self.due.utcoffset() != _ZERO:
            raise ScheduleError("due", "must be timezone-aware UTC")
        if self.due.microsecond % 1000:
            raise ScheduleError("due", "must be whole milliseconds (times travel as Unix milliseconds)")
        if (self.pouch_id is None) == (self.pot is None):
            raise ScheduleError("pouch_id", "give exactly one of pouch_id (multidose) or pot (dose-pot)")
        if self.pouch_id is not None and not _REF.fullmatch(self.pouch_id):
            raise ScheduleError("pouch_id", "must be 1-64 letters, digits and ._:/- (starting alphanumeric)")
        if self.pot is not None and not 1 <= self.pot <= MAX_POT:
            raise ScheduleError("pot", f"must be 1 to {MAX_POT}, not {self.pot}")
        if self.label is not None and not self.label.strip():
            raise ScheduleError("label", "must not be blank (leave it out instead)")


def roll_doses(manifest: RollManifest, dispensed: AbstractSet[str]) -> list[PlannedDose]:
    """One dose per pouch of ``manifest`` not yet dispensed (``dispensed``: pouch ids), in intake order."""
    return [
        PlannedDose(due=pouch.intake_at, pouch_id=pouch.pouch_id)
        for pouch in manifest.pouches
        if pouch.pouch_id not in dispensed
    ]


@dataclass(frozen=True, slots=True)
class Pause:
    """No doses in ``[start, end)``: the patient is away (``reason``: "hospital", "travel", ...)."""

    start: datetime
    end: datetime
    reason: str

    def __post_init__(self) -> None:
        """Aware times, start before end, a reason given."""
        _check_aware("start", self.start)
        _check_aware("end", self.end)
        if self.end <= self.start:
            raise ScheduleError("end", "must be after start")
        if not self.reason.strip():
            raise ScheduleError("reason", "must not be empty (e.g. hospital, travel)")

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` lies in the pause (start inclusive, end exclusive)."""
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class ScheduledSlot:
    """One slot of a schedule: ``opens <= due < closes``, a pouch or a pot."""

    slot_id: str
    due: datetime
    opens: datetime
    closes: datetime
    pouch_id: str | None = None
    pot: int | None = None


@dataclass(frozen=True, slots=True)
class CancelledDose:
    """A dose not offered because a pause covers its due time (cancelled, not missed)."""

    dose: PlannedDose
    reason: str


@dataclass(frozen=True, slots=True)
class Schedule:
    """The slots to send (sorted by due), the cancelled doses, how many in range ``max_slots`` left out."""

    slots: tuple[ScheduledSlot, ...]
    cancelled: tuple[CancelledDose, ...] = ()
    left_out: int = 0


def slot_id_for(due: datetime, nth: int = 1) -> str:
    """``s-YYYYMMDD-HHMM`` of ``due``'s Europe/Oslo local time; the ``nth`` dose of the minute: ``-nth``."""
    _check_aware("due", due)
    if nth < 1:
        raise ScheduleError("nth", f"must be 1 or more, not {nth}")
    base = f"s-{due.astimezone(OSLO):%Y%m%d-%H%M}"
    return base if nth == 1 else f"{base}-{nth}"


def _slot_ids(ordered: list[PlannedDose]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for dose in ordered:
        base = slot_id_for(dose.due)
        seen[base] = seen.get(base, 0) + 1
        ids.append(slot_id_for(dose.due, seen[base]))
    return ids


def derive_schedule(
    doses: Iterable[PlannedDose],
    window: DoseWindow,
    pauses: Iterable[Pause],
    *,
    now: datetime,
    horizon: timedelta,
    max_slots: int = MAX_SLOTS,
) -> Schedule:
    """The schedule a device gets at ``now`` (see the module rules); ``doses`` in any order."""
    _check_aware("now", now)
    if horizon <= _ZERO:
        raise ScheduleError("horizon", "must be positive")
    if not 1 <= max_slots <= MAX_SLOTS:
        raise ScheduleError("max_slots", f"must be 1 to {MAX_SLOTS}, not {max_slots}")
    ordered = sorted(doses, key=lambda dose: dose.due)
    for before, after in itertools.pairwise(ordered):
        if after.due - before.due < _MS:
            msg = f"two doses due at {after.due.isoformat()}: merge them or move one (at least 1 ms apart)"
            raise ScheduleError("doses", msg)
    pause_list = tuple(pauses)
    until = now + horizon
    offered: list[tuple[str, PlannedDose]] = []
    cancelled: list[CancelledDose] = []
    for slot_id, dose in zip(_slot_ids(ordered), ordered, strict=True):
        pause = next((pause for pause in pause_list if pause.covers(dose.due)), None)
        if pause is None:
            offered.append((slot_id, dose))
        elif dose.due < until and dose.due + window.late > now:
            cancelled.append(CancelledDose(dose, pause.reason))
    opens = [dose.due - window.early for _, dose in offered]
    closes = [dose.due + window.late for _, dose in offered]
    for i in range(len(offered) - 1):
        if opens[i + 1] < closes[i]:
            boundary = max(opens[i + 1], offered[i][1].due + _MS)
            closes[i] = opens[i + 1] = boundary
    kept = [
        ScheduledSlot(slot_id, dose.due, opened, closed, dose.pouch_id, dose.pot)
        for (slot_id, dose), opened, closed in zip(offered, opens, closes, strict=True)
        if closed > now and dose.due < until
    ]
    return Schedule(tuple(kept[:max_slots]), tuple(cancelled), max(0, len(kept) - max_slots))


def paused_until(pauses: Iterable[Pause], now: datetime) -> datetime | None:
    """End of the pause in force at ``now`` (following pauses that overlap or adjoin it), or ``None``."""
    _check_aware("now", now)
    pause_list = tuple(pauses)
    end: datetime | None = None
    moment = now
    while ends := [pause.end for pause in pause_list if pause.covers(moment)]:
        end = moment = max(ends)
    return end


def schedule_condition(schedule: Schedule, pauses: Iterable[Pause], now: datetime) -> str | None:
    """``NO_SCHEDULE`` when the schedule offers nothing and no pause is in force at ``now``."""
    return NO_SCHEDULE if not schedule.slots and paused_until(pauses, now) is None else None


def to_wire_slots(schedule: Schedule) -> list[Slot]:
    """The slots as ``Config.slots`` carries them (Unix ms UTC)."""
    return [
        Slot(
            slot_id=slot.slot_id,
            due=to_ms(slot.due),
            opens=to_ms(slot.opens),
            closes=to_ms(slot.closes),
            pouch_id=slot.pouch_id,
            pot=slot.pot,
        )
        for slot in schedule.slots
    ]


@dataclass(frozen=True, slots=True)
class TripCheck:
    """The doses a trip pre-dispense (``cmd.predispense``) asks for: those due in ``[start, end)``."""

    start: datetime
    end: datetime
    requested: tuple[PlannedDose, ...]

    def missing(self, dispensed: int) -> int:
        """How many requested doses a ``dose.predispensed`` reporting ``dispensed`` did not give."""
        if dispensed < 0:
            raise ScheduleError("dispensed", f"must be 0 or more, not {dispensed}")
        return max(0, len(self.requested) - dispensed)

    def short_alarm(self, dispensed: int) -> str | None:
        """``TRIP_SHORT`` (VKP 3.15) when fewer than requested were dispensed, else ``None``."""
        return TRIP_SHORT if self.missing(dispensed) else None


def trip_doses(doses: Iterable[PlannedDose], start: datetime, end: datetime) -> TripCheck:
    """The doses due in ``[start, end)``, sorted by due."""
    _check_aware("start", start)
    _check_aware("end", end)
    if end <= start:
        raise ScheduleError("end", "must be after start")
    requested = sorted((dose for dose in doses if start <= dose.due < end), key=lambda dose: dose.due)
    return TripCheck(start, end, tuple(requested))
