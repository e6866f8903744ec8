"""``Fleet`` against real brokers with ``CounterDevice`` test devices.

Many devices on one loop with a manual and a scaled clock, outages from ``link_wanted`` (will published, no
reconnect until wanted again, buffered messages flushed), early wake-up by downlink messages, reconnect
after a broker restart, failing devices, and a ``stop()`` that leaves no task or socket behind.
"""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING

import pytest

from device_sim.clock import ManualClock, ScaledClock
from device_sim.fleet import Fleet
from device_sim.transport import LinkState
from tests.device_sim.support import CounterDevice, probe_messages, until
from tests.support.mqtt_client import MqttProbe

if TYPE_CHECKING:
    from device_sim.ports import Truth
    from tests.conftest import BrokerFactory
    from tests.support.broker import MqttBroker

pytestmark = pytest.mark.timeout(40)

T0 = 1_795_417_200_000
FAST_BACKOFF = (0.05, 0.2)


def _devices(root: str, count: int, **options: object) -> list[CounterDevice]:
    return [CounterDevice(f"SIM-{i:06d}", root, T0, **options) for i in range(count)]  # type: ignore[arg-type]


def _assert_nothing_left() -> None:
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert others == []


def test_two_hundred_devices_on_a_manual_clock(mqtt_broker: MqttBroker, unique_topic_root: str) -> None:
    devices = _devices(unique_topic_root, 200)
    truths: list[Truth] = []

    async def scenario(probe: MqttProbe) -> None:
        clock = ManualClock(T0)
        fleet = Fleet(
            mqtt_broker.url, clock, truth_sink=truths.append, connect_rate=2000, backoff=FAST_BACKOFF
        )
        fleet.extend(devices)
        async with fleet:
            async with asyncio.timeout(15):
                await fleet.wait_connected()
            assert fleet.stats.connected == 200
            await until(lambda: all(device.online for device in devices), what="on_connected delivered")
            assert all(device.count("connected") == 1 for device in devices)
            await clock.advance(3000)
            counts = await probe_messages(probe, 600, within=15)
            assert fleet.stats.sent == 800  # 200 "online" + 600 counters
        _assert_nothing_left()
        assert fleet.stats.connected == 0
        assert all(fleet.link(device.device_id).state is LinkState.CLOSED for device in devices)
        by_device: dict[str, list[bytes]] = {}
        for topic, payload in counts:
            by_device.setdefault(topic.split("/")[-2], []).append(payload)
        assert len(by_device) == 200
        assert all(payloads == [b"1", b"2", b"3"] for payloads in by_device.values())  # in order
        assert fleet.stats.errors == 0
        assert fleet.stats.failed_devices == {}

    with MqttProbe(mqtt_broker) as probe:
        probe.subscribe(f"{unique_topic_root}/+/count")
        asyncio.run(scenario(probe))
    gc.collect()  # an unclosed socket would raise ResourceWarning (an error under pytest)
    assert truths == []


def test_two_hundred_devices_on_a_scaled_clock(mqtt_broker: MqttBroker, unique_topic_root: str) -> None:
    devices = _devices(unique_topic_root, 200)

    async def scenario() -> None:
        clock = ScaledClock.starting_now(T0, speed=10)  # one simulated second every 100 ms
        async with Fleet(mqtt_broker.url, clock, connect_rate=2000) as fleet:
            fleet.extend(devices)
            async with asyncio.timeout(15):
                await fleet.wait_connected(200)
            await until(lambda: min(device.counter for device in devices) >= 15, within=15, what="15 ticks")
            assert fleet.stats.publish_rate > 0
            assert fleet.stats.received == 0
        _assert_nothing_left()
        assert fleet.stats.sent >= 200 * 15 - sum(len(device.buffered) for device in devices)
        assert fleet.stats.errors == 0

    asyncio.run(scenario())


def test_outage_drops_link_publishes_will_and_reconnects_only_when_wanted(
    mosquitto_broker: MqttBroker, unique_topic_root: str
) -> None:
    device = CounterDevice("SIM-OUTAGE-1", unique_topic_root, T0, outage=(T0 + 2000, T0 + 5000))

    async def scenario(probe: MqttProbe) -> None:
        clock = ManualClock(T0)
        async with Fleet(mosquitto_broker.url, clock, backoff=FAST_BACKOFF) as fleet:
            fleet.add(device)
            async with asyncio.timeout(5):
                await fleet.wait_connected(1)
            assert await probe_messages(probe, 1) == [(device.state_topic, b"online")]
            await clock.advance(1000)
            assert await probe_messages(probe, 1) == [(device.count_topic, b"1")]
            await clock.set(T0 + 2000)  # outage starts: the link is dropped, the broker publishes the will
            assert await probe_messages(probe, 1) == [(device.state_topic, f"dead:{T0}".encode())]
            assert device.events[-1][0] in {"disconnected", "advance"}
            assert device.count("disconnected") == 1
            assert fleet.link(device.device_id).state is LinkState.IDLE
            await clock.set(T0 + 4000)
            await asyncio.sleep(0.3)  # real time for a reconnect that must not happen
            assert fleet.stats.connected == 0
            assert probe.messages.empty()
            await clock.set(T0 + 5000)  # outage over: reconnect, "online", then the buffered counters
            got = await probe_messages(probe, 4)
            assert got == [
                (device.state_topic, b"online"),
                (device.count_topic, b"2"),
                (device.count_topic, b"3"),
                (device.count_topic, b"4"),
            ]
            assert fleet.stats.reconnects == 1
        assert device.count("connected") == 2

    with MqttProbe(mosquitto_broker) as probe:
        probe.subscribe(f"{unique_topic_root}/#")
        asyncio.run(scenario(probe))
        probe.publish(device.state_topic, b"", retain=True)


def test_downlink_message_wakes_the_device_without_time_moving(
    mqtt_broker: MqttBroker, unique_topic_root: str
) -> None:
    device = CounterDevice("SIM-WAKE-1", unique_topic_root, T0)
    truths: list[Truth] = []

    async def scenario(probe: MqttProbe) -> None:
        clock = ManualClock(T0)
        async with Fleet(mqtt_broker.url, clock, truth_sink=truths.append) as fleet:
            fleet.add(device)
            async with asyncio.timeout(5):
                await fleet.wait_connected(1)
            advances = device.count("advance")
            probe.publish(device.down_topic, b"ping")
            await until(lambda: device.received == [(device.down_topic, b"ping")], what="downlink")
            await until(lambda: device.count("advance") > advances, what="advance after the message")
            assert clock.now_ms() == T0
            assert fleet.stats.received == 1

    with MqttProbe(mqtt_broker) as probe:
        asyncio.run(scenario(probe))
    assert [(truth.kind, truth.data) for truth in truths] == [("message", {"payload": "ping"})]


class EnrollingDevice(CounterDevice):
    """Subscribes to its downlink only, until a message there "enrolls" it: then to its config too."""

    @property
    def config_topic(self) -> str:
        return f"{self.root}/{self.device_id}/config"

    def subscriptions(self) -> list[str]:
        return [self.down_topic, self.config_topic] if self.received else [self.down_topic]


def test_topics_a_device_gains_on_a_message_are_subscribed_on_the_live_connection(
    mqtt_broker: MqttBroker, unique_topic_root: str
) -> None:
    """As a dispenser that enrolls: its command and config topics start at once, retained config included."""
    device = EnrollingDevice("SIM-ENROLL-1", unique_topic_root, T0)

    async def scenario(probe: MqttProbe) -> None:
        async with Fleet(mqtt_broker.url, ManualClock(T0)) as fleet:
            fleet.add(device)
            async with asyncio.timeout(5):
                await fleet.wait_connected(1)
            probe.publish(device.config_topic, b"config v1", retain=True)  # before: not subscribed yet
            probe.publish(device.down_topic, b"enrolled")
            await until(
                lambda: (device.config_topic, b"config v1") in device.received, what="retained config"
            )
            assert device.received[0] == (device.down_topic, b"enrolled")
            assert device.count("connected") == 1  # the same connection

    with MqttProbe(mqtt_broker) as probe:
        asyncio.run(scenario(probe))


def test_fleet_reconnects_after_broker_restart(
    fresh_mqtt_broker: BrokerFactory, unique_topic_root: str
) -> None:
    broker = fresh_mqtt_broker()
    devices = _devices(unique_topic_root, 20)

    async def scenario() -> None:
        async with Fleet(broker.url, ManualClock(T0), backoff=FAST_BACKOFF, seed=7) as fleet:
            fleet.extend(devices)
            async with asyncio.timeout(5):
                await fleet.wait_connected()
            await asyncio.to_thread(broker.restart)
            await until(lambda: fleet.stats.reconnects == 20, within=10, what="20 reconnects")
            await until(lambda: fleet.stats.connected == 20, what="all connected again")
            assert all(device.count("disconnected") == 1 for device in devices)
            assert all(device.count("connected") == 2 for device in devices)
        _assert_nothing_left()

    asyncio.run(scenario())


def test_a_failing_device_stops_alone(mqtt_broker: MqttBroker, unique_topic_root: str) -> None:
    good = CounterDevice("SIM-GOOD-1", unique_topic_root, T0)
    bad = CounterDevice("SIM-BAD-1", unique_topic_root, T0, fail_at_count=2)

    async def scenario() -> None:
        clock = ManualClock(T0)
        async with Fleet(mqtt_broker.url, clock) as fleet:
            fleet.extend([good, bad])
            async with asyncio.timeout(5):
                await fleet.wait_connected(2)
            await clock.advance(3000)
            await until(lambda: "SIM-BAD-1" in fleet.stats.failed_devices, what="failure recorded")
            assert "fails on purpose" in fleet.stats.failed_devices["SIM-BAD-1"]
            assert good.counter == 3
            assert fleet.link("SIM-BAD-1").state is LinkState.IDLE
        _assert_nothing_left()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("device_sim.fleet._log.exception", lambda *_args, **_kwargs: None)
        asyncio.run(scenario())


def test_duplicate_device_ids_are_refused() -> None:
    fleet = Fleet("mqtt://127.0.0.1:1", ManualClock(T0))
    fleet.add(CounterDevice("SIM-DUP-1", "r", T0))
    with pytest.raises(ValueError, match="already in the fleet"):
        fleet.add(CounterDevice("SIM-DUP-1", "r", T0))
