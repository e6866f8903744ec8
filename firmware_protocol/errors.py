"""The protocol's error hierarchy.

Every failure to accept a message is one of these classes, each with a stable string ``code`` that a
receiver stores (dead letters), shows (the inspector) and sends back (a device's ``cmd.nack`` reason),
and a ``field`` naming the offending part of the message as a dotted path (``body.slots.3.due``), or
``None`` when the message as a whole is at fault. Decoding arbitrary bytes raises only these errors.

The codes are part of the wire contract: never rename one; add new ones at the end of ``ErrorCode``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes; their values appear on the wire and in stored dead letters."""

    MALFORMED = "E_MALFORMED"
    """Not UTF-8, not JSON, not an object, duplicate member names, floats, or nesting too deep."""
    SCHEMA = "E_SCHEMA"
    """Valid JSON that does not match the message's schema (missing, extra or ill-typed field)."""
    TOO_LARGE = "E_TOO_LARGE"
    """The payload exceeds ``MAX_PAYLOAD_BYTES``."""
    UNSUPPORTED_VERSION = "E_VERSION"
    """The protocol major version is not one this receiver implements."""
    UNKNOWN_TYPE = "E_UNKNOWN_TYPE"
    """The message type is not defined by this protocol version."""
    TOPIC = "E_TOPIC"
    """Bad topic, device id in topic differs from the envelope, or type not allowed on the topic."""
    SIGNATURE = "E_SIGNATURE"
    """An algorithm other than Ed25519, or a signature that does not verify (a missing or ill-formed
    ``sig`` member is ``E_SCHEMA``)."""
    UNKNOWN_KEY = "E_UNKNOWN_KEY"
    """The signature's key id is not registered for the sender (for ``prov.request``: is not the CSR's)."""
    REPLAY = "E_REPLAY"
    """A sequence number already used in this boot, carried by a different message id."""
    SKEW = "E_SKEW"
    """The device timestamp is too far in the future, or older than the replay horizon."""
    EXPIRED = "E_EXPIRED"
    """A command whose ``expires`` time has passed (downlink only)."""
    STALE_VERSION = "E_STALE_VERSION"
    """A retained config whose version is not newer than the one already held (downlink only)."""


class ProtocolError(Exception):
    """Base class: a message was refused. ``code`` and ``field`` are stable; the text is for people."""

    code: ErrorCode = ErrorCode.MALFORMED

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        """Create the error; ``detail`` says what is wrong and, where possible, what to fix."""
        self.detail = detail
        self.field = field
        where = f" at {field}" if field else ""
        super().__init__(f"{self.code.value}{where}: {detail}")

    def as_dict(self) -> dict[str, str | None]:
        """Return the error as plain data (for dead letters, nacks and JSON output)."""
        return {"code": self.code.value, "field": self.field, "detail": self.detail}


class MalformedError(ProtocolError):
    """The bytes are not a protocol JSON object (see ``ErrorCode.MALFORMED``)."""

    code = ErrorCode.MALFORMED


class SchemaError(ProtocolError):
    """The JSON does not match the message schema (see ``ErrorCode.SCHEMA``)."""

    code = ErrorCode.SCHEMA


class TooLargeError(ProtocolError):
    """The payload is larger than allowed (see ``ErrorCode.TOO_LARGE``)."""

    code = ErrorCode.TOO_LARGE


class UnsupportedVersionError(ProtocolError):
    """Unknown protocol major version (see ``ErrorCode.UNSUPPORTED_VERSION``)."""

    code = ErrorCode.UNSUPPORTED_VERSION


class UnknownTypeError(ProtocolError):
    """Unknown message type (see ``ErrorCode.UNKNOWN_TYPE``)."""

    code = ErrorCode.UNKNOWN_TYPE


class TopicError(ProtocolError):
    """Topic and envelope disagree, or the topic is not a protocol topic (see ``ErrorCode.TOPIC``)."""

    code = ErrorCode.TOPIC


class SignatureError(ProtocolError):
    """The signature is missing, malformed or does not verify (see ``ErrorCode.SIGNATURE``)."""

    code = ErrorCode.SIGNATURE


class UnknownKeyError(ProtocolError):
    """The key id is not registered for this sender (see ``ErrorCode.UNKNOWN_KEY``)."""

    code = ErrorCode.UNKNOWN_KEY


class ReplayError(ProtocolError):
    """A sequence number reused with another message id (see ``ErrorCode.REPLAY``)."""

    code = ErrorCode.REPLAY


class SkewError(ProtocolError):
    """The timestamp is outside the accepted range (see ``ErrorCode.SKEW``)."""

    code = ErrorCode.SKEW


class ExpiredError(ProtocolError):
    """A command arrived after its expiry (see ``ErrorCode.EXPIRED``)."""

    code = ErrorCode.EXPIRED


class StaleVersionError(ProtocolError):
    """A config not newer than the one held (see ``ErrorCode.STALE_VERSION``)."""

    code = ErrorCode.STALE_VERSION


ERROR_CLASSES: dict[ErrorCode, type[ProtocolError]] = {
    cls.code: cls
    for cls in (
        MalformedError,
        SchemaError,
        TooLargeError,
        UnsupportedVersionError,
        UnknownTypeError,
        TopicError,
        SignatureError,
        UnknownKeyError,
        ReplayError,
        SkewError,
        ExpiredError,
        StaleVersionError,
    )
}
"""Every error class by its code; a test checks that each ``ErrorCode`` has exactly one class."""
