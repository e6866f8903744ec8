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
from dispenser_hub.adapters.clock import SimulatedClock
from dispenser_hub.adapters.mqtt.hub_client import wait_until
from dispenser_hub.bootstrap import Hub, build_hub
from dispenser_hub.domain.model import DeviceStatus
from dispenser_hub.settings import Settings
from firmware_protocol import Envelope, new_ulid, seal
from firmware_protocol.messages import Heartbeat
from tests.support.mqtt_client import MqttProbe

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import BrokerFactory

TIMEOUT_S = 20.0
SPEED = 300  # a device heartbeat (300 simulated s) every real second


def _devices(hub: Hub) -> dict[str, tuple[DeviceStatus, bool]]:
    with hub.uow_factory() as uow:
        return {d.device_id: (d.status, d.presence.online) for d in uow.devices.select()}


def _reasons(hub: Hub) -> list[str]:
    with hub.uow_factory() as uow:
        return sorted(letter.reason for letter in uow.dead_letters.select(limit=1000))


def test_simulated_devices_enroll_are_born_and_their_messages_are_stored_once(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    broker = fresh_mqtt_broker()
    start_ms = int(datetime.now(UTC).timestamp() * 1000)
    clock = ScaledClock.starting_now(start_ms, speed=SPEED)
    scenario = population(
        4, start_ms=start_ms, duration_ms=6 * 3_600_000, families={"roll": 50, "pot": 50}, faults="none"
    )
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        pki_dir=tmp_path / "pki",
        mqtt_url=broker.url,
        mqtt_client_id="hub-e2e",
    )
    hub = build_hub(settings, clock=SimulatedClock(clock))
    codes = {}
    for spec in scenario.devices():
        _, code = hub.registry.register_device(
            spec.device_id, serial=spec.device_id, family=spec.family, model="sim", by="test"
        )
        codes[spec.device_id] = code.code
    built = build(scenario, standalone=False, enrollment_codes=codes)
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
        assert {event.device_id for event in events} == set(codes)
        assert {"prov.request", "birth", "heartbeat"} <= {event.type for event in events}
        assert len({(event.device_id, event.msg_id) for event in events}) == len(events)
        reasons = _reasons(hub)
        assert "E_UNKNOWN_KEY" in reasons
        assert set(reasons) <= {"E_UNKNOWN_KEY", "E_DEVICE_RETIRED"}
    finally:
        hub.stop()
