"""Fixed test material: keys, CA, certificates and ids of the vectors.

Every value here is published, so NEVER use any of it in production.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware_protocol.ids import new_ulid
from firmware_protocol.signing import Signer, b64url, raw_public_key

TEST_KEY_WARNING = (
    "TEST KEYS, NEVER USE IN PRODUCTION: the seeds are published and derived from public strings."
)
DEVICE_ID = "RM3-000017"
OTHER_DEVICE_ID = "RM3-000018"
NOW_MS = 1_795_417_440_000
"""The receiver clock of the vectors: 2026-11-23T07:04:00Z (every valid vector's ``ts``)."""
_SEED_LABELS = {
    "device": b"dispenser-hub test vector device key",
    "hub": b"dispenser-hub test vector hub key",
    "unregistered": b"dispenser-hub test vector unregistered key",
    "ca": b"dispenser-hub test vector CA key",
}
CA_SERIAL = 0x1001
DEVICE_CERT_SERIAL = 0x2001
CA_VALIDITY = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2036, 1, 1, tzinfo=dt.UTC))
DEVICE_CERT_VALIDITY = (dt.datetime(2026, 11, 23, tzinfo=dt.UTC), dt.datetime(2031, 11, 23, tzinfo=dt.UTC))
CA_COMMON_NAME = "dispenser-hub TEST CA - never use in production"


def test_seed(role: str) -> bytes:
    """The published 32-byte Ed25519 seed of a test key: SHA-256 of its label."""
    return hashlib.sha256(_SEED_LABELS[role]).digest()


def deterministic_id(label: str, ms: int = NOW_MS) -> str:
    """A deterministic ULID: time ``ms``, randomness from SHA-256 of ``label``."""
    return new_ulid(ms, hashlib.sha256(label.encode("utf-8")).digest()[:10])


DEVICE_BOOT_ID = deterministic_id("device boot", NOW_MS - 86_400_000)
ENROLLMENT_BOOT_ID = deterministic_id("device enrollment boot", NOW_MS - 600_000)
HUB_BOOT_ID = deterministic_id("hub boot", NOW_MS - 3 * 86_400_000)


@dataclass(frozen=True, slots=True)
class TestMaterial:
    """Test keys, CSR and certificates: deterministic, published, never for production."""

    __test__ = False  # not a pytest class

    device: Signer
    hub: Signer
    unregistered: Signer
    ca_key: Ed25519PrivateKey
    csr_pem: str
    ca_certificate_pem: str
    device_certificate_pem: str


def test_material() -> TestMaterial:
    """Build the test keys, the device's CSR and the test CA's certificates (deterministic: Ed25519)."""
    device = Signer.from_seed(test_seed("device"))
    ca_key = Ed25519PrivateKey.from_private_bytes(test_seed("ca"))
    device_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEVICE_ID)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(device_name).sign(device.private_key, None)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(CA_SERIAL)
        .not_valid_before(CA_VALIDITY[0])
        .not_valid_after(CA_VALIDITY[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, None)
    )
    device_cert = (
        x509.CertificateBuilder()
        .subject_name(device_name)
        .issuer_name(ca_name)
        .public_key(device.public_key)
        .serial_number(DEVICE_CERT_SERIAL)
        .not_valid_before(DEVICE_CERT_VALIDITY[0])
        .not_valid_after(DEVICE_CERT_VALIDITY[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, None)
    )
    return TestMaterial(
        device=device,
        hub=Signer.from_seed(test_seed("hub")),
        unregistered=Signer.from_seed(test_seed("unregistered")),
        ca_key=ca_key,
        csr_pem=csr.public_bytes(Encoding.PEM).decode("ascii"),
        ca_certificate_pem=ca_cert.public_bytes(Encoding.PEM).decode("ascii"),
        device_certificate_pem=device_cert.public_bytes(Encoding.PEM).decode("ascii"),
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_entry(signer: Signer, role: str) -> dict[str, str]:
    raw = raw_public_key(signer.public_key)
    return {
        "seed": f'SHA-256 of the ASCII string "{_SEED_LABELS[role].decode("ascii")}"',
        "seed_hex": test_seed(role).hex(),
        "public_key_hex": raw.hex(),
        "public_key_b64url": b64url(raw),
        "kid": signer.kid,
    }


def keys_document(material: TestMaterial) -> dict[str, Any]:
    """``vectors/keys.json``: the test keys, the CA, the device's CSR and certificate."""
    ca_raw = raw_public_key(material.ca_key.public_key())
    return {
        "warning": TEST_KEY_WARNING,
        "description": (
            "Ed25519 test keys (RFC 8032 32-byte seeds). The device key is registered for device_id; the hub "
            "key is the hub's; the unregistered key is registered for nobody (negative vectors). The CA "
            "signed the device certificate of prov.accepted; the CSR of prov.request is for the device key."
        ),
        "device_id": DEVICE_ID,
        "device": _key_entry(material.device, "device"),
        "hub": _key_entry(material.hub, "hub"),
        "unregistered": _key_entry(material.unregistered, "unregistered"),
        "ca": {
            "seed": f'SHA-256 of the ASCII string "{_SEED_LABELS["ca"].decode("ascii")}"',
            "seed_hex": test_seed("ca").hex(),
            "public_key_hex": ca_raw.hex(),
            "certificate_pem": material.ca_certificate_pem,
            "serial": CA_SERIAL,
        },
        "device_csr_pem": material.csr_pem,
        "device_certificate_pem": material.device_certificate_pem,
        "device_certificate_serial": DEVICE_CERT_SERIAL,
    }
