"""Teams, patients (masked national id, the audited full read), contacts, paging and their errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.dispenser_hub.web.support import NATIONAL_IDS

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub


def test_teams_are_created_and_listed(hub: Hub) -> None:
    created = hub.ok("POST", "/teams", 201, json={"name": " Åsane ", "email": "asane@example.org"})
    assert created == {"id": 1, "name": "Åsane", "phone": None, "email": "asane@example.org"}
    hub.team("Arna")
    assert [team["name"] for team in hub.ok("GET", "/teams")["items"]] == ["Åsane", "Arna"]


def test_team_errors_name_the_field(hub: Hub) -> None:
    hub.team("Arna")
    assert hub.fails("POST", "/teams", 409, "name", json={"name": "Arna"})["code"] == "conflict"
    error = hub.fails("POST", "/teams", 422, "name", json={"name": "  "})
    assert error["code"] == "validation_failed"
    hub.fails("POST", "/teams", 422, "phone", json={"name": "Fana", "phone": "call me"})
    hub.fails("POST", "/teams", 422, "colour", json={"name": "Fana", "colour": "red"})


def test_a_patient_is_registered_and_shown_with_the_national_id_masked(hub: Hub) -> None:
    team_id = hub.team()
    created = hub.patient(
        "010190 00008", responsibility="home_care", team_id=team_id, phone="+47 900 00 000", address="Vei 1"
    )
    assert created == {
        "id": 1,
        "name": "Kari Nordmann",
        "national_id_masked": "010190*****",
        "responsibility": "home_care",
        "phone": "+47 900 00 000",
        "address": "Vei 1",
        "team_id": team_id,
        "created_at": "2026-11-23T07:00:00+00:00",
    }
    assert hub.ok("GET", "/patients/1") == created
    assert hub.ok("GET", "/patients")["items"] == [created]


def test_the_full_national_id_never_appears_outside_its_own_route(hub: Hub) -> None:
    patient = hub.patient(NATIONAL_IDS[0])
    hub.ok("POST", f"/patients/{patient['id']}/contacts", 201, json={"name": "Ola", "phone": "+4790000001"})
    hub.ok("GET", f"/patients/{patient['id']}/national-id")
    answers = [
        hub.client.get(f"/api/v1{path}").text
        for path in (
            "/patients",
            f"/patients/{patient['id']}",
            f"/patients/{patient['id']}/contacts",
            "/audit",
        )
    ]
    for text in answers:
        assert NATIONAL_IDS[0] not in text
        assert NATIONAL_IDS[0][6:] not in text


def test_the_full_national_id_is_read_from_its_route_and_the_read_is_audited(hub: Hub) -> None:
    patient = hub.patient(NATIONAL_IDS[2])
    response = hub.client.get(f"/api/v1/patients/{patient['id']}/national-id")
    assert response.status_code == 200
    assert response.json() == {
        "patient_id": patient["id"],
        "national_id": NATIONAL_IDS[2],
        "kind": "FNR",
        "oid": "2.16.578.1.12.4.1.4.1",
    }
    assert response.headers["cache-control"] == "no-store"
    audit = hub.ok("GET", "/audit", params={"subject": f"patient:{patient['id']}"})["items"]
    assert [(e["action"], e["actor"], e["detail"]) for e in audit] == [
        ("patient.national_id.read", "alice", ""),
        ("patient.create", "alice", ""),
    ]


@pytest.mark.parametrize(
    ("national_id", "reason"),
    [
        ("01019000009", "check digit"),
        ("0101900000", "11 digits"),
        ("3213900000x", "character"),
        ("32019000008", "date"),
    ],
)
def test_an_invalid_national_id_is_a_422_naming_the_field_without_echoing_it(
    hub: Hub, national_id: str, reason: str
) -> None:
    data = {"name": "Kari", "national_id": national_id, "responsibility": "response_centre"}
    error = hub.fails("POST", "/patients", 422, "national_id", json=data)
    assert reason in error["message"]
    assert error["problems"][0]["field"] == "national_id"
    assert national_id not in json.dumps(error)


def test_patient_rule_errors_name_the_field(hub: Hub) -> None:
    hub.patient(NATIONAL_IDS[0])
    base = {"name": "Per", "responsibility": "response_centre"}
    error = hub.fails("POST", "/patients", 409, "national_id", json=base | {"national_id": NATIONAL_IDS[0]})
    assert NATIONAL_IDS[0] not in error["message"]
    home_care = base | {"national_id": NATIONAL_IDS[1], "responsibility": "home_care"}
    assert hub.fails("POST", "/patients", 400, "team_id", json=home_care)["code"] == "invalid"
    hub.fails("POST", "/patients", 404, "team_id", json=base | {"national_id": NATIONAL_IDS[1], "team_id": 9})
    hub.fails(
        "POST",
        "/patients",
        422,
        "responsibility",
        json=base | {"national_id": NATIONAL_IDS[1]} | {"responsibility": "nobody"},
    )


def test_a_422_lists_every_invalid_field(hub: Hub) -> None:
    error = hub.fails("POST", "/patients", 422, "name", json={"national_id": "1", "team_id": 0})
    assert [problem["field"] for problem in error["problems"]] == [
        "name",
        "national_id",
        "responsibility",
        "team_id",
    ]
    assert "name, national_id, responsibility, team_id" in error["message"]


def test_patients_are_paged_and_filtered_by_team(hub: Hub) -> None:
    arna, fana = hub.team("Arna"), hub.team("Fana")
    for number, national_id in enumerate(NATIONAL_IDS):
        hub.patient(national_id, team_id=arna if number % 2 == 0 else fana)
    first = hub.ok("GET", "/patients", params={"limit": 2})
    assert [p["id"] for p in first["items"]] == [1, 2]
    assert (first["offset"], first["limit"], first["next_offset"]) == (0, 2, 2)
    last = hub.ok("GET", "/patients", params={"limit": 2, "offset": 4})
    assert [p["id"] for p in last["items"]] == [5]
    assert last["next_offset"] is None
    of_arna = hub.ok("GET", "/patients", params={"team_id": arna})
    assert [p["id"] for p in of_arna["items"]] == [1, 3, 5]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"team_id": 0}, "team_id"),
    ],
)
def test_paging_is_bounded(hub: Hub, params: dict[str, object], field: str) -> None:
    hub.fails("GET", "/patients", 422, field, params=params)


def test_a_missing_patient_is_a_404_naming_the_field(hub: Hub) -> None:
    assert hub.fails("GET", "/patients/7", 404, "patient_id")["code"] == "not_found"
    hub.fails("GET", "/patients/7/national-id", 404, "patient_id")
    hub.fails("GET", "/patients/7/contacts", 404, "patient_id")
    hub.fails("POST", "/patients/7/contacts", 404, "patient_id", json={"name": "Ola", "phone": "+4790000001"})
    hub.fails("GET", "/patients/0", 422, "patient_id")
    hub.fails("GET", "/patients/abc", 422, "patient_id")
    hub.fails("GET", f"/patients/{2**64}", 422, "patient_id")


def test_contacts_are_added_and_listed_by_priority(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    second = {"name": "Nabo", "email": "nabo@example.org", "relation": "neighbour", "priority": 2}
    hub.ok("POST", f"/patients/{patient_id}/contacts", 201, json=second)
    first = hub.ok(
        "POST", f"/patients/{patient_id}/contacts", 201, json={"name": "Ola", "phone": "+47 900 00 001"}
    )
    assert first == {
        "id": 2,
        "patient_id": patient_id,
        "name": "Ola",
        "phone": "+47 900 00 001",
        "email": None,
        "relation": "relative",
        "priority": 1,
    }
    listed = hub.ok("GET", f"/patients/{patient_id}/contacts")["items"]
    assert [contact["name"] for contact in listed] == ["Ola", "Nabo"]


def test_a_contact_needs_a_phone_or_an_email(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    error = hub.fails("POST", f"/patients/{patient_id}/contacts", 400, "phone", json={"name": "Ola"})
    assert "phone number or an e-mail" in error["message"]
    hub.fails("POST", f"/patients/{patient_id}/contacts", 422, "priority", json={"name": "O", "priority": 0})
