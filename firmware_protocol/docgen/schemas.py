"""JSON Schemas (2020-12) of the messages: pydantic models of the whole envelope around each body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from firmware_protocol import codec
from firmware_protocol.docgen.common import address, summary
from firmware_protocol.messages import MESSAGE_TYPES, Body
from firmware_protocol.messages.common import VERSION_PATTERN, DeviceId, KeyId, MessageId, Millis, Seq
from firmware_protocol.signing import ALGORITHM
from firmware_protocol.topics import PROTOCOL_MAJOR, PROTOCOL_VERSION

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
URN_PREFIX = f"urn:dispenser-hub:protocol:v{PROTOCOL_MAJOR}"
_PROTO_PATTERN = rf"^{PROTOCOL_MAJOR}\." + VERSION_PATTERN.split(r"\.", 1)[1]
"""``proto`` of this major version: the minor part of ``VERSION_PATTERN``."""


class Signature(BaseModel):
    """The envelope's signature: Ed25519 over the canonical JSON of the envelope without ``sig``."""

    model_config = ConfigDict(extra="forbid")

    alg: str = Field(json_schema_extra={"const": ALGORITHM}, description="Always Ed25519 (RFC 8032, pure).")
    kid: KeyId = Field(description="First 16 hex digits of SHA-256 over the signer's raw 32-byte public key.")
    value: str = Field(
        pattern=codec.SIGNATURE_VALUE_PATTERN,
        description="The 64-byte signature in base64url without padding (86 characters).",
    )


_TYPE_ENUM: dict[str, Any] = {"enum": sorted(MESSAGE_TYPES)}
_ENVELOPE_DOCS = {
    "proto": f"Protocol version <major>.<minor>; this version sends {PROTOCOL_VERSION}.",
    "type": "The message type.",
    "device": "The device's id (sender of uplink, addressee of downlink).",
    "msg_id": "Unique message id (ULID or UUIDv7); the duplicate key.",
    "boot_id": "Id of the sender's current boot (ULID or UUIDv7).",
    "seq": "Sender's message counter within the boot, from 0.",
    "ts": "Sender's clock when the message was made, Unix ms UTC.",
    "corr_id": "The msg_id of the message this one answers.",
    "sig": "Signature over the canonical envelope without sig.",
}


def envelope_model(body_cls: type[Body]) -> type[BaseModel]:
    """A pydantic model of the whole message of ``body_cls`` (used only to generate its JSON Schema)."""
    corr_doc = _ENVELOPE_DOCS["corr_id"]
    corr: tuple[Any, Any] = (
        (MessageId, Field(description=corr_doc + " Required for this type."))
        if body_cls.REQUIRES_CORR_ID
        else (MessageId | None, Field(None, description=corr_doc))
    )
    doc = (
        f"A `{body_cls.TYPE}` message: envelope, body and signature, published on "
        f"`{address(body_cls.CHANNEL)}`. Members not listed here are refused in a {PROTOCOL_VERSION} "
        "message; a receiver ignores them when proto's minor version is newer than its own."
    )
    model: type[BaseModel] = create_model(
        f"{body_cls.__name__}Message",
        __config__=ConfigDict(extra="forbid"),
        __doc__=doc,
        proto=(str, Field(pattern=_PROTO_PATTERN, description=_ENVELOPE_DOCS["proto"])),
        type=(str, Field(json_schema_extra={"const": body_cls.TYPE}, description=_ENVELOPE_DOCS["type"])),
        device=(DeviceId, Field(description=_ENVELOPE_DOCS["device"])),
        msg_id=(MessageId, Field(description=_ENVELOPE_DOCS["msg_id"])),
        boot_id=(MessageId, Field(description=_ENVELOPE_DOCS["boot_id"])),
        seq=(Seq, Field(description=_ENVELOPE_DOCS["seq"])),
        ts=(Millis, Field(description=_ENVELOPE_DOCS["ts"])),
        corr_id=corr,
        body=(body_cls, Field(description=summary(body_cls))),
        sig=(Signature, Field(description=_ENVELOPE_DOCS["sig"])),
    )
    return model


class _GenericEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Envelope")

    proto: str = Field(pattern=_PROTO_PATTERN, description=_ENVELOPE_DOCS["proto"])
    type: str = Field(json_schema_extra=_TYPE_ENUM, description=_ENVELOPE_DOCS["type"])
    device: DeviceId = Field(description=_ENVELOPE_DOCS["device"])
    msg_id: MessageId = Field(description=_ENVELOPE_DOCS["msg_id"])
    boot_id: MessageId = Field(description=_ENVELOPE_DOCS["boot_id"])
    seq: Seq = Field(description=_ENVELOPE_DOCS["seq"])
    ts: Millis = Field(description=_ENVELOPE_DOCS["ts"])
    corr_id: MessageId | None = Field(None, description=_ENVELOPE_DOCS["corr_id"] + " Required for answers.")
    body: dict[str, Any] = Field(description="The body: validate it with the schema of its type.")
    sig: Signature = Field(description=_ENVELOPE_DOCS["sig"])


def close_objects(node: Any) -> Any:  # noqa: ANN401 - walks arbitrary JSON
    """Turn ``additionalProperties: true`` (pydantic's extra="allow") into ``false``: v1.0 is closed."""
    if isinstance(node, dict):
        out = {key: close_objects(value) for key, value in node.items()}
        if out.get("additionalProperties") is True and "properties" in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [close_objects(item) for item in node]
    return node


def message_schema(body_cls: type[Body]) -> dict[str, Any]:
    """The self-contained JSON Schema (2020-12) of one message type."""
    schema = close_objects(envelope_model(body_cls).model_json_schema())
    return {"$schema": SCHEMA_DIALECT, "$id": f"{URN_PREFIX}:{body_cls.TYPE}", **schema}


def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of the envelope alone (any body)."""
    schema = close_objects(_GenericEnvelope.model_json_schema())
    schema["description"] = (
        "The envelope of every protocol message. The body is checked by the schema of its type "
        f"({URN_PREFIX}:<type>)."
    )
    return {"$schema": SCHEMA_DIALECT, "$id": f"{URN_PREFIX}:envelope", **schema}
