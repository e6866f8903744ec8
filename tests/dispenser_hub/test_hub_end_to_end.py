"""The hub and simulated dispensers over a real broker: enrollment, birth, events stored once, refusals.

The hub is wired as ``dispenser-hub serve`` wires it (``bootstrap.build_hub``: SQLite, PKI, MQTT client with
a persistent session and manual acknowledgement, timers) and follows the fleet's accelerated clock; the
devices are ``device_sim`` dispensers that enroll with the codes the hub's registry issued.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from device_sim.build import build
from device_sim.clock import ScaledClock
from device_sim.device.identity import DeviceIdentity
from device_sim.runner import SimulationRun, population
from device_sim.scenario import parse_scenario
from dispenser_hub.adapters.clock import SimulatedClock
from dispenser_hub.bootstrap import Hub, build_hub
from dispenser_hub.domain.model import DeviceStatus
from dispenser_hub.settings import Settings
from firmware_protocol import Envelope, new_ulid, seal
from firmware_protocol.messages import Heartbeat
from firmware_protocol.receiver import SEQUENCE_EXEMPT
from tests.support.mqtt_client import MqttProbe
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from device_sim.build import Built
    from device_sim.ports import Truth
    from device_sim.scenario import Scenario
    from tests.conftest import BrokerFactory

TIMEOUT_S = 20.0
SPEED = 300  # a device heartbeat (300 simulated s) every real second


def _devices(hub: Hub) -> dict[str, tuple[DeviceStatus, bool]]:
    with hub.uow_factory() as uow:
        return {d.device_id: (d.status, d.presence.online) for d in uow.devices.select()}


def _reasons(hub: Hub) -> list[str]:
    with hub.uow_factory() as uow:
        return sorted(letter.reason for letter in uow.dead_letters.select(limit=1000))


def _hub_for(tmp_path: Path, broker_url: str, scenario: Scenario, clock: ScaledClock) -> tuple[Hub, Built]:
    """A hub (not started) following ``clock``, and ``scenario``'s devices registered there with codes."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        pki_dir=tmp_path / "pki",
        mqtt_url=broker_url,
        mqtt_client_id=f"hub-{scenario.name}",
    )
    hub = build_hub(settings, clock=SimulatedClock(clock))
    codes = {}
    for spec in scenario.devices():
        _, code = hub.registry.register_device(
            spec.device_id, serial=spec.device_id, family=spec.family, model="sim", by="test"
        )
        codes[spec.device_id] = code.code
    return hub, build(scenario, standalone=False, enrollment_codes=codes)


def test_simulated_devices_enroll_are_born_and_their_messages_are_stored_once(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    broker = fresh_mqtt_broker()
    start_ms = int(datetime.now(UTC).timestamp() * 1000)
    clock = ScaledClock.starting_now(start_ms, speed=SPEED)
    scenario = population(
        4, start_ms=start_ms, duration_ms=6 * 3_600_000, families={"roll": 50, "pot": 50}, faults="none"
    )
    hub, built = _hub_for(tmp_path, broker.url, scenario, clock)
    codes = {device.device_id for device in built.devices}
    retired = built.devices[0].device_id
    hub.start()
    try:
        with MqttProbe(broker) as probe:
            probe.subscribe("dsp/v1/+/up/telemetry")

            async def run() -> None:
                async with SimulationRun(built, broker.url, clock):
                    everyone_up = await asyncio.to_thread(
                        wait_until,
                        lambda: all(v == (DeviceStatus.ACTIVE, True) for v in _devices(hub).values()),
                        TIMEOUT_S,
                    )
                    assert everyone_up, _devices(hub)
                    heartbeat = await asyncio.to_thread(probe.expect)

                    # The same message again (a broker redelivery, a replay): acknowledged, not stored.
                    await asyncio.to_thread(probe.publish, heartbeat.topic, bytes(heartbeat.payload))
                    assert await asyncio.to_thread(wait_until, lambda: hub.ingest.counters.duplicates >= 1, 5)

                    # A forger with another key in a registered device's name.
                    forger = DeviceIdentity.create(retired, built.devices[0].identity.family)
                    body = Heartbeat.model_validate(Heartbeat.EXAMPLE)
                    fake = Envelope(body, device=retired, boot_id=new_ulid(), seq=0, ts=clock.now_ms())
                    await asyncio.to_thread(probe.publish, fake.topic, seal(fake, forger.signer))
                    assert await asyncio.to_thread(wait_until, lambda: "E_UNKNOWN_KEY" in _reasons(hub), 5)

                    # A retired device's messages are refused from then on.
                    hub.registry.retire_device(retired, by="test", reason="end of test")
                    assert await asyncio.to_thread(
                        wait_until, lambda: "E_DEVICE_RETIRED" in _reasons(hub), TIMEOUT_S
                    )

            asyncio.run(run())
        with hub.uow_factory() as uow:
            events = uow.events.select(limit=10_000)
        assert {event.device_id for event in events} == codes
        assert {"prov.request", "birth", "heartbeat"} <= {event.type for event in events}
        assert len({(event.device_id, event.msg_id) for event in events}) == len(events)
        reasons = _reasons(hub)
        assert "E_UNKNOWN_KEY" in reasons
        assert set(reasons) <= {"E_UNKNOWN_KEY", "E_DEVICE_RETIRED"}
    finally:
        hub.stop()


HOSTILE_SCENARIO = """
name: hub-e2e-trouble
seed: 7
start: {start}
duration: 6h
population:
  - count: 2
    family: multidose_roll
    doses: ["08:00", "20:00"]
    behaviour: {{model: adherent}}
    faults: none
timeline:
  - at: {outage}
    device: 1
    action: network_down
    for: 30m
  - at: {fault}
    device: 1
    action: fault
    kind: tilt
    for: 5m
{hostile}
"""


def test_offline_replay_is_stored_in_order_and_hostile_traffic_is_refused_or_ignored(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    broker = fresh_mqtt_broker()
    start_ms = int(datetime.now(UTC).timestamp() * 1000)

    def at(minutes: float) -> str:
        return datetime.fromtimestamp(start_ms / 1000 + minutes * 60, UTC).isoformat()

    kinds = ["replay", "duplicate", "forged_signature", "other_device_id", "garbage", "oversized"]
    hostile = "\n".join(
        f"  - at: {at(8 + i)}\n    device: 2\n    action: hostile\n    kind: {kind}\n    count: 1"
        for i, kind in enumerate(kinds)
    )
    text = HOSTILE_SCENARIO.format(start=at(0), outage=at(4), fault=at(10), hostile=hostile)
    scenario = parse_scenario(text, file="hub-e2e-trouble.yaml")
    clock = ScaledClock.starting_now(start_ms, speed=SPEED)
    hub, built = _hub_for(tmp_path, broker.url, scenario, clock)
    offline, attacker = (device.device_id for device in built.devices)
    hub.start()
    try:

        async def run() -> list[Truth]:
            async with SimulationRun(built, broker.url, clock, keep_records=True) as sim:
                await sim.run_until(start_ms + 50 * 60_000)  # past the outage and every hostile message
                await asyncio.to_thread(wait_until, lambda: hub.mqtt.backlog == 0, 5)
                await asyncio.sleep(1)
                return list(sim.records)

        records = asyncio.run(run())
    finally:
        hub.stop()
    with hub.uow_factory() as uow:
        events = uow.events.select(device_id=offline, limit=10_000)
        letters = uow.dead_letters.select(limit=100)
    kinds_seen = [r.kind for r in records if r.device_id == offline]
    assert "network.down" in kinds_seen
    assert "network.up" in kinds_seen
    tilt = [e for e in events if e.type == "fault.tilted"]
    assert len(tilt) == 1, [e.type for e in events]
    down = next(r.ts for r in records if r.device_id == offline and r.kind == "network.down")
    up = next(r.ts for r in records if r.device_id == offline and r.kind == "network.up")
    assert down <= tilt[0].device_ts.timestamp() * 1000 <= up  # happened offline, kept its own time
    assert tilt[0].received_at.timestamp() * 1000 >= up  # arrived after the reconnect
    by_boot: dict[str, list[int]] = {}
    for event in sorted(events, key=lambda e: e.id or 0):
        # The will and enrollment carry a number without using it; birth and state go out first on every
        # connection, ahead of the replay of what was buffered (PROTOCOL.md, offline replay).
        if event.type not in {*SEQUENCE_EXEMPT, "birth", "state"}:
            by_boot.setdefault(event.boot_id, []).append(event.seq)
    for seqs in by_boot.values():
        assert seqs == sorted(set(seqs)), by_boot  # each number once, stored in order (replays included)

    reasons = sorted(letter.reason for letter in letters)
    assert reasons == ["E_MALFORMED", "E_SIGNATURE", "E_TOO_LARGE", "E_TOPIC"], reasons
    assert all(letter.device_id == attacker for letter in letters)
    assert hub.ingest.counters.duplicates >= 2  # the replay and the duplicate
