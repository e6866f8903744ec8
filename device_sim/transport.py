"""One simulated device's MQTT connection: paho-mqtt 2.x driven by an asyncio loop, no thread per client.

``MqttLink`` uses paho's external-loop integration: paho tells us when its socket opens and closes and when
it has bytes to write; the event loop calls ``loop_read`` when the socket is readable and ``loop_write`` when
it is writable, and one shared ``KeepaliveTicker`` calls ``loop_misc`` (PINGREQ, keepalive timeout) for all
links. Every paho callback therefore runs on the event loop thread, and so do ours.

Rules of a link:

* Client id = device id, MQTT 3.1.1, ``clean_session=False``: the broker keeps the subscriptions and the
  QoS 1 messages published to the device while it is offline, and delivers them after the next connect.
* The Last Will (QoS 1, retain as the device says) is asked for and registered before *every* connect.
* After CONNACK the link subscribes (QoS 1) and is *ready* only after the SUBACK; messages that arrive
  between the two (the persistent session's backlog) are held and delivered right after ``on_ready``.
  ``on_lost`` is called only for a connection that was ready, so ready/lost always alternate.
* Unexpected loss (broker gone, keepalive timeout, refused connect) is retried with jittered exponential
  backoff: attempt ``n`` (0 after each success) waits uniformly in ``[min, min(max, min * 2**(n+1))]``,
  1 s .. 30 s by default, while the link is wanted. A shared ``ConnectPacer`` limits connects per second.
* ``drop()`` shuts the TCP connection without MQTT DISCONNECT, so the broker publishes the Last Will: a
  simulated network outage. ``close()`` sends DISCONNECT (no will). Both leave the link unwanted until the
  next ``connect()``.

The TCP connect (and TLS handshake) is done by ``device_sim.sockets.open_socket``, never by paho (whose
``connect()`` blocks the loop); ``_LinkClient`` hands paho the connected socket instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from device_sim.sockets import KeepaliveTicker, open_socket, resolve

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from paho.mqtt.client import SocketLike
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from device_sim.ports import Publish
    from device_sim.sockets import ConnectPacer
    from firmware_protocol.broker import BrokerAddress

_log = logging.getLogger(__name__)

DEFAULT_KEEPALIVE_S = 60
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_INFLIGHT = 10
"""QoS 1 messages on the wire at once per link (paho's default is 20); more wait in paho's queue."""
DEFAULT_MAX_QUEUED = 1000
"""QoS 1 messages paho keeps per link (in flight + queued); beyond this ``publish`` reports a failure."""
_DRAIN_LIMIT = 10_000
"""Bound on ``loop_read`` calls while draining a shut-down socket (each reads at least one packet)."""


class LinkState(enum.StrEnum):
    """Where a link is in its life."""

    IDLE = "idle"
    """Not wanted: no socket, no attempt scheduled."""
    CONNECTING = "connecting"
    """Wanted and not ready: waiting for backoff or pacer, or in TCP/TLS/CONNECT/SUBSCRIBE."""
    READY = "ready"
    """Connected and subscribed."""
    CLOSED = "closed"
    """``close()`` was called; the link cannot be used again."""


class _LinkClient(paho.Client):
    """paho's client, except that the socket is connected by asyncio beforehand (see the module doc)."""

    def __init__(self, client_id: str) -> None:
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.prepared_socket: socket.socket | ssl.SSLSocket | None = None

    def _create_socket(self) -> SocketLike:
        # Called by reconnect(): hand over the socket asyncio connected (ownership passes to paho).
        sock, self.prepared_socket = self.prepared_socket, None
        if sock is None:
            msg = "no connected socket prepared for paho"
            raise ConnectionError(msg)
        return sock


class _BrokerRefusedError(ConnectionError):
    """CONNACK with a failure code, or a SUBACK refusing a subscription."""


@dataclass(slots=True)
class LinkCounters:
    """What one link did; the fleet sums these."""

    published: int = 0
    """QoS 1 messages handed to paho."""
    acked: int = 0
    """PUBACKs received."""
    received: int = 0
    """Messages delivered to ``on_message``."""
    connects: int = 0
    """Connections that became ready."""
    reconnects: int = 0
    """Connections that became ready after an earlier one (the link lost or dropped it)."""
    errors: int = 0
    """Failed connection attempts, refused publishes and unexpected losses."""
    last_error: str = ""


def _ignore_messages(_topic: str, _payload: bytes) -> None:
    pass


def _ignore_event() -> None:
    pass


def _no_will() -> Publish | None:
    return None


class MqttLink:
    """One device's MQTT connection (see the module docstring for the rules)."""

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        *,
        subscriptions: Iterable[str] | Callable[[], Iterable[str]] = (),
        will: Callable[[], Publish | None] = _no_will,
        on_message: Callable[[str, bytes], None] = _ignore_messages,
        on_ready: Callable[[], None] = _ignore_event,
        on_lost: Callable[[], None] = _ignore_event,
        on_error: Callable[[str], None] | None = None,
        keepalive: int = DEFAULT_KEEPALIVE_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        backoff: tuple[float, float] = (1.0, 30.0),
        tls: ssl.SSLContext | None = None,
        sockaddr: tuple[socket.AddressFamily, tuple[Any, ...]] | None = None,
        ticker: KeepaliveTicker | None = None,
        pacer: ConnectPacer | None = None,
        rng: random.Random | None = None,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        """Prepare (but do not connect) a link; callbacks run on the event loop, synchronously.

        ``subscriptions`` and ``will`` may be callables: they are evaluated before every connect.
        ``tls`` overrides ``address.ssl_context()`` (share one context between many links);
        ``sockaddr`` (from ``device_sim.sockets.resolve``) saves a DNS lookup per connect.
        Without a ``ticker`` the link runs its own keepalive task while connected.
        """
        self.address = address
        self.client_id = client_id
        self.counters = LinkCounters()
        self._subscriptions = subscriptions
        self._will = will
        self._on_message = on_message
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._on_error = on_error
        self._connect_timeout = connect_timeout
        self._backoff_min, self._backoff_max = backoff
        self._tls = tls if tls is not None else address.ssl_context()
        self._sockaddr = sockaddr
        self._own_ticker = ticker is None
        self._ticker = ticker if ticker is not None else KeepaliveTicker()
        self._pacer = pacer
        self._rng = rng if rng is not None else random.Random()
        self._state = LinkState.IDLE
        self._wanted = False
        self._attempt_no = 0
        self._task: asyncio.Task[None] | None = None
        self._pending: asyncio.Future[None] | None = None
        self._suback_mid: int | None = None
        self._early: list[tuple[str, bytes]] = []
        self._subscribe_after_connack: list[str] | None = None
        self._killing = False
        self._write_registered = False
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_event = asyncio.Event()
        self._socket_closed = asyncio.Event()
        self._socket_closed.set()

        client = _LinkClient(client_id)
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(max_queued)
        client.reconnect_delay_set(1, 1)  # unused: reconnects are ours, paho never reconnects by itself
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        client.connect_async(address.host, address.port, keepalive=keepalive)  # stores the settings only
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        client.on_connect = self._paho_connect
        client.on_subscribe = self._paho_subscribe
        client.on_message = self._paho_message
        client.on_disconnect = self._paho_disconnect
        client.on_publish = self._paho_publish
        self._client = client

    # -- public API ----------------------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        """The current state."""
        return self._state

    @property
    def ready(self) -> bool:
        """Connected and subscribed."""
        return self._state is LinkState.READY

    @property
    def wanted(self) -> bool:
        """Whether the link should be up (``connect()`` called, no ``drop()``/``close()`` since)."""
        return self._wanted

    def connect(self) -> None:
        """Want the link: start connecting now (paced) unless already connected or connecting.

        Returns at once; ``on_ready`` follows the SUBACK. Must be called on the event loop.
        """
        if self._state is LinkState.CLOSED:
            msg = f"link {self.client_id} is closed"
            raise RuntimeError(msg)
        self._wanted = True
        self._loop = asyncio.get_running_loop()
        if self._state is LinkState.IDLE:
            self._state = LinkState.CONNECTING
            self._start_attempts(delay=0.0)

    async def wait_ready(self) -> None:
        """Wait until the link is ready (bound it with ``asyncio.timeout``)."""
        await self._ready_event.wait()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish QoS 1; paho sends it now if connected, else keeps it for the (persistent) session.

        Returns False (and counts an error) when paho's queue is full.
        """
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in {MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN}:
            self._error(f"publish to {topic} refused: {paho.error_string(info.rc)}")
            return False
        self.counters.published += 1
        return True

    def subscribe_more(self, topics: list[str]) -> None:
        """Subscribe (QoS 1) to ``topics`` on the live connection (a device that has just enrolled).

        For its command and config topics; the broker then delivers what is retained there. Nothing while
        not ready: the next connection subscribes to what ``subscriptions`` names then.
        """
        if self._state is not LinkState.READY or not topics:
            return
        result, _mid = self._client.subscribe([(topic, 1) for topic in topics])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._error(f"SUBSCRIBE failed: {paho.error_string(result)}")

    def drop(self) -> None:
        """Lose the connection abruptly (no DISCONNECT: the broker publishes the will); stay down.

        Synchronous: when it returns the socket is closed and ``on_lost`` has run if the link was ready.
        """
        if self._state is LinkState.CLOSED:
            return
        self._wanted = False
        self._cancel_attempts()
        self._kill_socket()
        self._state = LinkState.IDLE

    async def close(self, grace_s: float = 2.0) -> None:
        """Disconnect gracefully (DISCONNECT, so no will) and release everything; the link is finished."""
        if self._state is LinkState.CLOSED:
            return
        self._wanted = False
        self._cancel_attempts()
        if self._client.socket() is not None:
            self._client.disconnect()
            self._flush()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self._socket_closed.wait()
            self._kill_socket()  # DISCONNECT not written in time: close anyway
        self._state = LinkState.CLOSED
        self._ticker.discard(self)
        if self._own_ticker:
            await self._ticker.aclose()
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def tick(self) -> None:
        """Keepalive work (called by the ``KeepaliveTicker``)."""
        if self._client.socket() is not None:
            self._client.loop_misc()

    # -- connecting ----------------------------------------------------------------------------------------

    def _start_attempts(self, delay: float) -> None:
        if self._task is None or self._task.done():
            loop = self._loop or asyncio.get_running_loop()
            self._task = loop.create_task(self._attempts(delay), name=f"mqtt-connect-{self.client_id}")

    def _cancel_attempts(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _next_delay(self) -> float:
        ceiling = min(self._backoff_max, self._backoff_min * 2 ** (self._attempt_no + 1))
        self._attempt_no += 1
        return self._rng.uniform(self._backoff_min, ceiling)

    async def _attempts(self, delay: float) -> None:
        while self._wanted:
            if delay > 0:
                await asyncio.sleep(delay)
            if self._pacer is not None:
                await self._pacer.acquire()
            if self._gave_up():
                return
            try:
                await self._attempt()
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                self._error(f"connect to {self.address.url} failed: {exc!r}")
                self._kill_socket()
                delay = self._next_delay()
            else:
                return

    def _gave_up(self) -> bool:
        return not self._wanted  # a method: mypy would keep self._wanted narrowed across the awaits

    async def _attempt(self) -> None:
        loop = asyncio.get_running_loop()
        will = self._will()
        if will is None:
            self._client.will_clear()
        else:
            self._client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        subscriptions = list(self._subscriptions() if callable(self._subscriptions) else self._subscriptions)
        async with asyncio.timeout(self._connect_timeout):
            family, sockaddr = self._sockaddr or await resolve(self.address)
            sock = await open_socket(family, sockaddr, self._tls, self.address.host)
            self._pending = pending = loop.create_future()
            self._suback_mid = None
            self._early.clear()
            self._subscribe_after_connack = subscriptions or None
            self._client.prepared_socket = sock  # paho owns it from here; _kill_socket closes it
            rc = self._client.reconnect()  # no blocking: _create_socket returns the connected socket
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"sending CONNECT failed: {paho.error_string(rc)}")
            try:
                await pending
            finally:
                self._pending = None

    # -- paho callbacks (all on the event loop) ------------------------------------------------------------

    def _socket_open(self, _client: paho.Client, _userdata: object, sock: SocketLike) -> None:
        loop = self._loop or asyncio.get_running_loop()
        loop.add_reader(sock, self._readable)
        self._socket_closed.clear()

    def _socket_close(self, _client: paho.Client, _userdata: object, sock: SocketLike) -> None:
        loop = self._loop or asyncio.get_running_loop()
        loop.remove_reader(sock)
        self._socket_closed.set()
        if self._write_registered:
            self._write_registered = False
            loop.remove_writer(sock)

    def _register_write(self, _client: paho.Client, _userdata: object, _sock: SocketLike) -> None:
        # paho calls this for every queued packet. Instead of an add_writer/remove_writer pair (two epoll_ctl
        # calls) per publish, try to write soon; only a socket that is really full gets a writer.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def _unregister_write(self, _client: paho.Client, _userdata: object, sock: SocketLike) -> None:
        if self._write_registered:
            self._write_registered = False
            (self._loop or asyncio.get_running_loop()).remove_writer(sock)

    def _flush(self) -> None:
        self._flush_scheduled = False
        sock = self._client.socket()
        if sock is None:
            return
        self._client.loop_write()
        sock = self._client.socket()
        if sock is not None and self._client.want_write() and not self._write_registered:
            self._write_registered = True
            (self._loop or asyncio.get_running_loop()).add_writer(sock, self._writable)

    def _writable(self) -> None:
        self._client.loop_write()

    def _readable(self) -> None:
        self._client.loop_read()
        # A TLS socket may hold decrypted bytes the selector cannot see: read them now.
        sock = self._client.socket()
        while isinstance(sock, ssl.SSLSocket) and sock.pending():
            self._client.loop_read()
            sock = self._client.socket()

    def _paho_connect(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if self._killing:
            return
        if reason_code.is_failure:
            self._fail_pending(_BrokerRefusedError(f"CONNACK refused: {reason_code}"))
            return
        subscriptions, self._subscribe_after_connack = self._subscribe_after_connack, None
        if subscriptions:
            result, mid = client.subscribe([(topic, 1) for topic in subscriptions])
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                self._fail_pending(ConnectionError(f"SUBSCRIBE failed: {paho.error_string(result)}"))
                return
            self._suback_mid = mid
        else:
            self._became_ready()

    def _paho_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        if self._killing or mid != self._suback_mid:
            return
        self._suback_mid = None
        if any(code.is_failure for code in reason_codes):
            self._fail_pending(_BrokerRefusedError(f"SUBACK refused: {reason_codes}"))
            return
        self._became_ready()

    def _paho_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        if self._killing:
            return  # the socket is shut: no PUBACK goes out, so the broker redelivers it
        if self._state is LinkState.READY:
            self.counters.received += 1
            self._on_message(message.topic, bytes(message.payload))
        else:
            self._early.append((message.topic, bytes(message.payload)))

    def _paho_publish(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        _reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self.counters.acked += 1

    def _paho_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._ticker.discard(self)
        self._fail_pending(ConnectionError(f"connection lost before ready: {reason_code}"))
        was_ready = self._state is LinkState.READY
        self._ready_event.clear()
        if self._state is not LinkState.CLOSED:
            self._state = LinkState.CONNECTING if self._wanted else LinkState.IDLE
        if was_ready:
            if self._wanted:
                self._error(f"connection lost: {reason_code}")
            self._on_lost()
            if self._wanted and self._state is LinkState.CONNECTING:
                self._start_attempts(self._next_delay())

    # -- helpers -------------------------------------------------------------------------------------------

    def _became_ready(self) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            pending.set_result(None)
        self._state = LinkState.READY
        self._ready_event.set()
        self._attempt_no = 0
        self.counters.connects += 1
        if self.counters.connects > 1:
            self.counters.reconnects += 1
        self._ticker.add(self)
        self._on_ready()
        early, self._early = self._early, []
        for topic, payload in early:
            if self._state is not LinkState.READY:
                break  # lost again inside a callback: the broker redelivers what was not acknowledged
            self.counters.received += 1
            self._on_message(topic, payload)

    def _fail_pending(self, exc: BaseException) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            pending.set_exception(exc)

    def _error(self, text: str) -> None:
        self.counters.errors += 1
        self.counters.last_error = text
        if self._on_error is not None:
            self._on_error(text)
        _log.debug("%s: %s", self.client_id, text)

    def _kill_socket(self) -> None:
        """Close paho's socket without DISCONNECT: shut it down, then let paho read the EOF and clean up."""
        sock = self._client.socket()
        if sock is None:
            return
        self._killing = True
        try:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]  # a real socket here
            for _ in range(_DRAIN_LIMIT):
                if self._client.socket() is None:
                    break
                self._client.loop_read()  # reads what is buffered, then EOF: paho closes and reports
        finally:
            self._killing = False
