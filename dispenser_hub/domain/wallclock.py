"""Europe/Oslo wall-clock times to UTC instants, without skipping or repeating a dose at a DST change.

Dose plans are wall-clock times ("08:00 every day") in Europe/Oslo; devices get absolute UTC instants
(``config`` slots), so every conversion happens here. Rules, for each (day, time of day) exactly one
instant:

- A time that does not exist (the spring-forward gap, 02:00-03:00 on the last Sunday of March) is moved
  forward by the gap: 02:30 becomes 03:30 CEST. The dose is given, one hour late on the wall clock.
- A time that exists twice (the fall-back hour, 02:00-03:00 on the last Sunday of October) is its first
  occurrence (CEST): the dose is given once, not twice.

Pure: no clock is read.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

OSLO: Final = ZoneInfo("Europe/Oslo")


def oslo_instant(day: date, at: time) -> datetime:
    """The UTC instant of wall-clock ``at`` on ``day`` in Europe/Oslo (see the module rules).

    ``fold=0`` gives both rules: in a gap zoneinfo applies the offset before the transition (so the time
    lands after the gap), in a repeated hour the first occurrence.
    """
    if at.tzinfo is not None:
        msg = "a wall-clock time of day carries no time zone"
        raise ValueError(msg)
    local = datetime.combine(day, at.replace(fold=0), tzinfo=OSLO)
    return local.astimezone(UTC)


def oslo_day(moment: datetime) -> date:
    """The Europe/Oslo calendar day of an aware instant."""
    if moment.tzinfo is None:
        msg = "moment must be timezone-aware"
        raise ValueError(msg)
    return moment.astimezone(OSLO).date()


def oslo_days(first: date, count: int) -> list[date]:
    """``count`` consecutive calendar days from ``first``."""
    return [first + timedelta(days=n) for n in range(count)]
