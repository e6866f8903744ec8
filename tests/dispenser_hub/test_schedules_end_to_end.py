"""Rolls, trays, schedules and a trip end to end: the hub and the ``wrong_roll_and_travel`` scenario.

The hub is wired as ``dispenser-hub serve`` wires it and follows the fleet's accelerated clock; the demo's
office work (``demo_pharmacy``: patients, bindings, manifests, the carousel's tray fill) is done as an
operator would, and the trip of patient 2 is registered as a pause when the relative calls. The run covers
the first day and a half: the wrong roll and the right one on day 1, the trip's start on day 2. Afterwards
the hub's records are compared with the simulator's ground truth.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from device_sim.build import build
from device_sim.clock import ScaledClock
from device_sim.runner import SimulationRun
from device_sim.scenario import ActionKind, load_shipped
from dispenser_hub.adapters.clock import SimulatedClock
from dispenser_hub.bootstrap import build_hub
from dispenser_hub.demo_pharmacy import set_up_office
from dispenser_hub.domain.doses import DoseState
from dispenser_hub.domain.pouches import from_ms, to_ms
from dispenser_hub.services.schedule_admin import PatientSchedules
from dispenser_hub.settings import Settings
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from device_sim.ports import Truth
    from device_sim.scenario import Scenario
    from dispenser_hub.demo_pharmacy import DemoOffice
    from dispenser_hub.domain.model import Alarm, DeviceSchedule
    from dispenser_hub.domain.rolls import RollLoad
    from dispenser_hub.ports import UnitOfWork
    from tests.conftest import BrokerFactory

SPEED = 3_600  # a simulated hour per real second
HOUR_MS = 3_600_000
RUN_MS = 36 * HOUR_MS  # to day 2, 12:00 Oslo


@dataclass
class Outcome:
    """What the hub recorded, and what really happened (ground truth), after the run."""

    truth: list[Truth]
    alarms: list[Alarm]
    states: dict[str, DeviceSchedule | None]
    loads: list[RollLoad]
    dispensed: dict[str, int]
    opened: frozenset[int]
    office: DemoOffice
    pause: tuple[datetime, datetime]
    doses: dict[tuple[str, str], DoseState]


def test_wrong_roll_and_travel_match_the_ground_truth(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    scenario = load_shipped("wrong_roll_and_travel")
    specs = scenario.devices()
    outcome = _run(tmp_path, fresh_mqtt_broker().url, scenario)
    truth, alarms, states = outcome.truth, outcome.alarms, outcome.states
    traveller, wrong_roller = specs[1], specs[0].device_id
    pause_start, pause_end = outcome.pause
    loaded = [(r.data["roll_id"], r.data["wrong_patient"]) for r in truth if r.kind == "roll.loaded"]
    verdicts = [r for r in truth if r.kind == "roll.verdict" and r.device_id == wrong_roller]

    # Day 1: the wrong roll is refused (ground truth: printed for another patient), the right one accepted.
    assert [v.data["accept"] for v in verdicts] == [True, False, True]
    assert [wrong for roll, wrong in loaded if str(roll).startswith("R-000001")] == [False, True, False]
    wrong_alarms = [a for a in alarms if a.kind == "wrong_roll"]
    assert [(a.subject_id, a.vkp_code, a.severity) for a in wrong_alarms] == [(wrong_roller, "3.5", 3)]
    assert [(load.roll_id, load.active) for load in outcome.loads] == [(outcome.office.rolls[0], True)]

    # Every dispenser holds the latest schedule the hub built for it.
    for device_id, state in states.items():
        assert state is not None, device_id
        assert state.applied_version == state.version, (device_id, state)

    # Each dose a dispenser presented (ground truth) is a pouch or pot the hub checked and recorded once.
    presented = dict.fromkeys((spec.device_id for spec in specs), 0)
    for record in truth:
        if record.kind == "dose.presented":
            presented[record.device_id] += 1
    for device_id, pouches in outcome.dispensed.items():
        assert pouches == presented[device_id], device_id
    assert len(outcome.opened) == presented[specs[3].device_id]

    # The trip: no dose of the traveller is due, let alone missed, while away; the schedule skipped them.
    inside = [
        r
        for r in truth
        if r.device_id == traveller.device_id
        and r.kind in {"dose.due", "dose.missed"}
        and to_ms(pause_start) <= int(str(r.data.get("due_ms", r.ts))) < to_ms(pause_end)
    ]
    assert inside == []
    state = states[traveller.device_id]
    assert state is not None
    slots = state.config["slots"]
    assert isinstance(slots, list)
    assert not [s for s in slots if to_ms(pause_start) <= s["due"] < to_ms(pause_end)]
    assert [a for a in alarms if a.kind not in {"wrong_roll", "death", "no_contact"}] == []

    # Every dose the ground truth says was taken is a taken dose in the hub; none it calls missed was taken.
    taken = {(r.device_id, str(r.data["slot_id"])) for r in truth if r.kind == "dose.taken"}
    assert taken
    assert {key: outcome.doses.get(key) for key in taken} == dict.fromkeys(taken, DoseState.TAKEN)
    missed = {key for key, state in outcome.doses.items() if state is DoseState.MISSED}
    assert missed <= {(r.device_id, str(r.data["slot_id"])) for r in truth if r.kind == "dose.missed"}


def _run(tmp_path: Path, broker_url: str, scenario: Scenario) -> Outcome:
    """The hub and ``scenario`` over the broker for ``RUN_MS``, with the office work and the trip."""
    clock = ScaledClock.starting_now(scenario.start_ms, speed=SPEED)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        pki_dir=tmp_path / "pki",
        mqtt_url=broker_url,
        mqtt_client_id="hub-wrong-roll-and-travel",
    )
    hub = build_hub(settings, clock=SimulatedClock(clock))
    specs = scenario.devices()
    codes: dict[str, str] = {}
    for spec in specs:
        _, code = hub.registry.register_device(
            spec.device_id, serial=spec.device_id, family=spec.family, model="sim", by="test"
        )
        codes[spec.device_id] = code.code
    office = set_up_office(scenario, hub.registry, hub.uow_factory, now=hub.clock.now())
    traveller = specs[1]
    away = next(a for a in traveller.timeline if a.kind is ActionKind.AWAY)
    pause_start, pause_end = from_ms(away.at_ms), from_ms(int(str(away.params["until_ms"])))
    trip = PatientSchedules(hub.uow_factory, hub.clock)
    trip.add_pause(office.patients[traveller.device_id], pause_start, pause_end, "travel", by="test")
    built = build(scenario, standalone=False, enrollment_codes=codes)
    records: list[Truth] = []

    async def run() -> None:
        async with SimulationRun(built, broker_url, clock, keep_records=True) as simulation:
            await simulation.run_until(scenario.start_ms + RUN_MS)
            records.extend(simulation.records)

    hub.start()
    try:
        asyncio.run(run())
        assert wait_until(lambda: hub.mqtt.backlog == 0, 10)
    finally:
        hub.stop()

    with hub.uow_factory() as uow:
        fill = uow.dosett.latest_fill_of_tray(f"T-{specs[3].index:06d}-001")
        return Outcome(
            truth=[r for r in records if r.ts <= scenario.start_ms + RUN_MS],
            alarms=uow.alarms.select(limit=500),
            states={spec.device_id: uow.schedules.device_schedule(spec.device_id) for spec in specs},
            loads=uow.rolls.loads(device_id=specs[0].device_id),
            dispensed={spec.device_id: _dispensed(uow, spec.device_id) for spec in specs[:3]},
            opened=uow.dosett.opened(fill.id) if fill is not None and fill.id is not None else frozenset(),
            office=office,
            pause=(pause_start, pause_end),
            doses={
                (dose.device_id, dose.slot_id): dose.state
                for spec in specs
                for dose in uow.doses.for_device(spec.device_id)
            },
        )


def _dispensed(uow: UnitOfWork, device_id: str) -> int:
    return sum(len(uow.rolls.dispensed(load.roll_id)) for load in uow.rolls.loads(device_id=device_id))
