"""What the CA's certificates say. Every field is decided here; nothing is copied from a device's CSR.

* CA certificate: subject and issuer ``O=<organisation>, CN=<common name>``; ``BasicConstraints ca=True,
  path_length=0`` (critical: it signs device certificates, never another CA); ``KeyUsage keyCertSign,
  cRLSign`` (critical); a subject key identifier.
* Device certificate: subject ``CN=<device id>`` (Mosquitto's ``use_identity_as_username`` makes it the
  user name its ACL checks) and a URI ``urn:dispenser:<device id>`` as subject alternative name (for
  verifiers that read SANs only); issuer the CA's subject; ``BasicConstraints ca=False`` and ``KeyUsage
  digitalSignature`` (both critical: the key signs TLS handshakes and envelopes, nothing else);
  ``ExtendedKeyUsage clientAuth`` (it may not serve as a TLS server); subject and authority key
  identifiers; a random 159-bit serial (``x509.random_serial_number``), unguessable and practically unique.
* Service certificate (``build_service_certificate``; which services exist is decided in ``service_certs``):
  subject ``CN=<name>``; ``BasicConstraints ca=False`` and ``KeyUsage digitalSignature`` (both critical);
  ``ExtendedKeyUsage serverAuth`` for the broker, whose DNS names and IP addresses are its subject
  alternative names (what TLS clients check the host name against), else ``clientAuth`` and no alternative
  names (its CN is the MQTT user name the broker's ACL checks); subject and authority key identifiers; a
  random serial. Its key is Ed25519 or ECDSA P-256 (the device CA still signs with Ed25519).
* All start ``BACKDATE`` before the moment of issue, so that a broker whose clock runs a little behind the
  hub's accepts a certificate issued a moment ago.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dispenser_hub.adapters.pki.errors import CaInvalidError
from firmware_protocol.signing import raw_public_key

if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Sequence
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BACKDATE = dt.timedelta(minutes=5)
"""How long before the moment of issue a certificate starts: room for a broker clock a little behind."""


def _key_usage(*, digital_signature: bool = False, certificates_and_crls: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificates_and_crls,
        crl_sign=certificates_and_crls,
        encipher_only=False,
        decipher_only=False,
    )


def pem(item: x509.Certificate | x509.CertificateRevocationList) -> str:
    """PEM text of a certificate or CRL."""
    return item.public_bytes(serialization.Encoding.PEM).decode("ascii")


def build_ca_certificate(
    key: Ed25519PrivateKey, *, organisation: str, common_name: str, now: dt.datetime, lifetime: dt.timedelta
) -> x509.Certificate:
    """The self-signed CA certificate for ``key``, valid from ``now - BACKDATE`` to ``now + lifetime``."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certificates_and_crls=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, None)
    )


def build_device_certificate(
    ca_key: Ed25519PrivateKey,
    ca: x509.Certificate,
    device_key: Ed25519PublicKey,
    *,
    device_id: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A TLS client certificate for ``device_key`` as ``device_id``, signed by the CA."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .issuer_name(ca.subject)
        .public_key(device_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:dispenser:{device_id}")]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(device_key), critical=False)
        .add_extension(authority_key_identifier(ca_key), critical=False)
        .sign(ca_key, None)
    )


def build_service_certificate(
    ca_key: Ed25519PrivateKey,
    ca: x509.Certificate,
    service_key: Ed25519PublicKey | EllipticCurvePublicKey,
    *,
    common_name: str,
    server_names: Sequence[str | ipaddress.IPv4Address | ipaddress.IPv6Address] | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A service's TLS certificate from the CA: a server's if ``server_names`` is given, else a client's.

    ``server_names`` are the DNS names (``str``) and IP addresses the server is reached at; at least one.
    """
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(service_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(service_key), critical=False)
        .add_extension(authority_key_identifier(ca_key), critical=False)
    )
    if server_names is None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    else:
        if not server_names:
            raise ValueError("a server certificate needs at least one DNS name or IP address")
        alternative_names: list[x509.GeneralName] = [
            x509.DNSName(name) if isinstance(name, str) else x509.IPAddress(name) for name in server_names
        ]
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        ).add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    return builder.sign(ca_key, None)


def authority_key_identifier(ca_key: Ed25519PrivateKey) -> x509.AuthorityKeyIdentifier:
    """The CA's key identifier (the same digest as its certificate's subject key identifier)."""
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())


def load_ca_certificate(path: Path, key: Ed25519PrivateKey) -> x509.Certificate:
    """Read the CA certificate; ``CaInvalidError`` unless it is a self-signed CA certificate for ``key``."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        certificate.verify_directly_issued_by(certificate)
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        certified = certificate.public_key()
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm, x509.ExtensionNotFound):
        raise CaInvalidError(f"'{path}' is not a readable, self-signed CA certificate") from None
    if not constraints.ca:
        raise CaInvalidError(f"'{path}' is not a CA certificate (BasicConstraints ca=False)")
    if not isinstance(certified, Ed25519PublicKey) or raw_public_key(certified) != raw_public_key(
        key.public_key()
    ):
        raise CaInvalidError(f"'{path}' certifies another key than the CA key beside it")
    return certificate
