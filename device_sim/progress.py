"""The live progress display of ``dispenser-sim run``: one status line, no curses.

Three modes (``ProgressMode``):

* ``line`` (a terminal): one line rewritten in place every second (carriage return, padded);
* ``log`` (not a terminal): one line every 10 seconds, each ending in a newline;
* ``json``: one JSON object per line every second (``RunStats.as_dict()`` plus the rates and ``final``).

The line shows the simulated time in Europe/Oslo, devices connected/total, doses due/taken/missed, faults,
hostile messages, messages out/in per second (real seconds, over the last interval), reconnects and
errors. ``format_line`` and ``progress_record`` are pure; ``show_progress`` is the task that prints them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from device_sim.timespec import OSLO

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from device_sim.runner import RunStats


class ProgressMode(enum.StrEnum):
    """How progress is shown (see the module docstring)."""

    LINE = "line"
    LOG = "log"
    JSON = "json"
    QUIET = "quiet"


INTERVAL_S = {ProgressMode.LINE: 1.0, ProgressMode.LOG: 10.0, ProgressMode.JSON: 1.0}


@dataclass(frozen=True, slots=True)
class Rates:
    """Messages per real second since the previous report."""

    out_per_s: float = 0.0
    in_per_s: float = 0.0


def _int(stats: RunStats, key: str) -> int:
    value = stats.fleet.get(key, 0)
    return value if isinstance(value, int) else 0


def rates_between(before: RunStats | None, after: RunStats, seconds: float) -> Rates:
    """Messages out (devices and stand-in) and in (delivered to devices and the stand-in) per second."""
    if before is None or seconds <= 0:
        return Rates()

    def total(stats: RunStats, key: str, standin: int) -> int:
        return _int(stats, key) + standin

    sent = total(after, "sent", after.standin_out) - total(before, "sent", before.standin_out)
    got = total(after, "received", after.standin_in) - total(before, "received", before.standin_in)
    return Rates(sent / seconds, got / seconds)


def sim_time(sim_ms: int) -> str:
    """``2026-11-23 08:00 CET``: the Europe/Oslo wall clock and its zone abbreviation."""
    moment = dt.datetime.fromtimestamp(sim_ms / 1000, dt.UTC).astimezone(OSLO)
    return f"{moment:%Y-%m-%d %H:%M} {moment:%Z}"


def format_line(stats: RunStats, rates: Rates) -> str:
    """The status line (no newline, no carriage return)."""
    return (
        f"{sim_time(stats.sim_ms)}  "
        f"devices {_int(stats, 'connected')}/{_int(stats, 'devices')}  "
        f"doses due {stats.due} taken {stats.taken} missed {stats.missed}  "
        f"faults {stats.faults}  hostile {stats.hostile}  "
        f"msg/s out {rates.out_per_s:.0f} in {rates.in_per_s:.0f}  "
        f"reconnects {_int(stats, 'reconnects')}  errors {_int(stats, 'errors')}"
    )


def progress_record(stats: RunStats, rates: Rates, *, final: bool = False) -> dict[str, object]:
    """The JSON progress object."""
    return {
        **stats.as_dict(),
        "out_per_s": round(rates.out_per_s, 1),
        "in_per_s": round(rates.in_per_s, 1),
        "final": final,
    }


class ProgressPrinter:
    """Writes reports in one mode; remembers the previous report for the rates and the line width."""

    def __init__(self, out: TextIO, mode: ProgressMode) -> None:
        self.out = out
        self.mode = mode
        self._before: RunStats | None = None
        self._at = time.monotonic()
        self._width = 0

    def report(self, stats: RunStats, *, final: bool = False) -> None:
        """Print one report (the final one always ends its line)."""
        now = time.monotonic()
        rates = rates_between(self._before, stats, now - self._at)
        self._before, self._at = stats, now
        if self.mode is ProgressMode.QUIET:
            return
        if self.mode is ProgressMode.JSON:
            self.out.write(json.dumps(progress_record(stats, rates, final=final)) + "\n")
        elif self.mode is ProgressMode.LINE:
            line = format_line(stats, rates)
            self.out.write("\r" + line.ljust(self._width) + ("\n" if final else ""))
            self._width = len(line)
        else:
            self.out.write(format_line(stats, rates) + "\n")
        self.out.flush()


async def show_progress(
    snapshot: Callable[[], RunStats], printer: ProgressPrinter, interval_s: float | None = None
) -> None:
    """Report ``snapshot()`` every interval (by mode) until cancelled."""
    if printer.mode is ProgressMode.QUIET:
        return
    every = interval_s if interval_s is not None else INTERVAL_S[printer.mode]
    printer.report(snapshot())
    while True:
        await asyncio.sleep(every)
        printer.report(snapshot())
