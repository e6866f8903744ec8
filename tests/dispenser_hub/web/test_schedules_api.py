"""Schedules through the API: dose settings, pauses, and the schedule a device holds."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.dispenser_hub.web.support import T0

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub

DEFAULTS = {
    "early_s": 3600,
    "late_s": 7200,
    "notice_before_s": 900,
    "sound_after_s": 300,
    "repeat_every_s": 600,
    "repeat_max": 6,
}


def _bound(hub: Hub) -> int:
    """A patient with RM3-000017 bound to them."""
    hub.device()
    patient_id = int(hub.patient()["id"])
    hub.ok("POST", "/devices/RM3-000017/binding", 201, json={"patient_id": patient_id, "reason": "new"})
    return patient_id


def _actions(hub: Hub, patient_id: int) -> list[str]:
    entries = hub.ok("GET", "/audit", params={"subject": f"patient:{patient_id}"})["items"]
    return [entry["action"] for entry in entries]


def _pause(hub: Hub, patient_id: int, **changes: Any) -> dict[str, Any]:
    body = {
        "start": (T0 + timedelta(hours=1)).isoformat(),
        "end": (T0 + timedelta(days=3)).isoformat(),
        "reason": "hospital",
    }
    result: dict[str, Any] = hub.ok("POST", f"/patients/{patient_id}/pauses", 201, json=body | changes)
    return result


# -- dose settings -------------------------------------------------------------------------------------------


def test_dose_settings_start_as_defaults_and_are_set_in_part(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    path = f"/patients/{patient_id}/dose-settings"
    assert hub.ok("GET", path) == {
        "patient_id": patient_id,
        **DEFAULTS,
        "default": True,
        "updated_at": None,
        "updated_by": None,
    }
    hub.clock.advance(timedelta(minutes=5))
    changed = hub.ok("PUT", path, json={"late_s": 5400, "repeat_max": 3, "sound_after_s": 90})
    expected = {
        "patient_id": patient_id,
        **DEFAULTS,
        "late_s": 5400,
        "repeat_max": 3,
        "sound_after_s": 90,
        "default": False,
        "updated_at": (T0 + timedelta(minutes=5)).isoformat(),
        "updated_by": "alice",
    }
    assert changed == expected
    assert hub.ok("GET", path) == expected
    assert hub.ok("PUT", path, json={"early_s": 1800})["late_s"] == 5400
    assert _actions(hub, patient_id).count("schedule.settings") == 2


def test_dose_settings_refusals_name_the_field(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    path = f"/patients/{patient_id}/dose-settings"
    error = hub.fails("PUT", path, 400, "late_s", json={"late_s": 60})
    assert error["code"] == "invalid"
    hub.fails("PUT", path, 400, "sound_after_s", json={"sound_after_s": 7200})
    hub.fails("PUT", path, 400, "repeat_every_s", json={"repeat_every_s": 30})
    hub.fails("PUT", path, 400, "repeat_max", json={"repeat_max": 21})
    hub.fails("PUT", path, 422, "early_s", json={"early_s": -1})
    hub.fails("PUT", path, 422, "late_s", json={"late_s": 10**12})
    hub.fails("PUT", path, 422, "late_min", json={"late_min": 90})
    hub.fails("PUT", path, 422, "body", json={})
    hub.fails("GET", "/patients/999/dose-settings", 404, "patient_id")
    hub.fails("PUT", "/patients/999/dose-settings", 404, "patient_id", json={"late_s": 3600})
    assert hub.ok("GET", path)["default"] is True
    assert "schedule.settings" not in _actions(hub, patient_id)


# -- pauses --------------------------------------------------------------------------------------------------


def test_a_pause_is_created_listed_and_ended_once(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    assert hub.ok("GET", f"/patients/{patient_id}/pauses") == {"items": []}
    created = _pause(hub, patient_id, start="2026-11-23T09:00:00+01:00", reason="  travel ")
    assert created == {
        "id": created["id"],
        "patient_id": patient_id,
        "start": "2026-11-23T08:00:00+00:00",
        "end": (T0 + timedelta(days=3)).isoformat(),
        "reason": "travel",
        "created_at": T0.isoformat(),
        "created_by": "alice",
        "ended_at": None,
        "ended_by": None,
        "effective_end": (T0 + timedelta(days=3)).isoformat(),
    }
    assert hub.ok("GET", f"/patients/{patient_id}/pauses") == {"items": [created]}
    hub.clock.advance(timedelta(days=1))
    ended = hub.ok("POST", f"/pauses/{created['id']}/end")
    now = (T0 + timedelta(days=1)).isoformat()
    assert ended == created | {"ended_at": now, "ended_by": "alice", "effective_end": now}
    assert hub.ok("GET", f"/patients/{patient_id}/pauses") == {"items": [ended]}
    error = hub.fails("POST", f"/pauses/{created['id']}/end", 409)
    assert error["code"] == "conflict"
    hub.fails("POST", "/pauses/999/end", 404, "pause_id")
    actions = _actions(hub, patient_id)
    assert actions.count("schedule.pause") == 1
    assert actions.count("schedule.pause_end") == 1


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"end": (T0 + timedelta(hours=1)).isoformat()}, 400, "end"),  # not after start
        (
            {"start": (T0 - timedelta(days=2)).isoformat(), "end": (T0 - timedelta(days=1)).isoformat()},
            400,
            "end",
        ),
        ({"reason": "   "}, 422, "reason"),
        ({"start": "2026-11-24T08:00:00"}, 422, "start"),  # no offset
        ({"end": "2026-11-30T08:00:00"}, 422, "end"),
        ({"end": "soon"}, 422, "end"),
        ({"comment": "x"}, 422, "comment"),
    ],
)
def test_pause_refusals_name_the_field(hub: Hub, changes: dict[str, Any], status: int, field: str) -> None:
    patient_id = hub.patient()["id"]
    body = {
        "start": (T0 + timedelta(hours=1)).isoformat(),
        "end": (T0 + timedelta(days=3)).isoformat(),
        "reason": "hospital",
    }
    hub.fails("POST", f"/patients/{patient_id}/pauses", status, field, json=body | changes)
    assert hub.ok("GET", f"/patients/{patient_id}/pauses") == {"items": []}


def test_pauses_of_an_unknown_patient_are_404(hub: Hub) -> None:
    hub.fails("GET", "/patients/999/pauses", 404, "patient_id")
    body = {"start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat(), "reason": "hospital"}
    hub.fails("POST", "/patients/999/pauses", 404, "patient_id", json=body)


# -- the device's schedule -----------------------------------------------------------------------------------


def test_an_unbound_device_has_no_schedule_and_no_problem(hub: Hub) -> None:
    hub.device()
    assert hub.ok("GET", "/devices/RM3-000017/schedule") == {
        "device_id": "RM3-000017",
        "version": None,
        "applied_version": None,
        "applied_at": None,
        "rejected_version": None,
        "rejected_reason": None,
        "built_at": None,
        "command_msg_id": None,
        "slots": 0,
        "first_due": None,
        "last_due": None,
        "problem": None,
        "config": None,
    }
    hub.fails("GET", "/devices/RM3-000099/schedule", 404, "device_id")


def test_changes_rebuild_the_bound_device_schedule(hub: Hub) -> None:
    patient_id = _bound(hub)
    first = hub.ok("GET", "/devices/RM3-000017/schedule")
    assert first["version"] >= 1
    assert first["slots"] == 0
    assert first["built_at"] == T0.isoformat()
    assert first["command_msg_id"]
    assert "offers no dose" in first["problem"]
    assert first["config"]["version"] == first["version"]
    assert first["config"]["reminders"]["repeat_max"] == DEFAULTS["repeat_max"]

    hub.clock.advance(timedelta(minutes=1))
    hub.ok("PUT", f"/patients/{patient_id}/dose-settings", json={"repeat_max": 2, "notice_before_s": 600})
    second = hub.ok("GET", "/devices/RM3-000017/schedule")
    assert second["version"] > first["version"]
    assert second["config"]["reminders"]["repeat_max"] == 2
    assert second["config"]["reminders"]["notice_before_s"] == 600

    hub.clock.advance(timedelta(minutes=1))
    pause = _pause(hub, patient_id, start=hub.clock.now().isoformat())
    third = hub.ok("GET", "/devices/RM3-000017/schedule")
    assert third["version"] > second["version"]
    assert "paused_until" in third["config"]

    hub.clock.advance(timedelta(minutes=1))
    hub.ok("POST", f"/pauses/{pause['id']}/end")
    fourth = hub.ok("GET", "/devices/RM3-000017/schedule")
    assert fourth["version"] > third["version"]
    assert "paused_until" not in fourth["config"]
    assert "offers no dose" in fourth["problem"]


# -- the OpenAPI document ------------------------------------------------------------------------------------


def test_the_document_has_the_schedule_routes(hub: Hub) -> None:
    document = hub.app.openapi()
    paths = document["paths"]
    assert set(paths["/api/v1/patients/{patient_id}/dose-settings"]) == {"get", "put"}
    assert set(paths["/api/v1/patients/{patient_id}/pauses"]) == {"get", "post"}
    assert set(paths["/api/v1/pauses/{pause_id}/end"]) == {"post"}
    assert set(paths["/api/v1/devices/{device_id}/schedule"]) == {"get"}
    assert "schedules" in {tag["name"] for tag in document["tags"]}
    schemas = document["components"]["schemas"]
    assert schemas["DoseSettingsRequest"]["additionalProperties"] is False
    assert schemas["PauseCreate"]["additionalProperties"] is False
