"""The AsyncAPI 3.0.0 document: channels, messages, operations (device's point of view), MQTT bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic.json_schema import models_json_schema

from firmware_protocol.docgen.common import COMMAND, address, bodies_on, doc, ordered, summary
from firmware_protocol.docgen.material import DEVICE_ID
from firmware_protocol.docgen.schemas import URN_PREFIX, close_objects, envelope_model
from firmware_protocol.ids import DEVICE_ID_PATTERN
from firmware_protocol.messages import ALL_BODIES, PROVISIONING_BODIES, UPLINK_BODIES, Body
from firmware_protocol.topics import PREFIX, PROTOCOL_VERSION, Channel, Direction

if TYPE_CHECKING:
    from firmware_protocol.canonical import JsonObject

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = f"{PROTOCOL_VERSION}.0"
MQTT_BINDING_VERSION = "0.2.0"


def _channel_id(channel: Channel) -> str:
    first, second = channel.value.split("/")
    return first + "".join(part.title() for part in second.split("_"))


def _group(body: type[Body]) -> str:
    if body in PROVISIONING_BODIES:
        return "provisioning"
    return "uplink" if body in UPLINK_BODIES else "downlink"


_NOT_IN_DRAFT_07 = frozenset(
    {
        "$defs",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "prefixItems",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedItems",
        "unevaluatedProperties",
        "minContains",
        "maxContains",
    }
)


def _check_draft_07(node: Any, path: str = "#") -> None:  # noqa: ANN401 - walks arbitrary JSON
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NOT_IN_DRAFT_07 and path.rsplit("/", 1)[-1] != "properties":
                msg = f"{path}/{key}: keyword {key} is not in JSON Schema draft-07 (AsyncAPI Schema Object)"
                raise ValueError(msg)
            _check_draft_07(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _check_draft_07(item, f"{path}/{index}")


def _message_object(
    body_cls: type[Body], example: JsonObject, schema_names: dict[type[Body], str]
) -> dict[str, Any]:
    channel = body_cls.CHANNEL
    tag = {"uplink": "uplink", "downlink": "downlink", "provisioning": "provisioning"}[_group(body_cls)]
    message: dict[str, Any] = {
        "name": body_cls.TYPE,
        "title": body_cls.__name__,
        "summary": summary(body_cls),
        "description": doc(body_cls),
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{schema_names[body_cls]}"},
        "tags": [{"name": tag}],
        "examples": [
            {
                "name": "test-vector",
                "summary": f"The {body_cls.TYPE} test vector (firmware_protocol/vectors/valid.json), "
                "signed with a published test key.",
                "payload": ordered(example),
            }
        ],
        "bindings": {"mqtt": {"payloadFormatIndicator": 1, "bindingVersion": MQTT_BINDING_VERSION}},
    }
    if body_cls.REQUIRES_CORR_ID or body_cls.TYPE == "cmd.nack":
        message["correlationId"] = {
            "description": "The msg_id of the message this one answers.",
            "location": "$message.payload#/corr_id",
        }
    if channel is Channel.STATE and body_cls.TYPE == "death":
        message["description"] += (
            "\n\nRegistered as the MQTT Last Will (QoS 1, retained) at CONNECT; the broker publishes it "
            "when the connection is lost."
        )
    return message


def _channel_object(channel: Channel) -> dict[str, Any]:
    bodies = bodies_on(channel)
    retained = "retained" if channel.retain else "not retained"
    description = (
        f"{channel.direction.value.title()}: published by the "
        f"{'device' if channel.direction is Direction.UPLINK else 'hub'}, QoS {channel.qos}, {retained}. "
        f"Carries {', '.join(b.TYPE for b in bodies)}."
    )
    if channel is Channel.STATE:
        description += (
            " The device registers a signed `death` message as its MQTT Last Will on this topic (QoS 1, "
            "retained) when it connects; a retained `state` replaces it after the next birth."
        )
    return {
        "address": address(channel),
        "title": channel.value,
        "description": description,
        "parameters": {"device_id": {"$ref": "#/components/parameters/device_id"}},
        "messages": {b.TYPE: {"$ref": f"#/components/messages/{b.TYPE}"} for b in bodies},
    }


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for channel in Channel:
        channel_id = _channel_id(channel)
        send = channel.direction is Direction.UPLINK
        groups: list[tuple[str, list[type[Body]], str]] = []
        bodies = bodies_on(channel)
        if channel is Channel.STATE:
            will = [b for b in bodies if b.TYPE == "death"]
            rest = [b for b in bodies if b.TYPE != "death"]
            groups.append((f"send{channel_id[0].upper()}{channel_id[1:]}", rest, "The device publishes"))
            groups.append(
                (
                    "registerLastWill",
                    will,
                    (
                        "At CONNECT the device registers as its Last Will (the broker publishes it on a lost "
                        "connection)"
                    ),
                )
            )
        else:
            verb = "send" if send else "receive"
            intro = "The device publishes" if send else "The device receives (subscribed)"
            groups.append((f"{verb}{channel_id[0].upper()}{channel_id[1:]}", bodies, intro))
        for op_id, members, intro in groups:
            operations[op_id] = {
                "action": "send" if send else "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "title": f"{op_id}",
                "summary": f"{intro} {', '.join(b.TYPE for b in members)} on {channel.value}.",
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{b.TYPE}"} for b in members],
                "bindings": {
                    "mqtt": {
                        "qos": channel.qos,
                        "retain": channel.retain,
                        "bindingVersion": MQTT_BINDING_VERSION,
                    }
                },
            }
    return operations


def asyncapi_document(examples: dict[str, JsonObject]) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document, from the device's point of view; ``examples``: payload by type."""
    models = {body: envelope_model(body) for body in ALL_BODIES}
    refs, top = models_json_schema(
        [(model, "validation") for model in models.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = close_objects(top["$defs"])
    _check_draft_07(schemas)
    schema_names = {
        body: refs[model, "validation"]["$ref"].rsplit("/", 1)[-1] for body, model in models.items()
    }
    description = (
        "The wire protocol between networked medication dispensers and the dispenser hub, over MQTT.\n\n"
        "**Point of view: the device.** `send` operations are what a device publishes (uplink: device to "
        "hub, signed with the device key); `receive` operations are what a device subscribes to (downlink: "
        "hub to device, signed with the hub key). The hub does the opposite.\n\n"
        "Every payload is a UTF-8 JSON envelope (strict I-JSON subset: integers only, ASCII member names) "
        "signed with Ed25519 over its RFC 8785 canonical form without `sig`. Topics are "
        f"`{PREFIX}/{{device_id}}/<channel>`; QoS 1 everywhere, with receiver-side deduplication by msg_id. "
        "See PROTOCOL.md and the test vectors in firmware_protocol/vectors/.\n\n"
        f"Generated by `{COMMAND}`; do not edit."
    )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": URN_PREFIX,
        "info": {
            "title": "Dispenser wire protocol",
            "version": DOCUMENT_VERSION,
            "description": description,
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
            "tags": [
                {"name": "uplink", "description": "Device to hub, signed with the device key."},
                {"name": "downlink", "description": "Hub to device, signed with the hub key."},
                {"name": "provisioning", "description": "Enrollment by claim: a CSR in, a certificate out."},
            ],
        },
        "defaultContentType": "application/json",
        "servers": {
            "mqtt": {
                "host": "localhost:1883",
                "protocol": "mqtt",
                "description": "Placeholder: a local broker without TLS (development and tests only).",
                "bindings": {"mqtt": _server_binding()},
            },
            "secure-mqtt": {
                "host": "localhost:8883",
                "protocol": "secure-mqtt",
                "description": "Placeholder: MQTT over TLS, as deployed; devices use client certificates.",
                "bindings": {"mqtt": _server_binding()},
            },
        },
        "channels": {_channel_id(channel): _channel_object(channel) for channel in Channel},
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": {
                body.TYPE: _message_object(body, examples[body.TYPE], schema_names) for body in ALL_BODIES
            },
            "parameters": {
                "device_id": {
                    "description": (
                        f"The device's id: 3-64 characters, letters, digits, '_' and '-', starting with a "
                        f"letter or digit (regular expression `{DEVICE_ID_PATTERN}`); never an MQTT wildcard "
                        "or '/'. It equals the envelope's `device`."
                    ),
                    "examples": [DEVICE_ID],
                }
            },
        },
    }


def _server_binding() -> dict[str, Any]:
    return {
        "cleanSession": False,
        "lastWill": {
            "topic": address(Channel.STATE),
            "qos": Channel.STATE.qos,
            "retain": Channel.STATE.retain,
            "message": "A signed `death` envelope (reason connection_lost), composed at connect time.",
        },
        "bindingVersion": MQTT_BINDING_VERSION,
    }
