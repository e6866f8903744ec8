"""Running a hub: its services (``bootstrap.Hub``) and the HTTP API on uvicorn, in the foreground or a thread.

``dispenser-hub serve`` runs ``HubRuntime`` in the foreground until SIGINT/SIGTERM; the demo runs it in a
background thread next to the embedded broker and the simulated fleet. Stopping is orderly: the HTTP
server stops taking requests, the timers stop, the batch in hand is committed and acknowledged, the MQTT
session is left for the broker to keep.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import uvicorn

from dispenser_hub.bootstrap import build_hub
from dispenser_hub.services.ack import notice_secret
from dispenser_hub.web.app import create_app
from dispenser_hub.web.context import ApiContext
from dispenser_hub.web.tokens import operator_tokens

if TYPE_CHECKING:
    from types import FrameType

    from dispenser_hub.bootstrap import Hub
    from dispenser_hub.ports import Clock
    from dispenser_hub.settings import Settings

_log = logging.getLogger(__name__)
START_TIMEOUT_S = 15.0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def package_version() -> str:
    """The installed version of dispenser-hub."""
    try:
        return version("dispenser-hub")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


class HideLinkTokens(logging.Filter):
    """Access-log lines show ``/ack/…`` instead of the token: a one-time link is a credential until used."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the request line of ``/ack/<token>`` requests; keep every record."""
        if isinstance(record.args, tuple):
            record.args = tuple(_ACK_TOKEN.sub("/ack/…", a) if isinstance(a, str) else a for a in record.args)
        return True


_ACK_TOKEN = re.compile(r"/ack/[^\s?\"]+")


class HubRuntime:
    """A hub and its API server."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        """Wire everything (the database is migrated or checked here); nothing runs before ``start``."""
        self.settings = settings
        self.hub: Hub = build_hub(settings, clock=clock)
        api = ApiContext(
            uow_factory=self.hub.uow_factory,
            registry=self.hub.registry,
            clock=self.hub.clock,
            tokens=operator_tokens(settings.api_tokens_by_name()),
            version=package_version(),
            health=self.hub.health,
            notice_secret=notice_secret(settings),
            sms_gateway_token=(
                settings.sms_gateway_token.get_secret_value() if settings.sms_gateway_token else None
            ),
        )
        config = uvicorn.Config(
            create_app(api),
            host=settings.http_host,
            port=settings.http_port,
            log_level=settings.log_level.lower(),
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, HideLinkTokens) for f in access.filters):
            access.addFilter(HideLinkTokens())

    @property
    def api_url(self) -> str:
        """Where the API listens (after ``start``: with the port actually bound)."""
        port = self.settings.http_port
        servers = getattr(self.server, "servers", [])
        if servers and servers[0].sockets:
            port = servers[0].sockets[0].getsockname()[1]
        return f"http://{self.settings.http_host}:{port}/api/v1"

    def start_in_thread(self) -> None:
        """Start the hub and serve HTTP from a daemon thread; returns once the server listens."""
        self.hub.start()
        self._thread = threading.Thread(target=self.server.run, name="hub-http", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(START_TIMEOUT_S / 0.05)):
            if self.server.started or not self._thread.is_alive():
                break
            deadline.wait(0.05)
        if not self.server.started:
            self.hub.stop()
            msg = f"the API server did not start on {self.settings.http_host}:{self.settings.http_port}"
            raise RuntimeError(msg)

    def run_forever(self) -> None:
        """Start the hub and serve HTTP in this thread until SIGINT/SIGTERM, then stop everything."""
        self.hub.start()
        # uvicorn handles SIGINT/SIGTERM itself, shuts down, then raises the signal again with the handler it
        # found: make that a KeyboardInterrupt for SIGTERM too (the default would kill the process before
        # the hub commits the batch in hand and disconnects).
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                self.server.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.hub.stop()

    def stop(self) -> None:
        """Stop the HTTP server and the hub."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)
        self.hub.stop()
