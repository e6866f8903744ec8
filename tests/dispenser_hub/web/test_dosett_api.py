"""Dose-pot dispensers through the API: dosett plans, tray fills, and the bound device's schedule."""

from __future__ import annotations

import copy
import itertools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.dispenser_hub.web.support import T0

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub

EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]


def _time(at: str, label: str, weekdays: list[int] | None = None, **line: Any) -> dict[str, Any]:
    drug = {"name": "Paracetamol", "strength": "500 mg", "quantity": "1"} | line
    return {
        "at": at,
        "weekdays": EVERY_DAY if weekdays is None else weekdays,
        "label": label,
        "contents": [drug],
    }


PLAN: dict[str, Any] = {
    "valid_from": "2026-11-23",
    "note": "from the GP's list of 2026-11-20",
    "times": [
        _time("08:00", "Morning"),
        _time("12:00", "Midday", quantity=0.5),
        _time("17:00", "Afternoon"),
        _time("21:00", "Evening", weekdays=[6, 0, 1, 2, 3, 4, 5]),
    ],
}
FILL = {"tray_id": "TRAY-0042", "first_day": "2026-11-24", "filled_by": "Nurse Berg"}


def _plan(hub: Hub, patient_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = hub.ok("POST", f"/patients/{patient_id}/dosett-plans", 201, json=PLAN | changes)
    return body


def _fill(hub: Hub, patient_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = hub.ok("POST", f"/patients/{patient_id}/tray-fills", 201, json=FILL | changes)
    return body


def _actions(hub: Hub, patient_id: int) -> list[str]:
    entries = hub.ok("GET", "/audit", params={"subject": f"patient:{patient_id}"})["items"]
    return [entry["action"] for entry in entries]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- plans ---------------------------------------------------------------------------------------------------


def test_a_plan_is_created_listed_and_in_force_from_its_first_day(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    path = f"/patients/{patient_id}/dosett-plans"
    assert hub.ok("GET", path) == {"items": [], "today": "2026-11-23", "in_force_id": None}
    created = _plan(hub, patient_id)
    assert created == {
        "id": created["id"],
        "patient_id": patient_id,
        "valid_from": "2026-11-23",
        "note": "from the GP's list of 2026-11-20",
        "times": [
            {
                "at": "08:00",
                "weekdays": EVERY_DAY,
                "label": "Morning",
                "contents": [
                    {"name": "Paracetamol", "strength": "500 mg", "quantity": "1", "as_needed": False}
                ],
            },
            {
                "at": "12:00",
                "weekdays": EVERY_DAY,
                "label": "Midday",
                "contents": [
                    {"name": "Paracetamol", "strength": "500 mg", "quantity": "0.5", "as_needed": False}
                ],
            },
            {
                "at": "17:00",
                "weekdays": EVERY_DAY,
                "label": "Afternoon",
                "contents": [
                    {"name": "Paracetamol", "strength": "500 mg", "quantity": "1", "as_needed": False}
                ],
            },
            {
                "at": "21:00",
                "weekdays": EVERY_DAY,  # sorted
                "label": "Evening",
                "contents": [
                    {"name": "Paracetamol", "strength": "500 mg", "quantity": "1", "as_needed": False}
                ],
            },
        ],
        "created_at": T0.isoformat(),
        "created_by": "alice",
    }
    later = _plan(hub, patient_id, valid_from="2026-12-01", note=None, times=[_time("09:00", "Morning")])
    assert later["note"] is None
    listed = hub.ok("GET", path)
    assert listed == {"items": [created, later], "today": "2026-11-23", "in_force_id": created["id"]}
    hub.clock.advance(timedelta(days=7, hours=23, minutes=30))  # 2026-12-01 07:30 in Oslo
    assert hub.ok("GET", path)["in_force_id"] == later["id"]
    assert hub.ok("GET", path)["today"] == "2026-12-01"
    assert _actions(hub, patient_id).count("dosett.plan") == 2


def test_a_plan_in_the_future_is_not_in_force_yet(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    _plan(hub, patient_id, valid_from="2026-11-24")
    assert hub.ok("GET", f"/patients/{patient_id}/dosett-plans")["in_force_id"] is None


def _with(number: int, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(PLAN)
    body["times"][number] |= changes
    return body


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (_with(1, at="08:00"), 400, "times[1].at"),  # the same minute as times[0]
        (_with(2, at="11:59"), 400, "times[2].at"),  # out of time-of-day order
        (PLAN | {"times": [_time(f"{h:02}:00", "Dose") for h in range(9)]}, 400, "times[8].weekdays"),
        (
            _with(1, contents=[{"name": "Morfin", "strength": "5 mg", "quantity": 1, "as_needed": True}]),
            400,
            "times[1].contents[0].as_needed",
        ),
        (_with(0, weekdays=[0, 7]), 422, "times.0.weekdays.1"),
        (_with(0, weekdays=[]), 422, "times.0.weekdays"),
        (_with(0, at="8:00"), 422, "times.0.at"),
        (_with(0, at="08:00:30"), 422, "times.0.at"),
        (_with(0, label="  "), 422, "times.0.label"),
        (_with(0, contents=[]), 422, "times.0.contents"),
        (
            _with(0, contents=[{"name": "X", "strength": "1 mg", "quantity": "0"}]),
            422,
            "times.0.contents.0.quantity",
        ),
        (
            _with(0, contents=[{"name": "X", "strength": "1 mg", "quantity": "lots"}]),
            422,
            "times.0.contents.0.quantity",
        ),
        (_with(0, colour="red"), 422, "times.0.colour"),
        (PLAN | {"times": []}, 422, "times"),
        (PLAN | {"note": " "}, 422, "note"),
        (PLAN | {"valid_from": "2026-11-23T08:00:00+01:00"}, 422, "valid_from"),
        (PLAN | {"comment": "x"}, 422, "comment"),
    ],
)
def test_plan_refusals_name_the_field(hub: Hub, body: dict[str, Any], status: int, field: str) -> None:
    patient_id = hub.patient()["id"]
    error = hub.fails("POST", f"/patients/{patient_id}/dosett-plans", status, field, json=body)
    assert error["code"] == ("invalid" if status == 400 else "validation_failed")
    assert hub.ok("GET", f"/patients/{patient_id}/dosett-plans")["items"] == []
    assert "dosett.plan" not in _actions(hub, patient_id)


def test_plan_messages_say_what_to_fix(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    error = hub.fails(
        "POST", f"/patients/{patient_id}/dosett-plans", 400, "times[1].at", json=_with(1, at="08:00")
    )
    assert error["message"].startswith("times[1].at: 08:00 is the same as times[0] (08:00) on Monday")
    body = _with(0, contents=[{"name": "Morfin", "strength": "5 mg", "quantity": 1, "as_needed": True}])
    error = hub.fails(
        "POST", f"/patients/{patient_id}/dosett-plans", 400, "times[0].contents[0].as_needed", json=body
    )
    assert error["message"] == "times[0].contents[0].as_needed: as-needed drugs are not filled in pots"


# -- tray fills ----------------------------------------------------------------------------------------------


def test_a_tray_is_filled_from_the_plan_in_force(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    plan = _plan(hub, patient_id)
    hub.clock.advance(timedelta(minutes=30))
    fill = _fill(hub, patient_id)
    pots = fill["pots"]
    assert len(pots) == 28
    assert [pot["pot"] for pot in pots] == list(range(1, 29))
    dues = [_at(pot["due"]) for pot in pots]
    assert all(before < after for before, after in itertools.pairwise(dues))
    assert all(due.utcoffset() == timedelta(0) for due in dues)
    assert pots[0] == {
        "pot": 1,
        "due": "2026-11-24T07:00:00+00:00",
        "slot_id": "s-20261124-0800",
        "label": "Morning",
    }
    assert pots[1]["slot_id"] == "s-20261124-1200"
    assert pots[-1] == {
        "pot": 28,
        "due": "2026-11-30T20:00:00+00:00",
        "slot_id": "s-20261130-2100",
        "label": "Evening",
    }
    assert fill == {
        "id": fill["id"],
        "patient_id": patient_id,
        "tray_id": "TRAY-0042",
        "filled_by": "Nurse Berg",
        "filled_at": (T0 + timedelta(minutes=30)).isoformat(),
        "first_due": pots[0]["due"],
        "last_due": pots[-1]["due"],
        "pots": pots,
        "opened": [],
        "doses_left": 28,
    }
    assert hub.ok("GET", f"/patients/{patient_id}/tray-fills/current") == fill
    short = _fill(hub, patient_id, tray_id="TRAY-0043", first_day="2026-11-23", pot_count=3)
    assert [pot["slot_id"] for pot in short["pots"]] == [
        "s-20261123-0800",
        "s-20261123-1200",
        "s-20261123-1700",
    ]
    assert hub.ok("GET", f"/patients/{patient_id}/tray-fills/current")["id"] == short["id"]
    actions = _actions(hub, patient_id)
    assert actions.count("dosett.fill") == 2
    entries = hub.ok("GET", "/audit", params={"subject": f"patient:{patient_id}"})["items"]
    details = " ".join(entry["detail"] for entry in entries if entry["action"].startswith("dosett."))
    assert "TRAY-0042" in details
    assert f"plan {plan['id']}" in details
    assert "Paracetamol" not in details
    assert "Kari" not in details


def test_a_fill_across_the_autumn_dst_change_has_one_pot_per_plan_time(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    _plan(
        hub, patient_id, valid_from="2026-10-01", times=[_time("02:30", "Night"), _time("08:00", "Morning")]
    )
    fill = _fill(hub, patient_id, first_day="2026-10-24", pot_count=6)
    assert [(pot["slot_id"], pot["due"]) for pot in fill["pots"]] == [
        ("s-20261024-0230", "2026-10-24T00:30:00+00:00"),
        ("s-20261024-0800", "2026-10-24T06:00:00+00:00"),
        ("s-20261025-0230", "2026-10-25T00:30:00+00:00"),  # the first 02:30 of the repeated hour
        ("s-20261025-0800", "2026-10-25T07:00:00+00:00"),  # CET from here
        ("s-20261026-0230", "2026-10-26T01:30:00+00:00"),
        ("s-20261026-0800", "2026-10-26T07:00:00+00:00"),
    ]


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"first_day": "2026-11-22"}, 400, "first_day"),  # before the only plan
        ({"pot_count": 0}, 422, "pot_count"),
        ({"pot_count": 65}, 422, "pot_count"),
        ({"tray_id": "-tray"}, 422, "tray_id"),
        ({"tray_id": "x" * 65}, 422, "tray_id"),
        ({"filled_by": " "}, 422, "filled_by"),
        ({"first_day": "tomorrow"}, 422, "first_day"),
        ({"pots": 28}, 422, "pots"),
    ],
)
def test_fill_refusals_name_the_field(hub: Hub, changes: dict[str, Any], status: int, field: str) -> None:
    patient_id = hub.patient()["id"]
    _plan(hub, patient_id)
    hub.fails("POST", f"/patients/{patient_id}/tray-fills", status, field, json=FILL | changes)
    hub.fails("GET", f"/patients/{patient_id}/tray-fills/current", 404)
    assert "dosett.fill" not in _actions(hub, patient_id)


def test_without_a_plan_there_is_nothing_to_fill(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    error = hub.fails("POST", f"/patients/{patient_id}/tray-fills", 400, "first_day", json=FILL)
    assert error["message"] == "no dosett plan in force on 2026-11-24; add one first"
    error = hub.fails("GET", f"/patients/{patient_id}/tray-fills/current", 404)
    assert "no tray has been filled" in error["message"]


def test_an_unknown_patient_is_404(hub: Hub) -> None:
    hub.fails("POST", "/patients/999/dosett-plans", 404, "patient_id", json=PLAN)
    hub.fails("GET", "/patients/999/dosett-plans", 404, "patient_id")
    hub.fails("POST", "/patients/999/tray-fills", 404, "patient_id", json=FILL)
    hub.fails("GET", "/patients/999/tray-fills/current", 404, "patient_id")


# -- the bound device ----------------------------------------------------------------------------------------


def test_plans_and_fills_send_the_bound_dose_pot_dispenser_a_new_schedule(hub: Hub) -> None:
    device = {"device_id": "PC1-000001", "serial": "SN-PC1-1", "family": "dose_pot", "model": "PotCarousel 1"}
    hub.ok("POST", "/devices", 201, json=device)
    patient_id = hub.patient()["id"]
    hub.ok("POST", "/devices/PC1-000001/binding", 201, json={"patient_id": patient_id, "reason": "new"})
    first = hub.ok("GET", "/devices/PC1-000001/schedule")
    assert first["version"] >= 1

    hub.clock.advance(timedelta(minutes=1))
    _plan(hub, patient_id)
    second = hub.ok("GET", "/devices/PC1-000001/schedule")
    assert second["version"] > first["version"]

    hub.clock.advance(timedelta(minutes=1))
    _fill(hub, patient_id)
    third = hub.ok("GET", "/devices/PC1-000001/schedule")
    assert third["version"] > second["version"]
    assert third["built_at"] == (T0 + timedelta(minutes=2)).isoformat()
    assert "offers no dose" in third["problem"]  # until the device reports the tray loaded


# -- the OpenAPI document ------------------------------------------------------------------------------------


def test_the_document_has_the_dosett_routes(hub: Hub) -> None:
    document = hub.app.openapi()
    paths = document["paths"]
    assert set(paths["/api/v1/patients/{patient_id}/dosett-plans"]) == {"get", "post"}
    assert set(paths["/api/v1/patients/{patient_id}/tray-fills"]) == {"post"}
    assert set(paths["/api/v1/patients/{patient_id}/tray-fills/current"]) == {"get"}
    assert "dosett" in {tag["name"] for tag in document["tags"]}
    schemas = document["components"]["schemas"]
    for name in ("PlanCreate", "PlanTimeInput", "PotDrugInput", "TrayFillCreate"):
        assert schemas[name]["additionalProperties"] is False
