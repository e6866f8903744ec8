"""Who a simulated device is: ids, model data, its Ed25519 key and what enrollment taught it.

Keys are generated per device from the device's seed (reproducible runs) or at random, and can be saved
to and loaded from a JSON file, as a real device keeps its key in protected storage.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from firmware_protocol import Signer
from firmware_protocol.messages import Family
from firmware_protocol.signing import b64url, b64url_decode, public_key_from_raw, raw_public_key

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MODELS = {Family.MULTIDOSE_ROLL: ("RollMate 3", "3.2.1"), Family.DOSE_POT: ("PotCarousel 5", "5.0.4")}
"""The simulated product of each family: model name and firmware version."""


@dataclass
class DeviceIdentity:
    """A device's identity and credentials.

    ``hub_key`` is ``None`` until enrollment (``prov.accepted``) or until it is given at the factory
    (``pre_enrolled``); an unenrolled device sends ``prov.request`` with its ``enrollment_code``.
    """

    device_id: str
    family: Family
    signer: Signer
    serial: str = ""
    enrollment_code: str | None = None
    hub_key: Ed25519PublicKey | None = None
    certificate: str | None = None

    @property
    def model(self) -> str:
        """The product model name."""
        return MODELS[self.family][0]

    @property
    def firmware(self) -> str:
        """The firmware version."""
        return MODELS[self.family][1]

    @property
    def enrolled(self) -> bool:
        """Whether the device knows the hub key (and so can verify downlink)."""
        return self.hub_key is not None

    @classmethod
    def create(cls, device_id: str, family: Family, *, seed: int | None = None) -> DeviceIdentity:
        """A new identity; a ``seed`` makes the key reproducible (derived with SHA-256)."""
        if seed is None:
            signer = Signer.generate()
        else:
            signer = Signer.from_seed(hashlib.sha256(f"device-sim key {device_id} {seed}".encode()).digest())
        return cls(device_id, family, signer, serial=device_id)

    def csr_pem(self) -> str:
        """A PKCS#10 request for the device key, subject CN = device id (for ``prov.request``)."""
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.device_id)]))
            .sign(self.signer.private_key, None)
        )
        return request.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def to_json(self) -> dict[str, object]:
        """Plain data for saving (includes the private seed: keep the file private)."""
        seed = self.signer.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return {
            "device_id": self.device_id,
            "family": self.family.value,
            "serial": self.serial,
            "seed_hex": seed.hex(),
            "enrollment_code": self.enrollment_code,
            "hub_key": b64url(raw_public_key(self.hub_key)) if self.hub_key else None,
            "certificate": self.certificate,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DeviceIdentity:
        """Load what ``to_json`` saved."""
        hub_key = data.get("hub_key")
        code = data.get("enrollment_code")
        certificate = data.get("certificate")
        return cls(
            device_id=str(data["device_id"]),
            family=Family(str(data["family"])),
            signer=Signer.from_seed(bytes.fromhex(str(data["seed_hex"]))),
            serial=str(data.get("serial") or data["device_id"]),
            enrollment_code=str(code) if code else None,
            hub_key=public_key_from_raw(b64url_decode(str(hub_key), field="hub_key")) if hub_key else None,
            certificate=str(certificate) if certificate else None,
        )


def save_identities(path: Path, identities: list[DeviceIdentity]) -> None:
    """Write identities to a JSON file readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([i.to_json() for i in identities], indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def load_identities(path: Path) -> dict[str, DeviceIdentity]:
    """Read identities saved by ``save_identities``, by device id."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {i.device_id: i for i in (DeviceIdentity.from_json(item) for item in data)}
