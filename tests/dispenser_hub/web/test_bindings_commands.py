"""Binding devices to patients (with history), and safe commands through the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.model import DeviceStatus
from dispenser_hub.services.downlink import answer
from tests.dispenser_hub.web.support import NATIONAL_IDS, T0

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub


def test_a_device_is_bound_and_unbound_with_history(hub: Hub) -> None:
    hub.device()
    patient_id = hub.patient()["id"]
    bound = hub.ok(
        "POST", "/devices/RM3-000017/binding", 201, json={"patient_id": patient_id, "reason": "new"}
    )
    assert bound == {
        "id": 1,
        "device_id": "RM3-000017",
        "patient_id": patient_id,
        "active": True,
        "bound_at": "2026-11-23T07:00:00+00:00",
        "bound_by": "alice",
        "reason": "new",
        "unbound_at": None,
        "unbound_by": None,
        "unbind_reason": None,
    }
    assert hub.ok("GET", "/devices/RM3-000017")["bound_patient_id"] == patient_id
    hub.clock.advance(timedelta(days=30))
    ended = hub.ok("DELETE", "/devices/RM3-000017/binding", json={"reason": "moved to a nursing home"})
    assert ended["active"] is False
    assert ended["unbound_at"] == (T0 + timedelta(days=30)).isoformat()
    assert (ended["unbound_by"], ended["unbind_reason"]) == ("alice", "moved to a nursing home")
    other = hub.patient(NATIONAL_IDS[1])["id"]
    hub.ok("POST", "/devices/RM3-000017/binding", 201, json={"patient_id": other, "reason": "reused"})
    history = hub.ok("GET", "/devices/RM3-000017/bindings")["items"]
    assert [(b["patient_id"], b["active"]) for b in history] == [(patient_id, False), (other, True)]
    actions = [e["action"] for e in hub.ok("GET", "/audit", params={"subject": "device:RM3-000017"})["items"]]
    assert actions[:3] == ["binding.create", "binding.end", "binding.create"]


def test_the_unbind_reason_may_come_in_the_query(hub: Hub) -> None:
    hub.device()
    patient_id = hub.patient()["id"]
    hub.ok("POST", "/devices/RM3-000017/binding", 201, json={"patient_id": patient_id, "reason": "new"})
    ended = hub.ok("DELETE", "/devices/RM3-000017/binding", params={"reason": "swap"})
    assert ended["unbind_reason"] == "swap"


def test_binding_errors_name_the_field(hub: Hub) -> None:
    hub.device()
    first, second = hub.patient()["id"], hub.patient(NATIONAL_IDS[1])["id"]
    path = "/devices/RM3-000017/binding"
    hub.fails("POST", path, 404, "patient_id", json={"patient_id": 99, "reason": "x"})
    hub.fails(
        "POST", "/devices/RM3-404404/binding", 404, "device_id", json={"patient_id": first, "reason": "x"}
    )
    hub.fails("POST", path, 422, "reason", json={"patient_id": first, "reason": ""})
    hub.fails("POST", path, 422, "patient_id", json={"patient_id": "one", "reason": "x"})
    hub.fails("DELETE", path, 409, None, json={"reason": "nothing bound"})
    hub.ok("POST", path, 201, json={"patient_id": first, "reason": "x"})
    error = hub.fails("POST", path, 409, None, json={"patient_id": second, "reason": "x"})
    assert "unbind it first" in error["message"]
    hub.device("RM3-000018")
    hub.fails("POST", "/devices/RM3-000018/binding", 409, None, json={"patient_id": first, "reason": "x"})
    hub.fails("DELETE", path, 422, "reason")
    hub.fails("DELETE", path, 422, "reason", params={"reason": " "})
    hub.fails("DELETE", "/devices/RM3-404404/binding", 404, "device_id", json={"reason": "x"})
    hub.fails("GET", "/devices/RM3-404404/bindings", 404, "device_id")


@pytest.mark.parametrize(
    ("request_body", "expected_body"),
    [
        ({"type": "cmd.identify"}, {"seconds": 30}),
        ({"type": "cmd.identify", "seconds": 120}, {"seconds": 120}),
        ({"type": "cmd.resync"}, {}),
        ({"type": "cmd.lock", "reason": "roll under investigation"}, {"reason": "roll under investigation"}),
        ({"type": "cmd.unlock", "expires_in_s": 600}, {}),
    ],
)
def test_a_command_is_queued_and_visible_with_its_status(
    hub: Hub, request_body: dict[str, Any], expected_body: dict[str, Any]
) -> None:
    device_id = hub.enrolled_device()
    queued = hub.ok("POST", f"/devices/{device_id}/commands", 202, json=request_body)
    ttl = timedelta(seconds=request_body.get("expires_in_s", 3600))
    assert queued["type"] == request_body["type"]
    assert queued["status"] == "pending"
    assert queued["created_by"] == "alice"
    assert queued["expires_at"] == (T0 + ttl).isoformat()
    assert queued["body"] == expected_body | {"expires": int((T0 + ttl).timestamp() * 1000)}
    listed = hub.ok("GET", f"/devices/{device_id}/commands")
    assert listed["items"] == [queued]
    with hub.uow() as uow:
        due = uow.commands.due(T0)
    assert [command.msg_id for command in due] == [queued["msg_id"]]
    audit = hub.ok("GET", "/audit", params={"subject": f"device:{device_id}"})["items"][0]
    assert (audit["action"], audit["detail"]) == ("command.enqueue", f"{queued['type']} {queued['msg_id']}")


def test_commands_are_listed_newest_first_with_later_status(hub: Hub) -> None:
    device_id = hub.enrolled_device()
    first = hub.ok("POST", f"/devices/{device_id}/commands", 202, json={"type": "cmd.lock", "reason": "x"})
    hub.clock.advance(timedelta(seconds=1))
    second = hub.ok("POST", f"/devices/{device_id}/commands", 202, json={"type": "cmd.unlock"})
    with hub.uow() as uow:
        answer(uow, first["msg_id"], acked=True, result="ok", now=T0 + timedelta(seconds=2))
        uow.commit()
    listed = hub.ok("GET", f"/devices/{device_id}/commands", params={"limit": 1})
    assert [c["msg_id"] for c in listed["items"]] == [second["msg_id"]]
    older = hub.ok("GET", f"/devices/{device_id}/commands", params={"offset": 1})["items"]
    assert [(c["msg_id"], c["status"], c["result"]) for c in older] == [(first["msg_id"], "acked", "ok")]


def test_command_errors_name_the_field(hub: Hub) -> None:
    hub.device("RM3-000017")
    path = "/devices/RM3-000017/commands"
    error = hub.fails("POST", path, 409, "device_id", json={"type": "cmd.identify"})
    assert "not enrolled" in error["message"]
    hub.change_device("RM3-000017", status=DeviceStatus.ENROLLED)
    hub.fails("POST", path, 422, "reason", json={"type": "cmd.lock"})
    hub.fails("POST", path, 422, "reason", json={"type": "cmd.lock", "reason": "x" * 201})
    hub.fails("POST", path, 422, "seconds", json={"type": "cmd.identify", "seconds": 0})
    hub.fails("POST", path, 422, "expires_in_s", json={"type": "cmd.unlock", "expires_in_s": 5})
    hub.fails("POST", path, 422, "type", json={"type": "cmd.release_dose", "slot_id": "s-1"})
    hub.fails("POST", path, 422, "type", json={})
    hub.fails("POST", path, 422, "boot_id", json={"type": "cmd.resync", "boot_id": "x"})
    hub.fails("POST", "/devices/RM3-404404/commands", 404, "device_id", json={"type": "cmd.unlock"})
    hub.fails("GET", "/devices/RM3-404404/commands", 404, "device_id")
    hub.ok("POST", "/devices/RM3-000017/retire", json={"reason": "broken"})
    error = hub.fails("POST", path, 409, "device_id", json={"type": "cmd.unlock"})
    assert "retired" in error["message"]
    assert hub.ok("GET", f"{path}")["items"] == []
