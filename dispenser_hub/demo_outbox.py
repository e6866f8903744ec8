"""The demo's outbox: a local HTTP endpoint standing in for the SMS operator and the response centre's system.

The hub's real channel adapters send to it (``HttpSmsGateway`` to ``/sms``, ``WebhookSender`` to
``/webhook``), exactly as they would to a provider, so the demo exercises the delivery path end to end;
the outbox prints each message (``[SMS til +4740000005] ...``, the response centre's alarm with its
one-time acknowledgement link) and keeps it for tests (``messages``). Webhooks are checked against the
demo's secret (``notices.verify_webhook``); a bad signature is answered 401 and printed as refused.
Binds to 127.0.0.1 only. Not for production: a real deployment points the same settings at its provider.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

from dispenser_hub.domain.notices import WebhookError, verify_webhook

if TYPE_CHECKING:
    from collections.abc import Callable

    from dispenser_hub.ports import Clock

MAX_BODY: Final = 64 * 1024
SIGNATURE_HEADER: Final = "X-Dispenser-Signature"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message the hub handed over: ``kind`` ``sms`` or ``webhook``, its recipient and text."""

    kind: str
    to: str
    text: str
    key: str
    ack_url: str | None = None


class DemoOutbox:
    """Receives the hub's SMS and webhooks on ``url``/sms and ``url``/webhook (see the module docstring)."""

    def __init__(self, secret: bytes, clock: Clock, show: Callable[[str], None]) -> None:
        """``secret``: the webhooks' HMAC key; ``clock``: the hub's (webhook timestamps); ``show``: print."""
        self.messages: list[OutboxMessage] = []
        self._lock = threading.Lock()
        outbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                    return
                body = self.rfile.read(length)
                try:
                    if self.path == "/sms":
                        outbox.sms(json.loads(body))
                    elif self.path == "/webhook":
                        verify_webhook(secret, self.headers.get(SIGNATURE_HEADER, ""), body, now=clock.now())
                        outbox.webhook(json.loads(body))
                    else:
                        self._answer(HTTPStatus.NOT_FOUND)
                        return
                except WebhookError as error:
                    show(f"outbox: webhook refused ({error})")
                    self._answer(HTTPStatus.UNAUTHORIZED)
                    return
                except (ValueError, KeyError, TypeError):
                    self._answer(HTTPStatus.BAD_REQUEST)
                    return
                self._answer(HTTPStatus.OK)

            def _answer(self, status: HTTPStatus) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
                del format, args

        self._show = show
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-outbox", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        """Listen in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()

    def sms(self, body: dict[str, Any]) -> None:
        """An SMS the gateway would send."""
        message = OutboxMessage("sms", str(body["to"]), str(body["text"]), str(body["reference"]))
        self._keep(message, f"[SMS til {message.to}] {message.text}")

    def webhook(self, body: dict[str, Any]) -> None:
        """An alarm for the response centre's system."""
        alarm = json.loads(str(body["text"]))
        url = str(alarm["ack_url"])
        message = OutboxMessage("webhook", "response-centre", str(body["subject"]), str(body["key"]), url)
        what = f"alarm {alarm['alarm_id']}: {body['subject']} ({alarm['device_id'] or '-'})"
        line = f"[responssenterets alarmsystem] {what}; kvitter: {url}"
        self._keep(message, line)

    def _keep(self, message: OutboxMessage, line: str) -> None:
        with self._lock:
            self.messages.append(message)
        self._show(line)
