"""The administration commands as an operator runs them: secrets, migrate, pki, team/patient/device, bind."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.cli import main

if TYPE_CHECKING:
    from pathlib import Path

VALID_FNR = "15076500565"  # a published test fødselsnummer (valid check digits)


@pytest.fixture
def settings_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A production settings file made the way the README says."""
    assert main(["secrets", "generate"]) == 0
    generated = capsys.readouterr().out
    path = tmp_path / "hub.env"
    path.write_text(
        generated
        + "DISPENSER_ENVIRONMENT=production\n"
        + f"DISPENSER_DATABASE_URL=sqlite:///{tmp_path / 'hub.db'}\n"
        + f"DISPENSER_PKI_DIR={tmp_path / 'pki'}\n",
        encoding="utf-8",
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_production_set_up_and_registry_commands(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = ["--settings", str(settings_file)]
    code, _, err = _run(capsys, "device", "list", *s)
    assert code == 2  # production: the database must be migrated first
    assert "run dispenser-hub migrate" in err
    assert _run(capsys, "migrate", *s)[0] == 0
    code, out, _ = _run(capsys, "pki", "init", *s)
    assert code == 0
    assert "hub signing key id" in out
    assert _run(capsys, "pki", "init", *s)[0] == 2  # never overwrites a CA
    assert _run(capsys, "team", "add", "Åsane", *s)[0] == 0
    code, out, _ = _run(
        capsys,
        "patient", "add", "--name", "Kari Nordmann", "--national-id", VALID_FNR,
        "--responsibility", "home_care", "--team", "1", "--json", *s,
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {"patient_id": 1}
    code, out, _ = _run(
        capsys, "device", "register", "RM3-000001", "--serial", "SN1", "--family", "multidose_roll",
        "--model", "RollMate 3", "--json", *s,
    )  # fmt: skip
    assert code == 0
    assert len(json.loads(out)["enrollment_code"]) == 19
    assert _run(capsys, "bind", "RM3-000001", "1", "--reason", "installed", *s)[0] == 0
    code, out, _ = _run(capsys, "device", "list", "--json", *s)
    assert [d["device_id"] for d in json.loads(out)] == ["RM3-000001"]
    assert _run(capsys, "unbind", "RM3-000001", "--reason", "moved", *s)[0] == 0
    assert _run(capsys, "device", "retire", "RM3-000001", "--reason", "broken", *s)[0] == 0


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["patient", "add", "--name", "X", "--national-id", "01019012345", "--responsibility", "home_care"],
         "national_id: first check digit"),
        (["device", "register", "bad/id", "--serial", "x", "--family", "dose_pot", "--model", "m"],
         "device_id: 'bad/id' is not a valid device id"),
        (["bind", "RM3-000009", "1", "--reason", "r"], "device_id: there is no device RM3-000009"),
    ],
)  # fmt: skip
def test_refusals_say_what_to_fix_and_exit_2(
    settings_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    assert main(["migrate", "--settings", str(settings_file)]) == 0
    code, _, err = _run(capsys, *argv, "--settings", str(settings_file))
    assert code == 2
    assert complaint in err
    assert "Traceback" not in err


def test_production_refuses_development_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hub.env"
    path.write_text("DISPENSER_ENVIRONMENT=production\n", encoding="utf-8")
    code, _, err = _run(capsys, "migrate", "--settings", str(path))
    assert code == 2
    assert "DISPENSER_ENCRYPTION_KEYS" in err


def test_rosters_and_policies_on_the_command_line(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = ["--settings", str(settings_file)]
    assert _run(capsys, "migrate", *s)[0] == 0
    assert _run(capsys, "team", "add", "Åsane", *s)[0] == 0
    roster = tmp_path / "roster.json"
    roster.write_text(
        json.dumps(
            {
                "staff": [{"ref": "nurse-1", "name": "Åse", "phone": "+4791234567"}],
                "rota": [
                    {"staff": "nurse-1", "weekday": d, "start": "00:00", "minutes": 1440} for d in range(7)
                ],
            }
        ),
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, "team", "roster", "1", str(roster), *s)
    assert code == 0
    assert "1 staff, 7 weekly shifts; on call now: nurse-1; 0 gap(s)" in out
    roster.write_text(
        '{"staff": [], "rota": [{"staff": "ghost", "weekday": 0, "start": "07:00", "minutes": 60}]}'
    )
    code, _, err = _run(capsys, "team", "roster", "1", str(roster), *s)
    assert (code, "rota[0].staff" in err) == (2, True)
    assert _run(capsys, "team", "roster", "1", str(tmp_path / "missing.json"), *s)[0] == 2

    code, _, _ = _run(
        capsys,
        "patient", "add", "--name", "Kari Nordmann", "--national-id", VALID_FNR,
        "--responsibility", "home_care", "--team", "1", *s,
    )  # fmt: skip
    assert code == 0
    code, out, _ = _run(capsys, "patient", "policy", "1", *s)
    assert "default home care (default)" in out
    assert "warning: steps[0] (relative): the patient has no relative to notify" in out
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"name": "Kari", "steps": [{"after_minutes": 20, "target": "home_care_on_call"}]})
    )
    code, out, _ = _run(capsys, "patient", "policy", "1", "--set", str(policy), "--json", *s)
    assert code == 0
    assert json.loads(out)["steps"][0]["target"] == "home_care_on_call"
    assert "Kari (own)" in _run(capsys, "patient", "policy", "1", *s)[1]
    assert "(default)" in _run(capsys, "patient", "policy", "1", "--default", *s)[1]
