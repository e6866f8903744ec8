"""Identifiers on the wire: device ids, message and boot ids (ULID or UUIDv7), key ids.

Message ids must be unique per device for at least the replay horizon (``MAX_AGE_MS``); both accepted
forms put a millisecond timestamp first and 74-80 random bits after it, which a microcontroller with a
hardware random number generator can produce without coordination.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$"
"""Device ids: 3-64 characters, letters, digits, ``_`` and ``-``; never an MQTT wildcard or ``/``."""
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
"""A ULID in canonical upper-case Crockford base32."""
UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
"""A UUID version 7 in canonical lower-case form."""
MESSAGE_ID_PATTERN = (
    r"^(?:[0-7][0-9A-HJKMNP-TV-Z]{25}|[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$"
)
"""A message id, boot id or correlation id: a ULID or a UUIDv7."""
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
"""Key ids: the first 16 lower-case hex digits of SHA-256 over the raw 32-byte Ed25519 public key."""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


def new_ulid(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """Return a new ULID; ``now_ms`` and ``randomness`` (10 bytes) make it deterministic for tests."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = os.urandom(10) if randomness is None else randomness
    if len(rand) != 10 or not 0 <= ms < 2**48:  # noqa: PLR2004 - ULID layout: 48-bit time, 80-bit random
        msg = "a ULID needs a 48-bit millisecond time and 10 random bytes"
        raise ValueError(msg)
    value = (ms << 80) | int.from_bytes(rand, "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def is_message_id(value: str) -> bool:
    """Tell whether ``value`` is a canonical ULID or UUIDv7."""
    return _MESSAGE_ID.fullmatch(value) is not None


def is_device_id(value: str) -> bool:
    """Tell whether ``value`` is a valid device id."""
    return _DEVICE_ID.fullmatch(value) is not None


def key_id(raw_public_key: bytes) -> str:
    """Return the key id of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]
