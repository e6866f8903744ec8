"""Service certificates from the device CA: the broker's, and the hub, claim and inspector client identities.

Where OpenSSL is installed, it checks them as Mosquitto and TLS clients will (``openssl verify -purpose``).
That Mosquitto accepts them in TLS 1.3 with the shipped configuration is ``tests/deploy``'s business.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import stat
import subprocess
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from device_sim.device.identity import DeviceIdentity
from dispenser_hub.adapters.pki import CaInvalidError, CertificateAuthority
from dispenser_hub.adapters.pki.ca import RESERVED_COMMON_NAMES
from dispenser_hub.adapters.pki.service_certs import (
    CLIENT_IDENTITIES,
    SERVICE_NAMES,
    CredentialExistsError,
    ServiceName,
    issue_service_credential,
    write_service_credential,
)
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from pathlib import Path

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="file mode bits exist on POSIX only")
HAS_OPENSSL = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "pki", organisation="Testby kommune", now=NOW)


def certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def extended_key_usage(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_the_client_identities_are_the_names_no_device_may_have() -> None:
    assert frozenset(CLIENT_IDENTITIES) == RESERVED_COMMON_NAMES
    assert set(SERVICE_NAMES) == {"broker", *CLIENT_IDENTITIES}


@pytest.mark.parametrize("device_id", sorted(RESERVED_COMMON_NAMES))
def test_no_device_certificate_is_issued_for_a_service_identity(
    ca: CertificateAuthority, device_id: str
) -> None:
    csr = DeviceIdentity.create(device_id, Family.DOSE_POT).csr_pem()
    with pytest.raises(ValueError, match="name of a service identity at the broker"):
        ca.issue(csr, device_id=device_id, now=NOW)


def test_the_broker_certificate_is_a_tls_server_certificate_for_its_names(ca: CertificateAuthority) -> None:
    credential = issue_service_credential(
        ca, "broker", now=NOW, dns_names=["MQTT.example.org", "mqtt"], ip_addresses=["10.0.0.5", "::1"]
    )
    cert = certificate(credential.certificate_pem)
    cert.verify_directly_issued_by(certificate(ca.ca_certificate_pem))
    assert ca.verify_issued(credential.certificate_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mqtt.example.org"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.example.org", "mqtt"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    assert extended_key_usage(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), Ed25519PublicKey)
    assert credential.serial == cert.serial_number
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=5)
    assert credential.not_after == NOW + dt.timedelta(days=825)


@pytest.mark.parametrize("name", CLIENT_IDENTITIES)
def test_a_client_identity_is_a_tls_client_certificate_named_by_its_cn(
    ca: CertificateAuthority, name: ServiceName
) -> None:
    credential = issue_service_credential(ca, name, now=NOW, key_type="ecdsa-p256", valid_days=30)
    cert = certificate(credential.certificate_pem)
    assert cert.subject.rfc4514_string() == f"CN={name}"
    assert extended_key_usage(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    key = serialization.load_pem_private_key(credential.key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == public_key
    assert credential.not_after == NOW + dt.timedelta(days=30)
    assert "key_pem" not in repr(credential)


@pytest.mark.parametrize(
    ("name", "dns", "ip", "complaint"),
    [
        ("broker", [], [], "needs the DNS names or IP addresses"),
        ("claim", ["mqtt.example.org"], [], "for the broker only"),
        ("broker", ["*.example.org"], [], "is not a DNS host name"),
        ("broker", ["bad_name"], [], "is not a DNS host name"),
        ("broker", [], ["10.0.0.300"], "is not an IPv4 or IPv6 address"),
        ("hub", [], [], "unknown service 'hub'"),
    ],
)
def test_bad_names_are_refused_before_anything_is_issued(
    ca: CertificateAuthority, name: str, dns: list[str], ip: list[str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        issue_service_credential(ca, name, now=NOW, dns_names=dns, ip_addresses=ip)  # type: ignore[arg-type]


def test_a_service_certificate_never_outlives_the_ca(tmp_path: Path) -> None:
    short = CertificateAuthority.init(tmp_path / "pki", organisation="Testby kommune", now=NOW, valid_days=30)
    credential = issue_service_credential(short, "inspector", now=NOW)
    assert credential.not_after == certificate(short.ca_certificate_pem).not_valid_after_utc
    with pytest.raises(CaInvalidError, match="check the clock"):
        issue_service_credential(short, "inspector", now=NOW + dt.timedelta(days=31))


@POSIX_ONLY
def test_written_files_are_private_where_they_must_be_and_never_overwritten(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    out = tmp_path / "broker-files"
    broker = issue_service_credential(ca, "broker", now=NOW, dns_names=["localhost"])
    files = write_service_credential(broker, out, ca_certificate_pem=ca.ca_certificate_pem)
    assert (files.certificate.name, files.key.name, files.ca_certificate.name) == (
        "broker.pem",
        "broker.key",
        "ca.pem",
    )
    modes = [
        stat.S_IMODE(path.stat().st_mode) for path in (files.certificate, files.key, files.ca_certificate)
    ]
    assert modes == [0o644, 0o600, 0o644]
    assert files.key.read_bytes() == broker.key_pem
    assert isinstance(serialization.load_pem_private_key(files.key.read_bytes(), None), Ed25519PrivateKey)
    assert files.ca_certificate.read_text(encoding="ascii") == ca.ca_certificate_pem

    again = issue_service_credential(ca, "broker", now=NOW, dns_names=["localhost"])
    with pytest.raises(CredentialExistsError, match="never overwritten"):
        write_service_credential(again, out, ca_certificate_pem=ca.ca_certificate_pem)
    assert files.key.read_bytes() == broker.key_pem
    # Another service beside it shares the identical ca.pem; another CA's ca.pem is refused.
    hub = issue_service_credential(ca, "dispenser-hub", now=NOW)
    write_service_credential(hub, out, ca_certificate_pem=ca.ca_certificate_pem)
    other = CertificateAuthority.init(tmp_path / "other", organisation="Testby kommune", now=NOW)
    claim = issue_service_credential(other, "claim", now=NOW)
    with pytest.raises(CredentialExistsError, match="another CA"):
        write_service_credential(claim, out, ca_certificate_pem=other.ca_certificate_pem)
    assert not (out / "claim.pem").exists()
    assert not (out / "claim.key").exists()


@HAS_OPENSSL
def test_openssl_takes_each_certificate_for_its_purpose_only(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    broker = issue_service_credential(ca, "broker", now=NOW, dns_names=["localhost"])
    hub = issue_service_credential(ca, "dispenser-hub", now=NOW)

    def openssl_verify(pem: str, purpose: str) -> str:
        path = tmp_path / "certificate.pem"
        path.write_text(pem, encoding="ascii")
        command = ["openssl", "verify", "-CAfile", str(ca.ca_certificate_file), "-purpose", purpose]
        command += ["-attime", str(int(NOW.timestamp()) + 60), str(path)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return result.stdout + result.stderr

    assert openssl_verify(broker.certificate_pem, "sslserver").endswith("OK\n")
    assert "unsuitable certificate purpose" in openssl_verify(broker.certificate_pem, "sslclient")
    assert openssl_verify(hub.certificate_pem, "sslclient").endswith("OK\n")
    assert "unsuitable certificate purpose" in openssl_verify(hub.certificate_pem, "sslserver")
