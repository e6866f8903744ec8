"""The published test vectors agree with the reference implementation, byte for byte.

The vectors are read from disk (``test_generated_docs`` proves they equal a fresh generation), and every
claim they make is checked independently: canonical bytes (with ``firmware_protocol.canonical`` and with
the ``rfc8785`` package), Ed25519 signatures from the seeds, and the receiver's verdicts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_protocol import (
    DownlinkCheck,
    DuplicateFilter,
    Envelope,
    KeyRing,
    ProtocolError,
    SequenceTracker,
    canonical_bytes,
    open_message,
    seal,
)
from firmware_protocol.docgen import VECTORS_DIR
from firmware_protocol.errors import ErrorCode
from firmware_protocol.ids import key_id
from firmware_protocol.messages import MESSAGE_TYPES
from firmware_protocol.signing import Signer, b64url, raw_public_key

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / VECTORS_DIR


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


KEYS = _load("keys.json")
VALID: list[dict[str, Any]] = _load("valid.json")["vectors"]
INVALID: list[dict[str, Any]] = _load("invalid.json")["vectors"]
RECEIVER = _load("receiver.json")


def _signer(role: str) -> Signer:
    return Signer.from_seed(bytes.fromhex(KEYS[role]["seed_hex"]))


def _keyring() -> KeyRing:
    ring = KeyRing()
    ring.add(KEYS["device_id"], _signer("device").public_key)
    ring.add(None, _signer("hub").public_key)
    return ring


def _payload(vector: dict[str, Any]) -> bytes:
    if "payload_hex" in vector:
        return bytes.fromhex(vector["payload_hex"])
    text: str = vector["payload"]
    return text.encode("utf-8")


@pytest.mark.parametrize("role", ["device", "hub", "unregistered", "ca"])
def test_keys_are_the_published_derivations(role: str) -> None:
    entry = KEYS[role]
    label = entry["seed"].split('"')[1].encode("ascii")
    seed = hashlib.sha256(label).digest()
    assert entry["seed_hex"] == seed.hex()
    raw = raw_public_key(Ed25519PrivateKey.from_private_bytes(seed).public_key())
    assert entry["public_key_hex"] == raw.hex()
    if role != "ca":
        assert entry["public_key_b64url"] == b64url(raw)
        assert entry["kid"] == key_id(raw) == hashlib.sha256(raw).hexdigest()[:16]
    assert "NEVER USE IN PRODUCTION" in KEYS["warning"]


def test_certificates_chain_to_the_test_ca() -> None:
    ca = x509.load_pem_x509_certificate(KEYS["ca"]["certificate_pem"].encode("ascii"))
    device = x509.load_pem_x509_certificate(KEYS["device_certificate_pem"].encode("ascii"))
    csr = x509.load_pem_x509_csr(KEYS["device_csr_pem"].encode("ascii"))
    device.verify_directly_issued_by(ca)
    assert csr.is_signature_valid
    device_raw = bytes.fromhex(KEYS["device"]["public_key_hex"])
    for holder in (csr, device):
        key = holder.public_key()
        assert isinstance(key, Ed25519PublicKey)
        assert raw_public_key(key) == device_raw
        cn = holder.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cn == KEYS["device_id"]
    assert device.serial_number == KEYS["device_certificate_serial"]


def test_every_message_type_has_a_valid_vector() -> None:
    assert {v["type"] for v in VALID} == set(MESSAGE_TYPES)
    assert len({v["name"] for v in VALID}) == len(VALID)


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector(vector: dict[str, Any]) -> None:
    unsigned = vector["unsigned_envelope"]
    signed_bytes = bytes.fromhex(vector["canonical_hex"])
    assert canonical_bytes(unsigned) == signed_bytes
    assert rfc8785.dumps(unsigned) == signed_bytes
    assert vector["canonical"].encode("utf-8") == signed_bytes

    signer = _signer(vector["signed_with"])
    signature = signer.private_key.sign(signed_bytes)  # Ed25519 is deterministic
    assert signature.hex() == vector["signature_hex"]
    assert b64url(signature) == vector["signature_b64url"]

    payload = _payload(vector)
    assert payload == vector["payload"].encode("utf-8") == bytes.fromhex(vector["payload_hex"])
    full = json.loads(payload)
    assert full["sig"] == {"alg": "Ed25519", "kid": signer.kid, "value": vector["signature_b64url"]}
    assert rfc8785.dumps(full) == payload  # the payload itself is canonical

    received = open_message(payload, vector["topic"], _keyring(), now_ms=vector["now_ms"])
    body_cls = MESSAGE_TYPES[vector["type"]]
    assert type(received.envelope.body) is body_cls
    assert received.signed_bytes == signed_bytes
    assert received.kid == signer.kid
    assert list(received.ignored_fields) == vector.get("ignored_fields", [])
    if "ignored_fields" not in vector:
        assert received.envelope.body == body_cls.model_validate(unsigned["body"])
        assert received.envelope.unsigned_object() == unsigned
        assert seal(received.envelope, signer) == payload
    if vector["name"] == vector["type"] and vector["type"] not in {"prov.request", "prov.accepted"}:
        assert received.envelope.body == body_cls.model_validate(body_cls.EXAMPLE)


def test_escaping_vector_exercises_jcs_string_rules() -> None:
    vector = next(v for v in VALID if v["name"] == "cmd.lock string escaping")
    canonical = bytes.fromhex(vector["canonical_hex"])
    for needle in (
        b'\\"',
        b"\\\\",
        b"\\t",
        b"\\n",
        b"\\u0001",
        b"\\u001f",
        b"\x7f",
        *(c.encode() for c in "é€𝄞"),
    ):
        assert needle in canonical


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        open_message(_payload(vector), vector["topic"], _keyring(), now_ms=vector.get("now_ms"))
    assert caught.value.code.value == vector["expected_code"], caught.value
    assert caught.value.field == vector["expected_field"], caught.value


def test_invalid_vectors_cover_every_stateless_code() -> None:
    stateful = {ErrorCode.REPLAY, ErrorCode.EXPIRED, ErrorCode.STALE_VERSION}
    covered = {v["expected_code"] for v in INVALID}
    assert covered == {code.value for code in ErrorCode if code not in stateful}
    for code, minimum in (("E_MALFORMED", 7), ("E_SCHEMA", 3), ("E_TOPIC", 2), ("E_SIGNATURE", 2)):
        assert sum(v["expected_code"] == code for v in INVALID) >= minimum, code
    assert any(v["expected_code"] == "E_SKEW" and "now_ms" in v for v in INVALID)
    assert any(len(_payload(v)) > 65_536 for v in INVALID)


@pytest.mark.parametrize("scenario", RECEIVER["scenarios"], ids=[s["name"] for s in RECEIVER["scenarios"]])
def test_receiver_scenario(scenario: dict[str, Any]) -> None:
    tracker, duplicates = SequenceTracker(), DuplicateFilter()
    for step in scenario["steps"]:
        expected = step["expected"]
        if duplicates.seen(scenario["device"], step["msg_id"]):
            assert expected == {"outcome": "duplicate"}, step
            continue
        if expected["outcome"] == "refused":
            with pytest.raises(ProtocolError) as caught:
                tracker.observe(step["boot_id"], step["seq"], step["type"])
            assert expected == {
                "outcome": "refused",
                "code": caught.value.code.value,
                "field": caught.value.field,
            }
        else:
            result = tracker.observe(step["boot_id"], step["seq"], step["type"])
            duplicates.remember(scenario["device"], step["msg_id"])
            assert expected == {
                "outcome": "accepted",
                "status": result.status.value,
                "missing": [list(r) for r in result.missing],
            }, step


def test_receiver_scenarios_cover_every_outcome() -> None:
    steps = [s["expected"] for scenario in RECEIVER["scenarios"] for s in scenario["steps"]]
    statuses = {e.get("status") for e in steps}
    assert statuses >= {"first", "joined", "in_order", "gap", "late_fill", "exempt"}
    assert {"duplicate", "refused"} <= {e["outcome"] for e in steps}
    assert any(e.get("missing") for e in steps)


@pytest.mark.parametrize(
    "check", RECEIVER["downlink_checks"], ids=[c["name"] for c in RECEIVER["downlink_checks"]]
)
def test_downlink_check(check: dict[str, Any]) -> None:
    vector = next(v for v in VALID if v["name"] == check["vector"])
    received = open_message(_payload(vector), vector["topic"], _keyring(), now_ms=vector["now_ms"])
    checker = DownlinkCheck(check["device_id"])
    if check["expected_code"] is None:
        act = checker.check(
            received, now_ms=check["now_ms"], held_config_version=check["held_config_version"]
        )
        assert act is check["expected_act"]
        return
    with pytest.raises(ProtocolError) as caught:
        checker.check(received, now_ms=check["now_ms"], held_config_version=check["held_config_version"])
    assert caught.value.code.value == check["expected_code"]
    assert caught.value.field == check["expected_field"]


def test_vectors_do_not_depend_on_envelope_defaults() -> None:
    """An Envelope rebuilt from a vector's fields seals to the same payload (no hidden randomness)."""
    vector = next(v for v in VALID if v["name"] == "dose.taken")
    unsigned = vector["unsigned_envelope"]
    envelope = Envelope(
        body=MESSAGE_TYPES[unsigned["type"]].model_validate(unsigned["body"]),
        device=unsigned["device"],
        boot_id=unsigned["boot_id"],
        seq=unsigned["seq"],
        ts=unsigned["ts"],
        msg_id=unsigned["msg_id"],
    )
    assert seal(envelope, _signer("device")).decode("utf-8") == vector["payload"]
