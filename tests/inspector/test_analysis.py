"""The inspector's verdicts and rendering, without a broker."""

from __future__ import annotations

import json

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from dispenser_hub.inspector.analysis import Inspector
from dispenser_hub.inspector.render import TextRenderer, render_json
from firmware_protocol import Channel, Envelope, KeyRing, Signer, new_ulid, seal, topic
from firmware_protocol.messages import (
    Birth,
    DoseTaken,
    Heartbeat,
    PouchScanned,
    ProvisionAccepted,
    ProvisionRequest,
)
from firmware_protocol.signing import b64url, raw_public_key

NOW = 1_795_417_200_000
DEVICE = "RM3-000017"
BOOT = new_ulid(NOW)


def _heartbeat(signer: Signer, seq: int, *, ts: int = NOW, device: str = DEVICE) -> bytes:
    body = Heartbeat.model_validate(Heartbeat.EXAMPLE)
    return seal(Envelope(body, device=device, boot_id=BOOT, seq=seq, ts=ts), signer)


def _inspector(signer: Signer) -> Inspector:
    ring = KeyRing()
    ring.add(DEVICE, signer.public_key)
    return Inspector(keys=ring)


TELEMETRY = topic(DEVICE, Channel.TELEMETRY)


def test_valid_message_passes_every_check() -> None:
    signer = Signer.generate()
    item = _inspector(signer).inspect(TELEMETRY, _heartbeat(signer, 0), received_ms=NOW)
    assert item.ok
    assert item.received is not None
    assert item.received.envelope.type == "heartbeat"
    assert item.sequence is not None
    assert item.sequence.status.value == "first"


def test_each_problem_is_flagged_with_its_code_and_field() -> None:
    signer = Signer.generate()
    inspector = _inspector(signer)
    good = _heartbeat(signer, 0)
    other = Signer.generate()
    forged_kid = _heartbeat(other, 1).replace(other.kid.encode(), signer.kid.encode())
    cases = {
        b"not json": ("E_MALFORMED", None),
        good.replace(b'"battery_pct":95', b'"battery_pct":94'): ("E_SIGNATURE", "sig.value"),
        forged_kid: ("E_SIGNATURE", "sig.value"),
        _heartbeat(other, 1): ("E_UNKNOWN_KEY", "sig.kid"),
        _heartbeat(signer, 2, ts=NOW + 3_600_000): ("E_SKEW", "ts"),
        good.replace(b'"proto":"1.0"', b'"proto":"2.0"'): ("E_VERSION", "proto"),
        b"x" * 70_000: ("E_TOO_LARGE", None),
    }
    for payload, (code, field) in cases.items():
        item = inspector.inspect(TELEMETRY, payload, received_ms=NOW)
        assert item.error is not None, payload[:60]
        assert (item.error.code.value, item.error.field) == (code, field)
    wrong_topic = inspector.inspect(topic(DEVICE, Channel.EVENT), good, received_ms=NOW)
    assert wrong_topic.error is not None
    assert wrong_topic.error.code.value == "E_TOPIC"
    unknown_device = inspector.inspect(
        topic("RM3-000099", Channel.TELEMETRY), _heartbeat(signer, 0, device="RM3-000099"), received_ms=NOW
    )
    assert unknown_device.error is not None
    assert unknown_device.error.code.value == "E_UNKNOWN_KEY"


def test_duplicates_gaps_and_replays_are_reported() -> None:
    signer = Signer.generate()
    inspector = _inspector(signer)
    first = _heartbeat(signer, 0)
    assert inspector.inspect(TELEMETRY, first, received_ms=NOW).ok
    assert inspector.inspect(TELEMETRY, first, received_ms=NOW).duplicate
    gap = inspector.inspect(TELEMETRY, _heartbeat(signer, 4), received_ms=NOW)
    assert gap.sequence is not None
    assert (gap.sequence.status.value, gap.sequence.missing) == ("gap", ((1, 3),))
    replay = inspector.inspect(TELEMETRY, _heartbeat(signer, 4), received_ms=NOW)
    assert replay.error is not None
    assert replay.error.code.value == "E_REPLAY"


def test_retained_messages_are_not_checked_for_skew() -> None:
    signer = Signer.generate()
    old = _heartbeat(signer, 0, ts=NOW - 30 * 86_400_000)
    assert _inspector(signer).inspect(TELEMETRY, old, received_ms=NOW, retained=True).ok
    assert not _inspector(signer).inspect(TELEMETRY, old, received_ms=NOW).ok


def test_simulated_devices_are_checked_against_their_own_clock() -> None:
    """Accelerated simulated devices next to real ones: each is judged by the clock it runs on."""
    signer = Signer.generate()
    sim_now = NOW + 5 * 86_400_000  # the simulated clock is days ahead of the real one
    simulated = _heartbeat(signer, 0, ts=sim_now)
    plain = _inspector(signer).inspect(TELEMETRY, simulated, received_ms=NOW)
    assert plain.error is not None
    assert plain.error.code.value == "E_SKEW"

    inspector = _inspector(signer)
    inspector.device_clocks[DEVICE] = lambda: sim_now
    assert inspector.inspect(TELEMETRY, simulated, received_ms=NOW).ok
    other = topic("RM3-000018", Channel.TELEMETRY)
    inspector.keys.add("RM3-000018", signer.public_key)
    real_device = _heartbeat(signer, 0, ts=sim_now, device="RM3-000018")
    assert not inspector.inspect(other, real_device, received_ms=NOW).ok  # judged by the real clock

    following = _inspector(signer)
    following.clock = lambda: sim_now  # dispenser-hub inspect --clock-spec
    assert following.inspect(TELEMETRY, simulated, received_ms=NOW).ok


def _csr(signer: Signer, device: str) -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)]))
        .sign(signer.private_key, None)
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_keys_are_learned_from_provisioning_trust_on_first_use() -> None:
    device_key, hub_key = Signer.generate(), Signer.generate()
    inspector = Inspector()
    request = ProvisionRequest.model_validate({**ProvisionRequest.EXAMPLE, "csr": _csr(device_key, DEVICE)})
    request_env = Envelope(request, device=DEVICE, boot_id=BOOT, seq=0, ts=NOW)
    learned = inspector.inspect(request_env.topic, seal(request_env, device_key), received_ms=NOW)
    assert learned.ok
    assert learned.learned_key == f"device {DEVICE} key {device_key.kid}"
    accepted = ProvisionAccepted.model_validate(
        {
            **ProvisionAccepted.EXAMPLE,
            "device_kid": device_key.kid,
            "hub_key": b64url(raw_public_key(hub_key.public_key)),
            "hub_kid": hub_key.kid,
        }
    )
    accepted_env = Envelope(accepted, device=DEVICE, boot_id=BOOT, seq=0, ts=NOW, corr_id=request_env.msg_id)
    hub_learned = inspector.inspect(accepted_env.topic, seal(accepted_env, hub_key), received_ms=NOW)
    assert hub_learned.ok
    assert hub_learned.learned_key == f"hub key {hub_key.kid}"
    assert inspector.inspect(TELEMETRY, _heartbeat(device_key, 1), received_ms=NOW).ok


def test_hub_key_is_not_learned_from_a_message_it_did_not_sign() -> None:
    hub_key, impostor = Signer.generate(), Signer.generate()
    accepted = ProvisionAccepted.model_validate(
        {
            **ProvisionAccepted.EXAMPLE,
            "hub_key": b64url(raw_public_key(hub_key.public_key)),
            "hub_kid": hub_key.kid,
        }
    )
    env = Envelope(accepted, device=DEVICE, boot_id=BOOT, seq=0, ts=NOW, corr_id=new_ulid())
    forged = seal(env, impostor)
    inspector = Inspector()
    item = inspector.inspect(env.topic, forged, received_ms=NOW)
    assert item.error is not None
    assert item.error.code.value == "E_UNKNOWN_KEY"
    assert inspector.keys.resolve(None, hub_key.kid) is None


def test_text_rendering_shows_local_times_and_masks_patient_references() -> None:
    signer = Signer.generate()
    ring = KeyRing()
    ring.add(DEVICE, signer.public_key)
    body = PouchScanned.model_validate(PouchScanned.EXAMPLE)
    env = Envelope(body, device=DEVICE, boot_id=BOOT, seq=0, ts=NOW)
    item = Inspector(keys=ring).inspect(env.topic, seal(env, signer), received_ms=NOW)
    text = TextRenderer(colour=False).render(item)
    assert "✓ pouch.scanned" in text
    assert "2026-11-23 08:00:00 CET" in text  # intake_time in Europe/Oslo
    assert "PX-93A7F2" not in text
    assert "PX-…" in text
    assert "PX-93A7F2" in TextRenderer(colour=False, show_refs=True).render(item)
    data = json.loads(render_json(item))
    assert data["body"]["printed_patient_ref"] == "PX-…"
    assert data["ok"] is True


def test_error_rendering_names_code_field_and_shows_the_payload() -> None:
    signer = Signer.generate()
    body = DoseTaken.model_validate(DoseTaken.EXAMPLE)
    env = Envelope(body, device=DEVICE, boot_id=BOOT, seq=0, ts=NOW)
    item = _inspector(signer).inspect(topic("RM3-000018", Channel.EVENT), seal(env, signer), received_ms=NOW)
    text = TextRenderer(colour=False).render(item)
    assert "✗ E_TOPIC at device" in text
    assert "payload (" in text
    data = json.loads(render_json(item))
    assert data["error"] == {
        "code": "E_TOPIC",
        "field": "device",
        "detail": "device 'RM3-000017' in the envelope differs from 'RM3-000018' in the topic",
    }


def test_birth_body_round_trips_through_json_output() -> None:
    signer = Signer.generate()
    env = Envelope(Birth.model_validate(Birth.EXAMPLE), device=DEVICE, boot_id=BOOT, seq=0, ts=NOW)
    item = _inspector(signer).inspect(env.topic, seal(env, signer), received_ms=NOW)
    assert Birth.model_validate(json.loads(render_json(item))["body"]) == env.body
