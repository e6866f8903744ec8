"""``SimulationRun`` over real brokers (Mosquitto and the embedded amqtt broker), and the runner's helpers.

The broker tests run small inline scenarios (both families, unique device ids per test) on a fast
``ScaledClock`` (one simulated hour per real second), or on a ``ManualClock`` where a test compares with the
in-memory loopback exactly or acts at a fixed simulated time. A plain ``MqttProbe`` subscriber sees what a
hub would see and decodes it with ``firmware_protocol``.
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from device_sim.build import ROLL_LOAD_DELAY_MS, Built, build
from device_sim.clock import ManualClock, ScaledClock
from device_sim.loopback import Loopback
from device_sim.runner import (
    BEHAVIOURS,
    FOREVER_DURATION_MS,
    BrokerUnavailableError,
    SimulationRun,
    inspector_keys,
    population,
    split,
    write_inspector_keys,
)
from device_sim.scenario import ScenarioError, parse_scenario
from device_sim.truth import read_truth, to_json
from firmware_protocol import (
    Channel,
    Envelope,
    KeyRing,
    ProtocolError,
    Signer,
    canonical_bytes,
    new_ulid,
    open_message,
    seal,
    topic,
)
from firmware_protocol.messages import Body, Family, Lock
from firmware_protocol.signing import b64url_decode, public_key_from_raw
from tests.device_sim.support import probe_messages, until
from tests.support.broker import free_tcp_port
from tests.support.mqtt_client import MqttProbe

if TYPE_CHECKING:
    from device_sim.ports import SimulatedDevice, Truth
    from device_sim.scenario import Scenario
    from tests.support.broker import MqttBroker

pytestmark = pytest.mark.timeout(60)

FAST_BACKOFF = (0.05, 0.2)
SPEED = 3600.0
"""One simulated hour per real second."""
OUTCOMES = frozenset({"dose.taken", "dose.missed", "dose.cancelled"})

EQUIVALENCE = """
name: runner-equivalence
seed: 4
start: "2026-11-23T07:30"
duration: 2h
population:
  - count: 2
    family: multidose_roll
    doses: ["08:00", "08:45"]
    window: {{opens_before: 10m, closes_after: 30m}}
    behaviour: {{model: late, median_min: 20, sigma: 0.8}}
    faults: none
    id_prefix: {prefix}R-
  - count: 2
    family: dose_pot
    doses: ["08:10", "08:50"]
    window: {{opens_before: 10m, closes_after: 30m}}
    behaviour: {{model: forgetful, miss_probability: {{morning: 0.5}}}}
    faults: none
    id_prefix: {prefix}P-
"""
"""2 roll and 2 pot devices, two doses each; every window closes at 09:20 at the latest, before the end."""

OUTAGE = """
name: runner-outage
seed: 5
start: "2026-11-23T07:30"
duration: 75m
population:
  - count: 1
    family: dose_pot
    doses: ["08:00"]
    window: {{opens_before: 10m, closes_after: 30m}}
    reminders: {{notice_before: 5m, sound_after: 5m, repeat_every: 5m, repeat_max: 2}}
    behaviour: {{model: adherent}}
    faults: none
    id_prefix: {prefix}P-
timeline:
  - at: day 1 07:50
    device: 1
    action: network_down
    for: 30m
"""
"""One pot device whose network is down from 07:50 to 08:20 across its 08:00 dose; the run ends at 08:45."""

SMALL = """
name: runner-small
seed: 9
start: "2026-11-23T07:30"
duration: 40m
population:
  - count: 1
    family: multidose_roll
    doses: ["08:00"]
    faults: none
    id_prefix: {prefix}R-
  - count: 1
    family: dose_pot
    doses: ["08:00"]
    faults: none
    id_prefix: {prefix}P-
"""


def scenario(template: str) -> Scenario:
    """The scenario with device ids no other test (or earlier run on the same broker) uses."""
    return parse_scenario(template.format(prefix=f"T{uuid.uuid4().hex[:10]}"), file="<test>")


def outcomes(records: list[Truth]) -> dict[tuple[str, str], tuple[str, object]]:
    """Every dose's outcome by (device, slot): the record kind and, for a miss, its reason."""
    found: dict[tuple[str, str], tuple[str, object]] = {}
    for record in records:
        if record.kind in OUTCOMES:
            key = (record.device_id, str(record.data["slot_id"]))
            assert key not in found, f"two outcomes for {key}"
            found[key] = (record.kind, record.data.get("reason"))
    return found


def in_memory(chosen: Scenario) -> list[Truth]:
    """The scenario's ground truth from ``device_sim.loopback``: no broker, no real time."""
    built = build(chosen)
    records: list[Truth] = []
    devices: list[SimulatedDevice] = list(built.devices)
    Loopback(devices, built.standin, records.append, now=chosen.start_ms).run_until(chosen.end_ms)
    return records


def drain(probe: MqttProbe, quiet_s: float = 0.4, within_s: float = 5.0) -> list[tuple[str, bytes]]:
    """Every message the probe has or gets until nothing arrives for ``quiet_s`` (blocking)."""
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            message = probe.messages.get(timeout=quiet_s)
        except queue.Empty:
            break
        got.append((message.topic, bytes(message.payload)))
    return got


def keyring(built: Built) -> KeyRing:
    """The hub and device keys, as ``inspector_keys`` gives them."""
    ring = KeyRing()
    content = json.loads(json.dumps(inspector_keys(built)))  # as the key file has it
    for raw in content["hub"]:
        ring.add(None, public_key_from_raw(b64url_decode(raw, field="hub")))
    for device_id, keys in content["devices"].items():
        for raw in keys:
            ring.add(device_id, public_key_from_raw(b64url_decode(raw, field="device")))
    return ring


def open_files(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux)."""
    target = path.resolve()
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += fd.readlink() == target
        except OSError:  # closed since the listing
            continue
    return count


def _assert_no_tasks_left() -> None:
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert others == []


# -- the same outcomes over a broker as in memory ----------------------------------------------------


@pytest.mark.parametrize(
    "broker_fixture",
    [
        pytest.param("mosquitto_broker", marks=pytest.mark.requires_service("mosquitto"), id="mosquitto"),
        pytest.param("amqtt_broker", id="amqtt"),
    ],
)
def test_a_run_over_the_broker_has_the_ground_truth_of_the_in_memory_run(
    broker_fixture: str, request: pytest.FixtureRequest
) -> None:
    broker: MqttBroker = request.getfixturevalue(broker_fixture)
    chosen = scenario(EQUIVALENCE)
    expected = in_memory(chosen)
    built = build(chosen)
    # A manual clock: simulated time stands still while messages travel, as in the loopback, so the whole
    # ground truth is equal, timestamps included. On a ScaledClock the outcomes are equal too under normal
    # load, but each real millisecond of delivery is 3.6 simulated seconds at speed 3600: what a delivery
    # causes gets load-dependent timestamps, a birth arriving over 83 real ms late makes the stand-in set
    # the device clock (shifting its timers by the downlink latency), and a badly overloaded machine can
    # even deliver a roll verdict after the first dose. (ScaledClock runs are tested below and in the CLI.)
    clock = ManualClock(chosen.start_ms)
    run = SimulationRun(built, broker.url, clock, keep_records=True, backoff=FAST_BACKOFF, seed=chosen.seed)

    def count(kind: str) -> int:
        return sum(record.kind == kind for record in run.records)

    async def main() -> bool:
        async with run:
            await until(lambda: count("schedule.applied") == 4, what="4 configs applied")
            await clock.set(chosen.start_ms + ROLL_LOAD_DELAY_MS)  # the rolls are loaded
            await until(lambda: count("roll.verdict") == 2, what="2 roll verdicts")
            runner = asyncio.create_task(run.run_until(chosen.end_ms))
            await clock.set(chosen.end_ms)
            reached = await runner
            await until(
                lambda: all((w := d.next_wakeup()) is None or w > chosen.end_ms for d in built.devices),
                what="every device done up to the end",
            )
            assert run.fleet_stats.connected == 4
        _assert_no_tasks_left()
        return reached

    assert asyncio.run(main()) is True
    want = outcomes(expected)
    assert len(want) == 8  # 4 devices x 2 doses, all decided before the end
    assert {kind for kind, _ in want.values()} == {"dose.taken", "dose.missed"}  # not trivially equal
    family = {device.device_id: device.family for device in built.devices}
    assert {family[device_id] for device_id, _ in want} == {Family.MULTIDOSE_ROLL, Family.DOSE_POT}
    assert outcomes(run.records) == want
    # Devices run concurrently over the broker, so records of different devices may interleave differently.
    assert sorted(map(to_json, run.records)) == sorted(map(to_json, expected))
    stats = run.stats
    assert (stats.due, stats.taken, stats.missed) == (
        8,
        sum(kind == "dose.taken" for kind, _ in want.values()),
        sum(kind == "dose.missed" for kind, _ in want.values()),
    )
    assert stats.standin_in > 0
    assert stats.standin_out >= 4 + 2  # a config per device, a verdict per roll
    assert run.fleet_stats.errors == 0
    assert run.fleet_stats.failed_devices == {}


# -- offline buffering and replay ------------------------------------------------------------------------


def test_an_offline_device_doses_on_time_and_replays_its_events_in_order(
    mqtt_broker: MqttBroker,
) -> None:
    chosen = scenario(OUTAGE)
    built = build(chosen)
    device = built.devices[0]
    ring = keyring(built)
    outage_start = chosen.start_ms + 20 * 60_000  # 07:50
    outage_end = outage_start + 30 * 60_000  # 08:20
    due = chosen.start_ms + 30 * 60_000  # 08:00
    run = SimulationRun(
        built, mqtt_broker.url, ScaledClock.starting_now(chosen.start_ms, SPEED), keep_records=True
    )

    async def main() -> None:
        async with run:
            assert await run.run_until(chosen.end_ms)

    with MqttProbe(mqtt_broker) as probe:
        probe.subscribe(f"dsp/v1/{device.device_id}/up/#")
        asyncio.run(main())
        received = drain(probe)

    envelopes = [open_message(payload, name, ring).envelope for name, payload in received]
    live = [e for e in envelopes if e.type != "death"]  # the Last Will carries a number without using it
    births = [i for i, e in enumerate(live) if e.type == "birth"]
    assert len(births) == 2, [e.type for e in live]
    birth, state = live[births[1]], live[births[1] + 1]
    assert [r.ts >= outage_end for r in run.records if r.kind == "network.up"] == [True]
    assert state.type == "state"
    assert state.seq == birth.seq + 1
    # Right after the new birth and state come the messages buffered while offline, oldest first, with
    # the numbers they got when they happened (just before the birth's) and their original timestamps.
    replayed = [e for e in live[births[1] + 2 :] if e.seq < birth.seq]
    assert replayed == live[births[1] + 2 : births[1] + 2 + len(replayed)]
    assert [e.seq for e in replayed] == list(range(replayed[0].seq, birth.seq))
    assert all(e.boot_id == birth.boot_id for e in replayed)
    before = live[births[1] - 1]  # the last message sent before the link went down
    assert before.seq == replayed[0].seq - 1
    assert before.ts <= outage_start + 5 * 60_000
    stamps = [e.ts for e in replayed]
    assert stamps == sorted(stamps)
    assert outage_start <= stamps[0]
    assert stamps[-1] < outage_end
    assert stamps[-1] <= birth.ts  # the replay is older than the birth before it
    types = [e.type for e in replayed]
    assert {"dose.reminder", "pot.opened", "dose.presented", "dose.taken"} <= set(types)
    assert types.index("pot.opened") < types.index("dose.presented") < types.index("dose.taken")
    presented = replayed[types.index("dose.presented")]
    assert presented.ts == due == presented.body.due  # type: ignore[attr-defined]  # on time, offline
    taken = replayed[types.index("dose.taken")]
    truth_taken = [r for r in run.records if r.kind == "dose.taken"]
    assert len(truth_taken) == 1
    assert taken.ts == truth_taken[0].data["taken_at"] == taken.body.taken_at  # type: ignore[attr-defined]
    kinds = [r.kind for r in run.records]
    assert kinds.index("network.down") < kinds.index("dose.presented") < kinds.index("network.up")
    assert run.fleet_stats.reconnects == 1


def test_a_timeline_outage_takes_the_device_offline_at_once(mqtt_broker: MqttBroker) -> None:
    chosen = scenario(OUTAGE)
    run = SimulationRun(build(chosen), mqtt_broker.url, ManualClock(chosen.start_ms), keep_records=True)
    outage_start = chosen.start_ms + 20 * 60_000

    async def main() -> None:
        async with run:
            await until(lambda: any(r.kind == "schedule.applied" for r in run.records), what="config applied")
            await asyncio.sleep(0.1)  # nothing else is on its way to the device that could wake it
            assert isinstance(run.clock, ManualClock)
            await run.clock.set(outage_start)
            await until(lambda: any(r.kind == "network.down" for r in run.records), what="network.down")
            await asyncio.sleep(0.3)  # real time for the drop
            assert run.fleet_stats.connected == 0

    asyncio.run(main())


# -- refusing commands that are not the hub's ------------------------------------------------------------


def test_unsigned_and_foreign_commands_are_refused_with_a_nack_and_never_acted_on(
    mqtt_broker: MqttBroker,
) -> None:
    chosen = scenario(SMALL)
    built = build(chosen)
    device = next(d for d in built.devices if d.family is Family.DOSE_POT)
    assert built.standin is not None
    hub = built.standin.signer
    ring = keyring(built)
    clock = ManualClock(chosen.start_ms)
    command_topic = topic(device.device_id, Channel.CMD)
    run = SimulationRun(built, mqtt_broker.url, clock, keep_records=True, backoff=FAST_BACKOFF)

    def command(signer: Signer | None, *, kid: str | None = None) -> tuple[str, bytes]:
        envelope: Envelope[Body] = Envelope(
            Lock(expires=clock.now_ms() + 600_000, reason="test"),
            device=device.device_id,
            boot_id=new_ulid(),
            seq=0,
            ts=clock.now_ms(),
        )
        assert envelope.topic == command_topic
        if signer is None:
            return envelope.msg_id, canonical_bytes(envelope.unsigned_object())
        payload = seal(envelope, signer)
        if kid is not None:  # claim the hub's key id for a signature made with another key
            payload = payload.replace(signer.kid.encode(), kid.encode())
        return envelope.msg_id, payload

    async def answer(probe: MqttProbe, payload: bytes) -> Envelope[Body]:
        await asyncio.to_thread(probe.publish, command_topic, payload)
        [(name, reply)] = await probe_messages(probe, 1)
        return open_message(reply, name, ring).envelope  # signed by the device

    async def main(probe: MqttProbe) -> None:
        async with run:
            await until(
                lambda: any(
                    r.kind == "schedule.applied" and r.device_id == device.device_id for r in run.records
                ),
                what="config applied",
            )
            await probe_messages(probe, 1)  # schedule.applied on up/ack
            refusals = [
                (None, None, "E_SCHEMA"),  # no signature at all
                (Signer.generate(), None, "E_UNKNOWN_KEY"),  # signed, but not with the hub's key
                (Signer.generate(), hub.kid, "E_SIGNATURE"),  # the hub's key id, another key's signature
            ]
            for signer, kid, reason in refusals:
                msg_id, payload = command(signer, kid=kid)
                nack = await answer(probe, payload)
                assert nack.type == "cmd.nack"
                assert nack.body.reason == reason  # type: ignore[attr-defined]
                assert nack.body.detail  # type: ignore[attr-defined]
                if signer is not None:
                    assert nack.corr_id == msg_id
                    assert nack.body.command == "cmd.lock"  # type: ignore[attr-defined]
                # PROTOCOL.md 7.3 asks for corr_id and command whenever they can be read, which they can in
                # an unsigned command; the simulated device reads them only from a fully valid envelope
                # (device_sim/device/commands.py, reported), so an unsigned command's nack has neither yet.
                assert device.locked is False
            refused = [r.data["code"] for r in run.records if r.kind == "downlink.refused"]
            assert refused == ["E_SCHEMA", "E_UNKNOWN_KEY", "E_SIGNATURE"]
            # The same command signed by the hub is carried out: the refusals above were not an accident.
            msg_id, payload = command(hub)
            ack = await answer(probe, payload)
            assert (ack.type, ack.corr_id, ack.body.command) == ("cmd.ack", msg_id, "cmd.lock")  # type: ignore[attr-defined]
            await until(lambda: device.locked, what="locked by the hub's command")

    with MqttProbe(mqtt_broker) as probe:
        probe.subscribe(topic(device.device_id, Channel.ACK))
        asyncio.run(main(probe))


# -- the ground truth and the key file ------------------------------------------------------------------


def test_truth_file_is_json_lines_of_every_record_and_closed_on_stop(
    mqtt_broker: MqttBroker, tmp_path: Path
) -> None:
    chosen = scenario(SMALL)
    built = build(chosen)
    truth = tmp_path / "new" / "folders" / "truth.jsonl"
    keys = tmp_path / "keys" / "inspector.json"
    write_inspector_keys(keys, built)
    run = SimulationRun(
        built,
        mqtt_broker.url,
        ScaledClock.starting_now(chosen.start_ms, SPEED),
        truth_path=truth,
        keep_records=True,
        backoff=FAST_BACKOFF,
    )

    async def main() -> None:
        async with run:
            assert open_files(truth) == 1
            assert await run.run_until(chosen.end_ms)
        assert open_files(truth) == 0

    with MqttProbe(mqtt_broker) as probe:
        for device in built.devices:
            probe.subscribe(f"dsp/v1/{device.device_id}/#")
        asyncio.run(main())
        received = drain(probe)

    lines = truth.read_text(encoding="utf-8").splitlines()
    assert lines == [to_json(record) for record in run.records]
    assert len(lines) >= 10
    for line in lines:
        record = json.loads(line)
        assert set(record) == {"ts", "time", "device_id", "kind", "data"}
    kinds = {json.loads(line)["kind"] for line in lines}
    assert {"device.online", "schedule.applied", "roll.loaded", "roll.verdict", "dose.due"} <= kinds
    assert [r.kind for r in read_truth(truth)] == [r.kind for r in run.records]

    # The key file verifies what went over the broker: uplink with the device keys, downlink with the hub's.
    content = json.loads(keys.read_text(encoding="utf-8"))
    assert set(content) == {"hub", "devices"}
    assert len(content["hub"]) == 1
    assert sorted(content["devices"]) == sorted(d.device_id for d in built.devices)
    ring = KeyRing()
    ring.add(None, public_key_from_raw(b64url_decode(content["hub"][0], field="hub")))
    for device_id, (raw,) in content["devices"].items():
        ring.add(device_id, public_key_from_raw(b64url_decode(raw, field="device")))
    directions = set()
    for name, payload in received:
        received_message = open_message(payload, name, ring)
        directions.add((received_message.envelope.device, received_message.direction.value))
    assert directions == {(d.device_id, way) for d in built.devices for way in ("uplink", "downlink")}
    without_hub = KeyRing()
    for device_id, (raw,) in content["devices"].items():
        without_hub.add(device_id, public_key_from_raw(b64url_decode(raw, field="device")))
    config = next(payload for name, payload in received if name.endswith("/down/config"))
    with pytest.raises(ProtocolError):
        open_message(config, None, without_hub)


def test_truth_file_is_truncated_when_a_run_starts(mqtt_broker: MqttBroker, tmp_path: Path) -> None:
    chosen = scenario(SMALL)
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"stale": "from an earlier run"}\nnot even JSON\n', encoding="utf-8")
    run = SimulationRun(
        build(chosen), mqtt_broker.url, ManualClock(chosen.start_ms), truth_path=truth, keep_records=True
    )

    async def main() -> None:
        async with run:
            await until(lambda: len(run.records) >= 4, what="online and config records")

    asyncio.run(main())
    text = truth.read_text(encoding="utf-8")
    assert "stale" not in text
    assert "not even JSON" not in text
    assert text.splitlines() == [to_json(record) for record in run.records]


# -- start, end and failures -------------------------------------------------------------------------


class WakesEarlyClock:
    """A scaled clock whose first sleep returns too early, as ``ScaledClock`` may by a few simulated ms."""

    def __init__(self, start_ms: int) -> None:
        self.inner = ScaledClock.starting_now(start_ms, 1000.0)
        self.early = 1

    def now_ms(self) -> int:
        """The simulated time."""
        return self.inner.now_ms()

    async def sleep_until(self, ms: int) -> None:
        """The first time: return halfway there. Then: as ``ScaledClock``."""
        if self.early and ms > self.now_ms():
            self.early -= 1
            await self.inner.sleep_until(self.now_ms() + (ms - self.now_ms()) // 2)
            return
        await self.inner.sleep_until(ms)


def test_run_until_returns_only_when_the_end_is_really_reached() -> None:
    clock = WakesEarlyClock(0)
    run = SimulationRun(Built([], None), "mqtt://127.0.0.1:1883", clock)

    async def main() -> bool:
        async with run:
            return await run.run_until(200_000)  # 0.2 s

    assert asyncio.run(main()) is True
    assert clock.early == 0  # the early wake-up happened
    assert clock.now_ms() >= 200_000


def test_run_until_returns_false_when_stopped_first() -> None:
    run = SimulationRun(Built([], None), "mqtt://127.0.0.1:1883", ManualClock(0))

    async def main() -> bool:
        async with run:
            asyncio.get_running_loop().call_later(0.05, run.request_stop)
            return await run.run_until(10_000)

    assert asyncio.run(main()) is False


def test_no_broker_fails_with_the_url_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("device_sim.runner.STANDIN_READY_TIMEOUT_S", 0.5)
    url = f"mqtt://127.0.0.1:{free_tcp_port()}"  # nothing listens there
    truth = tmp_path / "truth.jsonl"
    chosen = scenario(SMALL)
    run = SimulationRun(
        build(chosen), url, ManualClock(chosen.start_ms), truth_path=truth, backoff=FAST_BACKOFF
    )

    async def main() -> None:
        with pytest.raises(BrokerUnavailableError) as caught:
            await run.run_until(chosen.end_ms)  # starts the run; a failed start stops it again
        await asyncio.sleep(0)  # MqttLink.close() cancels its connect task without awaiting it
        assert f"no connection to the broker at {url} within 0.5 s" in str(caught.value)
        assert "ConnectionRefusedError" in str(caught.value)
        _assert_no_tasks_left()
        assert open_files(truth) == 0

    asyncio.run(main())


def test_a_stop_request_ends_the_wait_for_a_silent_broker() -> None:
    url = f"mqtt://127.0.0.1:{free_tcp_port()}"  # nothing listens there; the stand-in would wait 10 s
    chosen = scenario(SMALL)
    run = SimulationRun(build(chosen), url, ManualClock(chosen.start_ms), backoff=FAST_BACKOFF)

    async def main() -> None:
        asyncio.get_running_loop().call_later(0.2, run.request_stop)  # Ctrl-C
        began = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=f"stopped while waiting for the broker at {url}$"):
            async with run:
                pass
        assert time.monotonic() - began < 3
        await asyncio.sleep(0)  # MqttLink.close() cancels its connect task without awaiting it
        _assert_no_tasks_left()

    asyncio.run(main())


def test_an_unresolvable_broker_without_standin_is_unavailable_not_a_crash() -> None:
    chosen = scenario(SMALL)
    url = "mqtt://no-such-broker.invalid:1883"
    run = SimulationRun(build(chosen, standalone=False), url, ManualClock(chosen.start_ms))

    async def main() -> None:
        with pytest.raises(BrokerUnavailableError, match=f"no connection to the broker at {url}"):
            async with run:
                pass
        _assert_no_tasks_left()

    asyncio.run(main())


# -- populations without a scenario file -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "mix", "expected"),
    [
        (10, {"roll": 60, "pot": 40}, {"roll": 6, "pot": 4}),
        (1, {"roll": 60, "pot": 40}, {"roll": 1}),
        (3, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 1}),
        (2, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1}),  # ties go in mix order
        (
            5,
            {"adherent": 70, "late": 10, "forgetful": 10, "confused": 5, "early": 5},
            {"adherent": 4, "late": 1},
        ),
        (7, {"x": 0, "y": 3}, {"y": 7}),
        (0, {"x": 1}, {}),
    ],
)
def test_split_shares_by_largest_remainder(total: int, mix: dict[str, int], expected: dict[str, int]) -> None:
    shares = split(total, mix)
    assert shares == expected
    assert sum(shares.values()) == total


def test_split_needs_a_positive_share() -> None:
    with pytest.raises(ValueError, match="at least one positive share"):
        split(3, {"roll": 0, "pot": 0})


def _group_summary(chosen: Scenario) -> list[tuple[str, str, int]]:
    return [(g.family.value, g.behaviour.model, g.count) for g in chosen.groups]


def test_population_mixes_families_and_behaviours_by_percent() -> None:
    start = 1_795_392_000_000
    chosen = population(10, start_ms=start, duration_ms=3_600_000, seed=3)
    assert chosen.size == 10
    assert (chosen.start_ms, chosen.end_ms, chosen.seed) == (start, start + 3_600_000, 3)
    assert _group_summary(chosen) == [
        ("multidose_roll", "adherent", 4),  # 6 roll devices: 4.2, 0.6, 0.6, 0.3, 0.3
        ("multidose_roll", "late", 1),
        ("multidose_roll", "forgetful", 1),
        ("dose_pot", "adherent", 3),  # 4 pot devices: 2.8, 0.4, 0.4, 0.2, 0.2
        ("dose_pot", "late", 1),
    ]
    specs = chosen.devices()
    assert [s.device_id for s in specs[:2]] == ["RM3-000001", "RM3-000002"]
    assert specs[-1].device_id == "DP5-000010"
    assert [t.strftime("%H:%M") for t in specs[0].dose_times] == ["08:00", "14:00", "20:00"]
    assert [t.strftime("%H:%M") for t in specs[-1].dose_times] == ["09:00", "21:00"]


def test_population_with_a_chosen_mix_prefixes_and_no_end() -> None:
    chosen = population(
        4,
        start_ms=1_795_392_000_000,
        families={"pot": 1},
        behaviours={"confused": 50, "early": 50},
        id_prefixes={"pot": "BRG-DP-"},
        faults="none",
    )
    assert _group_summary(chosen) == [("dose_pot", "confused", 2), ("dose_pot", "early", 2)]
    assert [s.device_id for s in chosen.devices()] == [f"BRG-DP-00000{i}" for i in range(1, 5)]
    assert chosen.end_ms - chosen.start_ms == FOREVER_DURATION_MS
    assert all(s.family is Family.DOSE_POT for s in chosen.devices())


@pytest.mark.parametrize(
    ("options", "unknown"),
    [
        ({"families": {"roll": 50, "tablet": 50}}, "tablet"),
        ({"behaviours": {"adherent": 50, "sleepy": 50}}, "sleepy"),
        ({"id_prefixes": {"multidose_roll": "X-"}}, "multidose_roll"),  # the family is called "roll" here
    ],
)
def test_population_refuses_unknown_names(options: dict[str, dict[str, object]], unknown: str) -> None:
    with pytest.raises(ValueError, match=f"unknown families or behaviours: {unknown}$") as caught:
        population(3, start_ms=1_795_392_000_000, **options)  # type: ignore[arg-type]
    assert not isinstance(caught.value, ScenarioError)  # refused before any YAML is written


def test_population_bad_values_are_scenario_errors() -> None:
    with pytest.raises(ScenarioError, match="id_prefix"):
        population(2, start_ms=1_795_392_000_000, id_prefixes={"roll": "bad prefix!"})


def test_behaviour_names_are_the_patient_models() -> None:
    for behaviour in BEHAVIOURS:
        chosen = population(1, start_ms=1_795_392_000_000, behaviours={behaviour: 1})
        assert _group_summary(chosen)[0][1] == behaviour
