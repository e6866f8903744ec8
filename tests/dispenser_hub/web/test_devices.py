"""Devices: registration with the one-time enrollment code, presence, new codes, retirement, events."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.enrollment import check_request
from dispenser_hub.domain.model import DeviceEvent, DeviceStatus, Presence
from dispenser_hub.services.provisioning import code_hash
from tests.dispenser_hub.web.support import T0

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub


def test_registering_answers_the_device_and_its_one_time_code(hub: Hub) -> None:
    body = hub.device("RM3-000017", serial="SN-4711")
    device, code = body["device"], body["enrollment_code"]
    assert device["device_id"] == "RM3-000017"
    assert device["serial"] == "SN-4711"
    assert device["family"] == "multidose_roll"
    assert device["status"] == "registered"
    assert device["registered_at"] == "2026-11-23T07:00:00+00:00"
    assert device["bound_patient_id"] is None
    assert code["device_id"] == "RM3-000017"
    assert code["expires_at"] == (T0 + timedelta(days=7)).isoformat()
    assert len(code["code"]) == 19


def test_the_code_works_with_the_registrys_hashing_and_is_never_shown_again(hub: Hub) -> None:
    code = hub.device("RM3-000017", serial="SN-4711")["enrollment_code"]["code"]
    with hub.uow() as uow:
        stored = uow.enrollment_codes.find(code_hash(hub.cipher, code.lower().replace("-", " ")))
        device = uow.devices.get("RM3-000017")
    assert stored is not None
    assert stored.created_by == "alice"
    assert check_request(stored, device, device_id="RM3-000017", serial="SN-4711", now=T0) is None
    for path in ("/devices/RM3-000017", "/devices", "/audit"):
        text = hub.client.get(f"/api/v1{path}").text
        assert code not in text
        assert code.replace("-", "") not in text


def test_a_new_code_is_another_working_code(hub: Hub) -> None:
    first = hub.device()["enrollment_code"]["code"]
    hub.clock.advance(timedelta(hours=1))
    second = hub.ok("POST", "/devices/RM3-000017/enrollment-codes", 201)
    assert second["code"] != first
    assert second["expires_at"] == (T0 + timedelta(days=7, hours=1)).isoformat()
    with hub.uow() as uow:
        assert uow.enrollment_codes.find(code_hash(hub.cipher, second["code"])) is not None
        assert len(uow.enrollment_codes.for_device("RM3-000017")) == 2
    hub.fails("POST", "/devices/RM3-999999/enrollment-codes", 404, "device_id")


def test_registration_errors_name_the_field(hub: Hub) -> None:
    hub.device("RM3-000017", serial="SN-1")
    data = {"device_id": "RM3-000018", "serial": "SN-2", "family": "dose_pot", "model": "Carousel"}
    hub.fails("POST", "/devices", 400, "device_id", json=data | {"device_id": "no spaces!"})
    hub.fails("POST", "/devices", 409, "device_id", json=data | {"device_id": "RM3-000017"})
    hub.fails("POST", "/devices", 409, "serial", json=data | {"serial": "SN-1"})
    hub.fails("POST", "/devices", 422, "family", json=data | {"family": "toaster"})
    hub.fails("POST", "/devices", 422, "model", json=data | {"model": ""})
    hub.fails("POST", "/devices", 422, "serial", json={k: v for k, v in data.items() if k != "serial"})


def test_a_device_shows_its_presence(hub: Hub) -> None:
    hub.device()
    presence = Presence(
        online=True,
        last_seen_at=T0 + timedelta(minutes=5),
        since=T0,
        battery_pct=81,
        on_mains=False,
        schedule_version=4,
        capabilities=("roll", "lock"),
        supply_doses_left=12,
        supply_until=T0 + timedelta(days=3),
        firmware="1.2.3",
    )
    hub.set_presence("RM3-000017", presence)
    assert hub.ok("GET", "/devices/RM3-000017")["presence"] == {
        "online": True,
        "since": "2026-11-23T07:00:00+00:00",
        "last_seen_at": "2026-11-23T07:05:00+00:00",
        "battery_pct": 81,
        "on_mains": False,
        "schedule_version": 4,
        "capabilities": ["roll", "lock"],
        "supply_doses_left": 12,
        "supply_until": "2026-11-26T07:00:00+00:00",
        "firmware": "1.2.3",
    }


def test_devices_are_listed_paged_and_filtered_by_status(hub: Hub) -> None:
    for number in range(3):
        hub.device(f"RM3-00001{number}")
    hub.change_device("RM3-000011", status=DeviceStatus.ACTIVE)
    listed = hub.ok("GET", "/devices", params={"limit": 2})
    assert [d["device_id"] for d in listed["items"]] == ["RM3-000010", "RM3-000011"]
    assert listed["next_offset"] == 2
    active = hub.ok("GET", "/devices", params={"status": "active"})["items"]
    assert [d["device_id"] for d in active] == ["RM3-000011"]
    hub.fails("GET", "/devices", 422, "status", params={"status": "sleeping"})


def test_a_missing_device_is_a_404_naming_the_field(hub: Hub) -> None:
    hub.fails("GET", "/devices/RM3-404404", 404, "device_id")
    hub.fails("GET", "/devices/RM3-404404/events", 404, "device_id")
    hub.fails("GET", f"/devices/{'X' * 65}", 422, "device_id")


def test_retiring_ends_the_binding_and_is_final(hub: Hub) -> None:
    hub.device()
    patient_id = hub.patient()["id"]
    hub.ok("POST", "/devices/RM3-000017/binding", 201, json={"patient_id": patient_id, "reason": "installed"})
    hub.clock.advance(timedelta(days=1))
    retired = hub.ok("POST", "/devices/RM3-000017/retire", json={"reason": "broken display"})
    assert retired["status"] == "retired"
    assert retired["retired_at"] == (T0 + timedelta(days=1)).isoformat()
    assert retired["bound_patient_id"] is None
    history = hub.ok("GET", "/devices/RM3-000017/bindings")["items"]
    assert history[0]["active"] is False
    assert history[0]["unbind_reason"] == "device retired"
    hub.fails("POST", "/devices/RM3-000017/retire", 409, "device_id", json={"reason": "again"})
    hub.fails("POST", "/devices/RM3-000017/enrollment-codes", 409, "device_id")
    hub.fails("POST", "/devices/RM3-000017/retire", 422, "reason", json={"reason": " "})
    hub.fails("POST", "/devices/RM3-404404/retire", 404, "device_id", json={"reason": "gone"})
    audit = hub.ok("GET", "/audit", params={"subject": "device:RM3-000017"})["items"]
    assert (audit[0]["action"], audit[0]["detail"]) == ("device.retire", "broken display")


def _event(device_id: str, seq: int, kind: str) -> DeviceEvent:
    at = T0 + timedelta(minutes=seq)
    body: dict[str, object] = {"slot_id": f"s-{seq}"}
    return DeviceEvent(device_id, f"msg-{seq}", kind, "boot-1", seq, at, at, body)


@pytest.mark.parametrize("kinds", [["dose.taken"], ["dose.taken", "birth"]])
def test_events_are_listed_newest_first_filtered_by_type(hub: Hub, kinds: list[str]) -> None:
    hub.device()
    hub.device("RM3-000018")
    with hub.uow() as uow:
        for seq, kind in enumerate(["birth", "dose.taken", "dose.missed", "dose.taken"]):
            uow.events.add(_event("RM3-000017", seq, kind))
        uow.events.add(_event("RM3-000018", 9, "dose.taken"))
        uow.commit()
    page = hub.ok("GET", "/devices/RM3-000017/events", params={"type": kinds})
    expected = [
        seq
        for seq, kind in reversed(list(enumerate(["birth", "dose.taken", "dose.missed", "dose.taken"])))
        if kind in kinds
    ]
    assert [event["seq"] for event in page["items"]] == expected
    newest = hub.ok("GET", "/devices/RM3-000017/events", params={"limit": 1})
    assert newest["items"][0] == {
        "id": 4,
        "msg_id": "msg-3",
        "type": "dose.taken",
        "boot_id": "boot-1",
        "seq": 3,
        "device_ts": "2026-11-23T07:03:00+00:00",
        "received_at": "2026-11-23T07:03:00+00:00",
        "corr_id": None,
        "body": {"slot_id": "s-3"},
    }
    assert newest["next_offset"] == 1
