"""Broken and hostile uplink, for testing that the hub refuses it and loses nothing it accepted.

Each kind imitates a real failure or attack, and is recorded in the ground truth as ``hostile.sent``
with what the hub should conclude:

======================  ==========================================================  ===================
kind                    what is sent                                                hub's answer
======================  ==========================================================  ===================
``replay``              an earlier message again, byte for byte                     duplicate (ignored)
``duplicate``           the next message twice                                      duplicate (ignored)
``out_of_order``        two new messages, the later one first                       gap, then late fill
``forged_signature``    a message signed by another key under this device's kid     ``E_SIGNATURE``
``other_device_id``     a message claiming another device's id, on this topic       ``E_TOPIC``
``garbage``             random bytes                                                ``E_MALFORMED``
``oversized``           70 KB of JSON                                               ``E_TOO_LARGE``
======================  ==========================================================  ===================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from device_sim.ports import Publish
from firmware_protocol import Channel, Envelope, Signer, seal, topic
from firmware_protocol.messages import Heartbeat

if TYPE_CHECKING:
    from device_sim.device.dispenser import Dispenser
    from device_sim.ports import Output

KINDS = ("replay", "duplicate", "out_of_order", "forged_signature", "other_device_id", "garbage", "oversized")
EXPECTED = {
    "replay": "duplicate",
    "duplicate": "duplicate",
    "out_of_order": "late_fill",
    "forged_signature": "E_SIGNATURE",
    "other_device_id": "E_TOPIC",
    "garbage": "E_MALFORMED",
    "oversized": "E_TOO_LARGE",
}


def _heartbeat(device: Dispenser, now_ms: int) -> Heartbeat:
    return Heartbeat(
        uptime_s=max(0, now_ms - device.booted_at) // 1000,
        battery_pct=device.battery_pct,
        on_mains=device.on_mains,
        buffered=0,
        schedule_version=device.config.version if device.config else None,
    )


def _one(device: Dispenser, kind: str, now_ms: int) -> list[Publish]:  # noqa: PLR0911 - one branch a kind
    ts = device.device_time(now_ms)
    outbox = device.outbox
    if kind == "replay":
        earlier = outbox.last_sent()
        return [earlier] if earlier is not None else []
    if kind == "duplicate":
        message = outbox.sign(outbox.envelope(_heartbeat(device, now_ms), ts))
        return [message, message]
    if kind == "out_of_order":
        first = outbox.sign(outbox.envelope(_heartbeat(device, now_ms), ts))
        second = outbox.sign(outbox.envelope(_heartbeat(device, now_ms), ts))
        return [second, first]
    if kind == "forged_signature":
        forger = Signer.from_seed(device.rng.randbytes(32))
        envelope = outbox.envelope(_heartbeat(device, now_ms), ts)
        payload = seal(envelope, forger).replace(forger.kid.encode(), outbox.signer.kid.encode())
        return [Publish(envelope.topic, payload)]
    own_topic = topic(device.device_id, Channel.TELEMETRY)
    if kind == "other_device_id":
        other: Envelope[Heartbeat] = Envelope(
            _heartbeat(device, now_ms), device="RM3-999999", boot_id=outbox.boot_id, seq=outbox.seq, ts=ts
        )
        return [Publish(own_topic, seal(other, outbox.signer))]
    if kind == "garbage":
        return [Publish(own_topic, device.rng.randbytes(64))]
    if kind == "oversized":
        return [Publish(own_topic, b'{"proto":"1.0","pad":"' + b"x" * 70_000 + b'"}')]
    msg = f"unknown hostile kind {kind!r}; known: {', '.join(KINDS)}"
    raise ValueError(msg)


def send(device: Dispenser, kind: str, count: int, now_ms: int) -> list[Output]:
    """Send ``count`` hostile messages of ``kind`` (only while online: they go straight to the wire)."""
    if not device.outbox.online:
        return [device.truth(now_ms, "hostile.skipped", hostile=kind, reason="offline")]
    out: list[Output] = []
    for _ in range(count):
        messages = _one(device, kind, now_ms)
        out += messages
        out.append(
            device.truth(
                now_ms, "hostile.sent", hostile=kind, expected=EXPECTED[kind], messages=len(messages)
            )
        )
    return out
