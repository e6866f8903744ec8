"""Crash safety: ``kill -9`` the hub again and again while a fleet sends; nothing is lost, nothing is doubled.

ARCHITECTURE.md, the data path: the hub acknowledges a device message to the broker only after the transaction
that stored it committed, and its MQTT session is persistent (fixed client id, ``clean_session`` false). A hub
that dies at any moment therefore finds, once restarted, every message it had not acknowledged redelivered or
still queued by the broker, and recognises the ones it had stored already as duplicates.

The test runs that end to end with real processes:

* a private Mosquitto with its default limits. Its queue for the hub's session (``max_queued_messages``
  1000) must never overflow, or the broker, not the hub, would lose messages: the test-side devices pause
  while more than ``MAX_BACKLOG`` of their messages wait for the hub, and the broker's log is checked for
  drops, so an overflow is reported as what it is;
* the database, the PKI and the registrations are prepared in the test process; the hub is
  ``dispenser-hub serve`` (``python -m dispenser_hub.cli serve``) in a child process configured by
  ``DISPENSER_*`` variables (``tests/support/hub_process.py``);
* the ground truth is an MQTT client of the test's own, subscribed to the hub's topics before any traffic,
  that decodes and verifies (with the devices' keys) every message it receives. Its count per device is
  checked against the PUBACKs the publishers received, so it cannot have missed a message;
* the traffic: simulated dispensers of both families (``device_sim``, in real time) enroll with the codes the
  registry issued, then, scripted, lose their network (the broker publishes their wills), jam, lose mains
  power, and send duplicated, replayed, out-of-order, forged and garbage messages; next to them test-side
  devices publish signed heartbeats, about 14 a second each;
* meanwhile the hub is killed with SIGKILL ``len(KILLS)`` times at different moments (in steady traffic, and
  while a restarted instance drains the backlog its predecessor left) and restarted each time.

Afterwards every valid message the probe saw is stored in ``device_event`` exactly once, and nothing else is;
every invalid one is a dead letter and no valid one is; no hub instance logged a traceback or an error.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from device_sim.build import Built, build
from device_sim.clock import ScaledClock
from device_sim.device.identity import DeviceIdentity
from device_sim.runner import SimulationRun, population
from dispenser_hub.adapters.clock import SystemClock
from dispenser_hub.bootstrap import load_ca, open_storage
from dispenser_hub.settings import Settings
from firmware_protocol import KeyRing, ProtocolError, decode, hub_subscriptions, verify
from firmware_protocol.messages import Death, DeathReason, Family, Heartbeat
from tests.dispenser_hub.services.support import Device
from tests.support.broker import MosquittoServer, free_tcp_port
from tests.support.hub_process import HubProcess
from tests.support.mqtt_client import MqttProbe
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from device_sim.device.dispenser import Dispenser
    from tests.conftest import BrokerFactory
    from tests.support.broker import MqttBroker

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class _Kill:
    """Kill an instance once it has been ready ``after_s`` and has stored ``after_events`` more events."""

    after_s: float
    after_events: int = 0


KILLS = (_Kill(1.0), _Kill(0.0, after_events=10), _Kill(0.4), _Kill(0.0, after_events=150))
"""The first instance is killed in steady traffic, the others while they drain the backlog their predecessors
left (the third 0.4 s after it is ready, maybe before it stored anything); the last one runs to the end."""
KILL_WAIT_S = 10.0
"""An instance that has not stored ``after_events`` in this time is killed anyway (the checks will tell)."""
CLIENT_ID = "hub-crash-test"
FLEET_DEVICES = 6
CHATTY_DEVICES = 3
CHATTY_PREFIX = "CRASH-"
CHATTY_INTERVAL_S = 0.07
MAX_BACKLOG = 500
"""Test-side messages that may wait for the hub (queued or in flight); well below Mosquitto's 1000."""
TAIL_S = 1.5
"""Traffic after the last restart."""
READY_TIMEOUT_S = 20.0
SETTLED_TIMEOUT_S = 15.0
DRAIN_TIMEOUT_S = 20.0
STALLED_S = 3.0
"""The last instance has finished draining when the event count has not changed this long."""
SETTLE_S = 0.5
DELIBERATE_REFUSALS = frozenset({"E_SIGNATURE", "E_MALFORMED"})
"""Dead-letter reasons of the forged and garbage messages the fleet is told to send."""
BAD_LOG_LINE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")
SHOWN = 20
"""At most this many messages are listed in a failure message."""
LOG_TAIL = 3000


# -- the database, read with plain SQL while the hub writes (WAL) -----------------------------------------


def _query(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(db_path, timeout=10.0, isolation_level=None)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def _count(db_path: Path, where: str = "1 = 1") -> int:
    ((count,),) = _query(db_path, f"SELECT COUNT(*) FROM device_event WHERE {where}")  # noqa: S608 - our literals
    assert isinstance(count, int)
    return count


def _statuses(db_path: Path) -> dict[str, str]:
    return {
        str(device): str(status) for device, status in _query(db_path, "SELECT device_id, status FROM device")
    }


def _all_enrolled(db_path: Path) -> bool:
    """Every device enrolled; the simulated ones also born (so they have started their enrolled life)."""
    return all(
        status == "active" or (status == "enrolled" and device.startswith(CHATTY_PREFIX))
        for device, status in _statuses(db_path).items()
    )


def _drain(db_path: Path, expected: int) -> bool:
    """Wait until ``expected`` events are stored or the count stalls; whether ``expected`` was reached."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    last, changed_at = -1, time.monotonic()
    while (count := _count(db_path)) < expected:
        now = time.monotonic()
        if count != last:
            last, changed_at = count, now
        if now - changed_at > STALLED_S or now > deadline:
            return False
        time.sleep(0.1)
    return True


# -- the setup: registrations before any hub runs -----------------------------------------------------------


@dataclass
class _Setup:
    settings: Settings
    db_path: Path
    start_ms: int
    built: Built
    """The simulated fleet."""
    chatty: list[Device]
    """The test-side devices."""
    codes: dict[str, str]
    """Enrollment codes of the test-side devices."""
    keys: KeyRing
    """Every device's public key."""


def _prepare(tmp_path: Path, broker: MqttBroker) -> _Setup:
    db_path = tmp_path / "hub.db"
    settings = Settings(
        database_url=f"sqlite:///{db_path}",
        pki_dir=tmp_path / "pki",
        mqtt_url=broker.url,
        mqtt_client_id=CLIENT_ID,
    )
    storage = open_storage(settings, SystemClock())
    load_ca(settings, datetime.now(UTC))
    start_ms = int(time.time() * 1000)
    scenario = population(
        FLEET_DEVICES,
        start_ms=start_ms,
        duration_ms=3_600_000,
        families={"roll": 50, "pot": 50},
        faults="none",
    )
    fleet_codes = {}
    for spec in scenario.devices():
        _, code = storage.registry.register_device(
            spec.device_id, serial=spec.device_id, family=spec.family, model="sim", by="test"
        )
        fleet_codes[spec.device_id] = code.code
    families = (Family.MULTIDOSE_ROLL, Family.DOSE_POT)
    chatty = [
        Device(DeviceIdentity.create(f"{CHATTY_PREFIX}{n:03d}", families[n % 2], seed=n))
        for n in range(CHATTY_DEVICES)
    ]
    codes = {}
    for device in chatty:
        identity = device.identity
        _, code = storage.registry.register_device(
            device.device_id, serial=identity.serial, family=identity.family, model="test", by="test"
        )
        codes[device.device_id] = code.code
    storage.engine.dispose()
    built = build(scenario, standalone=False, enrollment_codes=fleet_codes)
    keys = KeyRing()
    for identity in [d.identity for d in built.devices] + [d.identity for d in chatty]:
        keys.add(identity.device_id, identity.signer.public_key)
    return _Setup(settings, db_path, start_ms, built, chatty, codes, keys)


# -- the traffic: the simulated fleet's script, the test-side devices ----------------------------------------


def _script(devices: Sequence[Dispenser], now_ms: int) -> int:
    """Disturbances and hostile messages over the next ~9 s, staggered across the devices; when they end."""
    for index, device in enumerate(devices):
        at = now_ms + 500 + index * 700
        device.add_timeline(at, "network_down", {"for_ms": 1200})
        device.add_timeline(at + 2500, "fault", {"kind": "jam", "for_ms": 800})
        device.add_timeline(at + 3000, "hostile", {"kind": "duplicate", "count": 2})
        device.add_timeline(at + 3300, "hostile", {"kind": "replay"})
        device.add_timeline(at + 3600, "hostile", {"kind": "out_of_order"})
        device.add_timeline(at + 4000, "mains_loss", {"for_ms": 1000})
    devices[1].add_timeline(now_ms + 3000, "hostile", {"kind": "forged_signature"})
    devices[-1].add_timeline(now_ms + 4000, "hostile", {"kind": "garbage"})
    return now_ms + 500 + len(devices) * 700 + 5000


def _unsettled(run: SimulationRun, script_end_ms: int) -> list[str]:
    """Devices still busy with the script (offline, buffering, awaiting PUBACKs); empty when all are done."""
    busy = []
    for device in run.devices:
        link = run.fleet.link(device.device_id)
        pending = [t.at for t in device.timers if t.kind == "timeline" and t.at <= script_end_ms]
        if (
            pending
            or not link.ready
            or device.outbox.buffered
            or link.counters.acked < link.counters.published
        ):
            busy.append(f"{device.device_id}: script at {pending}, ready {link.ready}, {link.counters}")
    return busy


class _Chatty:
    """The test-side devices, each on its own connection: enrolled, then birth and heartbeats from a thread.

    Every publish waits for its PUBACK. While more than ``MAX_BACKLOG`` of their messages are not stored yet
    (the hub is down or catching up), they pause, so the broker's queue for the hub never overflows.
    """

    def __init__(self, broker: MqttBroker, devices: Sequence[Device], db_path: Path) -> None:
        self.acked: Counter[str] = Counter()
        """PUBACKs per device."""
        self.paused = 0
        """Rounds skipped because of the backlog."""
        self._clients = [(d, MqttProbe(broker, client_id=d.device_id, timeout=10.0)) for d in devices]
        self._db_path = db_path
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chatty-devices", daemon=True)
        self._error: BaseException | None = None

    def enroll(self, codes: dict[str, str]) -> None:
        for device, client in self._clients:
            client.connect()
            self._send(device, client, device.enrollment(codes[device.device_id], datetime.now(UTC)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and disconnect; raise what went wrong in the thread, if anything did."""
        self.close()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop sending and disconnect (idempotent)."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(10.0)
        for _, client in self._clients:
            client.close()

    def _send(self, device: Device, client: MqttProbe, message: tuple[str, bytes]) -> None:
        client.publish(*message)  # waits for the PUBACK
        self.acked[device.device_id] += 1

    def _backlog(self) -> int:
        return self.acked.total() - _count(self._db_path, f"device_id LIKE '{CHATTY_PREFIX}%'")

    def _run(self) -> None:
        try:
            for device, client in self._clients:
                self._send(device, client, device.birth(datetime.now(UTC)))
            while not self._halt.wait(CHATTY_INTERVAL_S):
                if self._backlog() > MAX_BACKLOG:
                    self.paused += 1
                    continue
                for device, client in self._clients:
                    self._send(device, client, device.message(Heartbeat, datetime.now(UTC)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread by ``stop``
            self._error = exc


# -- the ground truth -------------------------------------------------------------------------------------


@dataclass
class _Truth:
    """What the probe saw, judged like the hub judges it (decode, then the signature with the device key)."""

    valid: dict[tuple[str, str], str] = field(default_factory=dict)
    """(device, msg_id) -> message type."""
    invalid: Counter[bytes] = field(default_factory=Counter)
    """Payloads the hub must refuse, with how often each was published."""
    per_device: Counter[str] = field(default_factory=Counter)
    """Messages per topic device, without the wills (the broker publishes them: nobody gets a PUBACK)."""
    copies: int = 0
    """Valid messages seen again (duplicates and replays)."""


def _judge(messages: Iterable[tuple[str, bytes]], keys: KeyRing) -> _Truth:
    truth = _Truth()
    for topic, payload in messages:
        try:
            received = decode(payload, topic)
            verify(received, keys)
        except ProtocolError:
            truth.invalid[payload] += 1
            truth.per_device[topic.split("/")[2]] += 1
            continue
        envelope = received.envelope
        body = envelope.body
        if not (isinstance(body, Death) and body.reason is DeathReason.CONNECTION_LOST):
            truth.per_device[envelope.device] += 1
        key = (envelope.device, envelope.msg_id)
        truth.copies += key in truth.valid
        truth.valid[key] = envelope.type
    return truth


def _received(probe: MqttProbe) -> list[tuple[str, bytes]]:
    """Every message the probe received, once nothing more has arrived for ``SETTLE_S``."""
    messages: list[tuple[str, bytes]] = []
    while True:
        try:
            message = probe.expect(timeout=SETTLE_S)
        except AssertionError:
            return messages
        messages.append((message.topic, bytes(message.payload)))


# -- the run ------------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    truth: _Truth = field(default_factory=_Truth)
    acked: dict[str, int] = field(default_factory=dict)
    """PUBACKs per device (simulated and test-side)."""
    published: dict[str, int] = field(default_factory=dict)
    """Publishes per device (a simulated device may be stopped before a last PUBACK arrives)."""
    events_at_kills: list[int] = field(default_factory=list)
    """Events stored when each kill came (for failure messages)."""
    paused: int = 0
    """Rounds the test-side devices skipped for the backlog (for failure messages)."""


def _wait_for_events(db_path: Path, count: int) -> None:
    wait_until(lambda: _count(db_path) >= count, KILL_WAIT_S, 0.005)


def _crash_repeatedly(hub: HubProcess, db_path: Path, events_at_kills: list[int]) -> None:
    for kill in KILLS:
        ready_at = time.monotonic()
        _wait_for_events(db_path, _count(db_path) + kill.after_events)
        time.sleep(max(0.0, ready_at + kill.after_s - time.monotonic()))
        events_at_kills.append(_count(db_path))
        hub.kill()
        hub.start()
        hub.wait_ready(READY_TIMEOUT_S)


async def _traffic(setup: _Setup, broker: MqttBroker, hub: HubProcess, outcome: _Outcome) -> None:
    """Enroll everyone, then send while the hub is killed and restarted."""
    chatty = _Chatty(broker, setup.chatty, setup.db_path)
    run = SimulationRun(setup.built, broker.url, ScaledClock.starting_now(setup.start_ms, speed=1))
    try:
        async with run:
            await asyncio.to_thread(chatty.enroll, setup.codes)
            enrolled = await asyncio.to_thread(
                wait_until, lambda: _all_enrolled(setup.db_path), READY_TIMEOUT_S, 0.1
            )
            assert enrolled, f"devices not enrolled (and born) in time: {_statuses(setup.db_path)}"
            script_end_ms = _script(run.devices, run.clock.now_ms())
            for device in run.devices:
                run.fleet.poke(device.device_id)
            chatty.start()
            await asyncio.to_thread(_crash_repeatedly, hub, setup.db_path, outcome.events_at_kills)
            await asyncio.sleep(TAIL_S)
            await asyncio.to_thread(chatty.stop)
            settled = await asyncio.to_thread(
                wait_until, lambda: not _unsettled(run, script_end_ms), SETTLED_TIMEOUT_S, 0.05
            )
            assert settled, f"the simulated fleet did not finish its script: {_unsettled(run, script_end_ms)}"
            assert not run.fleet.stats.failed_devices, run.fleet.stats.failed_devices
    finally:
        chatty.close()
    outcome.acked = dict(chatty.acked)
    outcome.published = dict(chatty.acked)
    outcome.paused = chatty.paused
    for device in run.devices:
        counters = run.fleet.link(device.device_id).counters
        outcome.acked[device.device_id] = counters.acked
        outcome.published[device.device_id] = counters.published


def _run_and_crash(setup: _Setup, broker: MqttBroker, hub: HubProcess) -> _Outcome:
    hub.wait_ready(READY_TIMEOUT_S)  # the first connection creates the hub's persistent session
    outcome = _Outcome()
    with MqttProbe(broker, timeout=10.0) as probe:
        for topic in hub_subscriptions():
            probe.subscribe(topic)
        asyncio.run(_traffic(setup, broker, hub, outcome))
        outcome.truth = _judge(_received(probe), setup.keys)
    return outcome


# -- the checks ---------------------------------------------------------------------------------------------


def _listing(keys: Iterable[tuple[str, str]], types: dict[tuple[str, str], str]) -> str:
    ordered = sorted(keys)
    shown = ", ".join(
        f"{device} {msg_id} ({types.get((device, msg_id), '?')})" for device, msg_id in ordered[:SHOWN]
    )
    return shown + (f" ... and {len(ordered) - SHOWN} more" if len(ordered) > SHOWN else "")


def _check_ground_truth(outcome: _Outcome) -> None:
    """The probe saw every message the broker acknowledged, and the fleet sent what it was told to."""
    truth = outcome.truth
    wrong = {
        device: (outcome.acked[device], truth.per_device[device], outcome.published[device])
        for device in outcome.acked
        if not outcome.acked[device] <= truth.per_device[device] <= outcome.published[device]
    }
    assert not wrong, f"probe counts outside [acked, published] (acked, seen, published): {wrong}"
    assert set(truth.per_device) <= set(outcome.acked), truth.per_device
    assert truth.copies > 0, "the fleet's duplicates and replays were not sent"
    assert len(truth.invalid) >= 2, "the fleet's forged and garbage messages were not sent"


def _check_broker_dropped_nothing(broker: MqttBroker) -> None:
    server = broker._server
    assert isinstance(server, MosquittoServer)
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "dropped" not in log, (
        "Mosquitto's queue for the hub overflowed (max_queued_messages): the test sent too much for the time "
        f"the hub was down, and the losses that follow are the broker's, not the hub's\n{server.log_tail()}"
    )


def _check_stored_once(db_path: Path, outcome: _Outcome, *, drained: bool) -> None:
    truth = outcome.truth
    rows = _query(db_path, "SELECT device_id, msg_id, type FROM device_event")
    stored = Counter((str(device), str(msg_id)) for device, msg_id, _ in rows)
    types = truth.valid | {(str(device), str(msg_id)): str(kind) for device, msg_id, kind in rows}
    summary = (
        f"{len(truth.valid)} valid messages published, {len(rows)} events stored "
        f"(events stored when each kill came: {outcome.events_at_kills}; drained: {drained}; "
        f"test-side devices paused {outcome.paused} times for the backlog)"
    )
    missing = set(truth.valid) - set(stored)
    assert not missing, f"{len(missing)} lost: {_listing(missing, types)}\n{summary}"
    doubled = {key for key, count in stored.items() if count > 1}
    assert not doubled, f"{len(doubled)} stored more than once: {_listing(doubled, types)}\n{summary}"
    unexpected = set(stored) - set(truth.valid)
    assert not unexpected, (
        f"{len(unexpected)} stored, never published: {_listing(unexpected, types)}\n{summary}"
    )
    assert len(rows) == len(truth.valid), summary


def _check_dead_letters(db_path: Path, truth: _Truth) -> None:
    """Every invalid message is a dead letter (a redelivered one may be refused twice); nothing valid is."""
    letters = [
        (str(reason), raw, str(topic))
        for reason, raw, topic in _query(db_path, "SELECT reason, raw, topic FROM dead_letter")
        if isinstance(raw, bytes)
    ]
    refused = {raw for _, raw, _ in letters}
    not_refused = [payload[:80] for payload in truth.invalid if payload not in refused]
    assert not not_refused, f"invalid messages not dead-lettered: {not_refused}"
    wrongly_refused = [(reason, topic) for reason, raw, topic in letters if raw not in truth.invalid]
    assert not wrongly_refused, f"dead letters for messages that were not invalid: {wrongly_refused}"
    assert {reason for reason, _, _ in letters} <= DELIBERATE_REFUSALS, letters


def _check_logs(hub: HubProcess, exit_code: int | None) -> None:
    """Each instance but the last was killed; none logged a traceback or an error; the last one stopped."""
    assert len(hub.logs) == len(KILLS) + 1
    for number, log in enumerate(hub.logs, start=1):
        text = log.read_text(encoding="utf-8", errors="replace")
        bad = [line for line in text.splitlines() if BAD_LOG_LINE.search(line)]
        assert not bad, (
            f"hub instance {number} logged:\n" + "\n".join(bad[:SHOWN]) + f"\n\n{text[-LOG_TAIL:]}"
        )
    assert exit_code == 0, f"the last instance exited with {exit_code}:\n{hub.log_text()[-LOG_TAIL:]}"


# -- the tests ----------------------------------------------------------------------------------------------


def _hub_process(tmp_path: Path, settings: Settings) -> HubProcess:
    return HubProcess(
        {
            "DISPENSER_DATABASE_URL": settings.database_url,
            "DISPENSER_PKI_DIR": str(settings.pki_dir),
            "DISPENSER_MQTT_URL": settings.mqtt_url,
            "DISPENSER_MQTT_CLIENT_ID": settings.mqtt_client_id,
            "DISPENSER_HTTP_PORT": str(free_tcp_port()),
        },
        tmp_path / "hub",
    )


@pytest.mark.timeout(120)
def test_killing_the_hub_repeatedly_loses_and_doubles_no_message(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    broker = fresh_mqtt_broker("mosquitto")
    setup = _prepare(tmp_path, broker)
    hub = _hub_process(tmp_path, setup.settings)
    hub.start()
    try:
        outcome = _run_and_crash(setup, broker, hub)
        _check_ground_truth(outcome)
        drained = _drain(setup.db_path, len(outcome.truth.valid))
        time.sleep(SETTLE_S)  # anything still in flight is a redelivery: it must not add a row
        exit_code = hub.stop(signal.SIGINT)  # SIGINT, as SIGTERM is not graceful: see the xfail test below
    finally:
        hub.stop(signal.SIGKILL)
    _check_broker_dropped_nothing(broker)
    _check_stored_once(setup.db_path, outcome, drained=drained)
    _check_dead_letters(setup.db_path, outcome.truth)
    _check_logs(hub, exit_code)


def test_sigterm_stops_the_hub_gracefully(tmp_path: Path, fresh_mqtt_broker: BrokerFactory) -> None:
    broker = fresh_mqtt_broker("mosquitto")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        pki_dir=tmp_path / "pki",
        mqtt_url=broker.url,
        mqtt_client_id=CLIENT_ID,
    )
    hub = _hub_process(tmp_path, settings)
    hub.start()
    try:
        hub.wait_ready(READY_TIMEOUT_S)
        exit_code = hub.stop(signal.SIGTERM)
    finally:
        hub.stop(signal.SIGKILL)
    assert exit_code == 0, f"the hub exited with {exit_code} on SIGTERM:\n{hub.log_text()[-LOG_TAIL:]}"
    assert "Scheduler has been shut down" in hub.log_text(), "Hub.stop did not run"
