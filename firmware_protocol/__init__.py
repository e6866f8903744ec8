"""firmware_protocol: the dispenser wire protocol v1, sans-I/O.

Topics, envelope, message bodies, strict JSON and canonical form, Ed25519 signing, receiver rules,
the VKP/SCAIP code mapping and the error hierarchy. Depends only on pydantic and cryptography, so it can
be read as the reference for a firmware implementation (see PROTOCOL.md beside this file).

Typical use::

    from firmware_protocol import Envelope, KeyRing, Signer, open_message, seal
    from firmware_protocol.messages import DoseTaken

    payload = seal(Envelope(DoseTaken(...), device="RM3-000017", boot_id=boot, seq=7, ts=now), signer)
    received = open_message(payload, topic, keys, now_ms=now)
"""

from firmware_protocol.canonical import MAX_DEPTH, MAX_PAYLOAD_BYTES, canonical_bytes, parse
from firmware_protocol.codec import (
    MAX_AGE_MS,
    MAX_SKEW_MS,
    DownlinkCheck,
    Envelope,
    Received,
    check_skew,
    decode,
    open_message,
    seal,
    verify,
)
from firmware_protocol.errors import ErrorCode, ProtocolError
from firmware_protocol.ids import is_device_id, is_message_id, key_id, new_ulid
from firmware_protocol.receiver import DuplicateFilter, SeqResult, SeqStatus, SequenceTracker
from firmware_protocol.signing import KeyResolver, KeyRing, Signer
from firmware_protocol.topics import (
    PROTOCOL_VERSION,
    Channel,
    Direction,
    Topic,
    device_subscriptions,
    enrollment_subscriptions,
    hub_subscriptions,
    parse_topic,
    topic,
)

__all__ = [
    "MAX_AGE_MS",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "MAX_SKEW_MS",
    "PROTOCOL_VERSION",
    "Channel",
    "Direction",
    "DownlinkCheck",
    "DuplicateFilter",
    "Envelope",
    "ErrorCode",
    "KeyResolver",
    "KeyRing",
    "ProtocolError",
    "Received",
    "SeqResult",
    "SeqStatus",
    "SequenceTracker",
    "Signer",
    "Topic",
    "canonical_bytes",
    "check_skew",
    "decode",
    "device_subscriptions",
    "enrollment_subscriptions",
    "hub_subscriptions",
    "is_device_id",
    "is_message_id",
    "key_id",
    "new_ulid",
    "open_message",
    "parse",
    "parse_topic",
    "seal",
    "topic",
    "verify",
]
