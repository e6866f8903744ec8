"""Operator actions: refusals name the field to fix; every action is audited without patient data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.model import Patient, Responsibility
from dispenser_hub.services.registry import Conflict, NotFound, RegistryError
from firmware_protocol.messages import Family
from tests.dispenser_hub.services.support import HubUnderTest

if TYPE_CHECKING:
    from pathlib import Path

FNR = "15076500565"


@pytest.fixture
def hub(tmp_path: Path) -> HubUnderTest:
    return HubUnderTest(tmp_path)


def _patient(hub: HubUnderTest) -> int:
    patient = hub.registry.add_patient(Patient("Kari", FNR, Responsibility.RESPONSE_CENTRE), by="op")
    assert patient.id is not None
    return patient.id


def test_retiring_a_bound_device_ends_and_audits_its_binding(hub: HubUnderTest) -> None:
    patient_id = _patient(hub)
    hub.registry.register_device("RM3-000001", serial="S1", family=Family.MULTIDOSE_ROLL, model="m", by="op")
    hub.registry.bind("RM3-000001", patient_id, by="op", reason="installed")
    hub.registry.retire_device("RM3-000001", by="op", reason="broken")
    with hub.store() as uow:
        assert uow.bindings.active_for_patient(patient_id) is None
        actions = [entry.action for entry in uow.audit.select(subject="device:RM3-000001")]
        details = " ".join(entry.detail for entry in uow.audit.select(limit=100))
    assert {"device.register", "binding.create", "binding.end", "device.retire"} <= set(actions)
    assert FNR not in details
    assert "Kari" not in details


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (lambda h, p: h.registry.bind("RM3-000001", p, by="op", reason=" "), "reason"),
        (lambda h, _p: h.registry.unbind("RM3-000001", by="op", reason=""), "reason"),
        (lambda h, _p: h.registry.retire_device("RM3-000001", by="op", reason=" "), "reason"),
        (lambda h, _p: h.registry.add_patient(Patient("X", "12345678901", Responsibility.HOME_CARE), by="op"),
         "national_id"),
        (lambda h, _p: h.registry.add_patient(Patient("X", "01019000008", Responsibility.HOME_CARE), by="op"),
         "team_id"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(hub: HubUnderTest, action: object, field: str) -> None:
    patient_id = _patient(hub)
    hub.registry.register_device("RM3-000001", serial="S1", family=Family.MULTIDOSE_ROLL, model="m", by="op")
    with pytest.raises(RegistryError) as refused:
        action(hub, patient_id)  # type: ignore[operator]
    assert refused.value.field == field


def test_duplicates_and_unknown_records_are_conflicts_and_not_found(hub: HubUnderTest) -> None:
    hub.registry.register_device("RM3-000001", serial="S1", family=Family.DOSE_POT, model="m", by="op")
    with pytest.raises(Conflict, match="already registered"):
        hub.registry.register_device("RM3-000001", serial="S2", family=Family.DOSE_POT, model="m", by="op")
    with pytest.raises(Conflict, match="belongs to another device"):
        hub.registry.register_device("RM3-000002", serial="S1", family=Family.DOSE_POT, model="m", by="op")
    with pytest.raises(NotFound):
        hub.registry.bind("RM3-000009", 1, by="op", reason="r")
    _patient(hub)
    with pytest.raises(Conflict, match="national id number is registered"):
        _patient(hub)
