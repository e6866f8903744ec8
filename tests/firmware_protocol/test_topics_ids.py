"""Topics (direction, QoS, retain, subscriptions) and identifiers (device ids, ULIDs, UUIDv7s, key ids)."""

from __future__ import annotations

import hashlib
import os
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from firmware_protocol import (
    PROTOCOL_VERSION,
    Channel,
    Direction,
    ErrorCode,
    ProtocolError,
    Topic,
    device_subscriptions,
    hub_subscriptions,
    is_device_id,
    is_message_id,
    key_id,
    new_ulid,
    parse_topic,
    topic,
)
from firmware_protocol.ids import DEVICE_ID_PATTERN, KEY_ID_PATTERN
from firmware_protocol.signing import Signer, raw_public_key

DEVICES = st.from_regex(DEVICE_ID_PATTERN, fullmatch=True).filter(lambda s: "\n" not in s)

# The table in the docstring of firmware_protocol.topics.
TABLE = {
    "up/birth": ("uplink", 1, False),
    "up/state": ("uplink", 1, True),
    "up/event": ("uplink", 1, False),
    "up/telemetry": ("uplink", 1, False),
    "up/ack": ("uplink", 1, False),
    "down/cmd": ("downlink", 1, False),
    "down/config": ("downlink", 1, True),
    "prov/request": ("uplink", 1, False),
    "prov/response": ("downlink", 1, False),
}


def test_channels_match_the_documented_table() -> None:
    assert {channel.value for channel in Channel} == set(TABLE)
    for channel in Channel:
        assert (channel.direction.value, channel.qos, channel.retain) == TABLE[channel.value]


@given(DEVICES, st.sampled_from(list(Channel)))
def test_topic_round_trip(device: str, channel: Channel) -> None:
    name = topic(device, channel)
    assert name == f"dsp/v1/{device}/{channel.value}"
    assert parse_topic(name) == Topic(device, channel)
    assert str(parse_topic(name)) == name


@pytest.mark.parametrize("device", ["a/b", "ab", "+abc", "abc#", "a b c", "", "x" * 65, "é-device"])
def test_topic_refuses_bad_device_ids(device: str) -> None:
    with pytest.raises(ProtocolError) as info:
        topic(device, Channel.EVENT)
    assert (info.value.code, info.value.field) == (ErrorCode.TOPIC, "device")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("dsp/v1/RM3-000017/up", "not of the form"),
        ("mqtt/v1/RM3-000017/up/event", "not of the form"),
        ("dsp/v2/RM3-000017/up/event", "version 'v2' is not supported"),
        ("dsp/v1/R/up/event", "not a valid device id"),
        ("dsp/v1/RM3-000017/up/nothing", "unknown channel"),
    ],
)
def test_parse_topic_says_what_is_wrong(name: str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=r"^E_TOPIC") as info:
        parse_topic(name)
    assert fragment in info.value.detail


def test_protocol_version() -> None:
    assert PROTOCOL_VERSION == "1.0"


@given(DEVICES)
def test_subscriptions_match_exactly_the_topics_of_their_direction(device: str) -> None:
    hub, own = hub_subscriptions(), device_subscriptions(device)
    other = "XX-" + device[:40] if not device.startswith("XX-") else "YY-" + device[:40]
    for channel in Channel:
        name = topic(device, channel)
        to_hub = channel.direction is Direction.UPLINK
        assert any(topic_matches_sub(sub, name) for sub in hub) is to_hub, (channel, hub)
        assert any(topic_matches_sub(sub, name) for sub in own) is not to_hub, (channel, own)
        assert not any(topic_matches_sub(sub, topic(other, channel)) for sub in own)
    for sub in hub:
        assert not topic_matches_sub(sub, f"dsp/v2/{device}/up/event")


# --- identifiers -------------------------------------------------------------------------------------------

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decode_ulid(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + CROCKFORD.index(char)
    return value


def test_new_ulid_format_and_time() -> None:
    before = int(time.time() * 1000)
    ulid = new_ulid()
    after = int(time.time() * 1000)
    assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", ulid)
    assert is_message_id(ulid)
    assert before <= _decode_ulid(ulid) >> 80 <= after
    assert new_ulid() != new_ulid()


def test_new_ulid_is_deterministic_with_fixed_inputs() -> None:
    assert new_ulid(0, bytes(10)) == "0" * 26
    assert new_ulid(2**48 - 1, b"\xff" * 10) == "7" + "Z" * 25
    ulid = new_ulid(1_795_417_200_000, bytes(range(10)))
    assert ulid == new_ulid(1_795_417_200_000, bytes(range(10)))
    assert _decode_ulid(ulid) == (1_795_417_200_000 << 80) | int.from_bytes(bytes(range(10)), "big")


@given(
    st.integers(0, 2**48 - 2),
    st.integers(1, 10_000),
    st.binary(min_size=10, max_size=10),
    st.binary(min_size=10, max_size=10),
)
def test_ulid_time_prefix_sorts_by_time(ms: int, step: int, rand_a: bytes, rand_b: bytes) -> None:
    later = min(ms + step, 2**48 - 1)
    assert new_ulid(ms, rand_a) < new_ulid(later, rand_b)
    assert new_ulid(ms, rand_a)[:10] == new_ulid(ms, rand_b)[:10]


@pytest.mark.parametrize(("ms", "rand"), [(-1, bytes(10)), (2**48, bytes(10)), (0, bytes(9)), (0, bytes(11))])
def test_new_ulid_refuses_bad_inputs(ms: int, rand: bytes) -> None:
    with pytest.raises(ValueError, match="48-bit"):
        new_ulid(ms, rand)


def _uuid7(ms: int, rand: bytes) -> str:
    """A UUIDv7 (RFC 9562): 48-bit ms time, version 7, 12 random bits, variant 10, 62 random bits."""
    rand_a = int.from_bytes(rand[:2], "big") & 0x0FFF
    rand_b = int.from_bytes(rand[2:10], "big") & (2**62 - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_and_ulid_are_message_ids(ms: int, rand: bytes) -> None:
    uuid7 = _uuid7(ms, rand)
    assert is_message_id(uuid7)
    assert not is_message_id(uuid7.upper()) or uuid7.upper() == uuid7  # all digits: no case
    assert not is_message_id(uuid7.replace("-", ""))
    assert not is_message_id(uuid7[:14] + "4" + uuid7[15:])  # version 4
    assert not is_message_id(uuid7[:19] + "c" + uuid7[20:])  # variant 110
    ulid = new_ulid(ms, rand)
    assert is_message_id(ulid)
    assert not is_message_id(ulid.lower()) or ulid.lower() == ulid
    assert not is_message_id(ulid + "0")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7",
        "81KAQ5ZJ0G8R8W6Y4M2N3P5Q7R",
        "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7I",
        "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7L",
        "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7O",
        "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7U",
        "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7R\n",
        "{01KAQ5ZJ0G8R8W6Y4M2N3P5Q7R}",
    ],
)
def test_invalid_message_ids(value: str) -> None:
    assert not is_message_id(value)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("RM3-000017", True),
        ("abc", True),
        ("a_b-C9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("ab", False),
        ("_abc", False),
        ("-abc", False),
        ("ab/c", False),
        ("ab+c", False),
        ("ab#c", False),
        ("ab c", False),
        ("abc\n", False),
        ("ab.c", False),
    ],
)
def test_device_ids(value: str, valid: bool) -> None:
    assert is_device_id(value) is valid


def test_key_id() -> None:
    signer = Signer.from_seed(bytes(32))
    raw = raw_public_key(signer.public_key)
    assert key_id(raw) == hashlib.sha256(raw).hexdigest()[:16] == signer.kid
    assert re.fullmatch(KEY_ID_PATTERN, signer.kid)
    # RFC 8032, section 7.1, test 1: secret key and public key.
    rfc = Signer.from_seed(bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    rfc_public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert raw_public_key(rfc.public_key) == rfc_public
    assert rfc.kid == key_id(rfc_public) == hashlib.sha256(rfc_public).hexdigest()[:16]
    assert key_id(os.urandom(32)) != key_id(os.urandom(32))
