"""Example payloads for the demo: good ones, and one of each common mistake, signed with the test keys.

The test keys are the published test-vector keys (``firmware_protocol/vectors/keys.json``): never use
them on a real device. The samples are signed when the demo starts, so their timestamps are current.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from dispenser_hub.adapters.mqtt.connection import paho_client
from firmware_protocol import Channel, Envelope, KeyRing, Signer, new_ulid, seal, topic
from firmware_protocol.messages import Birth, DoseTaken, Heartbeat

if TYPE_CHECKING:
    from pathlib import Path

    from firmware_protocol.broker import BrokerAddress


@dataclass(frozen=True, slots=True)
class TestKeys:
    """The published test keys: one device and the hub."""

    device_id: str
    device: Signer
    hub: Signer


def load_test_keys() -> TestKeys:
    """Read ``keys.json`` of the test vectors shipped with ``firmware_protocol``."""
    text = resources.files("firmware_protocol").joinpath("vectors/keys.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return TestKeys(
        device_id=data["device_id"],
        device=Signer.from_seed(bytes.fromhex(data["device"]["seed_hex"])),
        hub=Signer.from_seed(bytes.fromhex(data["hub"]["seed_hex"])),
    )


def test_key_ring() -> KeyRing:
    """A key ring that trusts the test device key and the test hub key."""
    keys = load_test_keys()
    ring = KeyRing()
    ring.add(keys.device_id, keys.device.public_key)
    ring.add(None, keys.hub.public_key)
    return ring


@dataclass(frozen=True, slots=True)
class Sample:
    """One example message: where it goes, what it is, what the inspector should say."""

    name: str
    topic: str
    payload: bytes
    expect: str


@dataclass(frozen=True, slots=True)
class SampleSet:
    """The demo's example messages, written to ``folder``."""

    folder: Path
    samples: tuple[Sample, ...]

    @classmethod
    def create(cls, folder: Path, now_ms: int | None = None) -> SampleSet:
        """Sign fresh samples with the test device key and write each to ``folder/<name>.json``."""
        keys = load_test_keys()
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        boot = new_ulid(now)
        device = keys.device_id

        def sealed(body: Birth | Heartbeat | DoseTaken, seq: int) -> bytes:
            return seal(Envelope(body, device=device, boot_id=boot, seq=seq, ts=now), keys.device)

        birth = Birth.model_validate({**Birth.EXAMPLE, "serial": device})
        heartbeat = Heartbeat.model_validate(Heartbeat.EXAMPLE)
        taken = DoseTaken.model_validate({**DoseTaken.EXAMPLE, "due": now - 300_000, "taken_at": now})
        good_taken = sealed(taken, 2)
        event_topic = topic(device, Channel.EVENT)
        samples = (
            Sample("01-birth", topic(device, Channel.BIRTH), sealed(birth, 0), "✓ birth"),
            Sample("02-heartbeat", topic(device, Channel.TELEMETRY), sealed(heartbeat, 1), "✓ heartbeat"),
            Sample("03-dose-taken", event_topic, good_taken, "✓ dose.taken"),
            Sample("04-tampered", event_topic, good_taken.replace(b'"seq":2', b'"seq":3'), "✗ E_SIGNATURE"),
            Sample("05-wrong-topic", topic("RM3-999999", Channel.EVENT), sealed(taken, 4), "✗ E_TOPIC"),
            Sample("06-float", event_topic, good_taken.replace(b'"seq":2', b'"seq":2.0'), "✗ E_MALFORMED"),
            Sample(
                "07-unknown-type",
                event_topic,
                good_taken.replace(b'"dose.taken"', b'"dose.eaten"'),
                "✗ E_UNKNOWN_TYPE",
            ),
        )
        folder.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            (folder / f"{sample.name}.json").write_bytes(sample.payload)
        return cls(folder, samples)

    def banner(self, host: str, port: int) -> str:
        """What to tell the person who started the demo."""
        lines = [
            "",
            f"MQTT broker: mqtt://{host}:{port}  (embedded; Ctrl-C stops the demo)",
            "Inspector: every message on the broker is decoded and checked below (✓ valid, ✗ error code).",
            "Publish the examples again with mosquitto_pub (a repeat shows as a duplicate):",
        ]
        lines += [
            f"  mosquitto_pub -h {host} -p {port} -q 1 -t {s.topic} -f {self.folder / s.name}.json"
            f"   # {s.expect}"
            for s in self.samples
        ]
        lines += ["Test keys (never for real devices): firmware_protocol/vectors/keys.json", "", ""]
        return "\n".join(lines)

    def publish(self, address: BrokerAddress) -> None:
        """Publish every sample once, QoS 1, and wait until the broker has them."""
        client = paho_client(address)
        client.connect(address.host, address.port)
        client.loop_start()
        try:
            for sample in self.samples:
                client.publish(sample.topic, sample.payload, qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
