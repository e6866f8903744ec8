"""Real MQTT brokers for tests: our own Mosquitto process, or the embedded amqtt broker as a fallback.

Each broker listens on a free port on 127.0.0.1 and keeps that port across ``stop()``/``start()``, so tests
can kill a broker and bring it back where clients expect it. Like ``persistence false`` Mosquitto, a restarted
broker has forgotten retained messages and sessions.

Environment variables:

``DISPENSER_TEST_BROKER``
    ``auto`` (default): Mosquitto when its binary is found, else amqtt (under ``CI=true``: fail instead).
    ``mosquitto``: Mosquitto only (skip if missing; fail under CI). ``amqtt``: always the embedded broker.
``DISPENSER_MOSQUITTO``
    Path of the ``mosquitto`` binary, overriding the search of ``PATH``, ``/usr/sbin``, ``/usr/local/sbin``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args

from dispenser_hub.adapters.mqtt.embedded_broker import EmbeddedBroker
from tests.support.services import is_ci, service_unavailable

BrokerKind = Literal["mosquitto", "amqtt"]
BROKER_KINDS: tuple[BrokerKind, ...] = get_args(BrokerKind)
BROKER_ENV = "DISPENSER_TEST_BROKER"
MOSQUITTO_ENV = "DISPENSER_MOSQUITTO"
LOCALHOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_MOSQUITTO_FALLBACK_PATHS = (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto"))
_PORT_ATTEMPTS = 3  # a free port found by bind(0) may be taken by someone else before Mosquitto binds it
_LOG_TAIL_CHARS = 2000

# Mosquitto processes still running; killed at interpreter exit even if a fixture's teardown never ran.
_live_processes: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftover_processes() -> None:
    for process in list(_live_processes):
        _terminate(process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
    _live_processes.discard(process)


def find_mosquitto() -> Path | None:
    """The Mosquitto binary: ``$DISPENSER_MOSQUITTO``, else ``PATH``, else the usual sbin directories."""
    override = os.environ.get(MOSQUITTO_ENV)
    if override:
        return Path(override) if Path(override).is_file() else None
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    return next((path for path in _MOSQUITTO_FALLBACK_PATHS if path.is_file()), None)


def free_tcp_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def selected_broker_kind() -> BrokerKind:
    """The broker kind for ``mqtt_broker``, from ``$DISPENSER_TEST_BROKER`` (may skip, or fail under CI)."""
    wanted = os.environ.get(BROKER_ENV, "auto").strip().lower() or "auto"
    if wanted == "amqtt":
        return "amqtt"
    if wanted == "mosquitto":
        require_mosquitto()
        return "mosquitto"
    if wanted != "auto":
        msg = f"{BROKER_ENV}={wanted!r}: expected auto, mosquitto or amqtt"
        raise ValueError(msg)
    if find_mosquitto() is not None:
        return "mosquitto"
    if is_ci():
        require_mosquitto()  # fails, with the explanation
    return "amqtt"


def require_mosquitto() -> Path:
    """The Mosquitto binary; skips the test when it is missing (fails it under CI)."""
    binary = find_mosquitto()
    if binary is None:
        service_unavailable(
            "mosquitto",
            reason=f"no mosquitto binary on PATH, in /usr/sbin or /usr/local/sbin, or at ${MOSQUITTO_ENV} "
            "(apt-get install mosquitto; .ci/run does this)",
        )
    return binary


class _BrokerServer(Protocol):
    """A broker that can be started and stopped repeatedly on one port."""

    @property
    def port(self) -> int: ...

    @property
    def is_running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class MqttBroker:
    """A running test broker: where to connect, what it is, and how to stop/start/restart it."""

    host: str
    port: int
    kind: BrokerKind
    _server: _BrokerServer = field(repr=False, compare=False)

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        """Whether the broker is accepting connections."""
        return self._server.is_running

    def start(self) -> None:
        """Start the broker again on the same port (no-op if running)."""
        if not self._server.is_running:
            self._server.start()

    def stop(self) -> None:
        """Stop the broker; connected clients lose their connection (no-op if stopped)."""
        self._server.stop()

    def restart(self) -> None:
        """Stop, then start on the same port."""
        self.stop()
        self.start()


class MosquittoServer:
    """Our own Mosquitto process with a generated config in ``workdir``; never the system service."""

    def __init__(self, binary: Path, workdir: Path, host: str = LOCALHOST) -> None:
        """Prepare (but do not start) a Mosquitto on ``host``; the port is chosen at the first start."""
        self._binary = binary
        self._workdir = workdir
        self._host = host
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"

    @property
    def port(self) -> int:
        """The listener port (0 before the first start)."""
        return self._port

    @property
    def is_running(self) -> bool:
        """Whether our Mosquitto process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start Mosquitto and wait until it accepts TCP connections."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        if self._port:
            self._start_on(self._port)
            return
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._start_on(free_tcp_port(self._host))
            except RuntimeError:
                if attempt == _PORT_ATTEMPTS:
                    raise
            else:
                return

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after a timeout)."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)

    def _start_on(self, port: int) -> None:
        self.config_path.write_text(
            "\n".join(
                (
                    f"listener {port} {self._host}",
                    "allow_anonymous true",
                    "persistence false",
                    "log_dest stderr",
                    *(f"log_type {kind}" for kind in ("error", "warning", "notice", "information")),
                    "max_packet_size 1048576",
                    "set_tcp_nodelay true",
                    "",
                )
            ),
            encoding="utf-8",
        )
        with self.log_path.open("ab") as log:
            # Fixed argv of a binary we located ourselves; no shell involved.
            process = subprocess.Popen(
                [str(self._binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _live_processes.add(process)
        try:
            _wait_until_listening(self._host, port, process)
        except BaseException:
            _terminate(process)
            raise
        self._process = process
        self._port = port

    def log_tail(self) -> str:
        """The end of Mosquitto's log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL_CHARS:]


def _wait_until_listening(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            msg = f"mosquitto exited with code {process.returncode} before listening on {host}:{port}"
            raise RuntimeError(msg)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                msg = f"mosquitto did not listen on {host}:{port} within {START_TIMEOUT_S} s"
                raise TimeoutError(msg) from None
            time.sleep(0.02)


class AmqttServer:
    """The embedded amqtt broker in a background thread."""

    def __init__(self, host: str = LOCALHOST) -> None:
        """Prepare (but do not start) an embedded broker on ``host`` and a free port."""
        self._broker = EmbeddedBroker(host, 0)

    @property
    def port(self) -> int:
        """The listener port (0 before the first start)."""
        return self._broker.port

    @property
    def is_running(self) -> bool:
        """Whether the broker is accepting connections."""
        return self._broker.is_running

    def start(self) -> None:
        """Start in a background thread; returns once listening."""
        self._broker.start(START_TIMEOUT_S)

    def stop(self) -> None:
        """Stop and join the thread."""
        self._broker.stop(STOP_TIMEOUT_S)


def start_broker(kind: BrokerKind, workdir: Path) -> MqttBroker:
    """Start a new broker of ``kind`` (Mosquitto files go to ``workdir``); the caller must ``stop()`` it."""
    server: MosquittoServer | AmqttServer
    if kind == "mosquitto":
        mosquitto = MosquittoServer(require_mosquitto(), workdir)
        try:
            mosquitto.start()
        except (RuntimeError, TimeoutError) as exc:
            msg = f"{exc}; mosquitto log:\n{mosquitto.log_tail()}"
            raise RuntimeError(msg) from exc
        server = mosquitto
    else:
        server = AmqttServer()
        server.start()
    return MqttBroker(host=LOCALHOST, port=server.port, kind=kind, _server=server)
