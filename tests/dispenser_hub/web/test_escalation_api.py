"""Escalation through the API: rosters, patients' policies, skipping a dose, and one-time links (/ack)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.doses import Dose, DoseState
from dispenser_hub.domain.model import Notification
from dispenser_hub.runtime import HideLinkTokens
from dispenser_hub.services.escalations import Escalations
from dispenser_hub.services.routing import Recipient
from tests.dispenser_hub.web.support import T0

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub

SECRET = b"0123456789abcdef-test-secret"
ROSTER: dict[str, Any] = {
    "staff": [
        {"ref": "nurse-1", "name": "Åse", "phone": "+47 912 34 567", "email": "ase@kommune.no"},
        {"ref": "nurse-2", "name": "Per", "phone": "+4792222222"},
    ],
    "rota": [{"staff": "nurse-1", "weekday": day, "start": "07:00", "minutes": 480} for day in range(5)],
}


def test_a_roster_is_set_whole_and_shows_who_is_on_call_and_the_gaps(hub: Hub) -> None:
    team_id = hub.team()
    hub.fails("GET", f"/teams/{team_id}/roster", 404, "team_id")
    body = hub.ok("PUT", f"/teams/{team_id}/roster", json=ROSTER)
    assert body["staff"][0] == ROSTER["staff"][0]
    assert body["staff"][1]["email"] is None
    assert body["rota"] == ROSTER["rota"]
    assert body["updated_by"] == "alice"
    assert body["gaps_next_week"]  # nights and weekends are uncovered
    assert hub.ok("GET", f"/teams/{team_id}/roster") == body
    audit = hub.ok("GET", "/audit", params={"subject": f"team:{team_id}"})["items"]
    assert [entry["action"] for entry in audit][:1] == ["team.roster"]
    assert "912" not in repr(audit)


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"rota": [{"staff": "ghost", "weekday": 0, "start": "07:00", "minutes": 60}]}, 400, "rota[0].staff"),
        ({"staff": [{"ref": "x", "name": "X"}], "rota": []}, 400, "staff[0].phone"),
        (
            {"rota": [{"staff": "nurse-1", "weekday": 9, "start": "07:00", "minutes": 60}]},
            422,
            "rota.0.weekday",
        ),
        ({"extra": 1}, 422, "extra"),
    ],
)
def test_a_bad_roster_is_refused_naming_the_field(
    hub: Hub, change: dict[str, Any], status: int, field: str | None
) -> None:
    team_id = hub.team()
    body = hub.fails("PUT", f"/teams/{team_id}/roster", status, field, json=ROSTER | change)
    assert body
    hub.fails("GET", f"/teams/{team_id}/roster", 404, "team_id")
    hub.fails("PUT", "/teams/999/roster", 404, "team_id", json=ROSTER)


def test_a_patient_policy_replaces_the_default_and_warns_what_it_cannot_deliver(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    path = f"/patients/{patient_id}/escalation-policy"
    default = hub.ok("GET", path)
    assert (default["own"], default["name"], default["steps"][0]["target"]) == (
        False,
        "default response centre",
        "response_centre",
    )
    own = {
        "name": "Kari: the relative first",
        "steps": [
            {"after_minutes": 15, "target": "relative"},
            {"after_minutes": 45, "target": "response_centre", "repeat_every_minutes": 15, "repeats": 2},
        ],
    }
    body = hub.ok("PUT", path, json=own)
    assert (body["own"], body["name"], body["steps"][1]["repeats"]) == (True, own["name"], 2)
    assert body["warnings"] == ["steps[0] (relative): the patient has no relative to notify"]
    bad = {
        "name": "x",
        "steps": [{"after_minutes": 30, "target": "relative"}, {"after_minutes": 20, "target": "relative"}],
    }
    hub.fails("PUT", path, 400, "steps[1].after", json=bad)
    assert hub.ok("DELETE", path)["own"] is False
    hub.fails("PUT", "/patients/999/escalation-policy", 404, "patient_id", json=own)


def _dose(hub: Hub, patient_id: int, state: DoseState = DoseState.DUE) -> Dose:
    hub.enrolled_device()
    dose = Dose(
        device_id="RM3-000017",
        patient_id=patient_id,
        slot_id="s-0800",
        due=T0 + timedelta(hours=1),
        opens=T0,
        closes=T0 + timedelta(hours=2),
        pouch_id="P-1",
        state=state,
    )
    with hub.uow() as uow:
        stored = uow.doses.put(dose)
        uow.commit()
    return stored


def test_staff_skip_an_open_dose_with_a_reason(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    _dose(hub, patient_id)
    path = "/devices/RM3-000017/doses/s-0800/skip"
    hub.fails("POST", path, 422, "reason", json={"reason": " "})
    body = hub.ok("POST", path, json={"reason": "given by hand at the day centre"})
    assert (body["state"], body["skipped_by"], body["reason"]) == (
        "skipped",
        "alice",
        "given by hand at the day centre",
    )
    hub.fails("POST", path, 409, "slot_id", json={"reason": "again"})
    hub.fails("POST", "/devices/RM3-000017/doses/nope/skip", 404, "slot_id", json={"reason": "x"})


def test_a_link_page_shows_the_alarm_and_only_a_post_acknowledges_it(hub: Hub) -> None:
    hub.app.state.api = dataclasses.replace(hub.app.state.api, notice_secret=SECRET)
    hub.device("RM3-000017")
    alarm_id = hub.alarm("RM3-000017")
    escalations = Escalations(SECRET, link_base="https://hub.example.no")
    with hub.uow() as uow:
        alarm = uow.alarms.get(alarm_id)
        assert alarm is not None
        recipient = Recipient("email", "ase@kommune.no", "staff:1:nurse-1")
        subject, text = escalations.message(alarm, "esc:1:0:0", recipient, hub.clock.now())
        uow.notifications.add(
            Notification(
                key="esc:1:0:0:staff:1:nurse-1:email",
                channel="email",
                address=recipient.address,
                recipient=recipient.recipient,
                subject=subject,
                text=text,
                created_at=hub.clock.now(),
                next_attempt_at=hub.clock.now(),
                alarm_id=alarm_id,
                step_key="esc:1:0:0",
            )
        )
        uow.commit()
    (link,) = [word for word in text.split() if "/ack/" in word]
    path = "/ack/" + link.rsplit("/ack/", 1)[1]
    page = hub.client.get(path)
    assert page.status_code == 200
    assert "Kvitter / Acknowledge" in page.text
    assert "RM3-000017" in page.text
    assert hub.ok("GET", f"/alarms/{alarm_id}")["status"] == "active"
    done = hub.client.post(path)
    assert (done.status_code, "Alarmen er kvittert" in done.text) == (200, True)
    assert hub.ok("GET", f"/alarms/{alarm_id}")["acknowledged_by"] == "link:staff:1:nurse-1"
    assert hub.client.post(path).status_code == 410
    assert hub.client.get("/ack/not-a-token").status_code == 404
    assert hub.client.post(path[:-3] + "xyz").status_code == 404


def test_access_logs_do_not_keep_link_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("::1", "POST", "/ack/eyJh.sig", "1.1", 200),
        None,
    )
    assert HideLinkTokens().filter(record)
    assert record.getMessage() == '::1 - "POST /ack/… HTTP/1.1" 200'
