"""Running many simulated devices in one asyncio loop, each with its own MQTT connection.

Per device, one task does, in a loop:

1. ask ``link_wanted(now)``: drop the link (abruptly: the broker publishes the will) when it turns False,
   connect again when it turns True; the link registers ``will(now)`` before every connect attempt;
2. hand the device what happened since the last round, in arrival order: ``on_connected`` (after the
   SUBACK), ``on_disconnected``, ``on_message``;
3. call ``advance(now)`` when ``next_wakeup()`` is due or after any of the above, and go back to 1 at
   once if that changed ``link_wanted`` (a scripted outage starts when its timer fires);
4. carry out the returned outputs in order: ``Publish`` goes to paho (QoS 1; sent now if connected, else
   kept by paho for the persistent session: the device only returns publishes while it believes it is
   online, so these are the few that raced a connection loss), ``Truth`` goes to ``truth_sink``;
5. sleep on the ``Clock`` until ``next_wakeup()``, or until the link reports a message or a connection
   change (an ``asyncio.Event`` per device raced against the clock sleep).

Connection attempts of all devices share one ``ConnectPacer`` (``connect_rate`` per second, also after a
broker restart) and one ``KeepaliveTicker``. ``FleetStats`` is updated as things happen and can be read at
any time, e.g. by a progress display.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from device_sim.ports import Publish, Truth
from device_sim.sockets import ConnectPacer, KeepaliveTicker, resolve
from device_sim.transport import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_KEEPALIVE_S, MqttLink
from firmware_protocol.broker import BrokerAddress

if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Callable, Iterable

    from device_sim.ports import Clock, Output, SimulatedDevice

_log = logging.getLogger(__name__)

DEFAULT_CONNECT_RATE = 500.0
"""Connection attempts per second for the whole fleet."""
RATE_WINDOW_S = 5
"""``FleetStats.publish_rate`` averages over this many whole seconds."""


class _RateMeter:
    """Counts events in one-second buckets; the rate is over the last ``window`` whole seconds."""

    __slots__ = ("_buckets", "_window")

    def __init__(self, window: int) -> None:
        self._window = window
        self._buckets: collections.deque[list[int]] = collections.deque(maxlen=window + 2)

    def add(self) -> None:
        second = int(time.monotonic())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])

    def rate(self) -> float:
        if not self._buckets:
            return 0.0
        now = int(time.monotonic())
        span = min(self._window, now - self._buckets[0][0])
        if span <= 0:
            return 0.0
        return sum(count for second, count in self._buckets if now - span <= second < now) / span


@dataclass
class FleetStats:
    """Live figures of a fleet (updated as things happen; cheap to read)."""

    devices: int = 0
    connected: int = 0
    """Links that are ready (connected and subscribed)."""
    sent: int = 0
    """Publishes handed to the links."""
    received: int = 0
    """Messages delivered to devices."""
    truths: int = 0
    reconnects: int = 0
    """Connections that became ready again after a loss or a drop."""
    errors: int = 0
    """Failed connection attempts, unexpected losses, refused publishes, failed devices."""
    last_error: str = ""
    failed_devices: dict[str, str] = field(default_factory=dict)
    """Devices whose task raised (device id: the exception); they stop, the fleet goes on."""
    _sent_rate: _RateMeter = field(default_factory=lambda: _RateMeter(RATE_WINDOW_S), repr=False)

    def record_sent(self) -> None:
        """Count one publish (total and rate)."""
        self.sent += 1
        self._sent_rate.add()

    @property
    def publish_rate(self) -> float:
        """Publishes per second over the last few whole seconds."""
        return self._sent_rate.rate()

    def as_dict(self) -> dict[str, object]:
        """The figures as a plain dictionary (for JSON or a progress line)."""
        return {
            "devices": self.devices,
            "connected": self.connected,
            "sent": self.sent,
            "received": self.received,
            "truths": self.truths,
            "publish_rate": round(self.publish_rate, 1),
            "reconnects": self.reconnects,
            "errors": self.errors,
            "failed_devices": len(self.failed_devices),
        }


_READY: Final = "ready"
_LOST: Final = "lost"


class _Slot:
    """One device, its link, what happened to it and how to wake its task."""

    __slots__ = ("device", "inbox", "link", "task", "wake")

    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device
        self.inbox: collections.deque[str | tuple[str, bytes]] = collections.deque()
        self.wake = asyncio.Event()
        self.link: MqttLink | None = None
        self.task: asyncio.Task[None] | None = None

    def wake_on_sleep_done(self, sleeper: asyncio.Task[None]) -> None:
        if not sleeper.cancelled():
            self.wake.set()


def _discard_truth(_truth: Truth) -> None:
    pass


class Fleet:
    """Many ``SimulatedDevice`` objects, one ``MqttLink`` each, driven from one event loop."""

    def __init__(
        self,
        broker: BrokerAddress | str,
        clock: Clock,
        *,
        truth_sink: Callable[[Truth], None] = _discard_truth,
        connect_rate: float = DEFAULT_CONNECT_RATE,
        keepalive: int = DEFAULT_KEEPALIVE_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        backoff: tuple[float, float] = (1.0, 30.0),
        tls: ssl.SSLContext | None = None,
        seed: int | None = None,
    ) -> None:
        """Prepare a fleet; add devices with ``add`` and run them with ``start`` (or ``async with``).

        ``seed`` makes the reconnect jitter reproducible; ``tls`` overrides the context built from the
        ``mqtts://`` address (one context is shared by all links).
        """
        self.address = BrokerAddress.parse(broker) if isinstance(broker, str) else broker
        self.clock = clock
        self.stats = FleetStats()
        self._truth_sink = truth_sink
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._tls = tls if tls is not None else self.address.ssl_context()
        self._rng = random.Random(seed)
        self._pacer = ConnectPacer(connect_rate)
        self._ticker = KeepaliveTicker()
        self._slots: dict[str, _Slot] = {}
        self._sockaddr: tuple[socket.AddressFamily, tuple[Any, ...]] | None = None
        self._started = False
        self._stopped = False
        self._connected_changed = asyncio.Event()

    # -- public API ----------------------------------------------------------------------------------------

    def add(self, device: SimulatedDevice) -> None:
        """Add a device (before or after ``start``); its id must be unique in the fleet."""
        if self._stopped:
            msg = "the fleet is stopped"
            raise RuntimeError(msg)
        if device.device_id in self._slots:
            msg = f"device {device.device_id} is already in the fleet"
            raise ValueError(msg)
        slot = _Slot(device)
        self._slots[device.device_id] = slot
        self.stats.devices += 1
        if self._started:
            self._launch(slot)

    def extend(self, devices: Iterable[SimulatedDevice]) -> None:
        """Add several devices."""
        for device in devices:
            self.add(device)

    async def start(self) -> None:
        """Resolve the broker once and start every device's task (connections ramp up at the pacer's rate)."""
        if self._started:
            return
        self._sockaddr = await resolve(self.address)
        self._started = True
        for slot in self._slots.values():
            self._launch(slot)

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop every device task, then disconnect every link gracefully (no wills); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        tasks = [slot.task for slot in self._slots.values() if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        links = [slot.link for slot in self._slots.values() if slot.link is not None]
        await asyncio.gather(*(link.close(grace_s) for link in links))
        await self._ticker.aclose()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def link(self, device_id: str) -> MqttLink:
        """The link of a device (for tests and diagnostics)."""
        link = self._slots[device_id].link
        if link is None:
            msg = f"device {device_id} has not started"
            raise LookupError(msg)
        return link

    def device_ids(self) -> list[str]:
        """The ids of all devices, in the order they were added."""
        return list(self._slots)

    async def wait_connected(self, count: int | None = None) -> None:
        """Wait until ``count`` links (default: all devices) are ready; bound it with ``asyncio.timeout``."""
        while self.stats.connected < (self.stats.devices if count is None else count):
            self._connected_changed.clear()
            await self._connected_changed.wait()

    def poke(self, device_id: str) -> None:
        """Wake a device's task now (e.g. after changing what ``link_wanted`` or ``next_wakeup`` return)."""
        self._slots[device_id].wake.set()

    # -- per device ----------------------------------------------------------------------------------------

    def _launch(self, slot: _Slot) -> None:
        device_id = slot.device.device_id
        slot.link = MqttLink(
            self.address,
            device_id,
            subscriptions=slot.device.subscriptions,
            will=lambda: slot.device.will(self.clock.now_ms()),
            on_message=lambda topic, payload: self._arrived(slot, (topic, payload)),
            on_ready=lambda: self._connection_changed(slot, _READY),
            on_lost=lambda: self._connection_changed(slot, _LOST),
            on_error=self._link_error,
            keepalive=self._keepalive,
            connect_timeout=self._connect_timeout,
            backoff=self._backoff,
            tls=self._tls,
            sockaddr=self._sockaddr,
            ticker=self._ticker,
            pacer=self._pacer,
            rng=self._rng,
        )
        slot.task = asyncio.get_running_loop().create_task(self._run(slot), name=f"device-{device_id}")

    def _arrived(self, slot: _Slot, event: str | tuple[str, bytes]) -> None:
        slot.inbox.append(event)
        slot.wake.set()

    def _connection_changed(self, slot: _Slot, event: str) -> None:
        if event == _READY:
            self.stats.connected += 1
            if slot.link is not None and slot.link.counters.connects > 1:
                self.stats.reconnects += 1
        else:
            self.stats.connected -= 1
        self._connected_changed.set()
        self._arrived(slot, event)

    def _link_error(self, text: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = text

    async def _run(self, slot: _Slot) -> None:
        try:
            await self._drive(slot)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any device bug: record it, keep the fleet running
            device_id = slot.device.device_id
            _log.exception("simulated device %s failed", device_id)
            self.stats.failed_devices[device_id] = repr(exc)
            self.stats.errors += 1
            self.stats.last_error = f"{device_id}: {exc!r}"
            if slot.link is not None:
                slot.link.drop()

    async def _drive(self, slot: _Slot) -> None:
        device, link, clock = slot.device, slot.link, self.clock
        assert link is not None  # noqa: S101 - set by _launch before the task starts
        while True:
            now = clock.now_ms()
            wanted = device.link_wanted(now)
            if wanted and not link.wanted:
                link.connect()
            elif not wanted and link.wanted:
                link.drop()  # synchronous: a ready link's loss is in the inbox now
            had_events = bool(slot.inbox)
            while slot.inbox:
                event = slot.inbox.popleft()
                now = clock.now_ms()
                if event == _READY:
                    self._carry_out(link, device.on_connected(now))
                elif event == _LOST:
                    self._carry_out(link, device.on_disconnected(now))
                elif isinstance(event, tuple):
                    self.stats.received += 1
                    topics = device.subscriptions()
                    self._carry_out(link, device.on_message(event[0], event[1], now))
                    if added := [t for t in device.subscriptions() if t not in topics]:  # it just enrolled
                        link.subscribe_more(added)
            wakeup = device.next_wakeup()
            now = clock.now_ms()
            if had_events or (wakeup is not None and wakeup <= now):
                self._carry_out(link, device.advance(now))
                if device.link_wanted(now) != link.wanted:
                    continue  # a timer took the network down (or up): act on it now, not at the next wakeup
                wakeup = device.next_wakeup()
            await self._sleep(slot, wakeup)

    async def _sleep(self, slot: _Slot, wakeup: int | None) -> None:
        """Sleep until ``wakeup`` on the clock, or until the link wakes the device (always yields)."""
        slot.wake.clear()
        if slot.inbox:
            await asyncio.sleep(0)
            return
        if wakeup is None:
            await slot.wake.wait()
            return
        sleeper = asyncio.get_running_loop().create_task(self.clock.sleep_until(wakeup))
        sleeper.add_done_callback(slot.wake_on_sleep_done)
        try:
            await slot.wake.wait()
        finally:
            sleeper.cancel()  # no-op when done; not awaited: a cancelled sleep needs nothing more

    def _carry_out(self, link: MqttLink, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Publish):
                if link.publish(output.topic, output.payload, retain=output.retain):
                    self.stats.record_sent()
            else:
                self.stats.truths += 1
                self._truth_sink(output)
