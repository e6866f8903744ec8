"""Valid test vectors (one signed message per type, plus edge cases) and the vectors' README."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from firmware_protocol.canonical import JsonObject, canonical_bytes
from firmware_protocol.codec import Envelope, seal
from firmware_protocol.docgen.common import COMMAND
from firmware_protocol.docgen.material import (
    DEVICE_BOOT_ID,
    DEVICE_ID,
    ENROLLMENT_BOOT_ID,
    HUB_BOOT_ID,
    NOW_MS,
    TEST_KEY_WARNING,
    TestMaterial,
    deterministic_id,
)
from firmware_protocol.messages import ALL_BODIES, MESSAGE_TYPES, Body
from firmware_protocol.receiver import SEQUENCE_EXEMPT
from firmware_protocol.signing import ALGORITHM, Signer, b64url, raw_public_key
from firmware_protocol.topics import PROTOCOL_MAJOR, Direction, Topic


def _example(body_cls: type[Body], material: TestMaterial) -> dict[str, object]:
    """The body of a vector: the class's EXAMPLE, with real CSR and certificates for provisioning."""
    example = copy.deepcopy(body_cls.EXAMPLE)
    if body_cls.TYPE == "prov.request":
        example["csr"] = material.csr_pem
    elif body_cls.TYPE == "prov.accepted":
        example.update(
            certificate=material.device_certificate_pem,
            ca_certificate=material.ca_certificate_pem,
            device_kid=material.device.kid,
            hub_key=b64url(raw_public_key(material.hub.public_key)),
            hub_kid=material.hub.kid,
        )
    return example


_CORRELATION = {
    "cmd.ack": "cmd.identify",
    "cmd.nack": "cmd.unlock",
    "prov.accepted": "prov.request",
    "prov.rejected": "prov.request",
}
"""The vector whose msg_id a vector's corr_id carries."""


def _msg_id(type_name: str) -> str:
    return deterministic_id(f"message {type_name}")


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed envelope: the unsigned object, its canonical bytes, the signature, the payload."""

    obj: JsonObject
    canonical: bytes
    signature: bytes
    payload: bytes


def sign(obj: JsonObject, signer: Signer) -> Signed:
    """Sign an arbitrary envelope object exactly as ``seal`` does."""
    signed = canonical_bytes(obj)
    signature = signer.private_key.sign(signed)
    sig: JsonObject = {"alg": ALGORITHM, "kid": signer.kid, "value": b64url(signature)}
    full: JsonObject = {**obj, "sig": sig}
    return Signed(obj, signed, signature, canonical_bytes(full))


def example_envelopes(material: TestMaterial) -> list[tuple[Envelope[Body], Signer]]:
    """One envelope per message type, in registry order, with the signer of its direction."""
    result: list[tuple[Envelope[Body], Signer]] = []
    device_seq = 0
    hub_seq = 0
    for body_cls in ALL_BODIES:
        body = body_cls.model_validate(_example(body_cls, material))
        corr = _CORRELATION.get(body_cls.TYPE)
        common: dict[str, Any] = {
            "body": body,
            "device": DEVICE_ID,
            "ts": NOW_MS,
            "msg_id": _msg_id(body_cls.TYPE),
            "corr_id": _msg_id(corr) if corr else None,
        }
        if body_cls.TYPE == "prov.request":
            envelope: Envelope[Body] = Envelope(boot_id=ENROLLMENT_BOOT_ID, seq=0, **common)
            signer = material.device
        elif body_cls.CHANNEL.direction is Direction.UPLINK:
            seq = 0 if body_cls.TYPE in SEQUENCE_EXEMPT else device_seq
            device_seq += body_cls.TYPE not in SEQUENCE_EXEMPT
            envelope = Envelope(boot_id=DEVICE_BOOT_ID, seq=seq, **common)
            signer = material.device
        else:
            envelope = Envelope(boot_id=HUB_BOOT_ID, seq=hub_seq, **common)
            hub_seq += 1
            signer = material.hub
        result.append((envelope, signer))
    return result


def _valid_vector(name: str, type_name: str, signed: Signed, signer_role: str, note: str) -> dict[str, Any]:
    body_cls = MESSAGE_TYPES[type_name]
    return {
        "name": name,
        "type": type_name,
        "note": note,
        "topic": str(Topic(DEVICE_ID, body_cls.CHANNEL)),
        "signed_with": signer_role,
        "now_ms": NOW_MS,
        "unsigned_envelope": signed.obj,
        "canonical": signed.canonical.decode("utf-8"),
        "canonical_hex": signed.canonical.hex(),
        "signature_b64url": b64url(signed.signature),
        "signature_hex": signed.signature.hex(),
        "payload": signed.payload.decode("utf-8"),
        "payload_hex": signed.payload.hex(),
    }


def _body(obj: JsonObject) -> JsonObject:
    body = obj["body"]
    if not isinstance(body, dict):
        msg = "an envelope's body is an object"
        raise TypeError(msg)
    return body


def valid_vectors(material: TestMaterial) -> list[dict[str, Any]]:
    """A signed vector for every message type, plus string escaping and forward compatibility."""
    vectors = []
    for envelope, signer in example_envelopes(material):
        role = "device" if signer is material.device else "hub"
        signed = sign(envelope.unsigned_object(), signer)
        if signed.payload != seal(envelope, signer):
            msg = f"docgen signs {envelope.type} differently from codec.seal"
            raise RuntimeError(msg)
        note = f"The {envelope.type} example, signed with the {role} key."
        if envelope.type == "prov.request":
            note = "A real CSR for the device test key; the envelope is signed with that key (its kid)."
        elif envelope.type == "prov.accepted":
            note = "A real certificate for the device test key, issued by the test CA; the hub's test key."
        vectors.append(_valid_vector(envelope.type, envelope.type, signed, role, note))

    lock = next(e for e, _ in example_envelopes(material) if e.type == "cmd.lock").unsigned_object()
    lock["msg_id"] = _msg_id("cmd.lock escaping")
    _body(lock)["reason"] = 'quote " backslash \\ tab \t newline \n control \x01 \x1f del \x7f é € 𝄞'
    vectors.append(
        _valid_vector(
            "cmd.lock string escaping",
            "cmd.lock",
            sign(lock, material.hub),
            "hub",
            'JCS string escaping: \\" \\\\ \\t \\n, other controls as \\u00xx (lower-case hex), DEL and '
            "non-ASCII (including a character outside the BMP) as raw UTF-8.",
        )
    )
    newer = next(e for e, _ in example_envelopes(material) if e.type == "dose.taken").unsigned_object()
    newer.update(proto=f"{PROTOCOL_MAJOR}.{99}", msg_id=_msg_id("dose.taken newer minor"), trace="a1b2")
    _body(newer)["colour"] = "blue"
    vector = _valid_vector(
        "dose.taken from a newer minor version",
        "dose.taken",
        sign(newer, material.device),
        "device",
        "A 1.99 message with members this receiver does not know: accepted, the unknown members ignored "
        "(but signed: the signature covers them).",
    )
    vector["ignored_fields"] = ["trace", "body.colour"]
    vectors.append(vector)
    return vectors


_README = """# Protocol v1 test vectors

Generated by `{command}` from `firmware_protocol`; do not edit.
`tests/firmware_protocol/test_vectors.py` checks every vector against the Python reference.

> **{warning}**

## Files

- `keys.json`: the Ed25519 test keys (32-byte RFC 8032 seeds, raw public keys in hex and base64url, key
  ids) of the device `{device_id}`, the hub, an unregistered key and the test CA, plus the device's CSR
  and certificate.
- `valid.json`: {valid} signed messages, one per message type plus string escaping and a message of a
  newer minor version. Fields: `topic`; `unsigned_envelope` (the object that is signed); `canonical` and
  `canonical_hex` (its RFC 8785 canonical bytes); `signature_hex` and `signature_b64url` (Ed25519 over
  those bytes, with the `signed_with` key); `payload` and `payload_hex` (the exact bytes published);
  `now_ms` (the receiver clock to use); `ignored_fields` (members a receiver of this version ignores).
- `invalid.json`: {invalid} payloads a receiver must refuse, with `expected_code` and `expected_field`
  (dotted path, or null for the message as a whole). The payload is `payload` (UTF-8 text) or
  `payload_hex` (when the bytes are not clean UTF-8). Use `now_ms` as the receiver clock when present;
  otherwise skip the clock check. Codes covered: {codes}.
- `receiver.json`: the stateful rules: duplicate and sequence (`E_REPLAY`) scenarios, and the device's
  checks of downlink messages (`E_EXPIRED`, `E_STALE_VERSION`, wrong device).

## Using them from C

1. Keys: derive the key pair from `seed_hex` (libsodium `crypto_sign_seed_keypair`, Monocypher
   `crypto_eddsa_key_pair`, PSA Ed25519 import) and check that the public key equals `public_key_hex`;
   the key id is the first 16 hex digits of SHA-256 over the 32 raw public-key bytes.
2. Canonical form: build each `unsigned_envelope` with your encoder (members sorted by name, no
   whitespace, integers in decimal, JCS string escaping) and compare your bytes with `canonical_hex`
   byte for byte.
3. Signing: Ed25519 is deterministic, so signing `canonical_hex` with the `signed_with` key must give
   exactly `signature_hex`; the full payload must equal `payload_hex`.
4. Receiving: feed `payload_hex` with `topic` (and `now_ms`) to your receiver. Valid vectors are
   accepted (device key registered for the device, hub key for the hub; `prov.request` is verified with
   the key in its CSR); every invalid vector is refused with `expected_code`, and with `expected_field`
   where your receiver reports fields. The order of the checks is part of the contract (see
   PROTOCOL.md), so each bad payload has exactly one right code.
5. State: replay `receiver.json` step by step through your duplicate filter and sequence tracker,
   starting each scenario with empty state.

JSON files are UTF-8 with sorted keys; where the exact bytes of a string matter, use the `_hex` field.
"""


def readme(valid: list[dict[str, Any]], invalid: list[dict[str, Any]], keys: dict[str, Any]) -> str:
    """``vectors/README.md`` for the given vectors and keys."""
    return _README.format(
        command=COMMAND,
        warning=TEST_KEY_WARNING,
        device_id=keys["device_id"],
        valid=len(valid),
        invalid=len(invalid),
        codes=", ".join(f"`{c}`" for c in sorted({v["expected_code"] for v in invalid})),
    )
