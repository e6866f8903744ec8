"""Encryption at rest for single fields (national id numbers, phone numbers), and blind lookup hashes.

Rules, and why:

* **AES-256-GCM with a random 96-bit nonce per encryption.** The same value encrypts differently every time,
  so equal ciphertexts never reveal equal patients. With random nonces one key must stay well below 2**32
  encryptions; rotate long before (a response centre writes thousands, not billions, of rows).
* **The context is associated data.** ``encrypt(value, context="patient.national_id")`` can only be decrypted
  with the same context, so a ciphertext copied into another column (a phone-number column, say) does not
  decrypt there. Contexts are short ASCII names (letters, digits, ``._:-``).
* **Tokens are compact ASCII**: ``v1.<key id>.<base64url(nonce || ciphertext || tag)>``, without padding.
  The key id names the key that encrypted it; the version lets the format change later.
* **Key ring and rotation.** Any key in the ring decrypts; only the current key encrypts. ``needs_rotation``
  tells which stored tokens to re-encrypt (``reencrypt``) before an old key is removed from the ring.
* **Lookup hashes** are HMAC-SHA256 under a separate lookup key, keyed by context as well, so a column can be
  searched by equality without decrypting, and the hashes stay the same when encryption keys rotate.
  Callers pass the canonical form (``NationalId.value``, an E.164 phone number): only Unicode NFC
  normalisation is applied here, so "the same" value must be written the same way before hashing.
* **Errors never contain plaintext, tokens or key material.** A wrong value passed to ``decrypt`` may be
  plaintext (a column not yet encrypted), so nothing of the input is echoed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from collections.abc import Mapping

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MIN_LOOKUP_KEY_BYTES = 32
FORMAT_VERSION = "v1"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_CONTEXT = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_TOKEN_PARTS = 3
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class FieldCipherConfigError(ValueError):
    """The key ring or lookup key cannot be used; the message names the entry, never the key material."""


class FieldDecryptError(ValueError):
    """A token that does not decrypt; the message says why without any of the token or plaintext."""


def generate_key() -> str:
    """A fresh random key: 32 bytes from the OS, base64url without padding (for settings files)."""
    return _b64encode(os.urandom(KEY_BYTES))


class FieldCipher:
    """Encrypts, decrypts and blind-hashes field values with a key ring (rules: see the module docstring).

    ``keys`` maps key ids (letters, digits, ``_-``, at most 32) to 32-byte AES keys; ``current`` is the id
    used to encrypt; ``lookup_key`` (at least 32 bytes, unlike every encryption key) keys ``lookup_hash``.
    """

    def __init__(self, keys: Mapping[str, bytes], current: str, *, lookup_key: bytes) -> None:
        if not keys:
            raise FieldCipherConfigError("the key ring is empty; give at least one encryption key")
        for number, (key_id, key) in enumerate(keys.items(), start=1):
            if not _KEY_ID.fullmatch(key_id):  # not echoed: a misplaced key would end up in the message
                msg = f"key id number {number} must be 1-32 letters, digits, '_' or '-'"
                raise FieldCipherConfigError(msg)
            if len(key) != KEY_BYTES:
                msg = f"key {key_id!r} has {len(key)} bytes; AES-256 keys have exactly {KEY_BYTES}"
                raise FieldCipherConfigError(msg)
        if current not in keys:
            msg = f"the current key id {current!r} is not in the key ring ({', '.join(keys)})"
            raise FieldCipherConfigError(msg)
        if len(lookup_key) < MIN_LOOKUP_KEY_BYTES:
            msg = f"the lookup key has {len(lookup_key)} bytes; it needs at least {MIN_LOOKUP_KEY_BYTES}"
            raise FieldCipherConfigError(msg)
        if any(hmac.compare_digest(lookup_key, key) for key in keys.values()):
            raise FieldCipherConfigError("the lookup key must differ from every encryption key")
        self._aeads = {key_id: AESGCM(bytes(key)) for key_id, key in keys.items()}
        self._current = current
        self._lookup_key = bytes(lookup_key)

    @classmethod
    def from_settings(cls, encryption_keys: str, lookup_key: str) -> FieldCipher:
        """Build from settings text: ``"kid1:base64key,kid2:base64key"`` (the first is current) and a key.

        Keys are base64 or base64url, padding optional. Raises ``FieldCipherConfigError`` naming the entry.
        """
        keys = parse_key_ring(encryption_keys)
        return cls(keys, next(iter(keys)), lookup_key=parse_lookup_key(lookup_key))

    @property
    def current_key_id(self) -> str:
        """The id of the key that encrypts."""
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id in the ring, the current one first."""
        return (self._current, *(key_id for key_id in self._aeads if key_id != self._current))

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Encrypt ``plaintext`` with the current key, bound to ``context``: a ``v1.<kid>.<data>`` token."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self._current].encrypt(nonce, plaintext.encode(), _associated_data(context))
        return f"{FORMAT_VERSION}.{self._current}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, context: str) -> str:
        """Decrypt a token from any key of the ring for the same ``context``; raises ``FieldDecryptError``."""
        associated_data = _associated_data(context)
        key_id, blob = _split(token)
        aead = self._aeads.get(key_id)
        if aead is None:
            msg = (
                f"the token's key id is not in the key ring ({', '.join(self.key_ids)}); was its key removed "
                "before every token it encrypted was re-encrypted?"
            )
            raise FieldDecryptError(msg)
        try:
            plaintext = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            msg = (
                f"the token does not decrypt with key {key_id!r} for context {context!r}: it was altered, "
                "or it belongs to another context (column)"
            )
            raise FieldDecryptError(msg) from None
        try:
            return plaintext.decode()
        except UnicodeDecodeError:
            raise FieldDecryptError("the token decrypts to bytes that are not UTF-8 text") from None

    def needs_rotation(self, token: str) -> bool:
        """Whether ``token`` was encrypted with a key other than the current one (re-encrypt it).

        Raises ``FieldDecryptError`` when ``token`` is not a token at all.
        """
        key_id, _ = _split(token)
        return key_id != self._current

    def reencrypt(self, token: str, *, context: str) -> str:
        """The token under the current key (unchanged if it already is); raises ``FieldDecryptError``."""
        if not self.needs_rotation(token):
            return token
        return self.encrypt(self.decrypt(token, context=context), context=context)

    def lookup_hash(self, value: str, *, context: str) -> str:
        """HMAC-SHA256 of ``value`` (NFC-normalised) under the lookup key and ``context``: 64 hex digits."""
        message = _associated_data(context) + b"\x00" + unicodedata.normalize("NFC", value).encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"FieldCipher(current={self._current!r}, key_ids={list(self.key_ids)!r})"


def parse_key_ring(text: str) -> dict[str, bytes]:
    """Parse ``"kid1:base64key,kid2:base64key"`` into key id -> key bytes, in order (the first is current).

    Checks the syntax only; key lengths are checked by ``FieldCipher``. Messages never contain key material.
    """
    keys: dict[str, bytes] = {}
    entries = [entry.strip() for entry in text.split(",")]
    if entries == [""]:
        raise FieldCipherConfigError("no encryption keys; expected 'kid1:base64key,kid2:base64key'")
    for number, entry in enumerate(entries, start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not _KEY_ID.fullmatch(key_id):  # not echoed: it may be key material
            msg = (
                f"encryption key entry {number} is not 'kid:base64key' "
                "with a key id of 1-32 letters, digits, '_' or '-'"
            )
            raise FieldCipherConfigError(msg)
        if key_id in keys:
            raise FieldCipherConfigError(f"encryption key id {key_id!r} appears twice")
        keys[key_id] = _b64decode(encoded.strip(), f"encryption key {key_id!r} (entry {number})")
    return keys


def parse_lookup_key(text: str) -> bytes:
    """Decode the base64 or base64url lookup key; its length is checked by ``FieldCipher``."""
    return _b64decode(text.strip(), "the lookup key")


@lru_cache(maxsize=256)
def _associated_data(context: str) -> bytes:
    """The AEAD's associated data of ``context`` (a handful of contexts: kept once computed)."""
    if not _CONTEXT.fullmatch(context):
        msg = "context must be 1-100 ASCII letters, digits or '_.:-', e.g. 'patient.national_id'"
        raise ValueError(msg)
    return f"dispenser-hub/field/{FORMAT_VERSION}/{context}".encode()


def _split(token: str) -> tuple[str, bytes]:
    """The key id and the nonce-ciphertext-tag bytes of a well-formed token; the version must be ours."""
    parts = token.split(".")
    if len(parts) != _TOKEN_PARTS or not parts[2]:
        raise FieldDecryptError("not an encrypted field token (expected 'v1.<key id>.<data>')")
    version, key_id, data = parts
    if version != FORMAT_VERSION:
        raise FieldDecryptError(f"unsupported token version; this hub reads {FORMAT_VERSION} tokens")
    try:
        if not _BASE64URL.fullmatch(data):
            raise ValueError  # noqa: TRY301 - one message for every malformed encoding, raised below
        blob = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise FieldDecryptError("the token's data is not base64url") from None
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise FieldDecryptError("the token's data is too short to be a nonce, ciphertext and tag")
    return key_id, blob


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    normalised = text.replace("+", "-").replace("/", "_").rstrip("=")
    if not _BASE64URL.fullmatch(normalised):
        msg = f"{what} is not base64; generate one with `dispenser-hub secrets generate`"
        raise FieldCipherConfigError(msg)
    try:
        return base64.urlsafe_b64decode(normalised + "=" * (-len(normalised) % 4))
    except (binascii.Error, ValueError):
        msg = f"{what} is not valid base64 (wrong length); generate one with `dispenser-hub secrets generate`"
        raise FieldCipherConfigError(msg) from None
