"""Certificates for the services around the devices: the broker, the hub, the claim credential, the inspector.

The hub's device CA issues them all (``CertificateAuthority.issue_service_certificate``; its private key
never leaves ``CertificateAuthority``), so one CA certificate serves everywhere: Mosquitto checks every
client against it (``cafile``), and the hub, the inspector and devices check the broker against it.

Services (``SERVICE_NAMES``) and what ``deploy/mosquitto/dispenser.acl`` lets each do:

* ``broker``: Mosquitto's TLS server certificate (``serverAuth``), for the DNS names and IP addresses its
  clients connect to (at least one; TLS clients check the host name against them). Its CN is the first.
* ``dispenser-hub``: the hub (``DISPENSER_MQTT_CERTFILE``): reads all uplink, publishes all downlink.
* ``claim``: the claim credential that devices not enrolled yet share (PROTOCOL.md section 9.4): only
  ``prov/request`` and ``prov/response`` of the client id it connects with.
* ``inspector``: ``dispenser-hub inspect`` on the production broker: reads, never publishes.

The last three are TLS client certificates (``clientAuth``) whose subject CN is the name: Mosquitto's
``use_identity_as_username`` makes it the user name its ACL checks, which is why
``CertificateAuthority.issue`` never gives a device one of these names (``CLIENT_IDENTITIES``).

Keys are Ed25519 by default, like the devices' (Mosquitto with OpenSSL 3 accepts them in TLS 1.3:
``tests/deploy/test_mosquitto_config.py``), or ECDSA P-256 (``ecdsa-p256``) for a TLS library that can
verify Ed25519 certificates but not sign with an Ed25519 key; the CA itself signs with Ed25519 either way,
so a peer that cannot verify Ed25519 at all cannot use these certificates. Keys are written unencrypted,
because Mosquitto and the hub read them unattended, with mode 0600; no file is ever overwritten.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dispenser_hub.adapters.pki._certificates import pem
from dispenser_hub.adapters.pki._keyfiles import CERTIFICATE_FILE_MODE, KEY_FILE_MODE, write_new_file
from dispenser_hub.adapters.pki.ca import CA_CERTIFICATE_FILE
from dispenser_hub.adapters.pki.errors import PkiError

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable
    from pathlib import Path

    from dispenser_hub.adapters.pki.ca import CertificateAuthority

ServiceName = Literal["broker", "dispenser-hub", "claim", "inspector"]
SERVICE_NAMES: tuple[ServiceName, ...] = get_args(ServiceName)
BROKER: ServiceName = "broker"
CLIENT_IDENTITIES: tuple[ServiceName, ...] = ("dispenser-hub", "claim", "inspector")
"""The services that connect to the broker as clients; their names are the ACL's user names, which
``CertificateAuthority.issue`` refuses as device ids (``RESERVED_COMMON_NAMES``, the same names)."""
KeyType = Literal["ed25519", "ecdsa-p256"]
KEY_TYPES: tuple[KeyType, ...] = get_args(KeyType)
DEFAULT_VALID_DAYS = 825

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")
"""An ASCII host name (internationalised names in their ``xn--`` form); no wildcards."""


class CredentialExistsError(PkiError):
    """A certificate or key file to be written is already there; it is never overwritten."""


@dataclass(frozen=True, slots=True)
class ServiceCredential:
    """A service's certificate and private key, just issued."""

    name: ServiceName
    certificate_pem: str
    key_pem: bytes = field(repr=False)
    """PEM PKCS#8, unencrypted: keep it as private as the service's own files."""
    serial: int
    fingerprint_sha256: str
    not_after: dt.datetime
    key_type: KeyType


@dataclass(frozen=True, slots=True)
class ServiceFiles:
    """Where ``write_service_credential`` put a credential, and the CA certificate to verify peers with."""

    certificate: Path
    key: Path
    ca_certificate: Path


def _server_names(
    dns_names: Iterable[str], ip_addresses: Iterable[str]
) -> list[str | ipaddress.IPv4Address | ipaddress.IPv6Address]:
    names: list[str | ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for dns_name in dns_names:
        if not _DNS_NAME.match(dns_name):
            raise ValueError(f"{dns_name!r} is not a DNS host name (letters, digits, '-' and '.'; ASCII)")
        names.append(dns_name.rstrip(".").lower())
    for address in ip_addresses:
        try:
            names.append(ipaddress.ip_address(address))
        except ValueError:
            raise ValueError(f"{address!r} is not an IPv4 or IPv6 address") from None
    return names


def _new_key(key_type: KeyType) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    if key_type == "ed25519":
        return Ed25519PrivateKey.generate()
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key type {key_type!r}: expected one of {', '.join(KEY_TYPES)}")


def issue_service_credential(
    ca: CertificateAuthority,
    name: ServiceName,
    *,
    now: dt.datetime,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    key_type: KeyType = "ed25519",
    valid_days: int = DEFAULT_VALID_DAYS,
) -> ServiceCredential:
    """A new key pair for ``name`` and its certificate from ``ca``.

    The broker needs at least one DNS name or IP address; the client identities take none. Bad names or
    addresses are ``ValueError``; a CA not valid at ``now`` is ``CaInvalidError``.
    """
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}: expected one of {', '.join(SERVICE_NAMES)}")
    server_names = _server_names(dns_names, ip_addresses)
    if name == BROKER and not server_names:
        raise ValueError("the broker certificate needs the DNS names or IP addresses clients connect to")
    if name != BROKER and server_names:
        raise ValueError(f"{name!r} is a client identity: DNS names and IP addresses are for the broker only")
    key = _new_key(key_type)
    certificate = ca.issue_service_certificate(
        key.public_key(),
        common_name=str(server_names[0]) if name == BROKER else name,
        server_names=server_names if name == BROKER else None,
        now=now,
        valid_days=valid_days,
    )
    return ServiceCredential(
        name=name,
        certificate_pem=pem(certificate),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        serial=certificate.serial_number,
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        not_after=certificate.not_valid_after_utc,
        key_type=key_type,
    )


def write_service_credential(
    credential: ServiceCredential, directory: Path, *, ca_certificate_pem: str
) -> ServiceFiles:
    """Write ``<name>.pem`` (0644), ``<name>.key`` (0600) and the CA's ``ca.pem`` into ``directory``.

    ``directory`` is created if missing. ``CredentialExistsError`` if the certificate or key file exists, or
    if a ``ca.pem`` there is another CA's; an identical ``ca.pem`` is kept. Nothing is left half-written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = ServiceFiles(
        certificate=directory / f"{credential.name}.pem",
        key=directory / f"{credential.name}.key",
        ca_certificate=directory / CA_CERTIFICATE_FILE,
    )
    existing = [str(path) for path in (files.certificate, files.key) if path.exists()]
    if existing:
        raise CredentialExistsError(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; never overwritten. "
            "Move the old files away first"
        )
    ca_present = files.ca_certificate.exists()
    if ca_present and files.ca_certificate.read_text(encoding="ascii") != ca_certificate_pem:
        raise CredentialExistsError(f"'{files.ca_certificate}' is the certificate of another CA")
    written: list[Path] = []
    try:
        for path, data, mode in (
            (files.key, credential.key_pem, KEY_FILE_MODE),
            (files.certificate, credential.certificate_pem.encode("ascii"), CERTIFICATE_FILE_MODE),
        ):
            write_new_file(path, data, mode)
            written.append(path)
        if not ca_present:
            write_new_file(files.ca_certificate, ca_certificate_pem.encode("ascii"), CERTIFICATE_FILE_MODE)
    except FileExistsError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise CredentialExistsError(f"'{exc.filename}' was created by someone else meanwhile") from None
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return files
