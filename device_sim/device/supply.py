"""What is loaded in a dispenser: a pharmacy roll of pouches, or a tray of pots.

A roll is packed for one patient: every pouch is printed with the patient reference and its intake time,
and the device reads each pouch before cutting it. A tray is filled by a helper from the dosett plan;
each pot belongs to one intake time. Both are pure data the dispenser consumes dose by dose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLL_DAYS = 14
"""A pharmacy multidose roll usually covers two weeks."""
TRAY_POTS = 28
"""Carousel trays hold 28 pots (a week of four doses a day)."""


@dataclass(frozen=True, slots=True)
class Pouch:
    """One pouch: its barcode and the intake time printed on it."""

    pouch_id: str
    intake_ms: int


@dataclass
class Roll:
    """A multidose roll as loaded: identity, printed patient reference and the pouches in order."""

    roll_id: str
    printed_patient_ref: str
    pouches: list[Pouch]
    accepted: bool = False
    """Set by the hub's ``cmd.roll_verdict``; an unaccepted roll keeps the device locked."""
    used: set[str] = field(default_factory=set)

    @classmethod
    def pack(cls, roll_id: str, patient_ref: str, intake_times_ms: list[int]) -> Roll:
        """Pack a roll with one pouch per intake time (as the pharmacy robot does)."""
        pouches = [Pouch(f"{roll_id}-{n:04d}", ms) for n, ms in enumerate(sorted(intake_times_ms), start=1)]
        return cls(roll_id, patient_ref, pouches)

    def pouch_for(self, intake_ms: int) -> Pouch | None:
        """The unused pouch for ``intake_ms``, if the roll has one."""
        for pouch in self.pouches:
            if pouch.intake_ms == intake_ms and pouch.pouch_id not in self.used:
                return pouch
        return None

    def take(self, pouch: Pouch) -> None:
        """The pouch was cut off the roll."""
        self.used.add(pouch.pouch_id)

    def left(self, after_ms: int) -> list[Pouch]:
        """Pouches not yet used whose intake time is at or after ``after_ms``."""
        return [p for p in self.pouches if p.pouch_id not in self.used and p.intake_ms >= after_ms]


@dataclass
class Tray:
    """A carousel tray: pot number (1-based) to intake time, and which pots were opened."""

    tray_id: str
    pots: dict[int, int]
    opened: set[int] = field(default_factory=set)

    @classmethod
    def fill(cls, tray_id: str, intake_times_ms: list[int]) -> Tray:
        """Fill pots 1..n with the next intake times (at most ``TRAY_POTS``)."""
        times = sorted(intake_times_ms)[:TRAY_POTS]
        return cls(tray_id, dict(enumerate(times, start=1)))

    def pot_for(self, intake_ms: int) -> int | None:
        """The unopened pot for ``intake_ms``, if any."""
        for pot, ms in self.pots.items():
            if ms == intake_ms and pot not in self.opened:
                return pot
        return None

    def left(self, after_ms: int) -> list[int]:
        """Unopened pots whose intake time is at or after ``after_ms``."""
        return [pot for pot, ms in self.pots.items() if pot not in self.opened and ms >= after_ms]
