"""HttpSmsGateway against a real local HTTP server: request shape, classification, address and text checks."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.notify.sms import HttpSmsGateway
from dispenser_hub.ports import Delivery, NotificationChannel
from tests.support.receivers import HttpReceiver

if TYPE_CHECKING:
    from collections.abc import Iterator

TEXT = "RØD alarm: dispenser D-17 melder feil. Svar OK 4KX9PQ"
NUMBER = "+4791234567"
TOKEN = "t0ken"  # noqa: S105 - a test token, valid nowhere else


@pytest.fixture
def gateway_server() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


def gateway(server: HttpReceiver, *, token: str | None = TOKEN, timeout_s: float = 2) -> HttpSmsGateway:
    return HttpSmsGateway(f"{server.url}/send", token=token, sender="Legevakt", timeout_s=timeout_s)


def test_sends_the_generic_json_shape_with_token_and_idempotency_key(gateway_server: HttpReceiver) -> None:
    channel: NotificationChannel = gateway(gateway_server)
    delivery = channel.send(NUMBER, "ignored subject", TEXT, key="alarm:7/step:1/contact:3")
    assert delivery == Delivery(ok=True, detail="HTTP 200")
    assert channel.name == "sms"
    [request] = gateway_server.requests
    assert request.path == "/send"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["idempotency-key"] == "alarm:7/step:1/contact:3"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "to": NUMBER,
        "from": "Legevakt",
        "text": TEXT,
        "reference": "alarm:7/step:1/contact:3",
    }


def test_no_authorization_header_without_a_token(gateway_server: HttpReceiver) -> None:
    assert gateway(gateway_server, token=None).send(NUMBER, "", TEXT, key="k1").ok
    assert "authorization" not in gateway_server.requests[0].headers


@pytest.mark.parametrize(
    ("status", "ok", "retry"),
    [
        (200, True, False),
        (202, True, False),
        (500, False, True),
        (503, False, True),
        (429, False, True),
        (400, False, False),
        (401, False, False),
        (404, False, False),
        (302, False, False),
    ],
)
def test_classifies_the_gateway_answer(
    gateway_server: HttpReceiver, status: int, ok: bool, retry: bool
) -> None:
    gateway_server.responder = lambda _request: status
    delivery = gateway(gateway_server).send(NUMBER, "", TEXT, key="k1")
    assert (delivery.ok, delivery.retry) == (ok, retry)
    assert delivery.detail == f"HTTP {status}"


def test_a_slow_gateway_is_a_timeout_to_retry(gateway_server: HttpReceiver) -> None:
    gateway_server.delay_s = 1.5
    delivery = gateway(gateway_server, timeout_s=0.5).send(NUMBER, "", TEXT, key="k1")
    assert (delivery.ok, delivery.retry) == (False, True)
    assert delivery.detail.startswith("timeout")


def test_a_refused_connection_is_retried() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    channel = HttpSmsGateway(f"http://127.0.0.1:{port}/send", token=None, sender="Legevakt", timeout_s=1)
    delivery = channel.send(NUMBER, "", TEXT, key="k1")
    assert (delivery.ok, delivery.retry) == (False, True)
    assert delivery.detail.startswith("connection failed")


@pytest.mark.parametrize(
    "address", ["91234567", "+47 91234567", "+4791", "+0791234567", "+47912345678901234", ""]
)
def test_an_address_that_is_no_e164_number_fails_for_good_without_a_request(
    gateway_server: HttpReceiver, address: str
) -> None:
    delivery = gateway(gateway_server).send(address, "", TEXT, key="k1")
    assert delivery == Delivery(ok=False, retry=False, detail="address is not an E.164 number")
    assert gateway_server.requests == []


@pytest.mark.parametrize("text", ["x" * 161, "€" * 81, "emoji 🚑 is not GSM-7"])
def test_a_text_that_is_not_one_gsm7_sms_fails_for_good_without_a_request(
    gateway_server: HttpReceiver, text: str
) -> None:
    delivery = gateway(gateway_server).send(NUMBER, "", text, key="k1")
    assert (delivery.ok, delivery.retry) == (False, False)
    assert gateway_server.requests == []


def test_160_septets_is_one_sms(gateway_server: HttpReceiver) -> None:
    assert gateway(gateway_server).send(NUMBER, "", "æ" * 160, key="k1").ok


def test_the_detail_never_holds_the_number_or_the_text(gateway_server: HttpReceiver) -> None:
    gateway_server.responder = lambda _request: 400
    details = [
        gateway(gateway_server).send(NUMBER, "", TEXT, key="k1").detail,
        gateway(gateway_server).send("+47 912", "", TEXT, key="k1").detail,
        gateway(gateway_server).send(NUMBER, "", TEXT + "🚑", key="k1").detail,
    ]
    for detail in details:
        assert "912" not in detail
        assert "alarm" not in detail


def test_a_bad_gateway_url_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpSmsGateway("ftp://gateway.example/send", token=None, sender="Legevakt")
    with pytest.raises(ValueError, match="sender"):
        HttpSmsGateway("https://gateway.example/send", token=None, sender=" ")


def test_repr_hides_the_token() -> None:
    with HttpSmsGateway("https://gateway.example/send", token=TOKEN, sender="Legevakt") as channel:
        assert TOKEN not in repr(channel)
