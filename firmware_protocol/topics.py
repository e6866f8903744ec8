"""MQTT topics, their direction, QoS and retain rules.

Every topic is ``dsp/v{major}/{device_id}/{channel}``. The protocol major version is in the topic so that
a broker ACL and a subscriber can tell generations apart; the minor version travels in the envelope.

====================  =========  ===  ======  ==============================================
channel               direction  QoS  retain  carries
====================  =========  ===  ======  ==============================================
``up/birth``          uplink     1    no      ``birth``: first message of every connection
``up/state``          uplink     1    yes     ``state`` snapshot; the Last Will ``death``
``up/event``          uplink     1    no      dose, roll, tray and fault events
``up/telemetry``      uplink     1    no      ``heartbeat``
``up/ack``            uplink     1    no      ``cmd.ack``, ``cmd.nack``, ``schedule.*``
``down/cmd``          downlink   1    no      commands (``cmd.*``)
``down/config``       downlink   1    yes     ``config``: the desired schedule, versioned
``prov/request``      uplink     1    no      ``prov.request``: enrollment code and CSR
``prov/response``     downlink   1    no      ``prov.accepted`` or ``prov.rejected``
====================  =========  ===  ======  ==============================================

QoS 1 everywhere: every message is sequenced and deduplicated by message id, so at-least-once delivery
with receiver-side deduplication gives exactly-once effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from firmware_protocol.errors import TopicError
from firmware_protocol.ids import is_device_id

ROOT = "dsp"
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
PREFIX = f"{ROOT}/v{PROTOCOL_MAJOR}"


class Direction(StrEnum):
    """Who publishes on a channel."""

    UPLINK = "uplink"
    """Device to hub; signed with the device key."""
    DOWNLINK = "downlink"
    """Hub to device; signed with the hub key."""


class Channel(StrEnum):
    """The last part of a topic, after the device id."""

    BIRTH = "up/birth"
    STATE = "up/state"
    EVENT = "up/event"
    TELEMETRY = "up/telemetry"
    ACK = "up/ack"
    CMD = "down/cmd"
    CONFIG = "down/config"
    PROV_REQUEST = "prov/request"
    PROV_RESPONSE = "prov/response"

    @property
    def direction(self) -> Direction:
        """Uplink for ``up/*`` and ``prov/request``, downlink otherwise."""
        return (
            Direction.UPLINK
            if self.value.startswith("up/") or self is Channel.PROV_REQUEST
            else Direction.DOWNLINK
        )

    @property
    def retain(self) -> bool:
        """Retained channels keep their last message on the broker for late subscribers."""
        return self in {Channel.STATE, Channel.CONFIG}

    @property
    def qos(self) -> int:
        """QoS 1 on every channel."""
        return 1


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed protocol topic."""

    device_id: str
    channel: Channel
    major: int = PROTOCOL_MAJOR

    def __str__(self) -> str:
        """Return the topic string."""
        return f"{ROOT}/v{self.major}/{self.device_id}/{self.channel.value}"


def topic(device_id: str, channel: Channel) -> str:
    """Return the topic for ``channel`` of ``device_id``, checking the id."""
    if not is_device_id(device_id):
        raise TopicError(f"{device_id[:70]!r} is not a valid device id", field="device")
    return str(Topic(device_id, channel))


def parse_topic(name: str) -> Topic:
    """Parse a topic string, raising ``TopicError`` that says which part is wrong."""
    parts = name.split("/")
    if len(parts) != 5 or parts[0] != ROOT:  # noqa: PLR2004 - dsp/vN/device/dir/leaf
        raise TopicError(f"topic {name[:120]!r} is not of the form {ROOT}/v<major>/<device_id>/<channel>")
    if parts[1] != f"v{PROTOCOL_MAJOR}":
        raise TopicError(f"topic version {parts[1][:10]!r} is not supported; this receiver speaks {PREFIX}")
    if not is_device_id(parts[2]):
        raise TopicError(f"{parts[2][:70]!r} in the topic is not a valid device id")
    try:
        channel = Channel(f"{parts[3]}/{parts[4]}")
    except ValueError:
        known = ", ".join(c.value for c in Channel)
        raise TopicError(f"unknown channel {parts[3][:20]}/{parts[4][:20]}; known: {known}") from None
    return Topic(parts[2], channel)


def hub_subscriptions() -> list[str]:
    """Topic filters a hub subscribes to: every device's uplink and provisioning requests."""
    return [f"{PREFIX}/+/up/#", f"{PREFIX}/+/{Channel.PROV_REQUEST.value}"]


def enrollment_subscriptions(device_id: str) -> list[str]:
    """Topic filters a device subscribes to while enrolling with the claim credential."""
    return [topic(device_id, Channel.PROV_RESPONSE)]


def device_subscriptions(device_id: str) -> list[str]:
    """Topic filters a device subscribes to: its downlink and provisioning responses."""
    return [
        topic(device_id, Channel.CMD),
        topic(device_id, Channel.CONFIG),
        topic(device_id, Channel.PROV_RESPONSE),
    ]
