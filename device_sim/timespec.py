"""Time notation of scenario files: durations, wall-clock times, and Europe/Oslo to Unix ms (DST rules).

- Durations (``"90m"``, ``"12h"``, ``"3d"``, ``"1h30m"``, ``"45s"``) are elapsed time: a day is 24 hours, also
  across a daylight-saving change.
- Wall-clock times (``"08:00"``) are ``HH:MM``, 00:00 to 23:59, on the Europe/Oslo clock.
- Daylight saving (``local_ms``): a wall-clock time that does not exist (the spring-forward gap, 02:00-02:59
  on the last Sunday of March) is an error when ``strict`` (timeline entries: the author meant a definite
  instant and must say which), and otherwise moves forward by the gap (daily dose times: a "02:30" dose is
  taken at 03:30 CEST on that day). A time that occurs twice (autumn fall-back, 02:00-02:59 on the last Sunday
  of October) means its first occurrence (summer time, ``fold=0``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator

OSLO = ZoneInfo("Europe/Oslo")

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_UNITS_MS = (86_400_000, 3_600_000, 60_000, 1_000)


class NonexistentLocalTimeError(ValueError):
    """A Europe/Oslo wall-clock time inside the spring-forward gap."""


def parse_duration_ms(text: object) -> int:
    """``"1h30m"`` -> 5400000. Units d, h, m, s in that order, each at most once; no spaces."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like '90m', '12h', '3d' or '1h30m', not {text!r}")  # noqa: TRY004
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like '90m', '12h', '3d' or '1h30m'")
    return sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS_MS, strict=True) if g)


def parse_clock(text: object) -> time:
    """``"08:00"`` -> 08:00; hours 00-23, minutes 00-59."""
    if isinstance(text, time):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a time of day like '08:00', not {text!r}")  # noqa: TRY004
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day like '08:00'")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:  # noqa: PLR2004
        raise ValueError(f"{text!r} is not a time of day (00:00 to 23:59)")
    return time(hour, minute)


def local_ms(day: date, clock: time, *, strict: bool) -> int:
    """The Unix ms of ``clock`` on ``day`` on the Europe/Oslo wall clock, by the module's DST rules."""
    naive = datetime.combine(day, clock)
    instant = naive.replace(tzinfo=OSLO).astimezone(UTC)
    if strict and instant.astimezone(OSLO).replace(tzinfo=None) != naive:
        raise NonexistentLocalTimeError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in Europe/Oslo "
            "(the clocks jump from 02:00 to 03:00 that night)"
        )
    return to_ms(instant)


def to_ms(instant: datetime) -> int:
    """Unix ms of an aware datetime."""
    return int(instant.timestamp() * 1000)


def local_date(ms: int) -> date:
    """The Europe/Oslo calendar date of ``ms``."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(OSLO).date()


def iso_utc(ms: int) -> str:
    """``2026-11-23T07:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str, *, strict: bool = True) -> int:
    """An ISO date or datetime as Unix ms; naive means Europe/Oslo wall clock, a date means midnight."""
    value = text.strip()
    try:
        if "T" not in value and " " not in value:
            return local_ms(date.fromisoformat(value), time(0), strict=strict)
        parsed = datetime.fromisoformat(value)
    except NonexistentLocalTimeError:
        raise
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or datetime") from None
    if parsed.tzinfo is None:
        return local_ms(parsed.date(), parsed.time(), strict=strict)
    return to_ms(parsed)


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]
"""A scenario duration string, validated to elapsed milliseconds."""

ClockTime = Annotated[time, BeforeValidator(parse_clock)]
"""A scenario ``HH:MM`` wall-clock time."""
