"""An embedded MQTT 3.1.1 broker (amqtt) for development, demos and tests without Mosquitto.

``EmbeddedBroker`` wraps ``amqtt.broker.Broker`` with a small typed API and two ways to run it:

* in its own daemon thread with its own event loop: ``start()`` blocks until the listener accepts
  connections, ``stop()`` shuts it down (also usable as a ``with`` block);
* inside an already running event loop: ``async with EmbeddedBroker() as broker: ...``.

The broker binds to 127.0.0.1 by default. ``port=0`` picks a free port; the actual port is reported by
``port`` once started and is kept for later restarts, so clients can reconnect to the same address after
``stop()`` + ``start()``. Like Mosquitto with ``persistence false``, a restart forgets retained messages and
sessions. Anonymous clients are allowed and no topic filtering is configured: this is not a production broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

if TYPE_CHECKING:
    from types import TracebackType

    from amqtt.session import Session

__all__ = ["EmbeddedBroker"]

_DEFAULT_TIMEOUT_S = 10.0
# amqtt logs every connection and packet at INFO; 'transitions' (its state-machine library) logs transitions.
_NOISY_LOGGERS = ("amqtt", "transitions")


# amqtt ships no type information, so its base class is 'Any' to mypy.
class _AcceptAllAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Accept every client *without* flagging its session anonymous.

    amqtt's own ``AnonymousAuthPlugin`` marks every session anonymous, and amqtt then neither queues QoS 1/2
    messages for a disconnected ``clean_session=False`` client nor keeps its session. Mosquitto does both,
    and the hub relies on that for redelivery after a crash, so the embedded broker must behave the same way.
    """

    @dataclass
    class Config:
        """No options (amqtt requires every plugin to declare a ``Config`` dataclass)."""

    async def authenticate(self, *, session: Session) -> bool:  # noqa: ARG002 - signature fixed by amqtt
        """Accept the client."""
        return True


# amqtt ships no type information, so its base class is 'Any' to mypy.
class _Broker(Broker):  # type: ignore[misc]
    """amqtt's broker, minus two leaks of amqtt 0.12.

    * On every CONNECT, amqtt replays the retained messages matching *every* filter any client has subscribed
      to (including clean sessions disconnected less than a second ago) to the connecting client, whatever it
      subscribed to itself. Here the replay only happens for filters the session itself holds, as MQTT says.
    * A connection closed before its CONNECT packet (a port probe, a health check) is never closed on the
      broker side: a leaked socket and a ``ResourceWarning``. Here every connection is closed when amqtt is
      done with it.
    """

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            writer.close()

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        holders = self._subscriptions.get(subscription[0], ())
        if any(holder.client_id == session.client_id for holder, _qos in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)


class EmbeddedBroker:
    """An amqtt broker on one TCP listener, runnable in a background thread or in the caller's event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, log_level: int = logging.WARNING) -> None:
        """Configure (but do not start) the broker.

        Args:
            host: address to listen on.
            port: TCP port; 0 picks a free one on the first start.
            log_level: level applied to amqtt's own loggers (they are very chatty at INFO).
        """
        if not 0 <= port <= 65535:  # noqa: PLR2004 - the TCP port range is self-explanatory
            msg = f"port must be in 0..65535, got {port}"
            raise ValueError(msg)
        self._host = host
        self._port = port
        self._log_level = log_level
        self._broker: Any = None  # amqtt.broker.Broker while running (amqtt ships no type information)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None

    @property
    def host(self) -> str:
        """The address the broker listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port; the actually bound one after the first start (0 before it if 0 was requested)."""
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://host:port`` of the listener."""
        return f"mqtt://{self._host}:{self._port}"

    @property
    def is_running(self) -> bool:
        """Whether the listener is currently open."""
        return self._broker is not None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self._host}:{self._port}"}},
            # Drop a client that neither sends anything nor pings within 1.5 x its keepalive (MQTT 3.1.2.10).
            "timeout_disconnect_delay": 0,
            # Explicit plugin list: accept-all auth only, no topic checks. Leaving 'plugins' out loads amqtt's
            # defaults ($SYS publisher, packet logger, ...); the older 'auth'/'topic-check' keys emit
            # DeprecationWarning.
            "plugins": {f"{__name__}.{_AcceptAllAuthPlugin.__qualname__}": {}},
        }

    # -- inside an existing event loop -----------------------------------------------------------------------

    async def start_async(self) -> None:
        """Start listening in the running event loop; returns once connections are accepted."""
        if self._broker is not None:
            msg = "EmbeddedBroker is already running"
            raise RuntimeError(msg)
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(self._log_level)
        broker = _Broker(self._config())
        await broker.start()
        # amqtt keeps its listeners in a private dict; the only way to learn the port bound for port=0.
        server = broker._servers["default"].instance  # noqa: SLF001
        self._port = int(server.sockets[0].getsockname()[1])
        self._broker = broker

    async def stop_async(self) -> None:
        """Disconnect all clients and close the listener (no-op when not running)."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def __aenter__(self) -> Self:
        """Start in the running loop."""
        await self.start_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop in the running loop."""
        await self.stop_async()

    # -- in a background thread ------------------------------------------------------------------------------

    def start(self, timeout: float = _DEFAULT_TIMEOUT_S) -> None:
        """Run the broker in a daemon thread with its own event loop; block until it accepts connections.

        Raises:
            RuntimeError: already running, or the broker failed to start (the cause is chained).
            TimeoutError: the listener was not up within ``timeout`` seconds.
        """
        if self._thread is not None or self._broker is not None:
            msg = "EmbeddedBroker is already running"
            raise RuntimeError(msg)
        started = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._thread_main, args=(started, failure), name=f"amqtt-broker:{self._port}", daemon=True
        )
        thread.start()
        if not started.wait(timeout):
            msg = f"embedded MQTT broker did not start within {timeout} s"
            raise TimeoutError(msg)
        if failure:
            thread.join(timeout)
            msg = f"embedded MQTT broker failed to start on {self._host}:{self._port}"
            raise RuntimeError(msg) from failure[0]
        self._thread = thread

    def stop(self, timeout: float = _DEFAULT_TIMEOUT_S) -> None:
        """Stop a broker started with ``start()`` and join its thread (no-op when not running).

        Raises:
            TimeoutError: the broker thread did not finish within ``timeout`` seconds.
        """
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None or loop is None or stop_requested is None:
            return
        loop.call_soon_threadsafe(stop_requested.set)
        thread.join(timeout)
        if thread.is_alive():
            msg = f"embedded MQTT broker thread did not stop within {timeout} s"
            raise TimeoutError(msg)
        self._thread = None

    def restart(self, timeout: float = _DEFAULT_TIMEOUT_S) -> None:
        """Stop, then start again on the same port (clients see their connection drop)."""
        self.stop(timeout)
        self.start(timeout)

    def __enter__(self) -> Self:
        """Start in a background thread."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the background thread."""
        self.stop()

    def _thread_main(self, started: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(started, failure))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None
            self._stop_requested = None
            started.set()  # never leave start() waiting, whatever happened

    async def _serve(self, started: threading.Event, failure: list[BaseException]) -> None:
        self._stop_requested = asyncio.Event()
        try:
            await self.start_async()
        except Exception as exc:  # noqa: BLE001 - re-raised in the thread that called start()
            failure.append(exc)
            return
        started.set()
        try:
            await self._stop_requested.wait()
        finally:
            await self.stop_async()
