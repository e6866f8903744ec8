"""Notifications: an alarm's messages without addresses, the console's event stream, SMS replies."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.model import Notification, NotificationStatus
from dispenser_hub.domain.notices import reply_code
from tests.dispenser_hub.web.support import API, error_of

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub

SECRET = b"0123456789abcdef-test-secret"
GATEWAY = "gateway-0123456789abcdef0123456789"  # a test token, valid nowhere else
PHONE = "+4791234567"
STEP = "esc:1:relative:1"
SSE = {"Accept": "text/event-stream"}


def _enable_replies(hub: Hub, token: str | None = GATEWAY) -> None:
    hub.app.state.api = dataclasses.replace(hub.app.state.api, notice_secret=SECRET, sms_gateway_token=token)


def _notify(hub: Hub, alarm_id: int, channel: str, address: str, recipient: str) -> Notification:
    now = hub.clock.now()
    with hub.uow() as uow:
        stored = uow.notifications.add(
            Notification(
                key=f"{STEP}:{recipient}:{alarm_id}",
                channel=channel,
                address=address,
                recipient=recipient,
                subject="no_contact 3.10",
                text=f"GUL 3.10 ingen kontakt. Kvitter: svar OK {reply_code(SECRET, alarm_id, STEP)}",
                created_at=now,
                next_attempt_at=now,
                alarm_id=alarm_id,
                step_key=STEP,
            )
        )
        assert stored is not None
        uow.commit()
    return stored


def _alarm_with_notices(hub: Hub) -> int:
    hub.device("RM3-000017")
    alarm_id = hub.alarm("RM3-000017")
    _notify(hub, alarm_id, "sms", PHONE, "contact:7")
    _notify(hub, alarm_id, "console", "response-centre", "response-centre")
    return alarm_id


def _events(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "event" in fields:
            events.append({"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def test_an_alarms_notifications_never_show_the_address(hub: Hub) -> None:
    alarm_id = _alarm_with_notices(hub)
    body = hub.ok("GET", "/notifications", params={"alarm_id": alarm_id})
    assert [(item["channel"], item["recipient"]) for item in body["items"]] == [
        ("sms", "contact:7"),
        ("console", "response-centre"),
    ]
    assert set(body["items"][0]) == {
        "id",
        "alarm_id",
        "channel",
        "recipient",
        "subject",
        "text",
        "status",
        "attempts",
        "sent_at",
        "last_error",
        "created_at",
    }
    assert PHONE not in json.dumps(body)
    assert body["items"][0]["status"] == "pending"


def test_notifications_of_an_unknown_alarm_are_a_404(hub: Hub) -> None:
    hub.fails("GET", "/notifications", 404, "alarm_id", params={"alarm_id": 99})
    hub.fails("GET", "/notifications", 422, "alarm_id")


def test_the_stream_sends_the_alarm_and_its_console_notification_then_ends(hub: Hub) -> None:
    alarm_id = _alarm_with_notices(hub)
    response = hub.client.get(f"{API}/stream", params={"max_events": 2, "interval": 0.5}, headers=SSE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("retry: 500\n\n")
    alarm, notice = _events(response.text)
    assert (alarm["event"], alarm["data"]["id"], alarm["data"]["kind"]) == ("alarm", alarm_id, "no_contact")
    assert (notice["event"], notice["data"]["channel"]) == ("notification", "console")
    assert "address" not in notice["data"]
    assert PHONE not in response.text  # the SMS is not a console notification

    # Resuming after the last event: nothing new until something changes.
    headers = SSE | {"Last-Event-ID": notice["id"]}
    quiet = hub.client.get(f"{API}/stream", params={"timeout": 0.1, "interval": 0.5}, headers=headers)
    assert _events(quiet.text) == []
    with hub.uow() as uow:
        stored = uow.notifications.for_alarm(alarm_id)[1]
        uow.notifications.update(dataclasses.replace(stored, status=NotificationStatus.SENT))
        uow.commit()
    later = _notify(hub, alarm_id, "console", "team:1", "team:1")
    hub.clock.advance(timedelta(minutes=1))
    hub.registry.acknowledge_alarm(alarm_id, by="alice")
    resumed = hub.client.get(f"{API}/stream", params={"max_events": 5, "timeout": 0.1}, headers=headers)
    events = _events(resumed.text)
    assert [(e["event"], e["data"]["id"]) for e in events] == [("alarm", alarm_id)]
    assert later.id not in {e["data"]["id"] for e in events if e["event"] == "notification"}  # cancelled
    assert events[0]["data"]["status"] == "acknowledged"


def test_the_stream_needs_a_token_and_a_valid_event_id(hub: Hub) -> None:
    error_of(hub.client.get(f"{API}/stream", headers=SSE | {"Authorization": ""}), 401)
    assert hub.client.get(f"{API}/stream", headers=SSE | {"Last-Event-ID": "x"}).status_code == 422
    error_of(hub.client.get(f"{API}/stream", params={"interval": 0.1}, headers=SSE), 422, "interval")
    assert hub.client.get(f"{API}/stream").status_code == 406  # not an event-stream client


def _post_reply(hub: Hub, text: str, token: str | None = GATEWAY, number: str = PHONE) -> Any:
    headers = {"Authorization": ""} | ({"X-Gateway-Token": token} if token is not None else {})
    return hub.client.post(f"{API}/sms/replies", json={"from": number, "text": text}, headers=headers)


def test_an_sms_reply_with_the_code_acknowledges_the_alarm(hub: Hub) -> None:
    _enable_replies(hub)
    alarm_id = _alarm_with_notices(hub)
    code = reply_code(SECRET, alarm_id, STEP)
    wrong = _post_reply(hub, "OK 222222" if code != "222222" else "OK 333333")
    assert wrong.status_code == 200
    assert wrong.json() == {"acknowledged": False, "alarm_id": None}
    assert _post_reply(hub, f"OK {code}", number="+4799999999").json()["acknowledged"] is False
    response = _post_reply(hub, f"ok {code}")
    assert response.status_code == 200
    assert response.json() == {"acknowledged": True, "alarm_id": alarm_id}
    alarm = hub.ok("GET", f"/alarms/{alarm_id}")
    assert (alarm["status"], alarm["acknowledged_by"]) == ("acknowledged", "sms:contact:7")
    assert _post_reply(hub, f"OK {code}").json() == {"acknowledged": True, "alarm_id": alarm_id}


@pytest.mark.parametrize("token", [None, "wrong-0123456789abcdef0123456789", ""])
def test_an_sms_reply_needs_the_gateway_token(hub: Hub, token: str | None) -> None:
    _enable_replies(hub)
    error = error_of(_post_reply(hub, "OK 222222", token=token), 401)
    assert error["code"] == "unauthorized"
    # The operator's token is not the gateway's.
    response = hub.client.post(f"{API}/sms/replies", json={"from": PHONE, "text": "OK 222222"})
    error_of(response, 401)


def test_sms_replies_are_refused_without_a_configured_gateway_token(hub: Hub) -> None:
    error = error_of(_post_reply(hub, "OK 222222"), 503)
    assert "gateway token" in error["message"]
    _enable_replies(hub, token=None)
    error_of(_post_reply(hub, "OK 222222"), 503)


def test_an_sms_reply_must_come_from_an_e164_number(hub: Hub) -> None:
    _enable_replies(hub)
    error_of(_post_reply(hub, "OK 222222", number="91234567"), 422, "from")
