"""Cryptography adapters: encryption at rest for patient identifiers and other personal fields."""

from dispenser_hub.adapters.crypto.fields import (
    FieldCipher,
    FieldCipherConfigError,
    FieldDecryptError,
    generate_key,
    parse_key_ring,
    parse_lookup_key,
)

__all__ = [
    "FieldCipher",
    "FieldCipherConfigError",
    "FieldDecryptError",
    "generate_key",
    "parse_key_ring",
    "parse_lookup_key",
]
