"""Run simulated devices and the stand-in hub against each other in memory, on simulated time.

No broker and no sockets: publishes are delivered at once to whoever subscribes (with MQTT's wildcard
rules and retained messages), connections follow each device's ``link_wanted``, and the Last Will is
"published" when a link drops. Fast and deterministic: for unit tests and for producing a scenario's
ground truth without a network. The fleet driver (``device_sim.fleet``) does the same over real MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device_sim.ports import Output, Publish, SimulatedDevice, Truth
from firmware_protocol import hub_subscriptions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from device_sim.standin import StandIn


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    filter_parts, topic_parts = pattern.split("/"), topic.split("/")
    for index, part in enumerate(filter_parts):
        if part == "#":
            return True
        if index >= len(topic_parts) or (part not in {"+", topic_parts[index]}):
            return False
    return len(filter_parts) == len(topic_parts)


@dataclass
class Loopback:
    """Devices, an optional stand-in hub and a ground-truth sink, on one simulated timeline."""

    devices: list[SimulatedDevice]
    standin: StandIn | None = None
    truth: Callable[[Truth], None] = lambda _record: None
    now: int = 0
    retained: dict[str, bytes] = field(default_factory=dict)
    sent: list[Publish] = field(default_factory=list)
    """Every publish that reached the "broker", in order (for tests)."""
    _online: set[str] = field(default_factory=set)
    _wills: dict[str, Publish] = field(default_factory=dict)

    def _deliver(self, outputs: Iterable[Output], sender: SimulatedDevice | None) -> None:
        queue = list(outputs)
        while queue:
            item = queue.pop(0)
            if isinstance(item, Truth):
                self.truth(item)
                continue
            if sender is not None and sender.device_id not in self._online:
                continue  # the link dropped while the device was still talking: lost, as on a real network
            queue += self._publish(item)

    def _publish(self, message: Publish) -> list[Output]:
        self.sent.append(message)
        if message.retain:
            self.retained[message.topic] = message.payload
        replies: list[Output] = []
        if self.standin is not None and any(topic_matches(f, message.topic) for f in hub_subscriptions()):
            for reply in self.standin.on_message(message.topic, message.payload, self.now):
                replies += self._publish(reply)
        for device in self.devices:
            if device.device_id in self._online and any(
                topic_matches(f, message.topic) for f in device.subscriptions()
            ):
                self._deliver(device.on_message(message.topic, message.payload, self.now), device)
        return replies

    def _links(self) -> None:
        for device in self.devices:
            wanted = device.link_wanted(self.now)
            online = device.device_id in self._online
            if wanted and not online:
                self._wills[device.device_id] = device.will(self.now)
                self._online.add(device.device_id)
                outputs = device.on_connected(self.now)
                retained = [
                    (topic, payload)
                    for topic, payload in self.retained.items()
                    if any(topic_matches(f, topic) for f in device.subscriptions())
                ]
                self._deliver(outputs, device)
                for topic, payload in retained:
                    self._deliver(device.on_message(topic, payload, self.now), device)
            elif online and not wanted:
                self._online.discard(device.device_id)
                self._deliver(device.on_disconnected(self.now), None)
                self._deliver([self._wills.pop(device.device_id)], None)

    def run_until(self, end_ms: int) -> None:
        """Run every device, the stand-in and the links up to simulated time ``end_ms``."""
        while True:
            if self.standin is not None:
                self._deliver(self.standin.tick(self.now), None)
            self._links()
            for device in self.devices:
                self._deliver(device.advance(self.now), device)
            self._links()
            wakeups = [w for d in self.devices if (w := d.next_wakeup()) is not None]
            if self.standin is not None:
                wakeups.append(self.standin.next_config_ms)
            upcoming = min(wakeups, default=end_ms + 1)
            if upcoming > end_ms:
                break
            self.now = max(self.now, upcoming)
        self.now = end_ms
