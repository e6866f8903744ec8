#!/usr/bin/env python3
"""Hub ingest throughput end to end (verified, stored, acknowledged) next to a raw paho subscriber.

Usage::

    python bench/hub_ingest.py [--messages M] [--devices N] [--batch B] [--backends sqlite,postgresql]
                               [--inflight W] [--json] [--profile PREFIX]

One run, one Mosquitto of our own on a free port of 127.0.0.1, configured as a hub's broker should be (as
``deploy/mosquitto/mosquitto.conf``): ``max_inflight_messages W`` (default 1000; Mosquitto's default is 20,
and the hub acknowledges only after its commit) and ``max_queued_messages`` 200,000 or ``2 M`` if more (the
queue of the hub's persistent session while it is away; Mosquitto's default is 1000), no persistence.

Workload: ``N`` registered devices, each with its own Ed25519 key, and ``M`` sealed uplink messages spread
over them round robin (60 % heartbeats on ``up/telemetry``; 10 % ``dose.reminder``, 20 % ``dose.taken``,
10 % ``dose.not_taken`` on ``up/event``), with timestamps in the last hour and consecutive ``seq`` per
device within one boot, so the hub stores every one and asks for no resend. Built once; every consumer
gets the same bytes.

Every consumer is measured the same way:

1. its persistent session is created (``clean_session`` false, QoS 1 subscriptions to
   ``hub_subscriptions()``) and it disconnects;
2. ``--publishers`` paho clients publish the ``M`` messages QoS 1 as fast as they can (each device's
   messages from one client, in ``seq`` order) until the broker acknowledged every one, so the broker
   queues all ``M`` for the absent consumer (publisher speed is not part of any figure);
3. the consumer connects and drains the queue. Time runs from the first message its paho callback gets
   to the last message received (raw subscriber) or the last acknowledgement sent (hub);
4. its session is removed (``clean_session`` true), so the next consumer's messages are not queued for it.

Consumers:

* ``raw``: a bare paho subscriber (QoS 1, ``clean_session`` false, paho's automatic acknowledgement,
  ``on_message`` only counts): the floor of any Python MQTT consumer on this broker and machine.
* ``sqlite`` / ``postgresql``: the hub as ``dispenser-hub serve`` wires it (``bootstrap.build_hub``:
  migrations, PKI, ``SqlUnitOfWorkFactory``, ``IngestService``) with its ``HubMqttClient`` (persistent
  session, manual acknowledgement after each batch's commit, ``--batch``). SQLite is a WAL file in a
  temporary directory; PostgreSQL a fresh schema in the test server's database (``--postgres-url``,
  default ``$DISPENSER_TEST_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``), dropped
  afterwards, server settings as they are (``synchronous_commit`` on). Without a server the PostgreSQL
  row says why it was skipped. The hub's timers (outbox, no-contact sweep) are not started.
  Afterwards the bench checks that all ``M`` are stored exactly once (events in the database, ingest
  counters, no dead letters, no resend requests) and exits 1 if not.

Devices are registered with the hub's ``Registry`` (as an operator would) and then given their public key
and ``active`` status directly in the database, as a completed enrollment would leave them (enrollment
itself is not measured).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import getpass
import hashlib
import io
import json
import os
import platform
import pstats
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from bench._mosquitto import binary as mosquitto_binary  # noqa: E402 - after the sys.path fix
from bench._mosquitto import mosquitto  # noqa: E402
from dispenser_hub.adapters.mqtt.hub_client import HubMqttClient  # noqa: E402 - after the sys.path fix
from dispenser_hub.bootstrap import build_hub  # noqa: E402
from dispenser_hub.domain.model import DeviceStatus  # noqa: E402
from dispenser_hub.settings import Settings  # noqa: E402
from firmware_protocol import Envelope, Signer, hub_subscriptions, new_ulid, seal  # noqa: E402
from firmware_protocol.broker import BrokerAddress  # noqa: E402
from firmware_protocol.messages import DoseNotTaken, DoseReminder, DoseTaken, Family, Heartbeat  # noqa: E402
from firmware_protocol.signing import b64url, kid_of, raw_public_key  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from dispenser_hub.bootstrap import Hub
    from dispenser_hub.ports import Inbound
    from firmware_protocol.messages.common import Body

POSTGRES_ENV = "DISPENSER_TEST_POSTGRES_URL"
POSTGRES_HOST = "127.0.0.1:5432"
POSTGRES_DATABASE = "test"
TICKS = os.sysconf("SC_CLK_TCK")
BACKENDS = ("sqlite", "postgresql")
LABELS = {"raw": "raw paho subscriber", "sqlite": "hub, SQLite (WAL)", "postgresql": "hub, PostgreSQL"}
TARGET_RATIO = 0.6


# -- workload -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Devices and the sealed messages, split into per-publisher streams (each device in one stream)."""

    devices: list[tuple[str, Signer]]
    streams: list[list[tuple[str, bytes]]]
    total: int
    payload_bytes: tuple[int, float, int]


def _body(index: int, ts: int) -> Body:
    """60 % heartbeats, 10 % reminders, 20 % ``dose.taken``, 10 % ``dose.not_taken``."""
    kind = index % 10
    dose = {"slot_id": f"s-{index:07d}", "due": ts - 600_000, "pouch_id": f"P-4711-{index % 10_000:04d}"}
    if kind < 6:
        return Heartbeat(
            uptime_s=86_400 + index,
            battery_pct=index % 101,
            on_mains=index % 7 != 0,
            rssi_dbm=-40 - index % 60,
            temperature_dc=180 + index % 90,
            buffered=0,
            schedule_version=12,
        )
    if kind == 6:
        return DoseReminder.model_validate({**dose, "stage": "sound", "attempt": 1 + index % 5})
    if kind < 9:
        return DoseTaken.model_validate({**dose, "taken_at": ts - 60_000})
    return DoseNotTaken.model_validate({**dose, "closed_at": ts - 1_000, "retained": True})


def build_workload(messages: int, devices: int, publishers: int, now_ms: int) -> Workload:
    """``devices`` keys and ``messages`` sealed uplink messages (see the module docstring)."""
    keys = [
        (
            f"RM3-{100_000 + i:06d}",
            Signer.from_seed(hashlib.sha256(f"hub-ingest bench {i}".encode()).digest()),
        )
        for i in range(devices)
    ]
    boots = [new_ulid(now_ms - 86_400_000, i.to_bytes(10, "big")) for i in range(devices)]
    streams: list[list[tuple[str, bytes]]] = [[] for _ in range(min(publishers, devices))]
    sizes: list[int] = []
    first_ts = now_ms - 3_600_000
    step_ms = max(1, 3_000_000 // max(1, messages))
    for index in range(messages):
        device = index % devices
        ts = first_ts + index * step_ms
        device_id, signer = keys[device]
        envelope: Envelope[Body] = Envelope(
            body=_body(index, ts),
            device=device_id,
            boot_id=boots[device],
            seq=index // devices,
            ts=ts,
            msg_id=new_ulid(ts, index.to_bytes(10, "big")),
        )
        payload = seal(envelope, signer)
        sizes.append(len(payload))
        streams[device % len(streams)].append((envelope.topic, payload))
    return Workload(keys, streams, messages, (min(sizes), sum(sizes) / len(sizes), max(sizes)))


# -- broker -------------------------------------------------------------------------------------------------


def broker_config(port: int, inflight: int, queued: int) -> list[str]:
    """The Mosquitto configuration of the run (a hub's broker: see the module docstring)."""
    return [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        "max_connections -1",
        f"max_inflight_messages {inflight}",
        f"max_queued_messages {queued}",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "",
    ]


def mosquitto_version() -> str:
    """``mosquitto -h``'s first line (the version)."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv of the broker binary
            [mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "unknown"


def cpu_seconds(pids: Sequence[int] | None = None) -> float:
    """User + system CPU seconds of this process, or the sum over ``pids`` (vanished ones count 0)."""
    if pids is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def postgres_pids() -> list[int]:
    """Processes named ``postgres`` on this machine (the server and its backends), for CPU figures."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text(encoding="ascii").strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


# -- MQTT helpers -------------------------------------------------------------------------------------------


def _client(port: int, client_id: str, *, clean_session: bool, inflight: int = 20) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, keepalive=60)
    return client


def _wait(event: threading.Event, timeout_s: float, what: str) -> None:
    if not event.wait(timeout_s):
        msg = f"timed out after {timeout_s:.0f} s waiting for {what}"
        raise TimeoutError(msg)


def create_session(port: int, client_id: str) -> None:
    """Create ``client_id``'s persistent session with QoS 1 subscriptions to the hub's topics; disconnect."""
    subscribed = threading.Event()

    def on_connect(
        client: paho.Client,
        _userdata: object,
        _flags: paho.ConnectFlags,
        _reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        client.subscribe([(topic, 1) for topic in hub_subscriptions()])

    def on_subscribe(
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        _reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        subscribed.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    try:
        _wait(subscribed, 10, f"the subscription of {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()


def drop_session(port: int, client_id: str) -> None:
    """Remove ``client_id``'s session from the broker (connect with a clean session, disconnect)."""
    client = _client(port, client_id, clean_session=True)
    client.loop_start()
    client.disconnect()
    client.loop_stop()


def publish_all(port: int, streams: list[list[tuple[str, bytes]]], inflight: int, timeout_s: float) -> float:
    """Publish every stream from its own paho client, QoS 1, until the broker acknowledged all; seconds."""
    start = time.perf_counter()
    done = [threading.Event() for _ in streams]
    clients = []
    for number, stream in enumerate(streams):
        acked = [0]

        def on_publish(
            _client: paho.Client,
            _userdata: object,
            _mid: int,
            _reason: ReasonCode,
            _properties: Properties | None,
            *,
            _acked: list[int] = acked,
            _expected: int = len(stream),
            _done: threading.Event = done[number],
        ) -> None:
            _acked[0] += 1
            if _acked[0] >= _expected:
                _done.set()

        client = _client(port, f"bench-publisher-{number}", clean_session=True, inflight=inflight)
        client.on_publish = on_publish
        client.loop_start()
        clients.append(client)

    def run(client: paho.Client, stream: list[tuple[str, bytes]]) -> None:
        for topic, payload in stream:
            client.publish(topic, payload, qos=1)

    threads = [
        threading.Thread(target=run, args=(c, s), name=f"publisher-{i}")
        for i, (c, s) in enumerate(zip(clients, streams, strict=True))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for event in done:
            _wait(event, timeout_s, "the broker's acknowledgements of the published messages")
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
    return time.perf_counter() - start


# -- consumers ----------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One consumer's figures."""

    consumer: str
    messages: int
    seconds: float = 0.0
    cpu_pct: float = 0.0
    broker_cpu_pct: float = 0.0
    database_cpu_pct: float | None = None
    publish_s: float = 0.0
    checks: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    handle_s: float = 0.0
    ok: bool = True
    skipped: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Messages per second from the first received to the last received/acknowledged."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Window:
    """First and last moment of a consumer's work (``perf_counter``), and the CPU counters at its start."""

    expected: int
    first: float | None = None
    last: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cpu0: float = 0.0
    broker_cpu0: float = 0.0
    database_cpu0: float = 0.0
    cpu1: float = 0.0
    broker_cpu1: float = 0.0
    database_cpu1: float = 0.0

    def started(self, broker_pid: int, database_pids: Sequence[int]) -> None:
        """The first message arrived: start the clock and read the CPU counters."""
        if self.first is None:
            self.first = time.perf_counter()
            self.cpu0, self.broker_cpu0 = cpu_seconds(), cpu_seconds([broker_pid])
            self.database_cpu0 = cpu_seconds(database_pids) if database_pids else 0.0

    def finished(self, broker_pid: int, database_pids: Sequence[int]) -> None:
        """The last message was received/acknowledged."""
        self.last = time.perf_counter()
        self.cpu1, self.broker_cpu1 = cpu_seconds(), cpu_seconds([broker_pid])
        self.database_cpu1 = cpu_seconds(database_pids) if database_pids else 0.0
        self.done.set()

    def fill(self, result: Measurement, *, database: bool) -> None:
        """Copy the window's figures into ``result``."""
        assert self.first is not None
        assert self.last is not None
        wall = self.last - self.first
        result.seconds = wall
        result.cpu_pct = 100 * (self.cpu1 - self.cpu0) / wall
        result.broker_cpu_pct = 100 * (self.broker_cpu1 - self.broker_cpu0) / wall
        if database:
            result.database_cpu_pct = 100 * (self.database_cpu1 - self.database_cpu0) / wall


def run_raw(port: int, broker_pid: int, workload: Workload, args: argparse.Namespace) -> Measurement:
    """The raw paho subscriber drains the queued messages."""
    client_id = "bench-raw-subscriber"
    result = Measurement("raw", workload.total)
    create_session(port, client_id)
    result.publish_s = publish_all(port, workload.streams, args.inflight, args.timeout)
    window = Window(workload.total)
    received = [0]

    def on_connect(
        client: paho.Client,
        _userdata: object,
        _flags: paho.ConnectFlags,
        _reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        client.subscribe([(topic, 1) for topic in hub_subscriptions()])  # as the hub does on every connect

    def on_message(_client: paho.Client, _userdata: object, _message: paho.MQTTMessage) -> None:
        if received[0] == 0:
            window.started(broker_pid, ())
        received[0] += 1
        if received[0] == window.expected:
            window.finished(broker_pid, ())

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    try:
        _wait(window.done, args.timeout, f"{workload.total} messages at the raw subscriber")
    finally:
        client.disconnect()
        client.loop_stop()
        drop_session(port, client_id)
    window.fill(result, database=False)
    result.checks = {"received": received[0]}
    return result


class TimedHubClient(HubMqttClient):
    """The hub's MQTT client, noting when the first message arrived and when the last was acknowledged."""

    def __init__(
        self,
        *args: Any,  # noqa: ANN401 - HubMqttClient's arguments, passed through
        window: Window,
        broker_pid: int,
        database_pids: Sequence[int],
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        """``HubMqttClient(*args, **kwargs)`` reporting to ``window``."""
        super().__init__(*args, **kwargs)
        self._window = window
        self._pids = (broker_pid, database_pids)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if self._window.first is None:
            self._window.started(*self._pids)
        super()._on_message(client, userdata, message)

    def _ack(self, batch: list[Any]) -> None:
        super()._ack(batch)
        if self.acked >= self._window.expected and not self._window.done.is_set():
            self._window.finished(*self._pids)


@dataclass
class TimedHandle:
    """Wraps ``IngestService.handle``: counts batches, time inside it, and optionally profiles it."""

    handle: Callable[[Sequence[Inbound]], object]
    profiler: cProfile.Profile | None = None
    batches: int = 0
    seconds: float = 0.0

    def __call__(self, batch: Sequence[Inbound]) -> object:
        """Handle one batch."""
        start = time.perf_counter()
        try:
            if self.profiler is not None:
                return self.profiler.runcall(self.handle, batch)
            return self.handle(batch)
        finally:
            self.seconds += time.perf_counter() - start
            self.batches += 1


def prepare_devices(hub: Hub, workload: Workload) -> None:
    """Register the devices with the registry, then enroll and activate them directly in the database."""
    now = datetime.now(UTC)
    for device_id, _ in workload.devices:
        hub.registry.register_device(
            device_id, serial=f"SN-{device_id}", family=Family.MULTIDOSE_ROLL, model="RollMate 3", by="bench"
        )
    with hub.uow_factory() as uow:
        for device_id, signer in workload.devices:
            device = uow.devices.get(device_id)
            assert device is not None
            uow.devices.update(
                replace(
                    device,
                    status=DeviceStatus.ACTIVE,
                    public_key=b64url(raw_public_key(signer.public_key)),
                    kid=kid_of(signer.public_key),
                    enrolled_at=now,
                    firmware="bench",
                )
            )
        uow.commit()


def check_stored(hub: Hub, workload: Workload, result: Measurement) -> None:
    """All messages stored exactly once, nothing refused, no resend asked; problems go to ``result``."""
    counters = hub.ingest.counters
    with hub.uow_factory() as uow:
        events = uow.events.count()
        dead_letters = len(uow.dead_letters.select(limit=1000))
        commands = len(uow.commands.select(limit=1000))
        per_device = {device_id: uow.events.count(device_id=device_id) for device_id, _ in workload.devices}
    result.checks = {
        "events_in_db": events,
        "stored": counters.stored,
        "duplicates": counters.duplicates,
        "refused": counters.refused,
        "dead_letters": dead_letters,
        "commands": commands,
    }
    expected = {device_id: 0 for device_id, _ in workload.devices}
    for index in range(workload.total):
        expected[workload.devices[index % len(workload.devices)][0]] += 1
    if events != workload.total:
        result.problems.append(f"{events} events stored, expected {workload.total}")
    if per_device != expected:
        wrong = sum(1 for device_id in expected if per_device[device_id] != expected[device_id])
        result.problems.append(f"{wrong} devices have the wrong number of stored events")
    if counters.stored != workload.total or counters.duplicates or counters.refused:
        result.problems.append(
            f"ingest counted stored={counters.stored} duplicates={counters.duplicates} "
            f"refused={counters.refused} (reasons {counters.by_reason})"
        )
    if dead_letters or commands:
        result.problems.append(f"{dead_letters} dead letters and {commands} commands (resend requests?)")
    result.ok = not result.problems


def run_hub(
    backend: str,
    database_url: str,
    *,
    port: int,
    broker_pid: int,
    workload: Workload,
    args: argparse.Namespace,
    workdir: Path,
) -> Measurement:
    """The hub on ``database_url`` drains the queued messages; then the storage is checked."""
    client_id = f"bench-hub-{backend}"
    result = Measurement(backend, workload.total)
    settings = Settings(
        database_url=database_url,
        pki_dir=workdir / f"pki-{backend}",
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        mqtt_client_id=client_id,
    )
    hub = build_hub(settings)
    try:
        prepare_devices(hub, workload)
        create_session(port, client_id)
        result.publish_s = publish_all(port, workload.streams, args.inflight, args.timeout)
        window = Window(workload.total)
        profiler = cProfile.Profile() if args.profile else None
        handle = TimedHandle(hub.ingest.handle, profiler)
        database_pids = postgres_pids() if backend == "postgresql" else ()
        client = TimedHubClient(
            BrokerAddress.parse(settings.mqtt_url),
            client_id,
            handle,
            now=hub.clock.now,
            batch_size=args.batch,
            window=window,
            broker_pid=broker_pid,
            database_pids=database_pids,
        )
        client.start()
        try:
            _wait(window.done, args.timeout, f"{workload.total} acknowledgements from the hub ({backend})")
        finally:
            client.stop()
            drop_session(port, client_id)
        window.fill(result, database=backend == "postgresql")
        result.batches, result.handle_s = handle.batches, handle.seconds
        if profiler is not None:
            write_profile(profiler, Path(f"{args.profile}-{backend}.prof"), quiet=args.json)
        check_stored(hub, workload, result)
    finally:
        hub.stop()
    return result


def write_profile(profiler: cProfile.Profile, path: Path, *, quiet: bool) -> None:
    """Save the profile of the ingest thread and print its top functions (by cumulative time)."""
    profiler.dump_stats(path)
    if quiet:
        return
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(40)
    print(f"profile of IngestService.handle -> {path}")
    print(out.getvalue())


# -- databases ----------------------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def find_postgres(configured: str | None) -> tuple[str | None, str]:
    """The first PostgreSQL URL that connects (``--postgres-url``, the env, the defaults), or why none."""
    candidates = [configured] if configured else []
    if not candidates and os.environ.get(POSTGRES_ENV, "").strip():
        candidates = [os.environ[POSTGRES_ENV].strip()]
    if not candidates:
        users = dict.fromkeys(["postgres", getpass.getuser()])
        candidates = [f"postgresql://{user}@{POSTGRES_HOST}/{POSTGRES_DATABASE}" for user in users]
    failures = []
    for url in candidates:
        try:
            with psycopg.connect(_libpq(url), connect_timeout=3) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failures.append(f"{make_url(url).render_as_string(hide_password=True)}: {reason}")
        else:
            return url, ""
    return None, "no PostgreSQL server: " + "; ".join(failures)


@contextlib.contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A URL whose connections use a new, empty schema (``search_path``); the schema is dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(base), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        url = make_url(base).set(drivername="postgresql+psycopg")
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(base), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def postgres_version(base: str) -> str:
    """The server's version and its ``synchronous_commit``/``fsync`` settings."""
    with psycopg.connect(_libpq(base)) as connection:
        row = connection.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'), "
            "current_setting('fsync')"
        ).fetchone()
    assert row is not None
    return f"PostgreSQL {row[0]} (synchronous_commit={row[1]}, fsync={row[2]})"


# -- report -------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model name, as the OS reports it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(args: argparse.Namespace, postgres: str | None, workload: Workload) -> dict[str, object]:
    """Versions, machine and settings, for the record."""
    low, mean, high = workload.payload_bytes
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "paho-mqtt": version("paho-mqtt"),
        "broker": mosquitto_version(),
        "broker config": f"max_inflight_messages {args.inflight}, max_queued_messages {args.queued}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres or "-",
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "workload": (
            f"{workload.total} messages from {len(workload.devices)} devices, {low}-{high} bytes "
            f"(mean {mean:.0f}), {len(workload.streams)} publishers, hub batch {args.batch}"
        ),
    }


def report(results: list[Measurement], env: dict[str, object], *, as_json: bool) -> None:
    """The table (or JSON) and a one-line summary."""
    raw = next(r for r in results if r.consumer == "raw")
    if as_json:
        rows = []
        for r in results:
            row: dict[str, object] = {
                "consumer": r.consumer,
                "messages": r.messages,
                "skipped": r.skipped,
            }
            if r.skipped is None:
                row |= {
                    "seconds": round(r.seconds, 3),
                    "msgs_per_s": round(r.rate, 1),
                    "ratio_to_raw": round(r.rate / raw.rate, 3),
                    "cpu_pct": round(r.cpu_pct, 1),
                    "broker_cpu_pct": round(r.broker_cpu_pct, 1),
                    "database_cpu_pct": None if r.database_cpu_pct is None else round(r.database_cpu_pct, 1),
                    "batches": r.batches,
                    "handle_s": round(r.handle_s, 3),
                    "publish_s": round(r.publish_s, 2),
                    "checks": r.checks,
                    "ok": r.ok,
                    "problems": r.problems,
                }
            rows.append(row)
        print(json.dumps({"environment": env, "results": rows, "target_ratio": TARGET_RATIO}, indent=2))
        return
    print("Hub ingest end to end (verified, stored, acknowledged) vs a raw paho subscriber, same broker")
    for label, value in env.items():
        print(f"  {label:<14} {value}")
    print()
    print(
        "| consumer | messages | seconds | msg/s | ratio to raw | process CPU % | broker CPU % | db CPU % |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        label = LABELS[r.consumer]
        if r.skipped is not None:
            print(f"| {label} | skipped: {r.skipped} | | | | | | |")
            continue
        db = "-" if r.database_cpu_pct is None else f"{r.database_cpu_pct:.0f}"
        print(
            f"| {label} | {r.messages:,} | {r.seconds:.2f} | {r.rate:,.0f} | {r.rate / raw.rate:.2f} "
            f"| {r.cpu_pct:.0f} | {r.broker_cpu_pct:.0f} | {db} |"
        )
    print()
    for r in results:
        if r.skipped is not None or r.consumer == "raw":
            continue
        per_batch = r.messages / r.batches if r.batches else 0
        busy = 100 * r.handle_s / r.seconds if r.seconds else 0
        print(
            f"  {LABELS[r.consumer]}: {r.batches} batches (mean {per_batch:.0f} messages), "
            f"{1e6 * r.handle_s / r.messages:.0f} us/message inside IngestService.handle "
            f"({busy:.0f} % of the time); checks {r.checks}"
        )
        for problem in r.problems:
            print(f"    PROBLEM: {problem}")
    parts = [f"raw={raw.rate:.0f}/s"]
    parts.extend(
        f"{r.consumer}=skipped"
        if r.skipped is not None
        else f"{r.consumer}={r.rate:.0f}/s ratio={r.rate / raw.rate:.2f}{'' if r.ok else ' FAILED'}"
        for r in results
        if r.consumer != "raw"
    )
    print()
    print(f"RESULT messages={raw.messages} " + " ".join(parts) + f" (target ratio >= {TARGET_RATIO})")


# -- main ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per consumer (20000)")
    parser.add_argument("--devices", type=int, default=200, help="devices sending them (200)")
    parser.add_argument("--batch", type=int, default=200, help="hub batch size (200, the hub's default)")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated hub databases to measure: sqlite,postgresql (both)",
    )
    parser.add_argument(
        "--inflight",
        type=int,
        default=1000,
        help="broker max_inflight_messages (1000; Mosquitto's default: 20)",
    )
    parser.add_argument("--publishers", type=int, default=4, help="publishing paho clients (4)")
    parser.add_argument(
        "--postgres-url", help=f"PostgreSQL server (default ${POSTGRES_ENV} or {POSTGRES_HOST})"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a phase after this (600 s)")
    parser.add_argument(
        "--profile", metavar="PREFIX", help="cProfile the hub's ingest to PREFIX-<backend>.prof"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in re.split(r"[,\s]+", args.backends) if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if args.messages < 1 or args.devices < 1 or args.batch < 1 or args.inflight < 1 or args.publishers < 1:
        parser.error("--messages, --devices, --batch, --inflight and --publishers must be positive")
    args.backends = backends
    args.queued = max(200_000, 2 * args.messages)  # deploy/mosquitto/mosquitto.conf: 200000
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 if a hub did not store every message exactly once."""
    args = parse_args(argv)
    postgres_url, postgres_reason = (None, "not requested")
    if "postgresql" in args.backends:
        postgres_url, postgres_reason = find_postgres(args.postgres_url)
    if not args.json:
        print(f"building {args.messages:,} sealed messages from {args.devices} devices ...", flush=True)
    workload = build_workload(args.messages, args.devices, args.publishers, int(time.time() * 1000))
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="hub-ingest-") as tmp:
        workdir = Path(tmp)
        with mosquitto(workdir, lambda port: broker_config(port, args.inflight, args.queued)) as (port, pid):
            results.append(run_raw(port, pid, workload, args))
            for backend in args.backends:
                if not args.json:
                    print(f"measuring the hub on {backend} ...", flush=True)
                if backend == "sqlite":
                    url = f"sqlite:///{workdir / 'hub.db'}"
                    results.append(
                        run_hub(
                            backend,
                            url,
                            port=port,
                            broker_pid=pid,
                            workload=workload,
                            args=args,
                            workdir=workdir,
                        )
                    )
                elif postgres_url is None:
                    results.append(Measurement(backend, workload.total, skipped=postgres_reason, ok=True))
                else:
                    with postgres_schema(postgres_url) as url:
                        results.append(
                            run_hub(
                                backend,
                                url,
                                port=port,
                                broker_pid=pid,
                                workload=workload,
                                args=args,
                                workdir=workdir,
                            )
                        )
    env = environment(args, postgres_version(postgres_url) if postgres_url else None, workload)
    report(results, env, as_json=args.json)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
