"""Negative test vectors: payloads every receiver must refuse, each with exactly one right code and field."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firmware_protocol.canonical import (
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    MAX_SAFE_INT,
    JsonObject,
    canonical_bytes,
)
from firmware_protocol.codec import MAX_AGE_MS, MAX_SKEW_MS
from firmware_protocol.docgen.material import DEVICE_ID, NOW_MS, OTHER_DEVICE_ID, TestMaterial
from firmware_protocol.docgen.vectors import example_envelopes, sign
from firmware_protocol.errors import ErrorCode
from firmware_protocol.messages import MESSAGE_TYPES
from firmware_protocol.signing import ALGORITHM, Signer, b64url
from firmware_protocol.topics import PREFIX, Channel, Topic

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True, slots=True)
class _Bad:
    name: str
    description: str
    payload: bytes
    expected_code: ErrorCode
    expected_field: str | None
    topic: str | None = None
    now_ms: int | None = None


def _replace(payload: bytes, old: bytes, new: bytes) -> bytes:
    if payload.count(old) != 1:
        msg = f"{old!r} must occur exactly once in the payload"
        raise ValueError(msg)
    return payload.replace(old, new)


def _bad_vectors(material: TestMaterial) -> list[_Bad]:
    envelopes = {e.type: e for e, _ in example_envelopes(material)}
    base_env = envelopes["dose.taken"]
    base = base_env.unsigned_object()
    good = sign(base, material.device).payload
    dev = material.device
    M, S = ErrorCode.MALFORMED, ErrorCode.SCHEMA  # noqa: N806 - short names keep the table readable

    def mutated(
        change: Callable[[dict[str, Any]], None], signer: Signer = dev, source: str = "dose.taken"
    ) -> bytes:
        obj = copy.deepcopy(envelopes[source].unsigned_object())
        change(obj)
        return sign(obj, signer).payload

    def setter(path: str, value: object) -> Callable[[dict[str, Any]], None]:
        def change(obj: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            for part in parents:
                obj = obj[part]
            obj[last] = value

        return change

    def deleter(path: str) -> Callable[[dict[str, Any]], None]:
        def change(obj: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            for part in parents:
                obj = obj[part]
            del obj[last]

        return change

    def nested(levels: int) -> object:
        value: object = 1
        for _ in range(levels):
            value = [value]
        return value

    taken = f'"taken_at":{base_env.body.model_dump()["taken_at"]}'.encode()
    seq = f'"seq":{base_env.seq},'.encode()
    pouch = b'"pouch_id":"P-4711-0042"'
    pad_prefix, pad_suffix = b'{"pad":"', b'"}'
    pad = MAX_PAYLOAD_BYTES + 1 - len(pad_prefix) - len(pad_suffix)
    signature = sign(base, dev).signature

    def _unchanged(obj: dict[str, Any]) -> None:
        del obj  # sign the message as it is

    def altered_signature(value: str) -> Callable[[dict[str, Any]], None]:
        def change(obj: dict[str, Any]) -> None:
            obj["sig"] = {"alg": ALGORITHM, "kid": dev.kid, "value": value}

        return change

    def other_message(obj: dict[str, Any]) -> None:
        obj["seq"] = 99
        altered_signature(b64url(signature))(obj)

    def unsigned_with(change: Callable[[dict[str, Any]], None]) -> bytes:
        obj = copy.deepcopy(base)
        change(obj)
        return canonical_bytes(obj)

    return [
        _Bad("not UTF-8", "An invalid UTF-8 sequence (FF FE) inside a string.",
             _replace(good, b"P-4711-0042", b"P-4711-\xff\xfe42"), M, None),
        _Bad("byte-order mark", "A valid payload preceded by the UTF-8 BOM EF BB BF.",
             b"\xef\xbb\xbf" + good, M, None),
        _Bad("empty payload", "Zero bytes.", b"", M, None),
        _Bad("truncated JSON", "The last byte of a valid payload is missing.", good[:-1], M, None),
        _Bad("top level is an array", "JSON, but not an object.", b'[{"proto":"1.0"}]', M, None),
        _Bad("top level is a string", "JSON, but not an object.", b'"dose.taken"', M, None),
        _Bad("fraction", "A number with a fraction.",
             _replace(good, taken, taken + b".5"), M, None),
        _Bad("integral float", "1.0 is a float on the wire even though its value is integral.",
             _replace(good, seq, b'"seq":1.0,'), M, None),
        _Bad("exponent", "A number with an exponent.", _replace(good, seq, b'"seq":1e2,'), M, None),
        _Bad("NaN", "NaN is not JSON.", _replace(good, taken, b'"taken_at":NaN'), M, None),
        _Bad("duplicate member", "pouch_id appears twice in the body.",
             _replace(good, pouch, pouch + b',"pouch_id":"P-4711-0043"'), M, None),
        _Bad("invalid member name", "Member names are 1-64 characters of [A-Za-z0-9_]; this one has '-'.",
             mutated(setter("body.slot-id", "x")), M, None),
        _Bad("raw control character", "An unescaped line feed inside a string.",
             _replace(good, b"P-4711-0042", b"P-4711\n0042"), M, None),
        _Bad("nesting too deep", f"An array nested so that a container sits at depth {MAX_DEPTH + 1} "
             "(the top-level object is depth 1).",
             mutated(setter("body.x", nested(MAX_DEPTH - 1))), M, None),
        _Bad("nesting at the limit", f"Depth {MAX_DEPTH} is accepted by the parser; the unknown member "
             "is then a schema error.",
             mutated(setter("body.x", nested(MAX_DEPTH - 2))), S, "body.x"),
        _Bad("unsafe integer", "seq = 2**53, outside +-(2**53 - 1).",
             mutated(setter("seq", MAX_SAFE_INT + 1)), M, None),
        _Bad("unsafe negative integer", "-(2**53) in the body.",
             mutated(setter("body.due", -(MAX_SAFE_INT + 1))), M, None),
        _Bad("too large", f"{MAX_PAYLOAD_BYTES + 1} bytes: refused before parsing.",
             pad_prefix + b"a" * pad + pad_suffix, ErrorCode.TOO_LARGE, None),
        _Bad("size at the limit", f"Exactly {MAX_PAYLOAD_BYTES} bytes pass the size check; the object "
             "then lacks proto.",
             pad_prefix + b"a" * (pad - 1) + pad_suffix, S, "proto"),
        _Bad("unsupported major version", "proto 2.0.", mutated(setter("proto", "2.0")),
             ErrorCode.UNSUPPORTED_VERSION, "proto"),
        _Bad("proto not a string", "proto is the number 1.", mutated(setter("proto", 1)), S, "proto"),
        _Bad("unknown type", "type dose.eaten does not exist.", mutated(setter("type", "dose.eaten")),
             ErrorCode.UNKNOWN_TYPE, "type"),
        _Bad("missing body field", "dose.taken without taken_at.", mutated(deleter("body.taken_at")),
             S, "body.taken_at"),
        _Bad("missing envelope field", "No msg_id.", mutated(deleter("msg_id")), S, "msg_id"),
        _Bad("missing signature", "The unsigned envelope.", canonical_bytes(base), S, "sig"),
        _Bad("wrong type: string for integer", 'seq is "7".', mutated(setter("seq", "7")), S, "seq"),
        _Bad("wrong type: integer for boolean", "on_mains is 1 (booleans are strict).",
             mutated(setter("body.on_mains", 1), source="heartbeat"), S, "body.on_mains"),
        _Bad("pattern", "A device id with a space.", mutated(setter("device", "RM3 000017")), S, "device"),
        _Bad("enum", "An unknown reason.",
             mutated(setter("body.reason", "lost"), source="dose.not_dispensed"), S, "body.reason"),
        _Bad("model rule", "cmd.predispense with until before from.",
             mutated(setter("body.until", 1), signer=material.hub, source="cmd.predispense"), S, "body"),
        _Bad("unknown body member in a 1.0 message", "body.colour is not defined in 1.0.",
             mutated(setter("body.colour", "blue")), S, "body.colour"),
        _Bad("unknown envelope member in a 1.0 message", "trace is not defined in 1.0.",
             mutated(setter("trace", "a1b2")), S, "trace"),
        _Bad("answer without corr_id", "cmd.ack must carry the msg_id of the command it answers.",
             mutated(deleter("corr_id"), source="cmd.ack"), S, "corr_id"),
        _Bad("device differs from topic", f"The topic names {OTHER_DEVICE_ID}.", good, ErrorCode.TOPIC,
             "device", topic=str(Topic(OTHER_DEVICE_ID, Channel.EVENT))),
        _Bad("wrong channel", "dose.taken published on up/state.", good, ErrorCode.TOPIC, "type",
             topic=str(Topic(DEVICE_ID, Channel.STATE))),
        _Bad("unsupported topic version", "A v2 topic.", good, ErrorCode.TOPIC, None,
             topic=f"dsp/v2/{DEVICE_ID}/{Channel.EVENT.value}"),
        _Bad("unknown channel", "up/events is not a channel.", good, ErrorCode.TOPIC, None,
             topic=f"{PREFIX}/{DEVICE_ID}/up/events"),
        _Bad("not a protocol topic", "Not of the form dsp/v1/<device>/<channel>.", good, ErrorCode.TOPIC,
             None, topic=f"dispensers/{DEVICE_ID}/event"),
        _Bad("clock ahead", f"ts is {MAX_SKEW_MS + 1} ms ahead of the receiver's clock now_ms.",
             mutated(setter("ts", NOW_MS + MAX_SKEW_MS + 1)), ErrorCode.SKEW, "ts", now_ms=NOW_MS),
        _Bad("older than the replay horizon", f"ts is {MAX_AGE_MS + 1} ms behind now_ms.",
             mutated(setter("ts", NOW_MS - MAX_AGE_MS - 1)), ErrorCode.SKEW, "ts", now_ms=NOW_MS),
        _Bad("unknown algorithm", "sig.alg is HS256.",
             unsigned_with(lambda o: o.update(sig={"alg": "HS256", "kid": dev.kid, "value": "A" * 86})),
             ErrorCode.SIGNATURE, "sig.alg"),
        _Bad("signature not base64url", "sig.value is 86 characters that are not base64url.",
             unsigned_with(altered_signature("!" * 86)), S, "sig.value"),
        _Bad("signature with spare bits set", "The last base64url character of 64 bytes has 2 spare bits; "
             "they must be zero (canonical encoding).",
             unsigned_with(altered_signature(b64url(signature)[:-1] + "B")), S, "sig.value"),
        _Bad("altered body", "taken_at changed after signing.",
             _replace(good, taken, taken[:-1] + b"1"), ErrorCode.SIGNATURE, "sig.value"),
        _Bad("signature of another message", "A valid signature, but over other bytes (seq changed).",
             unsigned_with(other_message),
             ErrorCode.SIGNATURE, "sig.value"),
        _Bad("wrong key, right kid", "Signed with the unregistered key but naming the device key's kid.",
             _sign_as(base, material.unregistered, dev.kid), ErrorCode.SIGNATURE, "sig.value"),
        _Bad("enrollment signed with another key", "prov.request signed with a key other than the CSR's.",
             mutated(_unchanged, signer=material.unregistered, source="prov.request"),
             ErrorCode.UNKNOWN_KEY, "sig.kid"),
        _Bad("unregistered key", "Signed with a key registered for nobody.",
             mutated(_unchanged, signer=material.unregistered), ErrorCode.UNKNOWN_KEY, "sig.kid"),
        _Bad("uplink signed with the hub key", "The hub key is not a key of the device.",
             mutated(_unchanged, signer=material.hub), ErrorCode.UNKNOWN_KEY, "sig.kid"),
        _Bad("downlink signed with the device key", "A command must be signed by the hub.",
             mutated(_unchanged, signer=dev, source="cmd.unlock"), ErrorCode.UNKNOWN_KEY, "sig.kid"),
    ]  # fmt: skip


def _sign_as(obj: JsonObject, signer: Signer, kid: str) -> bytes:
    """Sign with ``signer`` but name ``kid`` in ``sig``: a forged or mixed-up key id."""
    signed = canonical_bytes(obj)
    sig: JsonObject = {"alg": ALGORITHM, "kid": kid, "value": b64url(signer.private_key.sign(signed))}
    return canonical_bytes({**obj, "sig": sig})


def invalid_vectors(material: TestMaterial) -> list[dict[str, Any]]:
    """Negative vectors: payloads every receiver must refuse with the given code and field."""
    default_topic = str(Topic(DEVICE_ID, Channel.EVENT))
    out = []
    for bad in _bad_vectors(material):
        type_topic = default_topic
        try:
            parsed = json.loads(bad.payload)
            if isinstance(parsed, dict) and parsed.get("type") in MESSAGE_TYPES:
                type_topic = str(Topic(DEVICE_ID, MESSAGE_TYPES[parsed["type"]].CHANNEL))
        except ValueError:
            pass
        entry: dict[str, Any] = {
            "name": bad.name,
            "description": bad.description,
            "topic": bad.topic or type_topic,
            "expected_code": bad.expected_code.value,
            "expected_field": bad.expected_field,
        }
        text = _text_or_none(bad.payload)
        if text is None:
            entry["payload_hex"] = bad.payload.hex()
        else:
            entry["payload"] = text
        if bad.now_ms is not None:
            entry["now_ms"] = bad.now_ms
        out.append(entry)
    return out


def _text_or_none(payload: bytes) -> str | None:
    """The payload as text when that is unambiguous (UTF-8 without BOM), else ``None``: use hex."""
    if payload.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
