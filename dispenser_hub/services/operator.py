"""What the operator services that change schedules share: storage, clock, and the rebuild of a schedule.

Rule: an operator's change to what a patient's dispenser should offer (settings, pauses, plans, fills,
roll ends) rebuilds that dispenser's schedule in the same transaction, so a change is never stored
without being on its way to the device.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dispenser_hub.services.registry import NotFound
from dispenser_hub.services.schedules import ScheduleService

if TYPE_CHECKING:
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory


class OperatorService:
    """Base of ``PatientSchedules``, ``PatientDosett`` and ``RollAdmin``."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, schedules: ScheduleService | None = None
    ) -> None:
        """Store through ``uow_factory``; rebuild schedules with ``schedules``."""
        self._uow_factory = uow_factory
        self._clock = clock
        self._schedules = schedules or ScheduleService()

    def _now(self) -> datetime:
        return self._clock.now().astimezone(UTC)

    def _refresh_patient(
        self, uow: UnitOfWork, patient_id: int, now: datetime, *, force: bool = False
    ) -> None:
        """Rebuild the schedule of the patient's bound dispenser, if there is one."""
        binding = uow.bindings.active_for_patient(patient_id)
        device = None if binding is None else uow.devices.get(binding.device_id)
        if device is not None:
            self._schedules.refresh(uow, device, now, force=force)


def require_patient(uow: UnitOfWork, patient_id: int) -> None:
    """``NotFound`` (naming ``patient_id``) unless the patient exists."""
    if uow.patients.get(patient_id) is None:
        raise NotFound(f"there is no patient {patient_id}", field="patient_id")
