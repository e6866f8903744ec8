"""Envelope encoding and decoding: round trips of every message type and every refusal, code and field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509 import load_pem_x509_csr
from cryptography.x509.oid import NameOID

from firmware_protocol import (
    MAX_AGE_MS,
    MAX_SKEW_MS,
    Channel,
    Direction,
    DownlinkCheck,
    ErrorCode,
    KeyRing,
    ProtocolError,
    Received,
    decode,
    open_message,
    seal,
    topic,
    verify,
)
from firmware_protocol.codec import SKEW_EXEMPT
from firmware_protocol.messages import ALL_BODIES, FAULT_TYPES, MESSAGE_TYPES, ProvisionRequest
from firmware_protocol.signing import b64url, kid_of
from tests.firmware_protocol.helpers import (
    ALL_TYPES,
    DEVICE,
    DEVICE_SIGNER,
    HUB_SIGNER,
    NOW,
    OTHER_DEVICE,
    OTHER_DEVICE_SIGNER,
    REQUIRES_CORR,
    STRANGER_SIGNER,
    body_example,
    csr_pem,
    envelope,
    key_ring,
    seal_object,
    sealed,
    signer_for,
    unsigned_object,
)

KEYS = key_ring()


def refused(
    payload: bytes,
    topic_name: str | None,
    code: ErrorCode,
    field: str | None,
    *,
    keys: KeyRing = KEYS,
    now_ms: int | None = NOW,
) -> ProtocolError:
    """Open ``payload`` and check it is refused with ``code`` at ``field``; return the error."""
    with pytest.raises(ProtocolError) as info:
        open_message(payload, topic_name, keys, now_ms=now_ms)
    error = info.value
    assert (error.code, error.field) == (code, field), error
    assert error.detail
    assert str(error).startswith(code.value)
    return error


def edited(type_name: str, edit: Any = None, *, signer: Any = None, **kwargs: Any) -> tuple[bytes, str]:
    """A correctly signed payload of ``type_name`` after ``edit(obj)`` changed its unsigned object."""
    obj = unsigned_object(type_name, **kwargs)
    if edit is not None:
        edit(obj)
    return seal_object(obj, signer or signer_for(type_name)), envelope(type_name, **kwargs).topic


# --- round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_every_message_type_round_trips(type_name: str) -> None:
    original = envelope(type_name)
    payload = seal(original, signer_for(type_name))
    received = open_message(payload, original.topic, KEYS, now_ms=NOW)
    got = received.envelope
    assert got.body == original.body
    assert type(got.body) is MESSAGE_TYPES[type_name]
    assert (got.type, got.device, got.msg_id, got.boot_id, got.seq, got.ts, got.corr_id, got.proto) == (
        original.type,
        original.device,
        original.msg_id,
        original.boot_id,
        original.seq,
        original.ts,
        original.corr_id,
        original.proto,
    )
    assert received.ignored_fields == ()
    assert received.kid == signer_for(type_name).kid
    assert received.direction is MESSAGE_TYPES[type_name].CHANNEL.direction
    assert seal(got, signer_for(type_name)) == payload, "re-sealing the decoded envelope gives the same bytes"
    assert json.loads(payload)["body"] == body_example(type_name) | (
        {"csr": json.loads(payload)["body"]["csr"]} if type_name == ProvisionRequest.TYPE else {}
    )


@pytest.mark.parametrize("body_cls", ALL_BODIES, ids=lambda cls: cls.TYPE)
def test_every_example_validates_against_its_model(body_cls: Any) -> None:
    body = body_cls.model_validate(body_cls.EXAMPLE)
    assert body.__pydantic_extra__ == {}
    assert body.model_dump(mode="json", by_alias=True, exclude_none=True) == body_cls.EXAMPLE


def test_registry_holds_every_body_once() -> None:
    assert len(MESSAGE_TYPES) == len(ALL_BODIES)
    assert {cls.TYPE for cls in FAULT_TYPES} <= set(MESSAGE_TYPES)


def test_decode_does_not_need_keys_and_verify_checks_later() -> None:
    payload, topic_name = sealed("dose.taken")
    received = decode(payload, topic_name, now_ms=NOW)
    with pytest.raises(ProtocolError) as info:
        verify(received, KeyRing())
    assert info.value.code is ErrorCode.UNKNOWN_KEY
    verify(received, KEYS)


# --- provisioning: the CSR key signs the request -----------------------------------------------------------


def test_prov_request_is_verified_with_the_csr_key() -> None:
    payload, topic_name = sealed("prov.request")
    received = open_message(payload, topic_name, KeyRing(), now_ms=NOW)  # no key registered: the CSR's
    body = received.envelope.body
    assert isinstance(body, ProvisionRequest)
    csr = load_pem_x509_csr(body.csr.encode())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEVICE
    key = csr.public_key()
    assert isinstance(key, Ed25519PublicKey)
    assert kid_of(key) == received.kid == DEVICE_SIGNER.kid


def test_prov_request_signed_by_a_key_other_than_the_csr_key_is_refused() -> None:
    csr_for_device = csr_pem(DEVICE_SIGNER.private_key)

    def with_device_csr(obj: dict[str, Any]) -> None:
        obj["body"]["csr"] = csr_for_device

    payload, topic_name = edited("prov.request", with_device_csr, signer=STRANGER_SIGNER)
    refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid", keys=KeyRing())
    ring = key_ring()
    ring.add(DEVICE, STRANGER_SIGNER.public_key)
    refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid", keys=ring)  # registered keys do not count


def test_prov_request_with_the_csr_kid_but_another_signature_is_refused() -> None:
    payload, topic_name = edited("prov.request", signer=STRANGER_SIGNER)  # CSR is the device key's
    obj = json.loads(payload)
    obj["sig"]["kid"] = DEVICE_SIGNER.kid
    refused(json.dumps(obj).encode(), topic_name, ErrorCode.SIGNATURE, "sig.value", keys=KeyRing())


@pytest.mark.parametrize("csr_kind", ["unreadable", "ec_key", "tampered"])
def test_prov_request_with_a_bad_csr_is_a_schema_error(csr_kind: str) -> None:
    if csr_kind == "unreadable":
        csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIGbME8CAQAwHDEa\n-----END CERTIFICATE REQUEST-----\n"
    elif csr_kind == "ec_key":
        csr = csr_pem(ec.generate_private_key(ec.SECP256R1()))
    else:
        lines = csr_pem(DEVICE_SIGNER.private_key).splitlines(keepends=True)
        body = lines[1]
        lines[1] = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
        csr = "".join(lines)

    def with_csr(obj: dict[str, Any]) -> None:
        obj["body"]["csr"] = csr

    payload, topic_name = edited("prov.request", with_csr)
    error = refused(payload, topic_name, ErrorCode.SCHEMA, "body.csr", keys=KeyRing())
    with pytest.raises(ProtocolError) as info:
        decode(payload)  # the CSR is part of the schema: refused before any key is looked at
    assert (info.value.code, info.value.field) == (ErrorCode.SCHEMA, "body.csr")
    assert "CSR" in error.detail or "certificate signing request" in error.detail


# --- versions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["2.0", "0.9", "10.0", "2.7"])
def test_unknown_major_version_is_refused(proto: str) -> None:
    payload, topic_name = sealed("heartbeat", proto=proto)
    refused(payload, topic_name, ErrorCode.UNSUPPORTED_VERSION, "proto")


def test_unknown_major_is_reported_before_an_unknown_type() -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.update(proto="2.0", type="telemetry.v2"))
    refused(payload, topic_name, ErrorCode.UNSUPPORTED_VERSION, "proto")


@pytest.mark.parametrize("proto", ["1", "1.0.0", "v1.0", "1.x", "", "1.0000", " 1.0"])
def test_malformed_version_is_a_schema_error(proto: str) -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.update(proto=proto))
    refused(payload, topic_name, ErrorCode.SCHEMA, "proto")


@pytest.mark.parametrize("proto", ["\u00b2.0", "1.\u00b2", "\u0661.0", "\u0662.0", "01.0", "1.00"])
def test_non_ascii_digits_and_leading_zeros_in_the_version_are_schema_errors(proto: str) -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.update(proto=proto))
    refused(payload, topic_name, ErrorCode.SCHEMA, "proto")


def _add_unknown_members(obj: dict[str, Any]) -> None:
    obj["extra_top"] = {"any": [1, "json"]}
    obj["body"]["extra_thing"] = True
    obj["body"]["supply"]["colour"] = "blue"


def test_newer_minor_version_with_unknown_members_is_accepted_and_reports_them() -> None:
    payload, topic_name = edited("birth", _add_unknown_members, proto="1.7")
    received = open_message(payload, topic_name, KEYS, now_ms=NOW)
    assert set(received.ignored_fields) == {"extra_top", "body.extra_thing", "body.supply.colour"}
    assert received.envelope.proto == "1.7"


def test_ignored_members_of_nested_lists_are_reported() -> None:
    def edit(obj: dict[str, Any]) -> None:
        obj["body"]["slots"][1]["colour"] = "red"
        obj["body"]["reminders"]["haptic"] = True

    payload, topic_name = edited("config", edit, proto="1.1")
    received = open_message(payload, topic_name, KEYS, now_ms=NOW)
    assert set(received.ignored_fields) == {"body.slots.1.colour", "body.reminders.haptic"}


def test_ignored_members_are_still_signed() -> None:
    payload, topic_name = edited("birth", _add_unknown_members, proto="1.7")
    tampered = payload.replace(b'"colour":"blue"', b'"colour":"bleu"')
    refused(tampered, topic_name, ErrorCode.SIGNATURE, "sig.value")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda o: o["body"].update(extra_thing=1), "body.extra_thing"),
        (lambda o: o.update(extra_top=1), "extra_top"),
        (lambda o: o["body"]["supply"].update(colour="blue"), "body.supply.colour"),
    ],
    ids=["body", "envelope", "nested"],
)
def test_unknown_member_in_the_same_minor_version_is_a_schema_error(edit: Any, field: str) -> None:
    payload, topic_name = edited("birth", edit)
    error = refused(payload, topic_name, ErrorCode.SCHEMA, field)
    assert "unknown member" in error.detail


def test_unknown_member_in_sig_is_refused_even_in_a_newer_minor() -> None:
    payload, topic_name = sealed("heartbeat", proto="1.9")
    obj = json.loads(payload)
    obj["sig"]["extra"] = 1
    refused(json.dumps(obj).encode(), topic_name, ErrorCode.SCHEMA, "sig.extra")


# --- type, schema, strictness ------------------------------------------------------------------------------


def test_unknown_type_is_refused() -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.update(type="dose.eaten"))
    error = refused(payload, topic_name, ErrorCode.UNKNOWN_TYPE, "type")
    assert "dose.eaten" in error.detail


@pytest.mark.parametrize("value", [None, 7, ["heartbeat"]])
def test_type_that_is_not_a_string_is_a_schema_error(value: object) -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.update(type=value))
    refused(payload, topic_name, ErrorCode.SCHEMA, "type")


@pytest.mark.parametrize("member", ["device", "msg_id", "boot_id", "seq", "ts", "body"])
def test_missing_envelope_member_is_a_schema_error(member: str) -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.pop(member))
    error = refused(payload, topic_name, ErrorCode.SCHEMA, member)
    assert "required" in error.detail.lower()


def test_missing_proto_and_sig_are_schema_errors() -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.pop("proto"))
    refused(payload, topic_name, ErrorCode.SCHEMA, "proto")
    payload, topic_name = sealed("heartbeat")
    obj = json.loads(payload)
    del obj["sig"]
    # ErrorCode.SIGNATURE documents "missing ... signature", but the envelope schema catches it first.
    refused(json.dumps(obj).encode(), topic_name, ErrorCode.SCHEMA, "sig")


@pytest.mark.parametrize(
    ("type_name", "member"),
    [("heartbeat", "battery_pct"), ("dose.taken", "taken_at"), ("config", "slots"), ("cmd.lock", "expires")],
)
def test_missing_body_member_is_a_schema_error(type_name: str, member: str) -> None:
    payload, topic_name = edited(type_name, lambda o: o["body"].pop(member))
    refused(payload, topic_name, ErrorCode.SCHEMA, f"body.{member}")


@pytest.mark.parametrize(
    ("type_name", "path", "value"),
    [
        ("heartbeat", "seq", "5"),
        ("heartbeat", "seq", True),
        ("heartbeat", "seq", -1),
        ("heartbeat", "ts", "1795417200000"),
        ("heartbeat", "ts", False),
        ("heartbeat", "body.battery_pct", "95"),
        ("heartbeat", "body.battery_pct", True),
        ("heartbeat", "body.battery_pct", 101),
        ("heartbeat", "body.rssi_dbm", True),
        ("heartbeat", "body.rssi_dbm", "-71"),
        ("heartbeat", "body.on_mains", 1),
        ("heartbeat", "body.on_mains", "true"),
        ("birth", "body.family", "multidose"),
        ("birth", "body.model", 3),
        ("birth", "body.protocols", "1.0"),
        ("birth", "body.supply.doses_left", True),
        ("config", "body.slots.0.due", "1795417200000"),
        ("config", "body.version", 0),
        ("config", "body.timezone", "Europe/Stockholm"),
        ("cmd.roll_verdict", "body.accept", 0),
        ("pot.opened", "body.pot", True),
        ("cmd.nack", "body.reason", "E_NOPE"),
        ("dose.taken", "body.slot_id", "has space"),
    ],
)
def test_ill_typed_member_is_a_schema_error(type_name: str, path: str, value: object) -> None:
    def edit(obj: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value

    payload, topic_name = edited(type_name, edit)
    refused(payload, topic_name, ErrorCode.SCHEMA, path)


def test_body_that_is_not_an_object_is_a_schema_error() -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.update(body=[1]))
    refused(payload, topic_name, ErrorCode.SCHEMA, "body")


def test_several_problems_are_counted_in_the_message() -> None:
    payload, topic_name = edited("heartbeat", lambda o: o["body"].update(battery_pct="x", on_mains="y"))
    error = refused(payload, topic_name, ErrorCode.SCHEMA, "body.battery_pct")
    assert "1 more problem" in error.detail


@pytest.mark.parametrize("device", ["RM3/000017", "RM3+000017", "RM3#000017", "R3", "-RM3", "RM3 0017", ""])
def test_invalid_device_id_is_a_schema_error(device: str) -> None:
    payload, _ = edited("heartbeat", lambda o: o.update(device=device))
    refused(payload, None, ErrorCode.SCHEMA, "device")


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("msg_id", "01kaq5zj0g8r8w6y4m2n3p5q7r"),  # ULID in lower case
        ("msg_id", "81KAQ5ZJ0G8R8W6Y4M2N3P5Q7R"),  # ULID beyond 2**128
        ("msg_id", "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7"),  # 25 characters
        ("msg_id", "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7U"),  # U is not Crockford
        ("boot_id", "019A1B2C-3D4E-7F00-8A1B-2C3D4E5F6A7B"),  # UUIDv7 in upper case
        ("boot_id", "019a1b2c-3d4e-4f00-8a1b-2c3d4e5f6a7b"),  # UUIDv4
        ("boot_id", "019a1b2c3d4e7f008a1b2c3d4e5f6a7b"),  # no dashes
        ("corr_id", "not-an-id"),
    ],
)
def test_invalid_message_ids_are_schema_errors(member: str, value: str) -> None:
    payload, topic_name = edited("heartbeat", lambda o: o.update({member: value}))
    refused(payload, topic_name, ErrorCode.SCHEMA, member)


@pytest.mark.parametrize("type_name", sorted(REQUIRES_CORR))
def test_answers_without_corr_id_are_schema_errors(type_name: str) -> None:
    payload, topic_name = edited(type_name, lambda o: o.pop("corr_id"))
    refused(payload, topic_name, ErrorCode.SCHEMA, "corr_id")


def test_answers_that_need_corr_id_are_the_expected_ones() -> None:
    assert {"cmd.ack", "prov.accepted", "prov.rejected"} <= REQUIRES_CORR


def test_nack_may_omit_corr_id() -> None:
    payload, topic_name = sealed("cmd.nack")
    assert open_message(payload, topic_name, KEYS, now_ms=NOW).envelope.corr_id is None


# --- topics ------------------------------------------------------------------------------------------------


def test_topic_of_another_device_is_refused() -> None:
    payload, _ = sealed("heartbeat")
    refused(payload, topic(OTHER_DEVICE, Channel.TELEMETRY), ErrorCode.TOPIC, "device")


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_wrong_channel_is_refused(type_name: str) -> None:
    payload, _ = sealed(type_name)
    right = MESSAGE_TYPES[type_name].CHANNEL
    for channel in Channel:
        if channel is not right:
            refused(payload, topic(DEVICE, channel), ErrorCode.TOPIC, "type", keys=KeyRing())


@pytest.mark.parametrize(
    "topic_name",
    [
        "",
        "dsp",
        "dsp/v1/RM3-000017/up",
        "dsp/v1/RM3-000017/up/event/extra",
        "dsp/v1/RM3-000017/up/events",
        "dsp/v1/RM3-000017/down/telemetry",
        "dsp/v1/+/up/telemetry",
        "dsp/v1/#",
        "dsp/v1/RM3+0017/up/telemetry",
        "DSP/v1/RM3-000017/up/telemetry",
        "/dsp/v1/RM3-000017/up/telemetry",
        "dsp/v2/RM3-000017/up/telemetry",
        "dsp/v0/RM3-000017/up/telemetry",
        "dsp/V1/RM3-000017/up/telemetry",
        "spBv1.0/group/NDATA/node",
        "$SYS/broker/uptime",
    ],
)
def test_non_protocol_topics_are_refused(topic_name: str) -> None:
    payload, _ = sealed("heartbeat")
    refused(payload, topic_name, ErrorCode.TOPIC, None)


def test_no_topic_skips_the_topic_check() -> None:
    payload, _ = sealed("heartbeat")
    open_message(payload, None, KEYS, now_ms=NOW)


def test_schema_is_checked_before_the_topic() -> None:
    payload, _ = edited("heartbeat", lambda o: o["body"].pop("battery_pct"))
    refused(payload, "not/a/topic", ErrorCode.SCHEMA, "body.battery_pct")


# --- signatures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["Ed448", "ed25519", "EdDSA", "none", ""])
def test_algorithm_other_than_ed25519_is_refused(alg: str) -> None:
    payload, topic_name = sealed("heartbeat")
    obj = json.loads(payload)
    obj["sig"]["alg"] = alg
    refused(json.dumps(obj).encode(), topic_name, ErrorCode.SIGNATURE, "sig.alg")


def _with_sig_value(value: str) -> tuple[bytes, str]:
    payload, topic_name = sealed("heartbeat")
    obj = json.loads(payload)
    obj["sig"]["value"] = value
    return json.dumps(obj).encode(), topic_name


def test_malformed_signature_values_are_schema_errors() -> None:
    """An ill-formed ``sig`` member is ``E_SCHEMA`` (see ``ErrorCode.SIGNATURE``); 86 canonical characters."""
    good = json.loads(sealed("heartbeat")[0])["sig"]["value"]
    for value in [
        good[:85] + "B",  # non-zero spare bits in the last character
        good.replace("-", "+").replace("_", "/"),  # base64, not base64url
        good[:40] + "." + good[41:],
        good[:84] + "==",  # padded
        good[:85] + "=",
        "=" + good[1:],
        good[:85] + "!",  # not base64url: 85 data characters cannot be decoded
        good[:84] + "!!",  # decodes to 63 bytes: wrong length
        "*" * 86,  # decodes to nothing
        good[:85] + "\u00e9",  # not ASCII
    ]:
        if value != good:
            refused(*_with_sig_value(value), ErrorCode.SCHEMA, "sig.value")


@pytest.mark.parametrize("length", [0, 85, 87, 88])
def test_signature_value_of_the_wrong_length_is_refused(length: int) -> None:
    # The envelope schema fixes the length (86 characters), so this is E_SCHEMA, not E_SIGNATURE.
    refused(*_with_sig_value("A" * length), ErrorCode.SCHEMA, "sig.value")


@pytest.mark.parametrize("kid", ["ABCDEF0123456789", "0123", "0123456789abcdefg", ""])
def test_malformed_kid_is_a_schema_error(kid: str) -> None:
    payload, topic_name = sealed("heartbeat")
    obj = json.loads(payload)
    obj["sig"]["kid"] = kid
    refused(json.dumps(obj).encode(), topic_name, ErrorCode.SCHEMA, "sig.kid")


def test_every_other_encoding_of_the_signature_is_refused() -> None:
    """No single-character change of ``sig.value`` is accepted (no base64 malleability)."""
    good = json.loads(sealed("heartbeat")[0])["sig"]["value"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=."
    for index in range(len(good)):
        for char in alphabet:
            if char != good[index]:
                with pytest.raises(ProtocolError):
                    open_message(*_with_sig_value(good[:index] + char + good[index + 1 :]), KEYS, now_ms=NOW)


def test_unknown_kid_is_refused() -> None:
    payload, topic_name = edited("heartbeat", signer=STRANGER_SIGNER)
    error = refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid")
    assert DEVICE in error.detail
    payload, topic_name = edited("cmd.lock", signer=STRANGER_SIGNER)
    error = refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid")
    assert "hub" in error.detail


def test_keys_are_bound_to_their_sender() -> None:
    payload, topic_name = edited("heartbeat", signer=OTHER_DEVICE_SIGNER)  # registered, for the other device
    refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid")
    payload, topic_name = edited("cmd.unlock", signer=DEVICE_SIGNER)  # a device key cannot sign downlink
    refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid")
    payload, topic_name = edited("heartbeat", signer=HUB_SIGNER)  # nor the hub key uplink
    refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid")


def test_signature_by_another_key_under_a_registered_kid_is_refused() -> None:
    payload, topic_name = edited("heartbeat", signer=STRANGER_SIGNER)
    obj = json.loads(payload)
    obj["sig"]["kid"] = DEVICE_SIGNER.kid
    refused(json.dumps(obj).encode(), topic_name, ErrorCode.SIGNATURE, "sig.value")


def test_removed_key_is_unknown() -> None:
    ring = key_ring()
    ring.remove(DEVICE, DEVICE_SIGNER.kid)
    payload, topic_name = sealed("heartbeat")
    refused(payload, topic_name, ErrorCode.UNKNOWN_KEY, "sig.kid", keys=ring)


def test_signature_of_the_right_length_but_wrong_bytes_is_refused() -> None:
    refused(*_with_sig_value(b64url(bytes(64))), ErrorCode.SIGNATURE, "sig.value")


# --- clock skew --------------------------------------------------------------------------------------------


def test_skew_bounds() -> None:
    for ts in (NOW + MAX_SKEW_MS, NOW - MAX_AGE_MS, NOW):
        payload, topic_name = sealed("dose.taken", ts=ts)
        open_message(payload, topic_name, KEYS, now_ms=NOW)
    payload, topic_name = sealed("dose.taken", ts=NOW + MAX_SKEW_MS + 1)
    assert "future" in refused(payload, topic_name, ErrorCode.SKEW, "ts").detail
    payload, topic_name = sealed("dose.taken", ts=NOW - MAX_AGE_MS - 1)
    assert "older" in refused(payload, topic_name, ErrorCode.SKEW, "ts").detail
    open_message(payload, topic_name, KEYS, now_ms=None)  # no clock given: no skew check


@pytest.mark.parametrize("type_name", sorted(SKEW_EXEMPT))
def test_skew_exempt_types(type_name: str) -> None:
    for ts in (0, NOW + 10 * MAX_AGE_MS):
        payload, topic_name = sealed(type_name, ts=ts)
        open_message(payload, topic_name, KEYS, now_ms=NOW)


def test_skew_exempt_set_is_the_documented_one() -> None:
    assert frozenset({"birth", "death", "state", "fault.clock_lost", "prov.request", "config"}) == SKEW_EXEMPT


def test_skew_is_checked_before_the_signature() -> None:
    payload, topic_name = edited("dose.taken", signer=STRANGER_SIGNER, ts=NOW + MAX_SKEW_MS + 1)
    refused(payload, topic_name, ErrorCode.SKEW, "ts")


# --- model validators --------------------------------------------------------------------------------------


def _set(path: str, value: object) -> Any:
    def edit(obj: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = obj["body"]
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value

    return edit


@pytest.mark.parametrize(
    ("type_name", "edit", "field", "fragment"),
    [
        ("config", _set("slots.0.opens", NOW + 1), "body.slots.0", "opens <= due < closes"),
        ("config", _set("slots.0.closes", NOW), "body.slots.0", "opens <= due < closes"),
        ("config", _set("slots.0.pot", 3), "body.slots.0", "not both"),
        ("dose.taken", _set("pot", 3), "body", "not both"),
        ("cmd.resync", lambda o: o["body"].pop("to_seq"), "body", "go together"),
        ("cmd.resync", lambda o: o["body"].pop("boot_id"), "body", "go together"),
        ("cmd.resync", _set("from_seq", 44), "body", "from_seq must not be greater than to_seq"),
        ("config", _set("slots.1.slot_id", "s-20261123-0800"), "body", "unique"),
        ("config", lambda o: o["body"]["slots"].reverse(), "body", "sorted"),
        ("cmd.roll_verdict", lambda o: o["body"].pop("reason"), "body", "needs a reason"),
        ("cmd.predispense", _set("until", NOW), "body", "until must be after from"),
        ("cmd.predispense", _set("until", NOW - 1), "body", "until must be after from"),
        ("dose.predispensed", _set("dispensed", 5), "body", "must not exceed requested"),
        ("dose.predispensed", _set("dispensed", 1), "body", "number of slot_ids"),
        ("fault.cleared", _set("fault", "fault.mains_restored"), "body", "fault must be one of"),
        ("fault.cleared", _set("fault", "fault.unheard_of"), "body", "fault must be one of"),
        ("fault.cleared", _set("fault", "dose.taken"), "body", "fault must be one of"),
    ],
)
def test_model_validators_give_schema_errors(type_name: str, edit: Any, field: str, fragment: str) -> None:
    payload, topic_name = edited(type_name, edit)
    error = refused(payload, topic_name, ErrorCode.SCHEMA, field)
    assert fragment in error.detail


def test_model_validators_accept_the_valid_variants() -> None:
    for type_name, edit in [
        ("cmd.roll_verdict", lambda o: o["body"].update(accept=True, reason=None)),
        ("cmd.roll_verdict", lambda o: (o["body"].update(accept=True), o["body"].pop("reason"))),
        ("config", _set("slots.0.opens", NOW)),  # opens == due
        ("config", lambda o: o["body"]["slots"][0].pop("pouch_id")),  # see the report: neither is accepted
        ("dose.predispensed", lambda o: o["body"].update(requested=2)),
        ("fault.cleared", _set("fault", "fault.mains_lost")),
        ("cmd.resync", lambda o: [o["body"].pop(k) for k in ("boot_id", "from_seq", "to_seq")]),
        ("cmd.resync", _set("from_seq", 43)),
        ("dose.taken", lambda o: (o["body"].pop("pouch_id"), o["body"].update(pot=3))),
    ]:
        payload, topic_name = edited(type_name, edit)
        open_message(payload, topic_name, KEYS, now_ms=NOW)


# --- the device's checks on downlink -----------------------------------------------------------------------


def _received(type_name: str, **kwargs: Any) -> Received:
    payload, topic_name = sealed(type_name, **kwargs)
    return open_message(payload, topic_name, KEYS, now_ms=NOW)


def test_downlink_check() -> None:
    check = DownlinkCheck(DEVICE)
    lock = _received("cmd.lock")
    expires = MESSAGE_TYPES["cmd.lock"].EXAMPLE["expires"]
    assert isinstance(expires, int)
    assert check.check(lock, now_ms=expires, held_config_version=None) is True
    assert check.check(lock, now_ms=None, held_config_version=None) is True
    with pytest.raises(ProtocolError) as info:
        check.check(lock, now_ms=expires + 1, held_config_version=None)
    assert (info.value.code, info.value.field) == (ErrorCode.EXPIRED, "body.expires")

    with pytest.raises(ProtocolError) as info:
        DownlinkCheck(OTHER_DEVICE).check(lock, now_ms=NOW, held_config_version=None)
    assert (info.value.code, info.value.field) == (ErrorCode.TOPIC, "device")

    config = _received("config")
    version = MESSAGE_TYPES["config"].EXAMPLE["version"]
    assert isinstance(version, int)
    assert check.check(config, now_ms=NOW, held_config_version=None) is True
    assert check.check(config, now_ms=NOW, held_config_version=version - 1) is True
    assert check.check(config, now_ms=NOW, held_config_version=version) is False  # retained copy again
    with pytest.raises(ProtocolError) as info:
        check.check(config, now_ms=NOW, held_config_version=version + 1)
    assert (info.value.code, info.value.field) == (ErrorCode.STALE_VERSION, "body.version")
    assert str(version + 1) in info.value.detail


def test_set_time_is_exempt_from_expiry() -> None:
    set_time = _received("cmd.set_time")
    expires = MESSAGE_TYPES["cmd.set_time"].EXAMPLE["expires"]
    assert isinstance(expires, int)
    assert DownlinkCheck(DEVICE).check(set_time, now_ms=expires + 10**9, held_config_version=None) is True


@pytest.mark.parametrize(
    ("type_name", "path", "value"),
    [
        ("heartbeat", "uptime_s", 2**40 + 1),
        ("config", "volume", 11),
        ("config", "heartbeat_s", 5),
        ("config", "heartbeat_s", 3_601),
        ("config", "almost_empty_doses", 65),
        ("config", "reminders.repeat_every_s", 59),
        ("config", "reminders.repeat_max", 21),
        ("config", "reminders.notice_before_s", 14_401),
        ("dose.reminder", "attempt", 101),
        ("tray.loaded", "pots_filled", 65),
        ("cmd.identify", "seconds", 0),
        ("cmd.identify", "seconds", 301),
    ],
)
def test_per_field_bounds_of_counts_are_enforced(type_name: str, path: str, value: int) -> None:
    payload, topic_name = edited(type_name, _set(path, value))
    refused(payload, topic_name, ErrorCode.SCHEMA, f"body.{path}")


def test_every_downlink_type_is_a_command_or_config() -> None:
    downlink = [t for t in ALL_TYPES if MESSAGE_TYPES[t].CHANNEL.direction is Direction.DOWNLINK]
    assert {MESSAGE_TYPES[t].CHANNEL for t in downlink} == {
        Channel.CMD,
        Channel.CONFIG,
        Channel.PROV_RESPONSE,
    }
