"""Roll manifest import (JSON, CSV; all or nothing; idempotent; conflicts refused) and the manifest read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.dispenser_hub.web.support import API, NATIONAL_IDS, error_of

if TYPE_CHECKING:
    from httpx import Response

    from tests.dispenser_hub.web.support import Hub

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
JSON_FILE = (EXAMPLES / "roll-manifest.json").read_bytes()
CSV_FILE = (EXAMPLES / "roll-manifest.csv").read_bytes()
EXAMPLE_NATIONAL_ID = "15838510075"  # the examples' synthetic test number
ROLL = "R-2026-000123"
JSON_TYPE = {"content-type": "application/json"}
CSV_TYPE = {"content-type": "text/csv"}


def _upload(hub: Hub, data: bytes, headers: dict[str, str], **params: str) -> Response:
    response: Response = hub.client.post(
        f"{API}/roll-manifests", content=data, headers=headers, params=params
    )
    return response


def _changed_json(**changes: Any) -> bytes:
    document = json.loads(JSON_FILE)
    document.update(changes)
    return json.dumps(document).encode()


def _csv_with_roll(roll_id: str, base: bytes = CSV_FILE) -> bytes:
    """The example CSV plus a copy of its rows as another roll (its pouch ids renamed too)."""
    header, *rows = base.decode().splitlines()
    copies = [row.replace(ROLL, roll_id) for row in rows]
    return "\n".join([header, *copies, *rows]).encode() + b"\n"


@pytest.fixture
def patient_id(hub: Hub) -> int:
    return int(hub.patient(EXAMPLE_NATIONAL_ID)["id"])


def test_a_json_manifest_is_imported_and_the_same_file_again_is_unchanged(hub: Hub, patient_id: int) -> None:
    response = _upload(hub, JSON_FILE, JSON_TYPE)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "items": [{"roll_id": ROLL, "status": "imported", "patient_id": patient_id, "pouches": 4}],
        "imported": 1,
        "unchanged": 0,
    }
    again = _upload(hub, JSON_FILE, JSON_TYPE)
    assert again.status_code == 200, again.text
    assert again.json()["items"][0]["status"] == "unchanged"
    assert again.json()["unchanged"] == 1
    # the CSV example is the same roll: unchanged too
    csv = _upload(hub, CSV_FILE, CSV_TYPE)
    assert csv.status_code == 200, csv.text
    assert csv.json()["items"][0]["status"] == "unchanged"
    audit = hub.ok("GET", "/audit", params={"subject": f"roll:{ROLL}"})["items"]
    assert [(entry["action"], entry["actor"]) for entry in audit] == [("roll.manifest_import", "alice")]
    assert EXAMPLE_NATIONAL_ID[6:] not in hub.client.get(f"{API}/audit").text


def test_a_csv_manifest_is_imported(hub: Hub, patient_id: int) -> None:
    response = _upload(hub, CSV_FILE, {"content-type": "text/csv; charset=utf-8"})
    assert response.status_code == 201, response.text
    assert response.json()["items"] == [
        {"roll_id": ROLL, "status": "imported", "patient_id": patient_id, "pouches": 4}
    ]
    # by file name when the content type says nothing
    other = _csv_with_roll("R-2026-000124")
    response = _upload(hub, other, {"content-type": "application/octet-stream"}, filename="rolls.csv")
    assert response.status_code == 201, response.text
    assert [(item["roll_id"], item["status"]) for item in response.json()["items"]] == [
        ("R-2026-000124", "imported"),
        (ROLL, "unchanged"),
    ]


def test_the_manifest_is_read_without_the_national_id(hub: Hub, patient_id: int) -> None:
    _upload(hub, JSON_FILE, JSON_TYPE)
    response = hub.client.get(f"{API}/roll-manifests/{ROLL}")
    assert response.status_code == 200, response.text
    assert EXAMPLE_NATIONAL_ID not in response.text
    assert EXAMPLE_NATIONAL_ID[6:] not in response.text
    body = response.json()
    assert "patient_national_id" not in body
    assert body["roll_id"] == ROLL
    assert body["patient_id"] == patient_id
    assert body["printed_patient_ref"] == "PX-4471"
    assert body["pharmacy"] == "Apotek 1 Bergen Storsenter"
    assert body["packed_at"] == "2026-11-20T13:05:00+00:00"
    assert body["first_intake_at"] == "2026-11-23T07:00:00+00:00"
    assert body["last_intake_at"] == "2026-11-24T07:00:00+00:00"
    assert [pouch["intake_at"] for pouch in body["pouches"]] == [
        "2026-11-23T07:00:00+00:00",
        "2026-11-23T13:00:00+00:00",
        "2026-11-23T19:00:00+00:00",
        "2026-11-24T07:00:00+00:00",
    ]
    assert body["pouches"][0] == {
        "pouch_id": "R-2026-000123-001",
        "intake_at": "2026-11-23T07:00:00+00:00",
        "drugs": [
            {"name": "Metformin", "strength": "500 mg", "quantity": "1", "as_needed": False},
            {"name": "Ramipril", "strength": "5 mg", "quantity": "0.5", "as_needed": False},
        ],
    }
    assert body["pouches"][1]["drugs"][0]["as_needed"] is True
    assert hub.fails("GET", "/roll-manifests/R-404", 404, "roll_id")["code"] == "not_found"
    hub.fails("GET", "/roll-manifests/bad roll id", 422, "roll_id")


@pytest.mark.usefixtures("patient_id")
def test_a_conflicting_manifest_is_refused_naming_the_roll(hub: Hub) -> None:
    _upload(hub, JSON_FILE, JSON_TYPE)
    changed = _changed_json(pharmacy="Vitusapotek Bergen")
    error = error_of(_upload(hub, changed, JSON_TYPE), 409, "roll_id")
    assert error["code"] == "conflict"
    assert error["message"] == (
        f"roll {ROLL} already has a different manifest; a changed plan needs a new roll id"
    )
    assert hub.ok("GET", f"/roll-manifests/{ROLL}")["pharmacy"] == "Apotek 1 Bergen Storsenter"


@pytest.mark.usefixtures("patient_id")
def test_a_file_is_imported_entirely_or_not_at_all(hub: Hub) -> None:
    _upload(hub, JSON_FILE, JSON_TYPE)
    conflicting = CSV_FILE.replace(b"Metformin;500 mg;1;nei", b"Metformin;850 mg;1;nei")
    response = _upload(hub, _csv_with_roll("R-2026-000124", conflicting), CSV_TYPE)
    error = error_of(response, 409, "roll_id")
    assert ROLL in error["message"]
    hub.fails("GET", "/roll-manifests/R-2026-000124", 404, "roll_id")
    audit = hub.ok("GET", "/audit", params={"subject": "roll:R-2026-000124"})["items"]
    assert audit == []


def test_a_roll_of_an_unregistered_patient_is_refused(hub: Hub) -> None:
    hub.patient(NATIONAL_IDS[0])  # someone else
    response = _upload(hub, JSON_FILE, JSON_TYPE)
    error = error_of(response, 400, "patient_national_id")
    assert error["code"] == "invalid"
    assert ROLL in error["message"]
    assert "register the patient first" in error["message"]
    assert EXAMPLE_NATIONAL_ID[6:] not in response.text
    hub.fails("GET", f"/roll-manifests/{ROLL}", 404, "roll_id")


@pytest.mark.usefixtures("patient_id")
def test_a_broken_csv_file_is_refused_with_every_problem_and_its_line(hub: Hub) -> None:
    lines = CSV_FILE.decode().splitlines()
    lines[2] = lines[2].replace(";0,5;", ";abc;")
    lines[4] = lines[4].replace("2026-11-23 20:00", "2026-11-23 25:00")
    response = _upload(hub, "\n".join(lines).encode(), CSV_TYPE, filename="broken.csv")
    error = error_of(response, 422, "quantity")
    assert error["code"] == "validation_failed"
    assert error["message"].startswith("the manifest file has ")
    assert "broken.csv:3: quantity: " in error["message"]
    found = {(problem["line"], problem["field"]) for problem in error["problems"]}
    assert (3, "quantity") in found
    assert 5 in {problem["line"] for problem in error["problems"]}
    assert all(problem["column"] is None for problem in error["problems"])
    hub.fails("GET", f"/roll-manifests/{ROLL}", 404, "roll_id")


@pytest.mark.usefixtures("patient_id")
def test_a_broken_json_file_is_refused_with_line_and_column(hub: Hub) -> None:
    text = JSON_FILE.decode().replace('"quantity": 2', '"quantity": -2')
    response = _upload(hub, text.encode(), JSON_TYPE)
    error = error_of(response, 422, "pouches[1].drugs[0].quantity")
    problem = error["problems"][0]
    assert (
        problem["line"]
        == text.splitlines().index(next(line for line in text.splitlines() if '"quantity": -2' in line)) + 1
    )
    assert isinstance(problem["column"], int)
    assert "upload:" in error["message"]
    # not JSON at all, an empty body, a workbook, an unknown content type
    assert error_of(_upload(hub, b"{not json", JSON_TYPE), 422)["problems"][0]["line"] == 1
    error_of(_upload(hub, b"", JSON_TYPE), 422)
    error_of(_upload(hub, b"PK\x03\x04rest", {"content-type": "application/octet-stream"}), 422)
    error_of(_upload(hub, JSON_FILE, {"content-type": "image/png"}), 422)
