"""Helpers for simulator tests: ``CounterDevice`` and non-blocking waits.

``CounterDevice`` is a tiny ``SimulatedDevice`` for transport and fleet tests (not the real dispenser).
Every ``period_ms`` of simulated time it publishes its counter on ``<root>/<id>/count`` while it believes it
is online, and buffers the counter otherwise (flushed, in order, right after the next ``on_connected``). Its
state topic carries ``online`` (retained) after each connect and the will ``dead:<ms>`` after a drop. While
simulated time is inside ``outage`` its link is not wanted. Everything it is told is recorded.
"""

from __future__ import annotations

import asyncio
import queue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device_sim.ports import Output, Publish, Truth

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.mqtt_client import MqttProbe


@dataclass
class CounterDevice:
    """Publishes a counter every simulated ``period_ms``; records what the driver tells it."""

    device_id: str
    root: str
    start_ms: int
    period_ms: int = 1000
    outage: tuple[int, int] | None = None
    """Simulated interval ``[start, end)`` during which the link is not wanted."""
    fail_at_count: int | None = None
    """Raise in ``advance`` when the counter would reach this value (to test failing devices)."""
    counter: int = 0
    online: bool = False
    buffered: list[Publish] = field(default_factory=list)
    received: list[tuple[str, bytes]] = field(default_factory=list)
    events: list[tuple[str, int]] = field(default_factory=list)
    """("connected" | "disconnected" | "advance", simulated ms), in order."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever the device is told anything (tests wait on it with a timeout)."""
    _now: int = 0
    _next: int = 0

    def __post_init__(self) -> None:
        self._now = self.start_ms
        self._next = self.start_ms + self.period_ms

    @property
    def count_topic(self) -> str:
        """Where the counter goes."""
        return f"{self.root}/{self.device_id}/count"

    @property
    def state_topic(self) -> str:
        """``online`` after each connect, the will after a drop (both retained)."""
        return f"{self.root}/{self.device_id}/state"

    @property
    def down_topic(self) -> str:
        """The device's downlink."""
        return f"{self.root}/{self.device_id}/down"

    def will(self, now_ms: int) -> Publish:
        """``dead:<ms of the connect>`` on the state topic, retained."""
        return Publish(self.state_topic, f"dead:{now_ms}".encode(), retain=True)

    def subscriptions(self) -> list[str]:
        """The downlink topic."""
        return [self.down_topic]

    def link_wanted(self, now_ms: int) -> bool:
        """False inside ``outage``."""
        return self.outage is None or not (self.outage[0] <= now_ms < self.outage[1])

    def next_wakeup(self) -> int | None:
        """The next tick, or an outage edge if sooner."""
        candidates = [self._next]
        if self.outage is not None:
            candidates += [edge for edge in self.outage if edge > self._now]
        return min(candidates)

    def advance(self, now_ms: int) -> list[Output]:
        """Count every period up to ``now_ms``: publish if online, buffer otherwise."""
        self._now = max(self._now, now_ms)
        self.events.append(("advance", now_ms))
        out: list[Output] = []
        while self._next <= now_ms:
            self.counter += 1
            if self.fail_at_count is not None and self.counter >= self.fail_at_count:
                msg = f"{self.device_id} fails on purpose"
                raise RuntimeError(msg)
            publish = Publish(self.count_topic, str(self.counter).encode())
            if self.online:
                out.append(publish)
            else:
                self.buffered.append(publish)
            self._next += self.period_ms
        self.changed.set()
        return out

    def on_connected(self, now_ms: int) -> list[Output]:
        """``online``, then the buffered counters in order."""
        self.online = True
        self.events.append(("connected", now_ms))
        out: list[Output] = [Publish(self.state_topic, b"online", retain=True), *self.buffered]
        self.buffered.clear()
        self.changed.set()
        return out

    def on_disconnected(self, now_ms: int) -> list[Output]:
        """Go offline; a ``network.down`` truth."""
        self.online = False
        self.events.append(("disconnected", now_ms))
        self.changed.set()
        return [Truth(now_ms, self.device_id, "network.down")]

    def on_message(self, topic: str, payload: bytes, now_ms: int) -> list[Output]:
        """Record it; a ``message`` truth."""
        self.received.append((topic, payload))
        self.changed.set()
        return [Truth(now_ms, self.device_id, "message", {"payload": payload.decode()})]

    def count(self, kind: str) -> int:
        """How many events of ``kind`` the device was told."""
        return sum(1 for event, _ in self.events if event == kind)


async def probe_messages(probe: MqttProbe, count: int, within: float = 5.0) -> list[tuple[str, bytes]]:
    """Take ``count`` messages from a probe without blocking the event loop; fail after ``within`` s."""
    got: list[tuple[str, bytes]] = []
    try:
        async with asyncio.timeout(within):
            while len(got) < count:
                try:
                    message = probe.messages.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.01)
                else:
                    got.append((message.topic, bytes(message.payload)))
    except TimeoutError:
        msg = f"got {len(got)} of {count} messages within {within} s: {got[:5]}"
        raise AssertionError(msg) from None
    return got


async def until(predicate: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    """Wait (polling every 10 ms) until ``predicate()`` holds; fail the test after ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 - polling an arbitrary predicate is the point
                await asyncio.sleep(0.01)
    except TimeoutError:
        msg = f"{what} not reached within {within} s"
        raise AssertionError(msg) from None
