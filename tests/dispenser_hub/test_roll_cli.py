"""``dispenser-hub roll import FILE``: imports, re-imports unchanged, refuses with the problems' lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispenser_hub.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
EXAMPLE_NATIONAL_ID = "15838510075"  # the examples' synthetic test number
ROLL = "R-2026-000123"


@pytest.fixture
def settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``--settings FILE`` of a migrated production hub with the examples' patient registered."""
    assert main(["secrets", "generate"]) == 0
    path = tmp_path / "hub.env"
    path.write_text(
        capsys.readouterr().out
        + "DISPENSER_ENVIRONMENT=production\n"
        + f"DISPENSER_DATABASE_URL=sqlite:///{tmp_path / 'hub.db'}\n"
        + f"DISPENSER_PKI_DIR={tmp_path / 'pki'}\n",
        encoding="utf-8",
    )
    argv = ["--settings", str(path)]
    assert main(["migrate", *argv]) == 0
    patient = ["patient", "add", "--name", "Kari", "--national-id", EXAMPLE_NATIONAL_ID]
    assert main([*patient, "--responsibility", "response_centre", *argv]) == 0
    capsys.readouterr()
    return argv


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_manifest_is_imported_and_again_unchanged(
    settings: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    json_file = str(EXAMPLES / "roll-manifest.json")
    code, out, err = _run(capsys, "roll", "import", json_file, *settings)
    assert (code, err) == (0, "")
    assert f"{ROLL}: imported (4 pouches, patient 1)" in out
    assert "1 imported, 0 unchanged" in out
    code, out, _ = _run(capsys, "roll", "import", str(EXAMPLES / "roll-manifest.csv"), "--json", *settings)
    assert code == 0
    assert json.loads(out) == {
        "filename": str(EXAMPLES / "roll-manifest.csv"),
        "rolls": [{"roll_id": ROLL, "status": "unchanged", "patient_id": 1, "pouches": 4}],
        "imported": 0,
        "unchanged": 1,
    }


def test_a_broken_file_is_refused_with_its_lines_and_exit_2(
    settings: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = (EXAMPLES / "roll-manifest.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(";0,5;", ";abc;")
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = _run(capsys, "roll", "import", str(broken), *settings)
    assert code == 2
    assert out == ""
    assert f"{broken}:3: quantity: " in err
    assert "nothing imported" in err
    assert "Traceback" not in err


def test_conflicts_unregistered_patients_and_missing_files_exit_2(
    settings: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _run(capsys, "roll", "import", str(EXAMPLES / "roll-manifest.json"), *settings)[0] == 0
    document = json.loads((EXAMPLES / "roll-manifest.json").read_text(encoding="utf-8"))
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document | {"pharmacy": "Vitusapotek"}), encoding="utf-8")
    code, _, err = _run(capsys, "roll", "import", str(changed), *settings)
    assert code == 2
    assert f"roll_id: roll {ROLL} already has a different manifest; a changed plan needs a new roll id" in err

    stranger = tmp_path / "stranger.json"
    other = document | {"roll_id": "R-2026-000999", "patient_national_id": "01019000008"}
    other["pouches"] = [pouch | {"pouch_id": pouch["pouch_id"] + "x"} for pouch in document["pouches"]]
    stranger.write_text(json.dumps(other), encoding="utf-8")
    code, _, err = _run(capsys, "roll", "import", str(stranger), *settings)
    assert code == 2
    assert "roll R-2026-000999" in err
    assert "register the patient first" in err
    assert "01019000008" not in err

    code, _, err = _run(capsys, "roll", "import", str(tmp_path / "missing.json"), *settings)
    assert code == 2
    assert "cannot read the file" in err
