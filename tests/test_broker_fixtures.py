"""The broker fixtures give real, spec-following MQTT brokers, whichever implementation runs them.

Each behaviour the hub relies on is checked on both Mosquitto and the embedded amqtt broker with
paho-mqtt 2.x: QoS 1 round trip, retained messages for late subscribers, Last Will on abnormal disconnect,
QoS 1 messages queued for a disconnected persistent session, and restart on the same port.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from tests.support.mqtt_client import MqttProbe, Will

if TYPE_CHECKING:
    from tests.conftest import BrokerFactory
    from tests.support.broker import MqttBroker

pytestmark = pytest.mark.timeout(10)


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request: pytest.FixtureRequest) -> MqttBroker:
    """Each test runs against both broker implementations (the Mosquitto run is a requires_service test)."""
    if request.param == "mosquitto":
        request.node.add_marker(pytest.mark.requires_service("mosquitto"))
    found: MqttBroker = request.getfixturevalue(f"{request.param}_broker")
    return found


def test_broker_is_ours_and_listens_on_loopback(broker: MqttBroker) -> None:
    assert broker.host == "127.0.0.1"
    assert broker.port > 0
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert broker.is_running
    with socket.create_connection((broker.host, broker.port), timeout=2):
        pass


def test_qos1_publish_reaches_subscriber(broker: MqttBroker, unique_topic_root: str) -> None:
    topic = f"{unique_topic_root}/dose"
    with MqttProbe(broker) as subscriber, MqttProbe(broker) as publisher:
        subscriber.subscribe(f"{unique_topic_root}/#", qos=1)
        publisher.publish(topic, b"taken", qos=1)
        message = subscriber.expect()
    assert (message.topic, message.payload, message.qos, message.retain) == (topic, b"taken", 1, False)


def test_retained_message_reaches_later_subscriber(broker: MqttBroker, unique_topic_root: str) -> None:
    topic = f"{unique_topic_root}/state"
    with MqttProbe(broker) as publisher:
        publisher.publish(topic, b"online", qos=1, retain=True)
    with MqttProbe(broker) as late_subscriber:
        late_subscriber.subscribe(topic, qos=1)
        message = late_subscriber.expect()
    assert (message.topic, message.payload, message.retain) == (topic, b"online", True)


def test_last_will_is_published_on_abnormal_disconnect(broker: MqttBroker, unique_topic_root: str) -> None:
    will_topic = f"{unique_topic_root}/status"
    with MqttProbe(broker) as watcher:
        watcher.subscribe(will_topic, qos=1)
        device = MqttProbe(broker, will=Will(will_topic, b"offline", qos=1)).connect()
        watcher.expect_nothing(within=0.1)
        device.drop_connection()
        message = watcher.expect()
    assert (message.topic, message.payload) == (will_topic, b"offline")


def test_last_will_is_not_published_on_clean_disconnect(broker: MqttBroker, unique_topic_root: str) -> None:
    will_topic = f"{unique_topic_root}/status"
    with MqttProbe(broker) as watcher:
        watcher.subscribe(will_topic, qos=1)
        with MqttProbe(broker, will=Will(will_topic, b"offline", qos=1)):
            pass
        watcher.expect_nothing(within=0.3)


def test_qos1_messages_wait_for_a_disconnected_persistent_session(
    broker: MqttBroker, unique_topic_root: str
) -> None:
    topic = f"{unique_topic_root}/cmd"
    client_id = f"hub-{unique_topic_root.rsplit('/', 1)[-1][:12]}"
    with MqttProbe(broker, client_id, clean_session=False) as hub:
        hub.subscribe(topic, qos=1)
    with MqttProbe(broker) as publisher:
        publisher.publish(topic, b"while-away", qos=1)
    with MqttProbe(broker, client_id, clean_session=False) as hub_again:
        assert hub_again.session_present
        message = hub_again.expect()
        hub_again.messages.task_done()
    assert (message.topic, message.payload, message.qos) == (topic, b"while-away", 1)


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_fresh_broker_restarts_on_the_same_port(
    fresh_mqtt_broker: BrokerFactory, kind: str, unique_topic_root: str
) -> None:
    broker = fresh_mqtt_broker("mosquitto" if kind == "mosquitto" else "amqtt")
    port = broker.port
    broker.stop()
    assert not broker.is_running
    with pytest.raises(OSError, match="refused"):
        socket.create_connection((broker.host, port), timeout=2).close()
    broker.start()
    with MqttProbe(broker) as client:
        client.subscribe(f"{unique_topic_root}/#")
    broker.restart()
    with MqttProbe(broker) as client:
        client.subscribe(f"{unique_topic_root}/#")
