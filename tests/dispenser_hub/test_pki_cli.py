"""``dispenser-hub pki issue-service`` and ``pki crl`` as an operator runs them (deploy/README.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
from typing import TYPE_CHECKING

import pytest
from cryptography import x509

from device_sim.device.identity import DeviceIdentity
from dispenser_hub.adapters.clock import SystemClock
from dispenser_hub.adapters.pki import CertificateAuthority
from dispenser_hub.bootstrap import open_storage
from dispenser_hub.cli import main
from dispenser_hub.domain.model import DeviceStatus
from dispenser_hub.settings import Settings
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def settings_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A production settings file made the way the README says, with a migrated database and a PKI."""
    assert main(["secrets", "generate"]) == 0
    path = tmp_path / "hub.env"
    path.write_text(
        capsys.readouterr().out
        + "DISPENSER_ENVIRONMENT=production\n"
        + f"DISPENSER_DATABASE_URL=sqlite:///{tmp_path / 'hub.db'}\n"
        + f"DISPENSER_PKI_DIR={tmp_path / 'pki'}\n",
        encoding="utf-8",
    )
    assert main(["migrate", "--settings", str(path)]) == 0
    assert main(["pki", "init", "--settings", str(path)]) == 0
    capsys.readouterr()
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_issue_service_writes_the_broker_files_mosquitto_needs(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mosquitto-certs"
    code, stdout, err = _run(
        capsys, "pki", "issue-service", "--name", "broker", "--out", str(out), "--dns", "mqtt.example.org",
        "--ip", "10.0.0.5", "--json", "--settings", str(settings_file),
    )  # fmt: skip
    assert (code, err) == (0, "")
    result = json.loads(stdout)
    assert result["certificate"] == str(out / "broker.pem")
    assert result["key"] == str(out / "broker.key")
    assert result["key_type"] == "ed25519"
    cert = x509.load_pem_x509_certificate((out / "broker.pem").read_bytes())
    assert str(cert.serial_number) == result["serial"]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.example.org"]
    assert (out / "ca.pem").read_text(encoding="ascii") == (tmp_path / "pki" / "ca.pem").read_text(
        encoding="ascii"
    )
    if os.name == "posix":
        assert stat.S_IMODE((out / "broker.key").stat().st_mode) == 0o600

    code, _, err = _run(
        capsys, "pki", "issue-service", "--name", "broker", "--out", str(out), "--dns", "mqtt.example.org",
        "--settings", str(settings_file),
    )  # fmt: skip
    assert code == 2
    assert "never overwritten" in err


@pytest.mark.parametrize("name", ["dispenser-hub", "claim", "inspector"])
def test_issue_service_makes_each_client_identity(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / name
    argv = ["pki", "issue-service", "--name", name, "--out", str(out), "--key-type", "ecdsa-p256"]
    code, stdout, _ = _run(capsys, *argv, "--days", "90", "--settings", str(settings_file))
    assert code == 0
    assert f"{name} (ecdsa-p256) valid until" in stdout
    cert = x509.load_pem_x509_certificate((out / f"{name}.pem").read_bytes())
    assert cert.subject.rfc4514_string() == f"CN={name}"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--name", "claim", "--dns", "mqtt.example.org"], "for the broker only"),
        (["--name", "broker"], "needs the DNS names or IP addresses"),
        (["--name", "broker", "--ip", "mqtt.example.org"], "is not an IPv4 or IPv6 address"),
    ],
)
def test_issue_service_refusals_say_what_to_fix(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    code, _, err = _run(
        capsys,
        "pki",
        "issue-service",
        *argv,
        "--out",
        str(tmp_path / "out"),
        "--settings",
        str(settings_file),
    )
    assert code == 2
    assert complaint in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_issue_service_without_a_ca_says_to_create_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "hub.env"
    settings.write_text(f"DISPENSER_PKI_DIR={tmp_path / 'no-pki'}\n", encoding="utf-8")
    code, _, err = _run(
        capsys, "pki", "issue-service", "--name", "claim", "--out", str(tmp_path), "--settings", str(settings)
    )
    assert code == 2
    assert "run `dispenser-hub pki init`" in err


def _enroll(settings_file: Path, device_id: str) -> int:
    """What provisioning does when the device's prov.request is accepted; the certificate's serial."""
    settings = Settings.load(settings_file)
    ca = CertificateAuthority.load(settings.pki_dir)
    issued = ca.issue(
        DeviceIdentity.create(device_id, Family.MULTIDOSE_ROLL).csr_pem(),
        device_id=device_id,
        now=dt.datetime.now(dt.UTC),
    )
    storage = open_storage(settings, SystemClock())
    with storage.uow_factory() as uow:
        device = uow.devices.get(device_id)
        assert device is not None
        uow.devices.update(
            dataclasses.replace(
                device,
                status=DeviceStatus.ENROLLED,
                certificate_pem=issued.pem,
                certificate_serial=issued.serial,
            )
        )
        uow.commit()
    storage.engine.dispose()
    return issued.serial


def test_crl_lists_the_certificates_of_retired_devices(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = ["--settings", str(settings_file)]
    crl_file = tmp_path / "crl.pem"
    code, stdout, _ = _run(capsys, "pki", "crl", "--out", str(crl_file), *s)
    assert code == 0
    assert "CRL of 0 retired device certificate(s)" in stdout
    assert list(x509.load_pem_x509_crl(crl_file.read_bytes())) == []

    serials = {}
    for device_id in ("RM3-000001", "RM3-000002", "RM3-000003"):
        argv = ["device", "register", device_id, "--serial", device_id, "--family", "multidose_roll"]
        assert _run(capsys, *argv, "--model", "RollMate 3", *s)[0] == 0
        if device_id != "RM3-000003":  # RM3-000003 never enrolls: no certificate to revoke
            serials[device_id] = _enroll(settings_file, device_id)
    for device_id in ("RM3-000001", "RM3-000003"):
        assert _run(capsys, "device", "retire", device_id, "--reason", "broken", *s)[0] == 0

    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    code, stdout, _ = _run(capsys, "pki", "crl", "--out", str(crl_file), "--days", "3", "--json", *s)
    assert code == 0
    result = json.loads(stdout)
    assert result["revoked"] == 1
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert [entry.serial_number for entry in crl] == [serials["RM3-000001"]]
    assert crl.next_update_utc is not None
    assert before + dt.timedelta(days=3) <= crl.next_update_utc <= before + dt.timedelta(days=3, seconds=5)
    assert dt.datetime.fromisoformat(result["next_update"]) == crl.next_update_utc
    if os.name == "posix":
        assert stat.S_IMODE(crl_file.stat().st_mode) == 0o644  # Mosquitto runs as another user
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".crl.pem")] == []


def test_crl_into_a_missing_directory_is_refused(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "pki", "crl", "--out", str(tmp_path / "missing" / "crl.pem"), "--settings", str(settings_file)
    )
    assert code == 2
    assert "cannot write" in err
