"""Loading the public keys the inspector verifies signatures with.

Key file (JSON)::

    {"hub": ["<base64url raw Ed25519 public key>", ...],
     "devices": {"RM3-000017": ["<base64url raw key>", ...], ...}}

Keys are raw 32-byte Ed25519 public keys in base64url without padding, as in ``prov.accepted``'s
``hub_key``; their key ids are derived, never written.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from firmware_protocol import KeyRing, ProtocolError, is_device_id
from firmware_protocol.signing import b64url_decode, public_key_from_raw

if TYPE_CHECKING:
    from pathlib import Path

RAW_KEY_LENGTH = 32


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and the entry."""


def _key(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        msg = f"{where}: expected a base64url string"
        raise KeyFileError(msg)
    try:
        raw = b64url_decode(text, field=where)
    except ProtocolError as exc:
        msg = f"{where}: {exc.detail}"
        raise KeyFileError(msg) from None
    if len(raw) != RAW_KEY_LENGTH:
        msg = f"{where}: a raw Ed25519 public key is {RAW_KEY_LENGTH} bytes, this is {len(raw)}"
        raise KeyFileError(msg)
    return raw


def load_key_file(path: Path, ring: KeyRing | None = None) -> KeyRing:
    """Add the keys in ``path`` to ``ring`` (a new one by default) and return it."""
    ring = ring if ring is not None else KeyRing()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"{path}: cannot read ({exc.strerror})"
        raise KeyFileError(msg) from None
    except json.JSONDecodeError as exc:
        msg = f"{path}: not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        raise KeyFileError(msg) from None
    return add_keys(data, ring, source=str(path))


def add_keys(data: object, ring: KeyRing, *, source: str) -> KeyRing:
    """Add the keys of a parsed key file (``source`` names it in errors) to ``ring`` and return it."""
    path = source
    if not isinstance(data, dict) or not set(data) <= {"hub", "devices"}:
        msg = f'{path}: expected an object with "hub" (a list) and/or "devices" (an object)'
        raise KeyFileError(msg)
    hub = data.get("hub", [])
    devices = data.get("devices", {})
    if not isinstance(hub, list) or not isinstance(devices, dict):
        msg = f'{path}: "hub" must be a list and "devices" an object of lists'
        raise KeyFileError(msg)
    for index, text in enumerate(hub):
        ring.add(None, public_key_from_raw(_key(text, f"{path}: hub[{index}]")))
    for device_id, keys in devices.items():
        if not is_device_id(device_id) or not isinstance(keys, list):
            msg = f"{path}: devices[{device_id!r}] must be a valid device id with a list of keys"
            raise KeyFileError(msg)
        for index, text in enumerate(keys):
            ring.add(device_id, public_key_from_raw(_key(text, f"{path}: devices[{device_id!r}][{index}]")))
    return ring
