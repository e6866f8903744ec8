"""The demo's office work predicts exactly what the simulator's helpers load, and its ids are valid."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_sim.build import ROLL_LOAD_DELAY_MS, supply_loader
from device_sim.device.supply import Tray
from device_sim.scenario import load_shipped
from dispenser_hub.demo_pharmacy import dosett_plan, predicted_rolls, predicted_tray, synthetic_national_id
from dispenser_hub.domain.national_id import IdKind, NationalId
from dispenser_hub.domain.pouches import to_ms
from firmware_protocol.messages import Family

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_synthetic_national_ids_are_valid_synthetic_and_distinct() -> None:
    numbers = [synthetic_national_id(n) for n in range(1, 400)]
    assert len(set(numbers)) == len(numbers)
    assert {NationalId.parse(n).kind for n in numbers} == {IdKind.SYNTHETIC}


@pytest.mark.parametrize("name", ["demo", "wrong_roll_and_travel"])
def test_the_carousels_tray_fill_is_the_simulators_tray(name: str) -> None:
    for spec in load_shipped(name).devices():
        if spec.family is not Family.DOSE_POT:
            continue
        tray = supply_loader(spec)(spec.start_ms + ROLL_LOAD_DELAY_MS, False)  # noqa: FBT003 - its signature
        assert isinstance(tray, Tray)
        fill = predicted_tray(spec, dosett_plan(spec), 1, NOW)
        assert fill.tray_id == tray.tray_id
        assert {p.pot: to_ms(p.due) for p in fill.pots} == tray.pots


def test_every_roll_loaded_in_the_travel_scenario_is_predicted_with_wrong_ones_marked() -> None:
    spec = load_shipped("wrong_roll_and_travel").devices()[0]
    rolls = predicted_rolls(spec)
    assert [(roll.printed_patient_ref == spec.patient_ref, wrong) for roll, wrong in rolls] == [
        (True, False),
        (False, True),
    ]  # the right roll after the wrong one is the first roll again: no manifest of its own
    assert all(roll.pouches for roll, _ in rolls)
