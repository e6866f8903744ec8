"""The inspector watching a real broker: messages published by paho and by mosquitto_pub are explained."""

from __future__ import annotations

import queue
import shutil
import subprocess
import time
import uuid
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.mqtt.monitor import BrokerMonitor
from dispenser_hub.inspector.analysis import Inspection, Inspector
from firmware_protocol import Channel, Envelope, KeyRing, Signer, new_ulid, seal, topic
from firmware_protocol.broker import BrokerAddress
from firmware_protocol.messages import Heartbeat
from tests.support.mqtt_client import MqttProbe
from tests.support.services import require_service

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.broker import MqttBroker

TIMEOUT_S = 5.0


class Watch:
    """A monitor on one device's topics, collecting inspections."""

    def __init__(self, broker: MqttBroker, device: str, keys: KeyRing) -> None:
        self.items: queue.Queue[Inspection] = queue.Queue()
        self.monitor = BrokerMonitor(
            BrokerAddress.parse(broker.url),
            Inspector(keys=keys),
            self.items.put,
            topic_filter=f"dsp/v1/{device}/#",
        )

    def next(self) -> Inspection:
        """The next inspection, or ``queue.Empty`` after the timeout."""
        return self.items.get(timeout=TIMEOUT_S)


@pytest.fixture
def device() -> str:
    return f"T-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
def watch(mqtt_broker: MqttBroker, device: str, signer: Signer) -> Iterator[Watch]:
    keys = KeyRing()
    keys.add(device, signer.public_key)
    watching = Watch(mqtt_broker, device, keys)
    watching.monitor.start()
    assert watching.monitor.subscribed.wait(TIMEOUT_S), "the monitor did not subscribe"
    yield watching
    watching.monitor.stop()


def _heartbeat(device: str, signer: Signer, seq: int) -> bytes:
    body = Heartbeat.model_validate(Heartbeat.EXAMPLE)
    now = time.time_ns() // 1_000_000
    return seal(Envelope(body, device=device, boot_id=new_ulid(), seq=seq, ts=now), signer)


def test_messages_published_with_paho_are_decoded_or_flagged(
    mqtt_broker: MqttBroker, watch: Watch, device: str, signer: Signer
) -> None:
    good = _heartbeat(device, signer, 0)
    with MqttProbe(mqtt_broker) as probe:
        probe.publish(topic(device, Channel.TELEMETRY), good, qos=1)
        probe.publish(topic(device, Channel.TELEMETRY), good.replace(b'"seq":0', b'"seq":1'), qos=1)
        probe.publish(topic(device, Channel.EVENT), good, qos=1)
        probe.publish(f"dsp/v1/{device}/up/nonsense", good.replace(b'"seq":0', b'"seq":2'), qos=1)
        probe.publish(topic(device, Channel.TELEMETRY), b"{}", qos=1)
    results = [watch.next() for _ in range(5)]
    assert results[0].ok
    assert results[0].received is not None
    assert results[0].received.envelope.type == "heartbeat"
    codes = [r.error.code.value if r.error else None for r in results[1:]]
    assert codes == ["E_SIGNATURE", "E_TOPIC", "E_TOPIC", "E_SCHEMA"]


@pytest.mark.requires_service("mosquitto_pub")
def test_a_message_sent_with_mosquitto_pub_appears_decoded(
    mqtt_broker: MqttBroker, watch: Watch, device: str, signer: Signer, tmp_path: Path
) -> None:
    binary = shutil.which("mosquitto_pub")
    require_service(
        "mosquitto_pub",
        available=binary is not None,
        reason="mosquitto_pub (mosquitto-clients) is not installed",
    )
    assert binary is not None
    payload_file = tmp_path / "heartbeat.json"
    payload_file.write_bytes(_heartbeat(device, signer, 0))
    command = [binary, "-h", mqtt_broker.host, "-p", str(mqtt_broker.port), "-q", "1"]
    subprocess.run(
        [*command, "-t", topic(device, Channel.TELEMETRY), "-f", str(payload_file)], check=True, timeout=10
    )
    subprocess.run(
        [*command, "-t", topic(device, Channel.TELEMETRY), "-m", '{"proto":"1.0"'], check=True, timeout=10
    )
    decoded, flagged = watch.next(), watch.next()
    assert decoded.ok
    assert decoded.received is not None
    assert decoded.received.envelope.device == device
    assert flagged.error is not None
    assert flagged.error.code.value == "E_MALFORMED"
