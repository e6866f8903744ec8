"""On-call rosters of the home-care teams, so an escalation reaches a person, not a team name.

A ``Shift`` is one person on call for one team in ``[start, end)`` (aware UTC); the person is reached through
``contact_ref``, an opaque reference to a contact record (the notifier looks the number up; no phone number
is held here). Rules:

- **Templates** (``WeeklyShift``): a weekly rota is wall-clock times in Europe/Oslo ("Saturday 22:00 for
  9 hours"). ``expand`` makes one shift per template per matching day. Both ends are wall-clock times: the
  start is ``start`` on the day, the end is the wall-clock time ``duration`` later, each converted by
  ``wallclock.oslo_instant`` (a time in the spring gap moves forward by the gap, a repeated time is its
  first occurrence). A shift therefore lasts its wall-clock length and a rota whose shifts hand over at the
  same wall-clock time (22-07, 07-15, 15-22) stays contiguous across a DST change: no gap, no overlap.
- **DST, the 22:00-07:00 night shift**: on the night into Sunday 2026-03-29 it runs from 22:00 CET (21:00Z)
  to 07:00 CEST (05:00Z), 8 hours elapsed; on the night into Sunday 2026-10-25 from 22:00 CEST (20:00Z) to
  07:00 CET (06:00Z), 10 hours elapsed. Away from a change, elapsed time equals ``duration``.
- **The spring gap** (02:00-03:00 on the last Sunday of March does not exist): a start or end in the gap is
  the moment the clock jumps (03:00 CEST), not ``oslo_instant``'s "one hour later" (right for a dose, wrong
  for a handover: 02:30 would start at 03:30 and the next shift's 02:30 end would leave the half hour
  before uncovered, or a shift 02:30-03:15 would end before it starts). So a shift starting or ending in
  the gap loses the part that does not exist, handovers stay contiguous, and a shift wholly inside the gap
  has no length and is left out that day. A time in the repeated autumn hour is its first occurrence.
- **On duty** (``on_duty``): the team's shifts with ``start <= at < end``, the primary first: ordered by
  start, then by declared order (position in the list passed in).
- **Gaps** (``gaps``): the periods of ``[start, end)`` when nobody on the team is on call, merged, in order:
  an operator warning (an escalation at that time would reach no one).
- **Validation** (``check_roster``, called by ``expand``): two shifts of the same person for the same team
  must not overlap (a double entry). One person on call for two teams at once is allowed (night cover of
  neighbouring districts is common).

``RosterError`` names the field and says what to fix. Pure: callers pass ``at``/``start``/``end``; no clock.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.wallclock import OSLO, oslo_days, oslo_instant

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

MAX_TEMPLATE_DURATION: Final = timedelta(days=7)
"""A weekly shift lasts at most a week, so a template never overlaps its own next week."""
MAX_EXPAND_DAYS: Final = 366
MAX_NAME: Final = 100
_ZERO: Final = timedelta(0)
_GAP_END: Final = time(3, 0)
"""Europe/Oslo's spring gap (02:00-03:00 wall clock) ends at 03:00 CEST."""
_REF: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_PHONE_LIKE: Final = re.compile(r"^\+?[0-9 ()-]{5,}$")


class RosterError(ValueError):
    """A shift, template or roster that breaks a rule; ``field`` names where, the message what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _check_aware(field: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise RosterError(field, "must be timezone-aware")


def _check_ref(field: str, value: str) -> None:
    if not _REF.fullmatch(value):
        raise RosterError(field, "must be 1-64 letters, digits and ._:/- (starting alphanumeric)")


def _check_people(team_id: str, person: str, contact_ref: str) -> None:
    _check_ref("team_id", team_id)
    if not person.strip() or len(person) > MAX_NAME:
        raise RosterError("person", f"must be a name or staff reference of 1-{MAX_NAME} characters")
    _check_ref("contact_ref", contact_ref)
    if _PHONE_LIKE.fullmatch(contact_ref):
        raise RosterError("contact_ref", "must be a reference to a contact record, not a phone number")


@dataclass(frozen=True, slots=True)
class Shift:
    """``person`` of ``team_id`` is on call in ``[start, end)``, reached through ``contact_ref``."""

    team_id: str
    person: str
    contact_ref: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        """Known refs, a person, no phone number, aware UTC times, end after start."""
        _check_people(self.team_id, self.person, self.contact_ref)
        for field, value in (("start", self.start), ("end", self.end)):
            _check_aware(field, value)
            if value.utcoffset() != _ZERO:
                raise RosterError(field, "must be UTC (convert wall-clock times with oslo_instant)")
        if self.end <= self.start:
            raise RosterError("end", f"must be after start ({self.start.isoformat()})")

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` lies in the shift (start inclusive, end exclusive)."""
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class WeeklyShift:
    """Every ``weekday`` (0 Monday - 6 Sunday) from Europe/Oslo wall-clock ``start`` for ``duration``."""

    team_id: str
    person: str
    contact_ref: str
    weekday: int
    start: time
    duration: timedelta

    def __post_init__(self) -> None:
        """Known refs, weekday 0-6, a naive whole-minute start, a duration of whole minutes up to a week."""
        _check_people(self.team_id, self.person, self.contact_ref)
        if not 0 <= self.weekday <= 6:  # noqa: PLR2004 - Monday..Sunday
            raise RosterError("weekday", f"must be 0 (Monday) to 6 (Sunday), not {self.weekday}")
        if self.start.tzinfo is not None:
            raise RosterError("start", "must be a Europe/Oslo wall-clock time without a time zone")
        if self.start.second or self.start.microsecond:
            raise RosterError("start", "must be whole minutes")
        if not _ZERO < self.duration <= MAX_TEMPLATE_DURATION:
            raise RosterError("duration", f"must be more than 0 and at most {MAX_TEMPLATE_DURATION}")
        if self.duration % timedelta(minutes=1):
            raise RosterError("duration", "must be whole minutes")

    def on(self, day: date) -> Shift | None:
        """The shift starting on ``day`` (any weekday; see the module's DST rules), or ``None`` in a gap."""
        wall_end = datetime.combine(day, self.start) + self.duration
        start = _handover(day, self.start)
        end = _handover(wall_end.date(), wall_end.time())
        if end <= start:
            return None
        return Shift(self.team_id, self.person, self.contact_ref, start, end)


def _handover(day: date, at: time) -> datetime:
    """``oslo_instant``, except that a time in the spring gap is the moment the clock jumps (03:00 CEST)."""
    instant = oslo_instant(day, at)
    if instant.astimezone(OSLO).time() != at:
        return oslo_instant(day, _GAP_END)
    return instant


def expand(template: Iterable[WeeklyShift], first_day: date, days: int) -> list[Shift]:
    """The shifts of a weekly rota starting on ``days`` days from ``first_day``, by start then template order.

    Shifts starting in the range are included whole (a night shift may end the day after). The result is
    checked with ``check_roster``.
    """
    if not 0 <= days <= MAX_EXPAND_DAYS:
        raise RosterError("days", f"must be 0 to {MAX_EXPAND_DAYS}, not {days}")
    templates = list(template)
    found: list[tuple[datetime, int, Shift]] = []
    for day in oslo_days(first_day, days):
        for index, weekly in enumerate(templates):
            shift = weekly.on(day) if weekly.weekday == day.weekday() else None
            if shift is not None:
                found.append((shift.start, index, shift))
    shifts = [shift for _, _, shift in sorted(found, key=lambda item: (item[0], item[1]))]
    check_roster(shifts)
    return shifts


def check_roster(shifts: Sequence[Shift]) -> None:
    """Raise ``RosterError`` (``shifts[i].start``) if two shifts of one person for one team overlap."""
    by_holder: dict[tuple[str, str], list[int]] = {}
    for index, shift in enumerate(shifts):
        by_holder.setdefault((shift.team_id, shift.person), []).append(index)
    for (team_id, person), indexes in by_holder.items():
        ordered = sorted(indexes, key=lambda i: (shifts[i].start, i))
        for before, after in itertools.pairwise(ordered):
            if shifts[after].start < shifts[before].end:
                msg = (
                    f"overlaps shifts[{before}] of {person!r} for team {team_id!r} "
                    f"(which ends {shifts[before].end.isoformat()})"
                )
                raise RosterError(f"shifts[{after}].start", msg)


def on_duty(shifts: Sequence[Shift], team_id: str, at: datetime) -> list[Shift]:
    """The team's shifts covering ``at``: the primary (earliest start, then first declared) first."""
    _check_aware("at", at)
    covering = [
        (shift.start, index, shift)
        for index, shift in enumerate(shifts)
        if shift.team_id == team_id and shift.covers(at)
    ]
    return [shift for _, _, shift in sorted(covering, key=lambda item: (item[0], item[1]))]


def gaps(
    shifts: Sequence[Shift], team_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The periods of ``[start, end)`` when nobody on the team is on call, merged and in order."""
    _check_aware("start", start)
    _check_aware("end", end)
    if end <= start:
        raise RosterError("end", "must be after start")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    spans = sorted(
        (max(shift.start, start), min(shift.end, end))
        for shift in shifts
        if shift.team_id == team_id and shift.start < end and shift.end > start
    )
    uncovered: list[tuple[datetime, datetime]] = []
    cursor = start
    for span_start, span_end in spans:
        if span_start > cursor:
            uncovered.append((cursor, span_start))
        cursor = max(cursor, span_end)
    if cursor < end:
        uncovered.append((cursor, end))
    return uncovered
