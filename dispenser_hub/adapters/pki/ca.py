"""The hub's device certificate authority and its downlink signing key, kept together in one directory.

Files, in the directory given to ``init`` and ``load`` (created with mode 0700):

* ``ca.key``: the CA's Ed25519 private key, PEM PKCS#8, mode 0600, encrypted if a passphrase is given.
* ``ca.pem``: the self-signed CA certificate: Mosquitto's ``cafile`` for device certificates, and
  ``ProvisionAccepted.ca_certificate``.
* ``hub-signing.key``: the hub's Ed25519 key for downlink messages, PEM PKCS#8, mode 0600, encrypted with
  the same passphrase. It is a separate key from the CA's because it does a different job: devices pin its
  public key (``ProvisionAccepted.hub_key`` and ``hub_kid``) and obey only what it signs, while the CA key
  signs certificates and CRLs only. Leaking it is at least as bad as leaking the CA key, so it gets the
  same protection.

Rules:

* ``init`` never overwrites: if any of the three files exists, it refuses and changes nothing. There is no
  ``force``; rotating the CA or the hub key means re-enrolling every device and changing the broker's
  ``cafile``, which needs a plan, not a flag. If writing fails half-way, the files it wrote are removed.
* ``load`` refuses, with a message saying what to do: a directory without a CA (run ``dispenser-hub pki
  init``), a partial CA, a key file that group or others may access (checked before the key is read, as
  ssh does), a missing or wrong passphrase, and a certificate that is not a CA certificate for ``ca.key``.
* Time: the CA reads no clock. Every datetime argument must be timezone-aware (a naive one is a
  ``ValueError``) and is converted to UTC; X.509 keeps whole seconds, so fractions are dropped.
* A certificate never outlives the CA that issued it (its end is cut to the CA's), and nothing is
  issued while the CA is not valid. What a CSR must satisfy is in ``_csr``; what a certificate says, in
  ``_certificates``.
* Besides devices, the CA certifies the services around them (``issue_service_certificate``, used by
  ``service_certs``): the broker (a TLS server certificate) and the fixed client identities the broker's
  ACL knows by name (``service_certs.CLIENT_IDENTITIES``: the hub, the shared claim credential, the
  inspector). A device id equal to one of those names is refused: its certificate would carry that
  identity's rights at the broker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dispenser_hub.adapters.pki._certificates import (
    BACKDATE,
    authority_key_identifier,
    build_ca_certificate,
    build_device_certificate,
    build_service_certificate,
    load_ca_certificate,
    pem,
)
from dispenser_hub.adapters.pki._csr import checked_csr_key
from dispenser_hub.adapters.pki._keyfiles import (
    CERTIFICATE_FILE_MODE,
    KEY_FILE_MODE,
    check_owner_only,
    key_pem,
    load_key,
    write_new_file,
)
from dispenser_hub.adapters.pki.errors import CaExistsError, CaInvalidError, CaMissingError
from firmware_protocol.ids import is_device_id
from firmware_protocol.signing import Signer, b64url, kid_of, raw_public_key

if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

CA_KEY_FILE = "ca.key"
CA_CERTIFICATE_FILE = "ca.pem"
HUB_SIGNING_KEY_FILE = "hub-signing.key"
CA_FILES = (CA_KEY_FILE, CA_CERTIFICATE_FILE, HUB_SIGNING_KEY_FILE)
"""Every file of a CA directory; ``init`` writes them all, ``load`` needs them all."""
DEFAULT_CA_NAME = "dispenser-hub device CA"
DIRECTORY_MODE = 0o700
RESERVED_COMMON_NAMES = frozenset({"dispenser-hub", "claim", "inspector"})
"""The broker's ACL gives these user names (certificate CNs) their own rights: never a device's id."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A device certificate just issued, with what the hub records about it."""

    device_id: str
    pem: str
    serial: int
    fingerprint_sha256: str
    """Lower-case hex SHA-256 of the DER certificate."""
    not_before: dt.datetime
    not_after: dt.datetime
    device_key: Ed25519PublicKey
    device_kid: str
    """``firmware_protocol.signing.kid_of(device_key)``: the ``sig.kid`` of the device's messages."""


def _utc(moment: dt.datetime, name: str) -> dt.datetime:
    """``moment`` in UTC, whole seconds; ``ValueError`` if it is naive."""
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), not naive: {moment.isoformat()}")
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def _positive_days(days: int, name: str) -> dt.timedelta:
    if days < 1:
        raise ValueError(f"{name} must be at least 1, not {days}")
    return dt.timedelta(days=days)


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


class CertificateAuthority:
    """The device CA and the hub signing key. Create one with ``init`` or ``load``, not directly."""

    def __init__(
        self,
        directory: Path,
        ca_key: Ed25519PrivateKey,
        ca_certificate: x509.Certificate,
        hub_key: Ed25519PrivateKey,
    ) -> None:
        self.directory = directory
        self._ca_key = ca_key
        self._ca_certificate = ca_certificate
        self._hub_signer = Signer.from_private_key(hub_key)

    def __repr__(self) -> str:
        return f"CertificateAuthority('{self.directory}', hub_kid={self.hub_kid!r})"

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        organisation: str,
        common_name: str = DEFAULT_CA_NAME,
        valid_days: int = 3650,
        now: dt.datetime,
        passphrase: bytes | None = None,
    ) -> CertificateAuthority:
        """Create a new CA and hub signing key in ``directory``; ``CaExistsError`` if one is there.

        ``passphrase``, if given, encrypts both private keys; ``load`` then needs it.
        """
        moment = _utc(now, "now")
        lifetime = _positive_days(valid_days, "valid_days")
        if not organisation.strip() or not common_name.strip():
            raise ValueError("organisation and common_name must not be empty")
        existing = [name for name in CA_FILES if (directory / name).exists()]
        if existing:
            raise CaExistsError(
                f"a device CA already exists in '{directory}' ({', '.join(existing)}); it is never "
                "overwritten. Rotating the CA means re-enrolling every device: that needs a plan."
            )
        if directory.exists() and not directory.is_dir():
            raise CaInvalidError(f"'{directory}' exists and is not a directory")
        if not directory.exists():
            directory.mkdir(mode=DIRECTORY_MODE, parents=True)
            directory.chmod(DIRECTORY_MODE)
        ca_key = Ed25519PrivateKey.generate()
        hub_key = Ed25519PrivateKey.generate()
        certificate = build_ca_certificate(
            ca_key, organisation=organisation, common_name=common_name, now=moment, lifetime=lifetime
        )
        files = (
            (CA_KEY_FILE, key_pem(ca_key, passphrase), KEY_FILE_MODE),
            (HUB_SIGNING_KEY_FILE, key_pem(hub_key, passphrase), KEY_FILE_MODE),
            (CA_CERTIFICATE_FILE, pem(certificate).encode("ascii"), CERTIFICATE_FILE_MODE),
        )
        written: list[Path] = []
        try:
            for name, data, mode in files:
                write_new_file(directory / name, data, mode)
                written.append(directory / name)
        except FileExistsError:
            _remove(written)
            raise CaExistsError(f"another process created a device CA in '{directory}' meanwhile") from None
        except BaseException:
            _remove(written)
            raise
        return cls(directory, ca_key, certificate, hub_key)

    @classmethod
    def load(cls, directory: Path, passphrase: bytes | None = None) -> CertificateAuthority:
        """Load the CA that ``init`` created in ``directory``, after the checks in the module docstring."""
        missing = [name for name in CA_FILES if not (directory / name).is_file()]
        if len(missing) == len(CA_FILES):
            raise CaMissingError(f"no device CA in '{directory}': run `dispenser-hub pki init` to create one")
        if missing:
            raise CaMissingError(
                f"the device CA in '{directory}' is incomplete ({', '.join(missing)} missing): restore the "
                "directory from its backup; `dispenser-hub pki init` will not overwrite the rest"
            )
        check_owner_only(directory / CA_KEY_FILE)
        check_owner_only(directory / HUB_SIGNING_KEY_FILE)
        ca_key = load_key(directory / CA_KEY_FILE, passphrase)
        hub_key = load_key(directory / HUB_SIGNING_KEY_FILE, passphrase)
        certificate = load_ca_certificate(directory / CA_CERTIFICATE_FILE, ca_key)
        return cls(directory, ca_key, certificate, hub_key)

    @property
    def ca_certificate_pem(self) -> str:
        """The CA certificate, PEM (for ``ProvisionAccepted.ca_certificate``)."""
        return pem(self._ca_certificate)

    @property
    def ca_certificate_file(self) -> Path:
        """Where the CA certificate is stored (Mosquitto's ``cafile`` for device certificates)."""
        return self.directory / CA_CERTIFICATE_FILE

    @property
    def hub_signer(self) -> Signer:
        """Signs the hub's downlink messages (``firmware_protocol.seal``)."""
        return self._hub_signer

    @property
    def hub_public_key_b64(self) -> str:
        """The hub's raw Ed25519 public key, base64url without padding (``ProvisionAccepted.hub_key``)."""
        return b64url(raw_public_key(self._hub_signer.public_key))

    @property
    def hub_kid(self) -> str:
        """The hub signing key's id (``ProvisionAccepted.hub_kid``, every downlink's ``sig.kid``)."""
        return self._hub_signer.kid

    def issue(
        self, csr_pem: str, *, device_id: str, now: dt.datetime, valid_days: int = 825
    ) -> IssuedCertificate:
        """Certify the key in ``csr_pem`` for ``device_id``; ``CsrRejectedError`` if the CSR is refused.

        ``device_id`` comes from the hub's registry (the device the enrollment code was issued for), so an
        invalid one is the caller's error (``ValueError``), as is a CA that is not valid at ``now``
        (``CaInvalidError``).
        """
        if not is_device_id(device_id):
            raise ValueError(f"{device_id!r} is not a valid device id")
        if device_id in RESERVED_COMMON_NAMES:
            raise ValueError(
                f"{device_id!r} is the name of a service identity at the broker; a device may not have it"
            )
        not_before, not_after = self._validity(now, valid_days)
        device_key = checked_csr_key(csr_pem, device_id)
        certificate = build_device_certificate(
            self._ca_key,
            self._ca_certificate,
            device_key,
            device_id=device_id,
            not_before=not_before,
            not_after=not_after,
        )
        return IssuedCertificate(
            device_id=device_id,
            pem=pem(certificate),
            serial=certificate.serial_number,
            fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            device_key=device_key,
            device_kid=kid_of(device_key),
        )

    def issue_service_certificate(
        self,
        public_key: Ed25519PublicKey | EllipticCurvePublicKey,
        *,
        common_name: str,
        server_names: Sequence[str | ipaddress.IPv4Address | ipaddress.IPv6Address] | None = None,
        now: dt.datetime,
        valid_days: int = 825,
    ) -> x509.Certificate:
        """Certify ``public_key`` as a service: a TLS server at ``server_names`` if given, else a TLS client.

        Prefer ``service_certs.issue_service_credential``, which knows the services and makes their keys.
        ``CaInvalidError`` if the CA is not valid at ``now``.
        """
        if not common_name.strip():
            raise ValueError("a service certificate needs a common name")
        not_before, not_after = self._validity(now, valid_days)
        return build_service_certificate(
            self._ca_key,
            self._ca_certificate,
            public_key,
            common_name=common_name,
            server_names=server_names,
            not_before=not_before,
            not_after=not_after,
        )

    def _validity(self, now: dt.datetime, valid_days: int) -> tuple[dt.datetime, dt.datetime]:
        """Start and end of a certificate issued at ``now`` for ``valid_days``, within the CA's validity."""
        moment = _utc(now, "now")
        lifetime = _positive_days(valid_days, "valid_days")
        ca_start = self._ca_certificate.not_valid_before_utc
        ca_end = self._ca_certificate.not_valid_after_utc
        if not ca_start <= moment < ca_end:
            raise CaInvalidError(
                f"the device CA is valid from {ca_start:%Y-%m-%d %H:%M} to {ca_end:%Y-%m-%d %H:%M} UTC, "
                f"not at {moment:%Y-%m-%d %H:%M} UTC: check the clock, or plan a new CA"
            )
        return max(moment - BACKDATE, ca_start), min(moment + lifetime, ca_end)

    def verify_issued(self, cert_pem: str) -> bool:
        """Whether ``cert_pem`` is a certificate this CA signed (issuer name and signature).

        Validity dates and revocation are not checked: that is the TLS peer's job at connection time.
        The CA's own certificate passes too (it is self-issued).
        """
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
            certificate.verify_directly_issued_by(self._ca_certificate)
        except (ValueError, TypeError, UnicodeEncodeError, InvalidSignature, UnsupportedAlgorithm):
            return False
        return True

    def crl(
        self, revoked: Iterable[tuple[int, dt.datetime]], *, now: dt.datetime, next_update_days: int = 7
    ) -> str:
        """A PEM CRL listing ``revoked`` (serial, revocation time), signed by the CA.

        For Mosquitto's ``crlfile`` when a device is retired. Publish a new one before ``next_update``:
        OpenSSL refuses every client certificate once the CRL has expired. The CRL number is ``now`` in
        Unix seconds, so later CRLs have higher numbers without the CA keeping a counter.
        """
        moment = _utc(now, "now")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._ca_certificate.subject)
            .last_update(moment)
            .next_update(moment + _positive_days(next_update_days, "next_update_days"))
            .add_extension(x509.CRLNumber(int(moment.timestamp())), critical=False)
            .add_extension(authority_key_identifier(self._ca_key), critical=False)
        )
        seen: set[int] = set()
        for serial, revoked_at in revoked:
            if serial < 1 or serial in seen:
                raise ValueError(f"serial {serial} is not positive or is listed twice")
            seen.add(serial)
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_utc(revoked_at, f"revocation time of serial {serial}"))
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return pem(builder.sign(self._ca_key, None))
