"""Ed25519 signing of envelopes.

Signing, step by step (what a firmware must do byte for byte):

1. Build the envelope object with every member except ``sig``.
2. Serialise it as canonical JSON (RFC 8785 under the protocol's JSON rules, see ``canonical``).
3. Sign those bytes with Ed25519 (RFC 8032, pure Ed25519, no pre-hash, no context).
4. Add ``"sig": {"alg": "Ed25519", "kid": <key id>, "value": <base64url of the 64-byte signature,
   no padding>}``. The key id is the first 16 hex digits of SHA-256 over the raw 32-byte public key.

Verification removes ``sig`` from the received object, canonicalises the rest (including members this
receiver does not know) and verifies. Any change to any signed byte makes verification fail.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from firmware_protocol.errors import SignatureError, UnknownKeyError
from firmware_protocol.ids import key_id

if TYPE_CHECKING:
    from collections.abc import Mapping

ALGORITHM = "Ed25519"
SIGNATURE_LENGTH = 64


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, field: str) -> bytes:
    """Decode base64url without padding, raising ``SignatureError`` naming ``field``."""
    if "=" in text:
        raise SignatureError("base64url must be sent without '=' padding", field=field)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError("not valid base64url", field=field) from None


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """Load a raw 32-byte Ed25519 public key."""
    return Ed25519PublicKey.from_public_bytes(raw)


def kid_of(key: Ed25519PublicKey) -> str:
    """The key id of a public key."""
    return key_id(raw_public_key(key))


@dataclass(frozen=True, slots=True)
class Signer:
    """A private key and its key id: what a device (or the hub) signs with."""

    private_key: Ed25519PrivateKey
    kid: str

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> Signer:
        """Wrap a private key, deriving its key id."""
        return cls(private_key, kid_of(private_key.public_key()))

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        """Build from a 32-byte seed (RFC 8032 private key); deterministic, for tests and vectors."""
        return cls.from_private_key(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls) -> Signer:
        """Generate a new key pair."""
        return cls.from_private_key(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self.private_key.public_key()

    def signature_member(self, signed_bytes: bytes) -> dict[str, str]:
        """Sign canonical bytes and return the envelope's ``sig`` member."""
        return {"alg": ALGORITHM, "kid": self.kid, "value": b64url(self.private_key.sign(signed_bytes))}


class KeyResolver(Protocol):
    """Finds the public key a sender signs with: ``device_id`` is ``None`` for the hub."""

    def resolve(self, device_id: str | None, kid: str) -> Ed25519PublicKey | None:
        """Return the key registered for this sender under ``kid``, or ``None``."""
        ...


class KeyRing:
    """A simple in-memory ``KeyResolver``: keys by (device id or ``None`` for the hub, key id)."""

    def __init__(self, keys: Mapping[tuple[str | None, str], Ed25519PublicKey] | None = None) -> None:
        """Start with ``keys``, if given."""
        self._keys: dict[tuple[str | None, str], Ed25519PublicKey] = dict(keys or {})

    def add(self, device_id: str | None, key: Ed25519PublicKey) -> str:
        """Register ``key`` for ``device_id`` (``None``: the hub) and return its key id."""
        kid = kid_of(key)
        self._keys[device_id, kid] = key
        return kid

    def remove(self, device_id: str | None, kid: str) -> None:
        """Revoke a key (for example when a device is retired)."""
        self._keys.pop((device_id, kid), None)

    def resolve(self, device_id: str | None, kid: str) -> Ed25519PublicKey | None:
        """Return the registered key or ``None``."""
        return self._keys.get((device_id, kid))


def verify_signature(key: Ed25519PublicKey, signature: bytes, signed_bytes: bytes) -> None:
    """Verify an Ed25519 signature, raising ``SignatureError``."""
    try:
        key.verify(signature, signed_bytes)
    except InvalidSignature:
        raise SignatureError(
            "signature does not verify; the message was altered or signed with another key", field="sig.value"
        ) from None


def require_key(keys: KeyResolver, device_id: str | None, kid: str) -> Ed25519PublicKey:
    """Resolve a key or raise ``UnknownKeyError`` naming the sender."""
    key = keys.resolve(device_id, kid)
    if key is None:
        sender = f"device {device_id}" if device_id else "the hub"
        raise UnknownKeyError(f"key id {kid} is not registered for {sender}", field="sig.kid")
    return key
