"""``MqttLink`` against real brokers.

Subscribe-then-ready, QoS 1 both ways, persistent sessions, the Last Will on ``drop()`` but not on
``close()``, reconnect after a broker restart, and no blocking of the loop.

Tests run their own event loop with ``asyncio.run``; the blocking ``MqttProbe`` observes from outside and is
only read without blocking (``probe_messages``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

import pytest

from device_sim.ports import Publish
from device_sim.sockets import ConnectPacer
from device_sim.transport import LinkState, MqttLink
from firmware_protocol.broker import BrokerAddress, BrokerUrlError
from tests.device_sim.support import probe_messages, until
from tests.support.broker import free_tcp_port
from tests.support.mqtt_client import MqttProbe

if TYPE_CHECKING:
    from tests.conftest import BrokerFactory
    from tests.support.broker import MqttBroker

pytestmark = pytest.mark.timeout(30)

FAST_BACKOFF = (0.05, 0.2)


def _link(broker: MqttBroker, client_id: str, **options: object) -> MqttLink:
    return MqttLink(BrokerAddress.parse(broker.url), client_id, backoff=FAST_BACKOFF, **options)  # type: ignore[arg-type]


# -- broker addresses ---------------------------------------------------------------------------------


def test_broker_address_parses_plain_and_tls_urls() -> None:
    plain = BrokerAddress.parse("mqtt://user:p%40ss@broker.local")
    assert (plain.host, plain.port, plain.tls, plain.username, plain.password) == (
        "broker.local",
        1883,
        False,
        "user",
        "p@ss",
    )
    assert plain.ssl_context() is None
    tls = BrokerAddress.parse("mqtts://10.0.0.5:18883", cafile=None)
    assert (tls.port, tls.tls, tls.url) == (18883, True, "mqtts://10.0.0.5:18883")
    assert tls.ssl_context() is not None


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://broker", "must start with mqtt:// or mqtts://"),
        ("mqtt://", "has no host"),
        ("mqtt://broker:notaport", "invalid port"),
    ],
)
def test_broker_address_rejects_bad_urls(url: str, complaint: str) -> None:
    with pytest.raises(BrokerUrlError, match=complaint):
        BrokerAddress.parse(url)


def test_tls_files_need_mqtts() -> None:
    with pytest.raises(BrokerUrlError, match="use mqtts://"):
        BrokerAddress.parse("mqtt://broker", cafile="/etc/ca.pem")


def test_connect_pacer_spaces_attempts() -> None:
    async def scenario() -> float:
        pacer = ConnectPacer(rate=100)
        start = time.perf_counter()
        for _ in range(11):
            await pacer.acquire()
        return time.perf_counter() - start

    assert 0.09 <= asyncio.run(scenario()) < 0.5


# -- connect, subscribe, publish, receive -------------------------------------------------------------------


def test_ready_after_suback_then_messages_flow_both_ways(
    mqtt_broker: MqttBroker, unique_topic_root: str
) -> None:
    down, up = f"{unique_topic_root}/down", f"{unique_topic_root}/up"
    received: list[tuple[str, bytes]] = []
    events: list[str] = []

    async def scenario() -> None:
        link = _link(
            mqtt_broker,
            "sim-basic-1",
            subscriptions=[down],
            on_message=lambda topic, payload: received.append((topic, payload)),
            on_ready=lambda: events.append("ready"),
            on_lost=lambda: events.append("lost"),
        )
        with MqttProbe(mqtt_broker) as probe:
            probe.subscribe(up)
            link.connect()
            async with asyncio.timeout(5):
                await link.wait_ready()
            assert link.ready
            # Subscribed before ready: a message published right now must arrive.
            probe.publish(down, b"cmd-1")
            await until(lambda: len(received) == 1, what="downlink message")
            assert received == [(down, b"cmd-1")]
            assert link.publish(up, b"hello", retain=False)
            assert await probe_messages(probe, 1) == [(up, b"hello")]
            await until(lambda: link.counters.acked == 1, what="PUBACK")
            await link.close()
        assert link.state is LinkState.CLOSED
        assert events == ["ready", "lost"]  # a graceful close ends the connection too
        assert link.counters.connects == 1
        assert link.counters.errors == 0

    asyncio.run(scenario())


def test_retained_publish_and_publish_before_connect(mqtt_broker: MqttBroker, unique_topic_root: str) -> None:
    state = f"{unique_topic_root}/state"

    async def scenario() -> None:
        link = _link(mqtt_broker, "sim-retain-1")
        assert link.publish(state, b"queued-while-offline", retain=True)  # paho keeps it for the session
        link.connect()
        async with asyncio.timeout(5):
            await link.wait_ready()
        await until(lambda: link.counters.acked == 1, what="PUBACK of the queued message")
        await link.close()

    asyncio.run(scenario())
    with MqttProbe(mqtt_broker) as late:  # a late subscriber gets the retained message
        late.subscribe(state)
        message = late.expect()
        assert (message.payload, message.retain) == (b"queued-while-offline", True)
        late.publish(state, b"", retain=True)  # clear it


def test_persistent_session_delivers_messages_published_while_offline(
    mqtt_broker: MqttBroker, unique_topic_root: str
) -> None:
    down = f"{unique_topic_root}/down"
    received: list[bytes] = []
    ready_count: list[int] = []

    async def scenario() -> None:
        link = _link(
            mqtt_broker,
            f"sim-session-{unique_topic_root[-8:]}",
            subscriptions=[down],
            on_message=lambda _topic, payload: received.append(payload),
            on_ready=lambda: ready_count.append(len(received)),
        )
        link.connect()
        async with asyncio.timeout(5):
            await link.wait_ready()
        link.drop()
        assert link.state is LinkState.IDLE
        with MqttProbe(mqtt_broker) as probe:
            probe.publish(down, b"while-offline-1")
            probe.publish(down, b"while-offline-2")
        await asyncio.sleep(0.2)
        assert received == []
        assert link.state is LinkState.IDLE  # dropped links stay down until connect()
        link.connect()
        await until(lambda: len(received) == 2, what="queued messages after reconnect")
        await link.close()

    asyncio.run(scenario())
    assert received == [b"while-offline-1", b"while-offline-2"]
    # The backlog arrives between CONNACK and SUBACK; it is held until the link is ready.
    assert ready_count == [0, 0]


# -- Last Will ----------------------------------------------------------------------------------------------


def test_drop_makes_the_broker_publish_the_will_and_close_does_not(
    mosquitto_broker: MqttBroker, unique_topic_root: str
) -> None:
    will_topic = f"{unique_topic_root}/state"
    wills = iter(range(100))

    async def scenario(probe: MqttProbe) -> None:
        link = _link(
            mosquitto_broker,
            "sim-will-1",
            will=lambda: Publish(will_topic, f"dead-{next(wills)}".encode(), retain=False),
        )
        link.connect()
        async with asyncio.timeout(5):
            await link.wait_ready()
        link.drop()
        assert await probe_messages(probe, 1) == [(will_topic, b"dead-0")]
        link.connect()  # the will is asked for again before every connect
        async with asyncio.timeout(5):
            await link.wait_ready()
        await link.close()
        await asyncio.sleep(0.3)
        assert probe.messages.empty(), "a graceful DISCONNECT must not publish the will"

    with MqttProbe(mosquitto_broker) as probe:
        probe.subscribe(will_topic)
        asyncio.run(scenario(probe))


# -- losing the broker --------------------------------------------------------------------------------


def test_reconnects_and_resubscribes_after_broker_restart(
    fresh_mqtt_broker: BrokerFactory, unique_topic_root: str
) -> None:
    broker = fresh_mqtt_broker()
    down = f"{unique_topic_root}/down"
    events: list[str] = []
    received: list[bytes] = []

    async def scenario() -> None:
        link = _link(
            broker,
            "sim-restart-1",
            subscriptions=[down],
            on_ready=lambda: events.append("ready"),
            on_lost=lambda: events.append("lost"),
            on_message=lambda _topic, payload: received.append(payload),
        )
        link.connect()
        async with asyncio.timeout(5):
            await link.wait_ready()
        await asyncio.to_thread(broker.restart)  # keeps the loop running while the broker restarts
        await until(lambda: events == ["ready", "lost", "ready"], within=10, what="reconnect")
        assert link.counters.reconnects == 1
        with MqttProbe(broker) as probe:  # the restarted broker forgot the session: we subscribed again
            probe.publish(down, b"after-restart")
        await until(lambda: received == [b"after-restart"], what="message after restart")
        await link.close()

    asyncio.run(scenario())


def test_unreachable_broker_retries_with_backoff_without_blocking_the_loop() -> None:
    port = free_tcp_port()  # nothing listens here
    address = BrokerAddress.parse(f"mqtt://127.0.0.1:{port}")

    async def scenario() -> None:
        link = MqttLink(address, "sim-unreachable-1", backoff=(0.05, 0.1))
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        link.connect()
        await until(lambda: link.counters.errors >= 3, what="three failed attempts")
        assert link.state is LinkState.CONNECTING
        assert "failed" in link.counters.last_error
        await link.close()
        beat.cancel()
        assert ticks > 5  # the loop kept running during the attempts

    asyncio.run(scenario())


def test_connect_does_not_block_on_a_silent_broker() -> None:
    """A listener that never answers CONNECT: the attempt times out on the loop, nothing blocks."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        address = BrokerAddress.parse(f"mqtt://127.0.0.1:{port}")

        async def scenario() -> None:
            link = MqttLink(address, "sim-silent-1", connect_timeout=2.0, backoff=(0.05, 0.05))
            start = time.perf_counter()
            link.connect()
            assert time.perf_counter() - start < 0.5  # far below the 2 s a blocking connect would take
            await until(lambda: link.counters.errors >= 1, what="CONNACK timeout")
            assert "TimeoutError" in link.counters.last_error
            await link.close()

        asyncio.run(scenario())
