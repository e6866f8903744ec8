"""The device CA: files and their protection, CSR checks, certificate contents, CRLs and the hub signing key.

CSRs are made exactly as the simulator's ``DeviceIdentity`` makes them. Where OpenSSL is installed, it
checks the issued certificates and CRLs as Mosquitto will (``openssl verify -purpose sslclient``).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import stat
import subprocess
import textwrap
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from device_sim.device.identity import DeviceIdentity
from dispenser_hub.adapters.pki import (
    CA_CERTIFICATE_FILE,
    CA_KEY_FILE,
    HUB_SIGNING_KEY_FILE,
    CaExistsError,
    CaInvalidError,
    CaMissingError,
    CaPassphraseError,
    CertificateAuthority,
    CsrRejectedError,
    KeyFilePermissionError,
)
from dispenser_hub.adapters.pki._keyfiles import write_new_file
from firmware_protocol import DownlinkCheck, Envelope, KeyRing, decode, new_ulid, seal, verify
from firmware_protocol.messages import Family, ProvisionAccepted, RejectionReason, SetTime
from firmware_protocol.signing import b64url_decode, public_key_from_raw, raw_public_key

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
DEVICE = "RM3-000017"
POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="file mode bits exist on POSIX only")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "pki", organisation="Testby kommune", now=NOW)


@pytest.fixture
def identity() -> DeviceIdentity:
    return DeviceIdentity.create(DEVICE, Family.MULTIDOSE_ROLL, seed=7)


def certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def csr_with(
    key: CertificateIssuerPrivateKeyTypes, *names: str, algorithm: hashes.SHA256 | None = None
) -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name) for name in names])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, algorithm)
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


def pem_of_der(der: bytes) -> str:
    lines = textwrap.wrap(base64.b64encode(der).decode("ascii"), 64)
    return (
        "-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE REQUEST-----\n"
    )


def der_of(csr_pem: str) -> bytes:
    return x509.load_pem_x509_csr(csr_pem.encode("ascii")).public_bytes(serialization.Encoding.DER)


@POSIX_ONLY
def test_init_writes_the_ca_and_the_hub_key_readable_by_the_owner_only(ca: CertificateAuthority) -> None:
    def mode(name: str) -> int:
        return stat.S_IMODE((ca.directory / name).stat().st_mode)

    assert stat.S_IMODE(ca.directory.stat().st_mode) == 0o700
    assert (mode(CA_KEY_FILE), mode(HUB_SIGNING_KEY_FILE), mode(CA_CERTIFICATE_FILE)) == (0o600, 0o600, 0o644)
    assert (ca.directory / CA_KEY_FILE).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert ca.ca_certificate_file.read_text(encoding="ascii") == ca.ca_certificate_pem


def test_the_ca_certificate_may_sign_device_certificates_and_crls_only(ca: CertificateAuthority) -> None:
    cert = certificate(ca.ca_certificate_pem)
    cert.verify_directly_issued_by(cert)
    assert cert.subject.rfc4514_string() == "CN=dispenser-hub device CA,O=Testby kommune"
    assert isinstance(cert.public_key(), Ed25519PublicKey)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign, usage.value.digital_signature) == (
        True,
        True,
        False,
    )
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=3650)


def test_load_gives_back_the_same_ca_and_hub_key(ca: CertificateAuthority, identity: DeviceIdentity) -> None:
    loaded = CertificateAuthority.load(ca.directory)
    assert loaded.ca_certificate_pem == ca.ca_certificate_pem
    assert (loaded.hub_kid, loaded.hub_public_key_b64) == (ca.hub_kid, ca.hub_public_key_b64)
    assert ca.verify_issued(loaded.issue(identity.csr_pem(), device_id=DEVICE, now=NOW).pem)


@pytest.mark.parametrize("leftover", [None, HUB_SIGNING_KEY_FILE])
def test_init_never_overwrites_a_ca(tmp_path: Path, leftover: str | None) -> None:
    directory = tmp_path / "pki"
    if leftover is None:
        CertificateAuthority.init(directory, organisation="Testby kommune", now=NOW)
    else:
        directory.mkdir()
        (directory / leftover).write_bytes(b"precious")
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    with pytest.raises(CaExistsError, match=f"already exists in '{directory}'"):
        CertificateAuthority.init(directory, organisation="Testby kommune", now=NOW)
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before


def test_init_that_fails_half_way_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full_on_the_certificate(path: Path, data: bytes, mode: int) -> None:
        if path.name == CA_CERTIFICATE_FILE:
            raise OSError(28, "No space left on device")
        write_new_file(path, data, mode)

    monkeypatch.setattr("dispenser_hub.adapters.pki.ca.write_new_file", disk_full_on_the_certificate)
    with pytest.raises(OSError, match="No space left"):
        CertificateAuthority.init(tmp_path / "pki", organisation="Testby kommune", now=NOW)
    assert list((tmp_path / "pki").iterdir()) == []
    monkeypatch.undo()
    CertificateAuthority.init(tmp_path / "pki", organisation="Testby kommune", now=NOW)


def test_load_without_a_ca_says_to_run_pki_init(tmp_path: Path) -> None:
    with pytest.raises(CaMissingError, match="run `dispenser-hub pki init`"):
        CertificateAuthority.load(tmp_path / "nowhere")


def test_load_of_an_incomplete_ca_names_what_is_missing(ca: CertificateAuthority) -> None:
    (ca.directory / CA_CERTIFICATE_FILE).unlink()
    with pytest.raises(CaMissingError, match=r"incomplete \(ca\.pem missing\).*backup"):
        CertificateAuthority.load(ca.directory)


@POSIX_ONLY
@pytest.mark.parametrize("name", [CA_KEY_FILE, HUB_SIGNING_KEY_FILE])
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_a_key_file_others_may_read(ca: CertificateAuthority, name: str, mode: int) -> None:
    path = ca.directory / name
    path.chmod(mode)
    with pytest.raises(KeyFilePermissionError, match=f"{mode:04o} for '{path}' are too open.*chmod 600"):
        CertificateAuthority.load(ca.directory)


def test_a_passphrase_encrypts_both_keys_and_load_needs_it(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    made = CertificateAuthority.init(directory, organisation="Testby kommune", now=NOW, passphrase=b"s3cret")
    for name in (CA_KEY_FILE, HUB_SIGNING_KEY_FILE):
        assert (directory / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert CertificateAuthority.load(directory, b"s3cret").hub_kid == made.hub_kid
    with pytest.raises(CaPassphraseError, match="is encrypted: give its passphrase"):
        CertificateAuthority.load(directory)
    with pytest.raises(CaPassphraseError, match="wrong passphrase"):
        CertificateAuthority.load(directory, b"guess")


def test_a_passphrase_for_an_unencrypted_key_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(CaPassphraseError, match="is not encrypted, but a passphrase was given"):
        CertificateAuthority.load(ca.directory, b"s3cret")


def test_load_refuses_a_ca_certificate_for_another_key(ca: CertificateAuthority, tmp_path: Path) -> None:
    other = CertificateAuthority.init(tmp_path / "other", organisation="Testby kommune", now=NOW)
    (ca.directory / CA_CERTIFICATE_FILE).write_text(other.ca_certificate_pem, encoding="ascii")
    with pytest.raises(CaInvalidError, match="certifies another key than the CA key beside it"):
        CertificateAuthority.load(ca.directory)


def test_a_device_sim_csr_gets_a_certificate_the_device_accepts(
    ca: CertificateAuthority, identity: DeviceIdentity
) -> None:
    issued = ca.issue(identity.csr_pem(), device_id=DEVICE, now=NOW)
    assert issued.device_kid == identity.signer.kid
    assert raw_public_key(issued.device_key) == raw_public_key(identity.signer.public_key)
    assert issued.serial == certificate(issued.pem).serial_number
    assert issued.fingerprint_sha256 == certificate(issued.pem).fingerprint(hashes.SHA256()).hex()
    assert ca.verify_issued(issued.pem)
    accepted = ProvisionAccepted(
        certificate=issued.pem,
        ca_certificate=ca.ca_certificate_pem,
        device_kid=issued.device_kid,
        hub_key=ca.hub_public_key_b64,
        hub_kid=ca.hub_kid,
    )
    DownlinkCheck(DEVICE).check_enrollment(accepted, identity.signer.public_key)
    with pytest.raises(
        CsrRejectedError, match="'RM3-000017', but this enrollment is for device 'DP5-000007'"
    ):
        ca.issue(identity.csr_pem(), device_id="DP5-000007", now=NOW)


def test_a_device_certificate_is_for_tls_client_authentication_of_that_device(
    ca: CertificateAuthority, identity: DeviceIdentity
) -> None:
    issued = ca.issue(identity.csr_pem(), device_id=DEVICE, now=NOW)
    cert = certificate(issued.pem)
    ca_cert = certificate(ca.ca_certificate_pem)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.rfc4514_string() == f"CN={DEVICE}"
    assert cert.issuer == ca_cert.subject
    extensions = cert.extensions
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert (usage.value.digital_signature, usage.value.key_cert_sign) == (True, False)
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:dispenser:{DEVICE}"]
    authority = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_key_id = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == ca_key_id.digest
    assert (issued.not_before, issued.not_after) == (
        NOW - dt.timedelta(minutes=5),
        NOW + dt.timedelta(days=825),
    )
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (issued.not_before, issued.not_after)


def test_a_device_certificate_never_outlives_its_ca(tmp_path: Path, identity: DeviceIdentity) -> None:
    short = CertificateAuthority.init(tmp_path / "pki", organisation="Testby kommune", now=NOW, valid_days=30)
    issued = short.issue(identity.csr_pem(), device_id=DEVICE, now=NOW + dt.timedelta(days=1))
    assert issued.not_after == certificate(short.ca_certificate_pem).not_valid_after_utc
    with pytest.raises(CaInvalidError, match="check the clock, or plan a new CA"):
        short.issue(identity.csr_pem(), device_id=DEVICE, now=NOW + dt.timedelta(days=31))


def test_times_in_another_zone_are_taken_as_the_same_instant(
    ca: CertificateAuthority, identity: DeviceIdentity
) -> None:
    oslo = NOW.astimezone(ZoneInfo("Europe/Oslo"))
    issued = ca.issue(identity.csr_pem(), device_id=DEVICE, now=oslo)
    assert issued.not_before == NOW - dt.timedelta(minutes=5)


def test_naive_datetimes_and_bad_device_ids_are_the_callers_errors(
    tmp_path: Path, ca: CertificateAuthority, identity: DeviceIdentity
) -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        CertificateAuthority.init(tmp_path / "naive", organisation="Testby kommune", now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        ca.issue(identity.csr_pem(), device_id=DEVICE, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        ca.crl([], now=naive)
    with pytest.raises(ValueError, match="revocation time of serial 5 must be timezone-aware"):
        ca.crl([(5, naive)], now=NOW)
    with pytest.raises(ValueError, match="not a valid device id"):
        ca.issue(identity.csr_pem(), device_id="dsp/v1/#", now=NOW)


def _rejected_csrs() -> list[object]:
    ed25519 = Ed25519PrivateKey.generate()
    good = csr_with(ed25519, DEVICE)
    bad_signature = bytearray(der_of(good))
    bad_signature[-1] ^= 0x01
    return [
        pytest.param("hello, I am a CSR", "not a readable PEM certificate signing request", id="garbage"),
        pytest.param(pem_of_der(b"\x30\x03\x02\x01"), "not a readable PEM", id="broken base64"),
        pytest.param(good.replace("MI", "MÏ", 1), "not a readable PEM", id="not ASCII"),
        pytest.param(good + "\n" * 4096, "longer than 4096 characters", id="too long"),
        pytest.param(
            csr_with(rsa.generate_private_key(65537, 2048), DEVICE, algorithm=hashes.SHA256()),
            "the CSR is for an RSA-2048 key; the protocol requires an Ed25519 key",
            id="RSA key",
        ),
        pytest.param(
            csr_with(ec.generate_private_key(ec.SECP256R1()), DEVICE, algorithm=hashes.SHA256()),
            "the CSR is for an EC secp256r1 key",
            id="EC key",
        ),
        pytest.param(
            csr_with(ed25519, "RM3-000018"), "CN is 'RM3-000018', but this enrollment is for", id="wrong CN"
        ),
        pytest.param(csr_with(ed25519), "has no common name", id="no CN"),
        pytest.param(csr_with(ed25519, DEVICE, DEVICE), "has 2 common names", id="two CNs"),
        pytest.param(
            pem_of_der(bytes(bad_signature)), "self-signature does not verify", id="flipped signature bit"
        ),
        pytest.param(
            pem_of_der(der_of(good).replace(b"000017", b"000018")),
            "self-signature does not verify",
            id="CN changed after signing",
        ),
        pytest.param(csr_with(ed25519, "x" * 64), "CN is 'xxxx", id="long hostile CN"),
    ]


@pytest.mark.parametrize(("csr", "expected"), _rejected_csrs())
def test_a_bad_csr_is_rejected_saying_what_is_wrong(
    ca: CertificateAuthority, csr: str, expected: str
) -> None:
    with pytest.raises(CsrRejectedError, match=expected) as caught:
        ca.issue(csr, device_id=DEVICE, now=NOW)
    assert len(caught.value.reason) <= 200
    assert caught.value.rejection_reason is RejectionReason.CSR_INVALID


def test_a_certificate_from_another_ca_of_the_same_name_is_not_ours(
    ca: CertificateAuthority, identity: DeviceIdentity, tmp_path: Path
) -> None:
    foreign = CertificateAuthority.init(tmp_path / "foreign", organisation="Testby kommune", now=NOW)
    assert certificate(foreign.ca_certificate_pem).subject == certificate(ca.ca_certificate_pem).subject
    issued = foreign.issue(identity.csr_pem(), device_id=DEVICE, now=NOW)
    assert not ca.verify_issued(issued.pem)
    assert foreign.verify_issued(issued.pem)
    assert not ca.verify_issued("not a certificate")


def test_the_crl_lists_the_revoked_serials_and_is_signed_by_the_ca(
    ca: CertificateAuthority, identity: DeviceIdentity
) -> None:
    first = ca.issue(identity.csr_pem(), device_id=DEVICE, now=NOW)
    second = ca.issue(identity.csr_pem(), device_id=DEVICE, now=NOW)
    retired = NOW - dt.timedelta(hours=1)
    crl = x509.load_pem_x509_crl(ca.crl([(first.serial, retired), (second.serial, NOW)], now=NOW).encode())
    ca_cert = certificate(ca.ca_certificate_pem)
    ca_key = ca_cert.public_key()
    assert isinstance(ca_key, Ed25519PublicKey)
    assert crl.is_signature_valid(ca_key)
    assert crl.issuer == ca_cert.subject
    entry = crl.get_revoked_certificate_by_serial_number(first.serial)
    assert entry is not None
    assert entry.revocation_date_utc == retired
    assert {revoked.serial_number for revoked in crl} == {first.serial, second.serial}
    assert (crl.last_update_utc, crl.next_update_utc) == (NOW, NOW + dt.timedelta(days=7))
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == int(NOW.timestamp())
    with pytest.raises(ValueError, match="listed twice"):
        ca.crl([(first.serial, NOW), (first.serial, NOW)], now=NOW)


def test_the_hub_signer_signs_what_devices_verify_with_the_enrolled_hub_key(tmp_path: Path) -> None:
    CertificateAuthority.init(tmp_path / "pki", organisation="Testby kommune", now=NOW)
    ca = CertificateAuthority.load(tmp_path / "pki")
    now_ms = int(NOW.timestamp() * 1000)
    envelope = Envelope(
        SetTime(expires=now_ms + 60_000, now=now_ms), device=DEVICE, boot_id=new_ulid(), seq=0, ts=now_ms
    )
    received = decode(seal(envelope, ca.hub_signer), envelope.topic)
    hub_key = public_key_from_raw(b64url_decode(ca.hub_public_key_b64, field="hub_key"))
    assert received.kid == ca.hub_kid
    verify(received, KeyRing({(None, ca.hub_kid): hub_key}))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_accepts_a_device_for_tls_clients_until_the_crl_revokes_it(
    ca: CertificateAuthority, identity: DeviceIdentity, tmp_path: Path
) -> None:
    issued = ca.issue(identity.csr_pem(), device_id=DEVICE, now=NOW)
    device_file, crl_file = tmp_path / "device.pem", tmp_path / "crl.pem"
    device_file.write_text(issued.pem, encoding="ascii")

    def openssl_verify(purpose: str, crl: str | None = None) -> str:
        command = ["openssl", "verify", "-CAfile", str(ca.ca_certificate_file), "-purpose", purpose]
        if crl is not None:
            crl_file.write_text(crl, encoding="ascii")
            command += ["-crl_check", "-CRLfile", str(crl_file)]
        command += ["-attime", str(int(NOW.timestamp()) + 60), str(device_file)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return result.stdout + result.stderr

    assert openssl_verify("sslclient").endswith("OK\n")
    assert openssl_verify("sslclient", ca.crl([], now=NOW)).endswith("OK\n")
    assert "certificate revoked" in openssl_verify("sslclient", ca.crl([(issued.serial, NOW)], now=NOW))
    assert "unsuitable certificate purpose" in openssl_verify("sslserver")
