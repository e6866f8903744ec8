"""The seams of the simulator: what a simulated dispenser needs from the outside, as plain data and protocols.

A ``Dispenser`` (``device_sim.device``) is sans-I/O: the driver (``device_sim.fleet``) feeds it time,
connection changes and received messages, and carries out the ``Output`` it returns: MQTT publishes and
ground-truth records. Patient behaviour and faults are pure, seeded models the dispenser consults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import random


class Clock(Protocol):
    """Simulated time in Unix milliseconds (real, accelerated, or stepped by a test)."""

    def now_ms(self) -> int:
        """The current simulated time."""
        ...

    async def sleep_until(self, ms: int) -> None:
        """Return once simulated time has reached ``ms`` (at once if it already has)."""
        ...


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``payload`` on ``topic`` (QoS 1), now if connected; the device buffers it otherwise."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Truth:
    """One ground-truth record: what really happened, for comparing with the hub's conclusions."""

    ts: int
    device_id: str
    kind: str
    """E.g. ``dose.due``, ``dose.taken``, ``dose.missed``, ``network.down``, ``fault.raised``."""
    data: dict[str, object] = field(default_factory=dict)


Output = Publish | Truth


class PatientAction(StrEnum):
    """What the patient does when a dose is offered."""

    TAKE = "take"
    """Takes the dose at ``at_ms``."""
    PRESS_ONLY = "press_only"
    """Presses or opens at ``at_ms`` but does not take it (confused patients)."""
    IGNORE = "ignore"
    """Does nothing: the dose will be missed."""


@dataclass(frozen=True, slots=True)
class PatientResponse:
    """The patient's reaction to one offered dose."""

    action: PatientAction
    at_ms: int | None = None


class PatientModel(Protocol):
    """A patient's behaviour; deterministic given the ``rng`` it is handed."""

    name: str

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:
        """The reaction to a dose offered from ``opens_ms``, due at ``due_ms``, closing at ``closes_ms``."""
        ...

    def away(self, at_ms: int) -> bool:
        """Whether the patient is away (travel, hospital) at ``at_ms``: nobody takes anything."""
        ...


class FaultKind(StrEnum):
    """Faults and disturbances the simulator injects (the device reports them as the protocol says)."""

    JAM = "jam"
    POUCH_UNREADABLE = "pouch_unreadable"
    LID_OPEN = "lid_open"
    TILT = "tilt"
    BREAK_IN = "break_in"
    MAINS_LOSS = "mains_loss"
    NETWORK_BLIP = "network_blip"
    NETWORK_OUTAGE = "network_outage"
    CLOCK_DRIFT = "clock_drift"
    REBOOT = "reboot"


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A fault starting at ``at_ms`` and lasting ``duration_ms`` (0 for instantaneous ones)."""

    kind: FaultKind
    at_ms: int
    duration_ms: int = 0
    amount_ms: int = 0
    """Clock drift: how far the device clock jumps (positive: ahead)."""


class FaultModel(Protocol):
    """Random faults of one device; deterministic given the ``rng``."""

    def next_fault(self, after_ms: int, rng: random.Random) -> FaultEvent | None:
        """The first fault strictly after ``after_ms``, or ``None`` if this device has no random faults."""
        ...


class SimulatedDevice(Protocol):
    """What the fleet driver needs of a device: time, connection changes and messages in, ``Output`` out.

    The driver registers ``will()`` as the Last Will before each connect, subscribes to
    ``subscriptions()``, keeps the link up only while ``link_wanted(now)`` (simulated network outages
    drop it abruptly, so the broker publishes the will), calls ``advance`` at ``next_wakeup()`` and after
    every incoming message, and carries out every returned ``Output`` in order.
    """

    @property
    def device_id(self) -> str:
        """The device id, also its MQTT client id."""
        ...

    def will(self, now_ms: int) -> Publish:
        """The Last Will to register for the next connection (a signed ``death``, retained)."""
        ...

    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to after each connect."""
        ...

    def link_wanted(self, now_ms: int) -> bool:
        """False while the device's network is down (a simulated outage)."""
        ...

    def next_wakeup(self) -> int | None:
        """When ``advance`` must next be called, or ``None`` if nothing is pending."""
        ...

    def advance(self, now_ms: int) -> list[Output]:
        """Do everything due up to ``now_ms``."""
        ...

    def on_connected(self, now_ms: int) -> list[Output]:
        """The link is up and subscribed: birth, state, then buffered messages in order."""
        ...

    def on_disconnected(self, now_ms: int) -> list[Output]:
        """The link went down; from now on the device buffers what it sends."""
        ...

    def on_message(self, topic: str, payload: bytes, now_ms: int) -> list[Output]:
        """A downlink message arrived."""
        ...
