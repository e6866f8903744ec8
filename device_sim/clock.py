"""Simulated clocks: real time, accelerated time with a shared start epoch, and a clock a test steps.

``ScaledClock`` maps real time to simulated time as ``sim = sim_epoch + (real - real_epoch) * speed``.
Two processes given the same three numbers follow the same simulated clock, so a hub (or a test) in
another process can run on the simulator's time: ``ScaledClock.from_spec("1795417200000@1795417000000x60")``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field


def real_now_ms() -> int:
    """The real wall-clock time in Unix milliseconds."""
    return time.time_ns() // 1_000_000


class RealClock:
    """Simulated time is real time."""

    def now_ms(self) -> int:
        """The real time."""
        return real_now_ms()

    async def sleep_until(self, ms: int) -> None:
        """Sleep until the real time ``ms`` (never returning early, as ``ScaledClock``)."""
        while (delay := (ms - real_now_ms()) / 1000) > 0:  # noqa: ASYNC110 - a deadline, no event
            await asyncio.sleep(max(delay, 0.001))


@dataclass(frozen=True, slots=True)
class ScaledClock:
    """Simulated time runs ``speed`` times faster than real time from a shared pair of epochs."""

    sim_epoch_ms: int
    real_epoch_ms: int
    speed: float

    @classmethod
    def starting_now(cls, sim_epoch_ms: int, speed: float) -> ScaledClock:
        """A clock at ``sim_epoch_ms`` now, running ``speed`` times real time."""
        if speed <= 0:
            msg = f"speed must be positive, not {speed}"
            raise ValueError(msg)
        return cls(sim_epoch_ms, real_now_ms(), speed)

    @classmethod
    def from_spec(cls, spec: str) -> ScaledClock:
        """Parse ``SIM_EPOCH_MS@REAL_EPOCH_MS xSPEED`` as printed by ``spec``."""
        try:
            sim, rest = spec.split("@", 1)
            real, speed = rest.split("x", 1)
            return cls(int(sim), int(real), float(speed))
        except ValueError:
            example = "1795417200000@1795417000000x60"
            msg = f"clock spec {spec!r} is not SIM_EPOCH_MS@REAL_EPOCH_MSxSPEED, e.g. {example}"
            raise ValueError(msg) from None

    @property
    def spec(self) -> str:
        """The three numbers another process needs to follow this clock."""
        return f"{self.sim_epoch_ms}@{self.real_epoch_ms}x{self.speed:g}"

    def now_ms(self) -> int:
        """The simulated time now."""
        return self.sim_epoch_ms + int((real_now_ms() - self.real_epoch_ms) * self.speed)

    async def sleep_until(self, ms: int) -> None:
        """Sleep until simulated time reaches ``ms``.

        Never returns early: the loop's timer may fire a little before the wall clock agrees, so the
        rest is slept again.
        """
        while (delay := (ms - self.now_ms()) / self.speed / 1000) > 0:  # noqa: ASYNC110 - a deadline, no event
            await asyncio.sleep(max(delay, 0.001))


@dataclass
class ManualClock:
    """Time moves only when a test calls ``advance``/``set``; sleepers wake in time order."""

    now: int
    _sleepers: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def now_ms(self) -> int:
        """The current (manual) time."""
        return self.now

    async def sleep_until(self, ms: int) -> None:
        """Wait until a test moves the clock to ``ms`` or beyond."""
        if ms <= self.now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (ms, next(self._order), future))
        await future

    async def advance(self, delta_ms: int) -> None:
        """Move time forward by ``delta_ms``, waking every sleeper due on the way, in order."""
        await self.set(self.now + delta_ms)

    async def set(self, target_ms: int) -> None:
        """Move time forward to ``target_ms`` step by step, letting woken tasks run at each due time."""
        if target_ms < self.now:
            msg = "a manual clock does not go backwards"
            raise ValueError(msg)
        while self._sleepers and self._sleepers[0][0] <= target_ms:
            due, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            if not future.done():
                future.set_result(None)
            for _ in range(5):  # let the woken task and what it triggers run before time moves on
                await asyncio.sleep(0)
        self.now = target_ms
        await asyncio.sleep(0)
