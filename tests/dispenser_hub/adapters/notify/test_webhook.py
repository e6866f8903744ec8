"""WebhookSender against a real local receiver that verifies the signature with ``verify_webhook``."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.clock import ManualClock
from dispenser_hub.adapters.notify.webhook import WebhookSender
from dispenser_hub.domain.notices import WebhookError, verify_webhook
from dispenser_hub.ports import Delivery, NotificationChannel
from tests.support.receivers import HttpReceiver, Request

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = b"webhook-secret-of-32-bytes-long!"
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A receiver answering 204 to a valid signature (checked at ``NOW``) and 401 otherwise."""
    with HttpReceiver() as server:

        def verify(request: Request) -> int:
            try:
                verify_webhook(SECRET, request.headers["x-dispenser-signature"], request.body, now=NOW)
            except (WebhookError, KeyError):
                return 401
            return 204

        server.responder = verify
        yield server


def sender(*, secret: bytes = SECRET, at: datetime = NOW, timeout_s: float = 2) -> WebhookSender:
    return WebhookSender(secret, timeout_s=timeout_s, clock=ManualClock(at))


def test_posts_signed_json_with_the_idempotency_key(receiver: HttpReceiver) -> None:
    channel: NotificationChannel = sender()
    delivery = channel.send(f"{receiver.url}/hooks/alarm", "Alarm", "RØD alarm på D-17", key="alarm:7/step:1")
    assert delivery == Delivery(ok=True, detail="HTTP 204")
    assert channel.name == "webhook"
    [request] = receiver.requests
    assert request.path == "/hooks/alarm"
    assert request.headers["idempotency-key"] == "alarm:7/step:1"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "key": "alarm:7/step:1",
        "subject": "Alarm",
        "text": "RØD alarm på D-17",
    }
    assert request.headers["x-dispenser-signature"].startswith(f"t={int(NOW.timestamp())},v1=")


def test_a_wrong_secret_is_refused_by_the_receiver_for_good(receiver: HttpReceiver) -> None:
    delivery = sender(secret=b"another-secret-of-32-bytes-long!").send(receiver.url, "s", "t", key="k1")
    assert delivery == Delivery(ok=False, retry=False, detail="HTTP 401")


def test_a_stale_signature_is_refused(receiver: HttpReceiver) -> None:
    delivery = sender(at=NOW - timedelta(minutes=10)).send(receiver.url, "s", "t", key="k1")
    assert (delivery.ok, delivery.retry) == (False, False)


@pytest.mark.parametrize(
    ("status", "retry"), [(500, True), (502, True), (429, True), (400, False), (410, False)]
)
def test_classifies_the_receiver_answer(receiver: HttpReceiver, status: int, retry: bool) -> None:
    receiver.responder = lambda _request: status
    delivery = sender().send(receiver.url, "s", "t", key="k1")
    assert delivery == Delivery(ok=False, retry=retry, detail=f"HTTP {status}")


def test_a_slow_receiver_is_a_timeout_to_retry(receiver: HttpReceiver) -> None:
    receiver.delay_s = 1.5
    delivery = sender(timeout_s=0.5).send(receiver.url, "s", "t", key="k1")
    assert (delivery.ok, delivery.retry) == (False, True)


def test_a_refused_connection_is_retried() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    delivery = sender(timeout_s=1).send(f"http://127.0.0.1:{port}/hook", "s", "t", key="k1")
    assert (delivery.ok, delivery.retry) == (False, True)
    assert "127.0.0.1" not in delivery.detail


@pytest.mark.parametrize(
    "address",
    [
        "http://receiver.example/hook",
        "ftp://receiver.example/hook",
        "not a url",
        "https://",
        "mailto:a@b.example",
    ],
)
def test_anything_but_https_or_local_http_fails_for_good_without_a_request(address: str) -> None:
    delivery = sender().send(address, "s", "t", key="k1")
    assert (delivery.ok, delivery.retry) == (False, False)
    assert "receiver.example" not in delivery.detail


def test_plain_http_to_localhost_by_name_is_allowed(receiver: HttpReceiver) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost")
    assert sender().send(url, "s", "t", key="k1").ok


def test_a_key_unusable_as_a_header_fails_for_good(receiver: HttpReceiver) -> None:
    delivery = sender().send(receiver.url, "s", "t", key="bad key\n")
    assert (delivery.ok, delivery.retry) == (False, False)
    assert receiver.requests == []


def test_a_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        WebhookSender(b"short")
