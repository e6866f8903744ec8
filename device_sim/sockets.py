"""Sockets for many MQTT links on one event loop: DNS, TCP and TLS by asyncio, connect pacing, keepalive.

paho's own ``connect()`` calls ``socket.create_connection``, which blocks the whole loop for up to its
timeout when a broker does not answer; ``open_socket`` connects (and runs the TLS handshake) without
blocking, and ``MqttLink`` hands the connected socket to paho. ``ConnectPacer`` spaces the connects of a
fleet; ``KeepaliveTicker`` drives paho's keepalive for every link from one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from firmware_protocol.broker import BrokerAddress


class Tickable(Protocol):
    """Something with periodic housekeeping (an ``MqttLink``: keepalive PINGREQ and timeout)."""

    def tick(self) -> None:
        """Do the housekeeping that is due."""


async def resolve(address: BrokerAddress) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The address family and socket address of the broker (one DNS lookup; share the result)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    if not infos:
        msg = f"{address.host!r} did not resolve to any address"
        raise OSError(msg)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


class ConnectPacer:
    """Spaces connection attempts of many links to at most ``rate`` per second (no thundering herd)."""

    def __init__(self, rate: float) -> None:
        """Allow ``rate`` connects per second (must be positive)."""
        if rate <= 0:
            msg = f"connect rate must be positive, not {rate}"
            raise ValueError(msg)
        self._interval = 1.0 / rate
        self._next = 0.0

    async def acquire(self) -> None:
        """Wait for the next free slot (slots are handed out in call order)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class KeepaliveTicker:
    """Calls paho's ``loop_misc`` (keepalive PINGREQ and timeout) for many links from one task."""

    def __init__(self, interval_s: float = 1.0, *, chunk: int = 500) -> None:
        """Tick every ``interval_s``, yielding to the loop after each ``chunk`` links."""
        self._interval = interval_s
        self._chunk = chunk
        self._links: dict[int, Tickable] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, link: Tickable) -> None:
        """Tick ``link`` from now on (starts the task on first use)."""
        self._links[id(link)] = link
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-keepalive")

    def discard(self, link: Tickable) -> None:
        """Stop ticking ``link``."""
        self._links.pop(id(link), None)

    async def aclose(self) -> None:
        """Stop the task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            links = list(self._links.values())
            for start in range(0, len(links), self._chunk):
                for link in links[start : start + self._chunk]:
                    link.tick()
                await asyncio.sleep(0)


async def open_socket(
    family: socket.AddressFamily, sockaddr: tuple[Any, ...], tls: ssl.SSLContext | None, host: str
) -> socket.socket | ssl.SSLSocket:
    """A non-blocking TCP connection to ``sockaddr`` (TLS-wrapped and handshaken for ``host`` if ``tls``)."""
    loop = asyncio.get_running_loop()
    raw = socket.socket(family, socket.SOCK_STREAM)
    sock: socket.socket | ssl.SSLSocket = raw
    try:
        raw.setblocking(False)  # noqa: FBT003 - the socket API
        await loop.sock_connect(raw, sockaddr)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
            await _tls_handshake(loop, sock)
    except BaseException:
        sock.close()
        raise
    return sock


async def _tls_handshake(loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket) -> None:
    """Run a TLS handshake on a non-blocking socket, waiting for readiness on the loop."""
    while True:
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            await _wait_ready(loop, sock, write=False)
        except ssl.SSLWantWriteError:
            await _wait_ready(loop, sock, write=True)
        else:
            return


async def _wait_ready(loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket, *, write: bool) -> None:
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    if write:
        loop.add_writer(sock, wake)
    else:
        loop.add_reader(sock, wake)
    try:
        await future
    finally:
        if write:
            loop.remove_writer(sock)
        else:
            loop.remove_reader(sock)
