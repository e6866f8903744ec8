"""SMS through an HTTP gateway: one JSON POST per message.

The request is the generic shape many SMS gateways (and the small relays municipalities put in front of
their operator's API) accept::

    POST <url>
    Authorization: Bearer <token>          (when a token is configured)
    Idempotency-Key: <notification key>
    Content-Type: application/json

    {"to": "+4791234567", "from": "Legevakt", "text": "...", "reference": "<notification key>"}

Any 2xx answer means the gateway took the message. A provider that wants another shape (form fields, its
own authentication, a message id to poll) gets its own small adapter next to this one; the classification
helpers here (``http_post``, ``classify_status``) are shared with the webhook channel.

Checked before anything is sent (a permanent failure, no request): the address is an E.164 number (``+``
and 8-15 digits, no leading zero) and the text is one SMS: GSM-7 only, at most 160 septets
(``notices.gsm7_length``). The texts themselves come from ``notices.render_sms``, which carries no patient
data (DOMAIN.md).
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

import httpx

from dispenser_hub.domain.notices import SMS_LIMIT, NoticeError, gsm7_length
from dispenser_hub.ports import Delivery

if TYPE_CHECKING:
    from collections.abc import Mapping

USER_AGENT: Final = "dispenser-hub"
E164: Final = re.compile(r"\+[1-9][0-9]{7,14}")
"""An international number: ``+``, then 8-15 digits, the first not 0."""
IDEMPOTENCY_KEY: Final = re.compile(r"[!-~]{1,200}")
"""A notification key usable as a header value: printable ASCII, no spaces."""


def http_post(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str]) -> Delivery:
    """POST ``body`` and classify the outcome (never raises); the response body is neither read nor shown."""
    try:
        with client.stream("POST", url, content=body, headers=dict(headers)) as response:
            status = response.status_code
    except httpx.TimeoutException as error:
        return Delivery(ok=False, retry=True, detail=f"timeout ({type(error).__name__})")
    except httpx.UnsupportedProtocol:
        return Delivery(ok=False, retry=False, detail="unsupported URL scheme")
    except httpx.TransportError as error:  # refused or reset connection, TLS handshake, broken HTTP
        return Delivery(ok=False, retry=True, detail=f"connection failed ({type(error).__name__})")
    except httpx.InvalidURL:
        return Delivery(ok=False, retry=False, detail="invalid URL")
    return classify_status(status)


def classify_status(status: int) -> Delivery:
    """2xx: delivered; 5xx and 429: may pass (retry); anything else (other 4xx, a redirect): permanent."""
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        return Delivery(ok=True, detail=f"HTTP {status}")
    transient = status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.TOO_MANY_REQUESTS
    return Delivery(ok=False, retry=transient, detail=f"HTTP {status}")


class HttpSmsGateway:
    """``NotificationChannel`` ``sms``: POSTs each message to an HTTP SMS gateway (see the module docstring).

    Args:
        url: The gateway's send endpoint (``https://...``; any scheme httpx speaks, for tests).
        token: Bearer token (from a ``SecretStr`` setting); ``None`` sends no ``Authorization`` header.
        sender: The ``from`` the gateway shows (an alphanumeric sender id or a number).
        timeout_s: Connect, write, read and pool timeout of each request, in seconds.
        transport: An httpx transport (tests, proxies); default: httpx's own.

    One connection pool per instance; ``close`` it (or use ``with``) when done.
    """

    name = "sms"

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        sender: str,
        timeout_s: float = 10,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            raise ValueError("the SMS gateway URL must be http(s)://host/...")
        if not sender.strip():
            raise ValueError("the SMS sender must not be empty")
        self._url = url
        self._sender = sender
        self._headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def __repr__(self) -> str:
        return f"HttpSmsGateway(host={httpx.URL(self._url).host!r}, sender={self._sender!r})"

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:  # noqa: ARG002
        """Send ``text`` to the number ``address``; ``subject`` is not part of an SMS."""
        if not IDEMPOTENCY_KEY.fullmatch(key):
            return Delivery(ok=False, retry=False, detail="key is not printable ASCII")
        if not E164.fullmatch(address):
            return Delivery(ok=False, retry=False, detail="address is not an E.164 number")
        try:
            septets = gsm7_length(text)
        except NoticeError:
            return Delivery(ok=False, retry=False, detail="text is not in the GSM-7 alphabet")
        if septets > SMS_LIMIT:
            return Delivery(ok=False, retry=False, detail=f"text is {septets} septets, over {SMS_LIMIT}")
        body = json.dumps(
            {"to": address, "from": self._sender, "text": text, "reference": key}, ensure_ascii=False
        ).encode()
        return http_post(self._client, self._url, body, {**self._headers, "Idempotency-Key": key})

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpSmsGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
