"""Encoding and decoding envelopes (sans-I/O: bytes and topic strings in, objects or errors out).

The envelope::

    {
        "proto": "1.0",
        "type": "dose.taken",
        "device": "RM3-000017",
        "msg_id": "<ULID or UUIDv7>",
        "boot_id": "<ULID or UUIDv7>",
        "seq": 42,
        "ts": 1795417440000,
        "corr_id": "<msg_id this answers, optional>",
        "body": {...},
        "sig": {"alg": "Ed25519", "kid": "<16 hex>", "value": "<base64url>"},
    }

Receiving, in order (the first failing check raises; the order is part of the contract, so that every
implementation reports the same code for the same bad message):

1. size, UTF-8 and the JSON rules (``E_TOO_LARGE``, ``E_MALFORMED``);
2. ``proto``: a major version other than 1 is ``E_VERSION``;
3. ``type`` known to this version (``E_UNKNOWN_TYPE``);
4. envelope and body schema (``E_SCHEMA``), including the shape of ``sig`` and, for ``prov.request``,
   a readable CSR for an Ed25519 key with a valid self-signature; members unknown to this receiver are an
   error when ``proto``'s minor version is this receiver's or older, and are ignored when it is newer
   (``sig`` never takes unknown members);
5. topic: a protocol topic whose device id equals ``device`` and whose channel carries ``type``
   (``E_TOPIC``);
6. clock skew, when the caller passes ``now_ms`` (``E_SKEW``);
7. signature: ``sig.alg`` must be ``Ed25519`` (``E_SIGNATURE``); the key is found by (sender,
   ``sig.kid``) (``E_UNKNOWN_KEY``: device key for uplink, hub key for downlink, the CSR's key for
   ``prov.request``); then Ed25519 verification (``E_SIGNATURE``).

Deduplication and sequence checks need receiver state and live in ``receiver``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar, get_args

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware_protocol.canonical import JsonObject, canonical_bytes, parse
from firmware_protocol.errors import (
    ExpiredError,
    ProtocolError,
    SchemaError,
    SignatureError,
    SkewError,
    StaleVersionError,
    TopicError,
    UnknownKeyError,
    UnknownTypeError,
    UnsupportedVersionError,
)
from firmware_protocol.ids import KEY_ID_PATTERN, key_id, new_ulid
from firmware_protocol.messages import (
    MESSAGE_TYPES,
    Body,
    Command,
    Config,
    Part,
    ProvisionAccepted,
    ProvisionRequest,
    SetTime,
)
from firmware_protocol.messages.common import VERSION_PATTERN, DeviceId, MessageId, Millis, Seq, VersionString
from firmware_protocol.signing import (
    ALGORITHM,
    KeyResolver,
    Signer,
    b64url_decode,
    kid_of,
    require_key,
    verify_signature,
)
from firmware_protocol.topics import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    Direction,
    Topic,
    parse_topic,
)

MAX_SKEW_MS = 300_000
"""A device timestamp may be at most 5 minutes ahead of the receiver's clock."""
MAX_AGE_MS = 7 * 24 * 3_600_000
"""Replay horizon: messages older than 7 days are refused; receivers remember message ids this long."""
SKEW_EXEMPT: frozenset[str] = frozenset(
    {"birth", "death", "state", "fault.clock_lost", "prov.request", "config"}
)
"""Types whose ``ts`` is not checked: a birth, clock fault or enrollment request must get through from a
device whose clock is wrong (so that the hub can set it); a Last Will is composed at connect time; a
retained ``state`` or ``config`` may be old by design (a config is protected by its version instead)."""
SIGNATURE_VALUE_PATTERN = r"^[A-Za-z0-9_-]{85}[AQgw]$"
"""64 bytes in base64url without padding: 86 characters, the last one with its 2 spare bits zero."""

B = TypeVar("B", bound=Body)
_VERSION = re.compile(VERSION_PATTERN)


class _Signature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    alg: str = Field(max_length=32)
    kid: str = Field(pattern=KEY_ID_PATTERN)
    value: str = Field(pattern=SIGNATURE_VALUE_PATTERN)


class _Header(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    proto: VersionString
    type: str
    device: DeviceId
    msg_id: MessageId
    boot_id: MessageId
    seq: Seq
    ts: Millis
    corr_id: MessageId | None = None
    body: dict[str, Any]
    sig: _Signature


@dataclass(frozen=True, slots=True)
class Envelope(Generic[B]):
    """A message: header fields and a typed body. ``type`` is the body's ``TYPE``."""

    body: B
    device: str
    boot_id: str
    seq: int
    ts: int
    msg_id: str = field(default_factory=new_ulid)
    corr_id: str | None = None
    proto: str = PROTOCOL_VERSION

    @property
    def type(self) -> str:
        """The message type."""
        return self.body.TYPE

    @property
    def topic(self) -> str:
        """The topic this message is published on."""
        return str(Topic(self.device, self.body.CHANNEL))

    def unsigned_object(self) -> JsonObject:
        """The envelope as a JSON object without ``sig``: what gets canonicalised and signed."""
        obj: JsonObject = {
            "proto": self.proto,
            "type": self.type,
            "device": self.device,
            "msg_id": self.msg_id,
            "boot_id": self.boot_id,
            "seq": self.seq,
            "ts": self.ts,
            "body": self.body.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        if self.corr_id is not None:
            obj["corr_id"] = self.corr_id
        return obj


@dataclass(frozen=True, slots=True)
class Received:
    """A decoded message with what signature verification needs."""

    envelope: Envelope[Body]
    alg: str
    kid: str
    signature: bytes
    signed_bytes: bytes
    ignored_fields: tuple[str, ...] = ()
    """Members of a newer minor version that this receiver ignored."""
    enrollment_key: Ed25519PublicKey | None = None
    """For ``prov.request``: the key certified by the CSR, which signs the request."""

    @property
    def direction(self) -> Direction:
        """Uplink (device key) or downlink (hub key)."""
        return self.envelope.body.CHANNEL.direction


def seal(envelope: Envelope[Any], signer: Signer) -> bytes:
    """Sign ``envelope`` and return the payload to publish (canonical JSON, UTF-8)."""
    obj = envelope.unsigned_object()
    signed = canonical_bytes(obj)
    obj["sig"] = signer.signature_member(signed)  # type: ignore[assignment]  # dict[str, str] is JSON
    return canonical_bytes(obj)


def _schema_error(exc: ValidationError, prefix: str) -> SchemaError:
    first = exc.errors(include_url=False)[0]
    path = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    more = exc.error_count() - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return SchemaError(f"{first['msg']}{tail}", field=path or None)


@cache
def _nested_part_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """Names of the fields of ``cls`` that may hold ``Part`` objects (directly or in a list)."""

    def holds_part(annotation: object) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, Part):
            return True
        return any(holds_part(arg) for arg in get_args(annotation))

    return tuple(name for name, info in cls.model_fields.items() if holds_part(info.annotation))


def _extra_members(model: BaseModel, path: str) -> list[str]:
    """Dotted paths of members not defined by the schema, anywhere in ``model``."""
    found = [f"{path}{name}" for name in (model.__pydantic_extra__ or ())]
    for name in _nested_part_fields(type(model)):
        value = getattr(model, name)
        if isinstance(value, list):
            for index, item in enumerate(value):
                found += _extra_members(item, f"{path}{name}.{index}.")
        elif value is not None:
            found += _extra_members(value, f"{path}{name}.")
    return found


def _version(obj: JsonObject) -> int:
    """Check ``proto`` (step 2) and return its minor version."""
    proto = obj.get("proto")
    if not isinstance(proto, str):
        raise SchemaError('missing or not a string; expected e.g. "1.0"', field="proto")
    match = _VERSION.fullmatch(proto)
    if match is None:
        raise SchemaError(
            f'{proto[:20]!r} is not <major>.<minor> in plain decimal, e.g. "1.0"', field="proto"
        )
    if int(match[1]) != PROTOCOL_MAJOR:
        raise UnsupportedVersionError(
            f"protocol {proto} is not supported; this receiver speaks {PROTOCOL_MAJOR}.x", field="proto"
        )
    return int(match[2])


def decode(payload: bytes, topic: str | None = None, *, now_ms: int | None = None) -> Received:
    """Decode and validate a payload (steps 1-6 of the module docstring); the signature is not checked."""
    obj = parse(payload)
    minor = _version(obj)
    type_name = obj.get("type")
    if not isinstance(type_name, str):
        raise SchemaError("missing or not a string", field="type")
    body_cls = MESSAGE_TYPES.get(type_name)
    if body_cls is None:
        raise UnknownTypeError(f"unknown message type {type_name[:40]!r}", field="type")
    try:
        header = _Header.model_validate(obj)
    except ValidationError as exc:
        raise _schema_error(exc, "") from None
    try:
        body = body_cls.model_validate(header.body)
    except ValidationError as exc:
        raise _schema_error(exc, "body") from None
    extras = [*_extra_members(header, ""), *_extra_members(body, "body.")]
    if extras and minor <= PROTOCOL_MINOR:
        raise SchemaError(
            f"unknown member in a {header.proto} message (typo, or wrong version?)", field=extras[0]
        )
    enrollment_key = csr_public_key(body.csr) if isinstance(body, ProvisionRequest) else None
    if body_cls.REQUIRES_CORR_ID and header.corr_id is None:
        raise SchemaError(f"{type_name} must carry the msg_id it answers", field="corr_id")
    envelope: Envelope[Body] = Envelope(
        body=body,
        device=header.device,
        boot_id=header.boot_id,
        seq=header.seq,
        ts=header.ts,
        msg_id=header.msg_id,
        corr_id=header.corr_id,
        proto=header.proto,
    )
    if topic is not None:
        _check_topic(topic, envelope)
    if now_ms is not None:
        check_skew(envelope, now_ms)
    del obj["sig"]
    return Received(
        envelope,
        alg=header.sig.alg,
        kid=header.sig.kid,
        signature=b64url_decode(header.sig.value, field="sig.value"),
        signed_bytes=canonical_bytes(obj),
        ignored_fields=tuple(extras),
        enrollment_key=enrollment_key,
    )


def _check_topic(name: str, envelope: Envelope[Body]) -> None:
    parsed = parse_topic(name)
    if parsed.device_id != envelope.device:
        raise TopicError(
            f"device {envelope.device!r} in the envelope differs from {parsed.device_id!r} in the topic",
            field="device",
        )
    if parsed.channel is not envelope.body.CHANNEL:
        raise TopicError(
            f"{envelope.type} belongs on {envelope.body.CHANNEL.value}, not {parsed.channel.value}",
            field="type",
        )


def check_skew(envelope: Envelope[Body], now_ms: int) -> None:
    """Refuse timestamps more than ``MAX_SKEW_MS`` ahead or ``MAX_AGE_MS`` behind ``now_ms``."""
    if envelope.type in SKEW_EXEMPT:
        return
    if envelope.ts > now_ms + MAX_SKEW_MS:
        ahead = (envelope.ts - now_ms) // 1000
        raise SkewError(f"timestamp is {ahead} s in the future; at most {MAX_SKEW_MS // 1000} s", field="ts")
    if envelope.ts < now_ms - MAX_AGE_MS:
        raise SkewError(
            f"timestamp is older than the {MAX_AGE_MS // 86_400_000}-day replay horizon", field="ts"
        )


def verify(received: Received, keys: KeyResolver) -> None:
    """Check the signature (step 7): device key for uplink, hub key for downlink, CSR key for enrollment."""
    if received.alg != ALGORITHM:
        raise SignatureError(f"algorithm {received.alg!r} is not supported; use {ALGORITHM}", field="sig.alg")
    envelope = received.envelope
    if received.enrollment_key is not None:
        key = received.enrollment_key
        if kid_of(key) != received.kid:
            raise UnknownKeyError("kid is not the id of the key in the CSR", field="sig.kid")
    else:
        sender = envelope.device if received.direction is Direction.UPLINK else None
        key = require_key(keys, sender, received.kid)
    verify_signature(key, received.signature, received.signed_bytes)


def open_message(
    payload: bytes, topic: str | None, keys: KeyResolver, *, now_ms: int | None = None
) -> Received:
    """Decode, validate and verify a payload: every stateless check of the protocol."""
    received = decode(payload, topic, now_ms=now_ms)
    verify(received, keys)
    return received


def csr_public_key(pem: str) -> Ed25519PublicKey:
    """The Ed25519 key certified by a PEM CSR whose self-signature is valid, or ``SchemaError``."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
        key = csr.public_key()
        valid = csr.is_signature_valid
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise SchemaError("not a readable PEM certificate signing request", field="body.csr") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SchemaError("the CSR must be for an Ed25519 key", field="body.csr")
    if not valid:
        raise SchemaError("the CSR's self-signature does not verify", field="body.csr")
    return key


class DownlinkCheck:
    """The checks a device makes on a verified downlink message before acting on it.

    ``ProtocolError`` from ``check`` becomes the ``reason`` of the ``cmd.nack`` or ``schedule.rejected``.
    """

    def __init__(self, device_id: str) -> None:
        """Checks for the device ``device_id``."""
        self.device_id = device_id

    def check(self, received: Received, *, now_ms: int | None, held_config_version: int | None) -> bool:
        """Return whether to act on the message; raise if it must be refused.

        Rules: the envelope must name this device. A command must not have expired, except
        ``cmd.set_time`` (a device whose clock runs ahead could otherwise never be corrected; the hub sends
        it only when a birth shows a wrong clock). A config with the version already held is the retained
        copy delivered again after a reconnect: nothing to do, nothing to answer (``False``); an older
        version is refused with ``E_STALE_VERSION``.
        """
        envelope = received.envelope
        if envelope.device != self.device_id:
            raise TopicError(f"addressed to {envelope.device!r}, not to this device", field="device")
        body = envelope.body
        command = body if isinstance(body, Command) and not isinstance(body, SetTime) else None
        if command is not None and now_ms is not None and command.expires < now_ms:
            raise ExpiredError(f"expired {(now_ms - command.expires) // 1000} s ago", field="body.expires")
        if isinstance(body, Config) and held_config_version is not None:
            if body.version == held_config_version:
                return False
            if body.version < held_config_version:
                raise StaleVersionError(
                    f"version {body.version} is older than the held version {held_config_version}",
                    field="body.version",
                )
        return True

    def check_enrollment(self, accepted: ProvisionAccepted, device_key: Ed25519PublicKey) -> None:
        """Check a ``prov.accepted``: the hub key matches its id and the certificate is for our key."""
        hub_raw = b64url_decode(accepted.hub_key, field="body.hub_key")
        if key_id(hub_raw) != accepted.hub_kid:
            raise SchemaError("hub_kid is not the key id of hub_key", field="body.hub_kid")
        if accepted.device_kid != kid_of(device_key):
            raise SchemaError("device_kid is not the id of this device's key", field="body.device_kid")


__all__ = [
    "MAX_AGE_MS",
    "MAX_SKEW_MS",
    "SKEW_EXEMPT",
    "DownlinkCheck",
    "Envelope",
    "ProtocolError",
    "Received",
    "check_skew",
    "csr_public_key",
    "decode",
    "open_message",
    "seal",
    "verify",
]
