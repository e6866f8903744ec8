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
        self.reason = message


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


# -- a team's roster: its on-call staff and weekly rota ----------------------------------------------------

MAX_STAFF: Final = 200
MAX_STAFF_REF: Final = 32
"""A staff reference's length: ``staff:<team id>:<ref>`` must fit a 64-character notification reference."""
MAX_ROTA: Final = 200
ON_CALL_LOOKBACK_DAYS: Final = 8
"""Shifts starting this many days before a moment are expanded to find who covers it (a shift lasts at most
a week, and a night shift starting the day before is on call after midnight)."""
_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$")
_PHONE: Final = re.compile(r"^\+?[0-9][0-9 ()-]{4,19}$")
_HHMM: Final = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A home-care worker who can be on call: ``ref`` is the roster's own reference (``nurse-1``)."""

    ref: str
    name: str
    phone: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        """A reference, a name, and a phone number or e-mail address to reach them (both well formed)."""
        _check_ref("ref", self.ref)
        if len(self.ref) > MAX_STAFF_REF:
            raise RosterError("ref", f"must be at most {MAX_STAFF_REF} characters")
        if not self.name.strip() or len(self.name) > MAX_NAME:
            raise RosterError("name", f"must be 1-{MAX_NAME} characters")
        if self.phone is not None and not _PHONE.fullmatch(self.phone):
            raise RosterError("phone", "must be a phone number such as +47 912 34 567")
        if self.email is not None and not _EMAIL.fullmatch(self.email):
            raise RosterError("email", "must be an e-mail address such as name@kommune.no")
        if self.phone is None and self.email is None:
            raise RosterError("phone", "a phone number or an e-mail address is needed to reach the person")


@dataclass(frozen=True, slots=True)
class TeamRoster:
    """A home-care team's staff and weekly on-call rota (``WeeklyShift.contact_ref`` is a staff ``ref``).

    Rules: staff references are unique; every shift names a listed staff member (``person`` and
    ``contact_ref`` are both the ref) and the team; the rota is checked for double entries over two weeks
    (``check_roster``). ``on_call`` is the staff on duty at a moment, the primary first.
    """

    team_id: str
    staff: tuple[StaffMember, ...]
    rota: tuple[WeeklyShift, ...]

    def __post_init__(self) -> None:
        """Validate (see the class rules)."""
        _check_ref("team_id", self.team_id)
        if len(self.staff) > MAX_STAFF:
            raise RosterError("staff", f"must list at most {MAX_STAFF} people")
        if len(self.rota) > MAX_ROTA:
            raise RosterError("rota", f"must have at most {MAX_ROTA} shifts")
        refs = [member.ref for member in self.staff]
        for index, ref in enumerate(refs):
            if ref in refs[:index]:
                raise RosterError(f"staff[{index}].ref", f"{ref!r} is listed twice")
        for index, shift in enumerate(self.rota):
            if shift.team_id != self.team_id:
                raise RosterError(f"rota[{index}].team_id", f"must be {self.team_id!r}")
            if shift.contact_ref not in refs:
                raise RosterError(f"rota[{index}].staff", f"{shift.contact_ref!r} is not in the staff list")
        expand(self.rota, date(2026, 1, 5), 14)  # two plain weeks: a double entry raises

    def member(self, ref: str) -> StaffMember | None:
        """The staff member with ``ref``."""
        return next((member for member in self.staff if member.ref == ref), None)

    def shifts_around(self, at: datetime) -> list[Shift]:
        """The rota's shifts that can cover ``at`` (those starting in the week before it or that day)."""
        _check_aware("at", at)
        first = at.astimezone(OSLO).date() - timedelta(days=ON_CALL_LOOKBACK_DAYS)
        return expand(self.rota, first, ON_CALL_LOOKBACK_DAYS + 2)

    def on_call(self, at: datetime) -> list[StaffMember]:
        """The staff on call at ``at``, the primary first (empty in a gap of the rota)."""
        found: list[StaffMember] = []
        for shift in on_duty(self.shifts_around(at), self.team_id, at):
            member = self.member(shift.contact_ref)
            if member is not None and member not in found:
                found.append(member)
        return found


def roster_document(roster: TeamRoster) -> dict[str, object]:
    """The roster as a JSON document (the API's and the store's shape; ``roster_from_document`` reads it)."""
    return {
        "staff": [{"ref": m.ref, "name": m.name, "phone": m.phone, "email": m.email} for m in roster.staff],
        "rota": [
            {
                "staff": shift.contact_ref,
                "weekday": shift.weekday,
                "start": shift.start.strftime("%H:%M"),
                "minutes": shift.duration // timedelta(minutes=1),
            }
            for shift in roster.rota
        ],
    }


def roster_from_document(team_id: str, document: object) -> TeamRoster:
    """Read a roster document (``roster_document``'s shape); ``RosterError`` names the field to fix."""
    if not isinstance(document, dict) or set(document) - {"staff", "rota"}:
        raise RosterError("roster", "must be an object with 'staff' and 'rota' lists")
    staff_items, rota_items = document.get("staff", []), document.get("rota", [])
    if not isinstance(staff_items, list) or not isinstance(rota_items, list):
        raise RosterError("roster", "'staff' and 'rota' must be lists")
    staff = tuple(_member(f"staff[{i}]", item) for i, item in enumerate(staff_items))
    rota = tuple(_weekly(f"rota[{i}]", team_id, item) for i, item in enumerate(rota_items))
    return TeamRoster(team_id, staff, rota)


def _member(where: str, item: object) -> StaffMember:
    if not isinstance(item, dict) or set(item) - {"ref", "name", "phone", "email"}:
        raise RosterError(where, "must be an object with ref, name, phone and/or email")
    ref, name, phone, email = (_optional_text(where, key, item) for key in ("ref", "name", "phone", "email"))
    try:
        return StaffMember(ref or "", name or "", phone, email)
    except RosterError as error:
        raise RosterError(f"{where}.{error.field}", error.reason) from None


def _optional_text(where: str, key: str, item: dict[str, object]) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise RosterError(f"{where}.{key}", "must be a string")
    return value or None


def _weekly(where: str, team_id: str, item: object) -> WeeklyShift:
    if not isinstance(item, dict) or set(item) != {"staff", "weekday", "start", "minutes"}:
        raise RosterError(where, "must be an object with staff, weekday (0-6), start (HH:MM) and minutes")
    staff, weekday, start, minutes = item["staff"], item["weekday"], item["start"], item["minutes"]
    if not isinstance(staff, str):
        raise RosterError(f"{where}.staff", "must be a staff ref")
    if type(weekday) is not int:
        raise RosterError(f"{where}.weekday", "must be 0 (Monday) to 6 (Sunday)")
    if not isinstance(start, str) or not _HHMM.fullmatch(start):
        raise RosterError(f"{where}.start", "must be a wall-clock time HH:MM")
    if type(minutes) is not int:
        raise RosterError(f"{where}.minutes", "must be whole minutes")
    try:
        hour, minute = (int(part) for part in start.split(":"))
        return WeeklyShift(team_id, staff, staff, weekday, time(hour, minute), timedelta(minutes=minutes))
    except RosterError as error:
        field = {"contact_ref": "staff", "person": "staff", "duration": "minutes"}.get(
            error.field, error.field
        )
        raise RosterError(f"{where}.{field}", error.reason) from None
