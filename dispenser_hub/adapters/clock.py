"""Clocks for the hub: the system clock, a simulator's accelerated clock (demo), a manual one (tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from device_sim.clock import ScaledClock


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        return datetime.now(UTC)


class SimulatedClock:
    """Follows a ``dispenser-sim`` clock spec (``SIM_MS@REAL_MSxSPEED``), so hub and fleet share one time."""

    def __init__(self, clock: ScaledClock) -> None:
        """Follow ``clock``."""
        self.clock = clock

    @classmethod
    def from_spec(cls, spec: str) -> SimulatedClock:
        """Parse a clock spec (``ValueError`` with an example if malformed)."""
        return cls(ScaledClock.from_spec(spec))

    def now(self) -> datetime:
        """The simulated time, aware UTC."""
        return datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)


class ManualClock:
    """A clock a test sets and advances (the hub's fake ``Clock``)."""

    def __init__(self, at: datetime) -> None:
        """Start at ``at`` (aware)."""
        if at.tzinfo is None:
            msg = "the clock's time must be timezone-aware"
            raise ValueError(msg)
        self.at = at

    def now(self) -> datetime:
        """The time set."""
        return self.at

    def advance(self, delta: timedelta) -> None:
        """Move forward (or back) by ``delta``."""
        self.at += delta
