"""Shared builders for the protocol tests: keys, envelopes and sealed payloads of every message type."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from firmware_protocol import Direction, Envelope, KeyRing, Signer, canonical_bytes, new_ulid, seal
from firmware_protocol.messages import MESSAGE_TYPES, Body, ProvisionRequest
from firmware_protocol.messages.uplink import T

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

DEVICE = "RM3-000017"
OTHER_DEVICE = "RM3-000018"
NOW = T
"""The receiver's clock in these tests: the examples' dose time."""

DEVICE_SIGNER = Signer.from_seed(bytes(range(32)))
OTHER_DEVICE_SIGNER = Signer.from_seed(bytes(range(1, 33)))
HUB_SIGNER = Signer.from_seed(bytes(range(100, 132)))
STRANGER_SIGNER = Signer.from_seed(b"\x07" * 32)
"""A valid key that is registered for nobody."""

ALL_TYPES: tuple[str, ...] = tuple(sorted(MESSAGE_TYPES))
REQUIRES_CORR = frozenset(name for name, cls in MESSAGE_TYPES.items() if cls.REQUIRES_CORR_ID)


def key_ring() -> KeyRing:
    """Keys as a hub and a device would hold them: both devices' keys and the hub key."""
    ring = KeyRing()
    ring.add(DEVICE, DEVICE_SIGNER.public_key)
    ring.add(OTHER_DEVICE, OTHER_DEVICE_SIGNER.public_key)
    ring.add(None, HUB_SIGNER.public_key)
    return ring


def csr_pem(private_key: CertificateIssuerPrivateKeyTypes, common_name: str = DEVICE) -> str:
    """A real PEM CSR for ``private_key`` with subject CN ``common_name`` (SHA-256 for non-EdDSA keys)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    algorithm = None if isinstance(private_key, Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(private_key, algorithm)
    return csr.public_bytes(Encoding.PEM).decode("ascii")


def body_example(type_name: str, signer: Signer | None = None) -> dict[str, Any]:
    """The EXAMPLE body of ``type_name`` (a copy); ``prov.request`` gets a real CSR for ``signer``."""
    example: dict[str, Any] = json.loads(json.dumps(MESSAGE_TYPES[type_name].EXAMPLE))
    if type_name == ProvisionRequest.TYPE:
        example["csr"] = csr_pem((signer or DEVICE_SIGNER).private_key)
    return example


def signer_for(type_name: str) -> Signer:
    """The key that signs ``type_name``: the device key uplink, the hub key downlink."""
    channel = MESSAGE_TYPES[type_name].CHANNEL
    return DEVICE_SIGNER if channel.direction is Direction.UPLINK else HUB_SIGNER


def envelope(
    type_name: str,
    *,
    seq: int = 5,
    ts: int = NOW,
    device: str = DEVICE,
    proto: str = "1.0",
    body: Body | None = None,
) -> Envelope[Body]:
    """A deterministic envelope of ``type_name`` with its example body (and a corr_id where required)."""
    cls = MESSAGE_TYPES[type_name]
    return Envelope(
        body=body if body is not None else cls.model_validate(body_example(type_name)),
        device=device,
        boot_id=new_ulid(NOW - 3_600_000, b"\x01" * 10),
        seq=seq,
        ts=ts,
        msg_id=new_ulid(NOW, seq.to_bytes(10, "big")),
        corr_id=new_ulid(NOW - 1_000, b"\x02" * 10) if type_name in REQUIRES_CORR else None,
        proto=proto,
    )


def sealed(type_name: str, **kwargs: Any) -> tuple[bytes, str]:
    """A sealed payload of ``type_name`` and the topic it is published on."""
    env = envelope(type_name, **kwargs)
    return seal(env, signer_for(type_name)), env.topic


def seal_object(obj: dict[str, Any], signer: Signer) -> bytes:
    """Sign an arbitrary envelope-shaped object (without ``sig``) the way ``seal`` does; for bad messages."""
    unsigned = {name: value for name, value in obj.items() if name != "sig"}
    signed = canonical_bytes(unsigned)
    signed_object: dict[str, Any] = {**unsigned, "sig": signer.signature_member(signed)}
    return canonical_bytes(signed_object)


def unsigned_object(type_name: str, **kwargs: Any) -> dict[str, Any]:
    """The unsigned envelope object of ``type_name`` as plain JSON data, for editing before signing."""
    obj: dict[str, Any] = json.loads(json.dumps(envelope(type_name, **kwargs).unsigned_object()))
    return obj
