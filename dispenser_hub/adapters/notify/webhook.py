"""Signed webhooks: one JSON POST per notification to the address, which is the receiver's URL.

The body is ``{"key": <notification key>, "subject": ..., "text": ...}`` (UTF-8 JSON, sent byte for byte as
signed) with the headers:

- ``X-Dispenser-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` from ``notices.sign_webhook``; the
  receiver checks it with ``notices.verify_webhook`` (or the same few lines in its own language) and
  refuses stale timestamps, so a captured request cannot be replayed later;
- ``Idempotency-Key: <notification key>``, so the receiver can drop a retried delivery it already has.

The URL must be ``https``: the body says which alarm fired and the signature protects integrity, not
secrecy. Plain ``http`` is allowed only to ``localhost``, ``127.0.0.1`` and ``::1`` (a relay on the same
host, and the tests). Any other address is a permanent failure, nothing sent. Redirects are not followed
(a 3xx is a permanent failure: fix the configured URL).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

import httpx

from dispenser_hub.adapters.clock import SystemClock
from dispenser_hub.adapters.notify.sms import IDEMPOTENCY_KEY, USER_AGENT, http_post
from dispenser_hub.domain.notices import MIN_SECRET, sign_webhook
from dispenser_hub.ports import Delivery

if TYPE_CHECKING:
    from dispenser_hub.ports import Clock

SIGNATURE_HEADER: Final = "X-Dispenser-Signature"
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts a webhook may reach over plain http."""


def check_webhook_url(address: str) -> str | None:
    """Why ``address`` is no acceptable webhook URL (``None``: it is); see the module docstring."""
    try:
        url = httpx.URL(address)
    except httpx.InvalidURL:
        return "invalid URL"
    if not url.host:
        return "URL without host"
    if url.scheme == "https" or (url.scheme == "http" and url.host in LOCAL_HOSTS):
        return None
    return "URL must be https (http only to localhost)"


class WebhookSender:
    """``NotificationChannel`` ``webhook``: POSTs signed JSON to the address (see the module docstring).

    Args:
        secret: The shared signing secret (at least 16 bytes), as the receiver has it.
        timeout_s: Connect, write, read and pool timeout of each request, in seconds.
        transport: An httpx transport (tests, proxies); default: httpx's own.
        clock: The signature's time source (the hub's ``Clock``); default: the system clock.

    One connection pool per instance; ``close`` it (or use ``with``) when done.
    """

    name = "webhook"

    def __init__(
        self,
        secret: bytes,
        *,
        timeout_s: float = 10,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"the webhook secret must be at least {MIN_SECRET} bytes")
        self._secret = secret
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def __repr__(self) -> str:
        return "WebhookSender(secret=********)"

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        """POST the notification to the URL ``address``, signed."""
        if not IDEMPOTENCY_KEY.fullmatch(key):
            return Delivery(ok=False, retry=False, detail="key is not printable ASCII")
        problem = check_webhook_url(address)
        if problem is not None:
            return Delivery(ok=False, retry=False, detail=problem)
        body = json.dumps({"key": key, "subject": subject, "text": text}, ensure_ascii=False).encode()
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            SIGNATURE_HEADER: sign_webhook(self._secret, body, timestamp),
        }
        return http_post(self._client, address, body, headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
