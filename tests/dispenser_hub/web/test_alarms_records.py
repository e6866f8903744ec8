"""The alarm board (list, log, acknowledge, resolve), dead letters and the audit trail."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import DeadLetter
from tests.dispenser_hub.web.support import T0

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub


def test_an_alarm_is_listed_and_shown_with_its_log(hub: Hub) -> None:
    hub.device()
    alarm_id = hub.alarm("RM3-000017")
    listed = hub.ok("GET", "/alarms")["items"]
    assert [alarm["id"] for alarm in listed] == [alarm_id]
    shown = hub.ok("GET", f"/alarms/{alarm_id}")
    assert {key: shown[key] for key in ("kind", "status", "severity", "vkp_code", "device_id", "count")} == {
        "kind": "no_contact",
        "status": "active",
        "severity": 2,
        "vkp_code": "3.10",
        "device_id": "RM3-000017",
        "count": 1,
    }
    assert shown["raised_at"] == "2026-11-23T07:00:00+00:00"
    assert [(e["action"], e["actor"]) for e in shown["log"]] == [("raised", "system")]


def test_an_alarm_is_acknowledged_then_resolved_by_the_operator(hub: Hub) -> None:
    hub.device()
    alarm_id = hub.alarm("RM3-000017")
    hub.clock.advance(timedelta(minutes=4))
    acked = hub.ok("POST", f"/alarms/{alarm_id}/acknowledge", json={"note": "calling the patient"})
    assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "alice")
    assert acked["acknowledged_at"] == (T0 + timedelta(minutes=4)).isoformat()
    hub.fails("POST", f"/alarms/{alarm_id}/acknowledge", 409, None, json={})
    hub.fails("POST", f"/alarms/{alarm_id}/resolve", 422, "resolution", json={})
    hub.fails("POST", f"/alarms/{alarm_id}/resolve", 422, "resolution", json={"resolution": "  "})
    resolved = hub.ok("POST", f"/alarms/{alarm_id}/resolve", json={"resolution": "dose taken late"})
    assert (resolved["status"], resolved["resolved_by"], resolved["resolution"]) == (
        "resolved",
        "alice",
        "dose taken late",
    )
    log = hub.ok("GET", f"/alarms/{alarm_id}")["log"]
    assert [(e["action"], e["actor"], e["detail"]) for e in log] == [
        ("raised", "system", "no_contact on RM3-000017"),
        ("acknowledged", "alice", "calling the patient"),
        ("resolved", "alice", "dose taken late"),
    ]
    hub.fails("POST", f"/alarms/{alarm_id}/resolve", 409, None, json={"resolution": "again"})
    audit = hub.ok("GET", "/audit", params={"subject": f"alarm:{alarm_id}"})["items"]
    assert [e["action"] for e in audit] == ["alarm.resolve", "alarm.acknowledge"]


def test_alarms_are_filtered_by_status_openness_and_device(hub: Hub) -> None:
    hub.device()
    hub.device("RM3-000018")
    first = hub.alarm("RM3-000017")
    hub.clock.advance(timedelta(minutes=1))
    second = hub.alarm("RM3-000018", kind="fault.jam")
    hub.clock.advance(timedelta(minutes=1))
    third = hub.alarm("RM3-000017", kind="battery.low")
    hub.ok("POST", f"/alarms/{first}/resolve", json={"resolution": "back online"})
    hub.ok("POST", f"/alarms/{second}/acknowledge", json={})

    def ids(**params: object) -> list[int]:
        return [alarm["id"] for alarm in hub.ok("GET", "/alarms", params=params)["items"]]

    assert ids() == [third, second, first]
    assert ids(open="true") == [third, second]
    assert ids(open="false") == [first]
    assert ids(status="acknowledged") == [second]
    assert ids(status="active", open="false") == []
    assert ids(device_id="RM3-000017") == [third, first]
    assert ids(device_id="RM3-000017", open="true") == [third]
    assert ids(limit=1, offset=1) == [second]
    hub.fails("GET", "/alarms", 422, "status", params={"status": "sleeping"})
    hub.fails("GET", "/alarms", 422, "open", params={"open": "maybe"})


def test_a_missing_alarm_is_a_404_naming_the_field(hub: Hub) -> None:
    hub.fails("GET", "/alarms/5", 404, "alarm_id")
    hub.fails("POST", "/alarms/5/acknowledge", 404, "alarm_id", json={})
    hub.fails("POST", "/alarms/5/resolve", 404, "alarm_id", json={"resolution": "x"})
    hub.fails("GET", "/alarms/zero", 422, "alarm_id")


def test_dead_letters_show_reason_and_raw_bytes(hub: Hub) -> None:
    raw = b'{"v":"1.0","type":"dose.taken"'
    letters = [
        DeadLetter(
            T0, "dsp/v1/RM3-000017/up/event", "E_SIGNATURE", "bad signature", raw, 4096, "RM3-000017", "sig"
        ),
        DeadLetter(T0 + timedelta(seconds=1), "dsp/v1/up", "E_TOPIC", "no device in topic", b"\x00\xff", 2),
    ]
    with hub.uow() as uow:
        for letter in letters:
            uow.dead_letters.add(letter)
        uow.commit()
    listed = hub.ok("GET", "/dead-letters")["items"]
    assert [letter["reason"] for letter in listed] == ["E_TOPIC", "E_SIGNATURE"]
    assert listed[0]["truncated"] is False
    assert base64.b64decode(listed[0]["raw_base64"]) == b"\x00\xff"
    assert listed[1] == {
        "id": 1,
        "received_at": "2026-11-23T07:00:00+00:00",
        "topic": "dsp/v1/RM3-000017/up/event",
        "device_id": "RM3-000017",
        "reason": "E_SIGNATURE",
        "detail": "bad signature",
        "field": "sig",
        "raw_base64": base64.b64encode(raw).decode(),
        "raw_size": 4096,
        "truncated": True,
    }
    of_device = hub.ok("GET", "/dead-letters", params={"device_id": "RM3-000017"})["items"]
    assert [letter["id"] for letter in of_device] == [1]


def test_the_audit_trail_is_paged_and_filtered_by_subject(hub: Hub) -> None:
    hub.team("Arna")
    hub.device()
    everything = hub.ok("GET", "/audit")["items"]
    assert [(e["action"], e["subject"]) for e in everything] == [
        ("device.register", "device:RM3-000017"),
        ("device.enrollment_code", "device:RM3-000017"),
        ("team.create", "team:1"),
    ]
    assert everything[0]["at"] == "2026-11-23T07:00:00+00:00"
    page = hub.ok("GET", "/audit", params={"subject": "team:1", "limit": 1})
    assert [e["action"] for e in page["items"]] == ["team.create"]
    assert page["next_offset"] is None
    hub.fails("GET", "/audit", 422, "subject", params={"subject": "x" * 101})
