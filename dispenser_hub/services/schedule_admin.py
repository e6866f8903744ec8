"""Operator actions on schedules: a patient's dose window and reminders, pauses, and what a device holds.

Rules: every change is audited (who, what, never patient data) and the patient's bound dispenser gets its
new schedule in the same transaction (``ScheduleService.refresh``), so a change is never stored without
being on its way to the device. Invalid values are ``RegistryError``s naming the field (the rules of
``domain.schedules``); an unknown patient, pause or device is ``NotFound``; ending a pause that has ended
is a ``Conflict``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import AuditEntry, DoseSettings, PauseRecord
from dispenser_hub.domain.schedules import DoseWindow, Pause, ScheduleError
from dispenser_hub.services.registry import Conflict, NotFound, RegistryError
from dispenser_hub.services.schedules import ScheduleService

if TYPE_CHECKING:
    from dispenser_hub.domain.model import DeviceSchedule
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory


class PatientSchedules:
    """Dose settings and pauses per patient; the schedule state per device (see the module rules)."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, schedules: ScheduleService | None = None
    ) -> None:
        """Store through ``uow_factory``; rebuild schedules with ``schedules``."""
        self._uow_factory = uow_factory
        self._clock = clock
        self._schedules = schedules or ScheduleService()

    def _now(self) -> datetime:
        return self._clock.now().astimezone(UTC)

    # -- dose settings -------------------------------------------------------------------------------------

    def settings(self, patient_id: int) -> tuple[DoseWindow, DoseSettings | None]:
        """The patient's window in force (defaults when none was set) and the stored record, if any."""
        with self._uow_factory() as uow:
            _require_patient(uow, patient_id)
            stored = uow.schedules.settings(patient_id)
        return (stored.window if stored else DoseWindow()), stored

    def set_settings(self, patient_id: int, values: dict[str, timedelta | int], *, by: str) -> DoseSettings:
        """Set the patient's window and reminders (unnamed fields keep their current values)."""
        now = self._now()
        with self._uow_factory() as uow:
            _require_patient(uow, patient_id)
            current = uow.schedules.settings(patient_id)
            base = current.window if current else DoseWindow()
            try:
                window = dataclasses.replace(base, **values)  # type: ignore[arg-type] # checked by DoseWindow
            except ScheduleError as exc:
                raise RegistryError(str(exc), field=exc.field) from None
            stored = uow.schedules.put_settings(DoseSettings(patient_id, window, now, by))
            uow.audit.add(
                AuditEntry(now, by, "schedule.settings", f"patient:{patient_id}", _describe(window))
            )
            self._refresh_patient(uow, patient_id, now)
            uow.commit()
        return stored

    # -- pauses --------------------------------------------------------------------------------------------

    def pauses(self, patient_id: int) -> list[PauseRecord]:
        """Every pause of the patient, by start."""
        with self._uow_factory() as uow:
            _require_patient(uow, patient_id)
            return uow.schedules.pauses(patient_id)

    def add_pause(
        self, patient_id: int, start: datetime, end: datetime, reason: str, *, by: str
    ) -> PauseRecord:
        """Pause the patient's doses in ``[start, end)``: they are cancelled, not missed."""
        now = self._now()
        try:
            pause = Pause(start, end, reason.strip())
        except ScheduleError as exc:
            raise RegistryError(str(exc), field=exc.field) from None
        if pause.end <= now:
            raise RegistryError("end: the pause is over already; give an end in the future", field="end")
        with self._uow_factory() as uow:
            _require_patient(uow, patient_id)
            stored = uow.schedules.add_pause(PauseRecord(patient_id, pause, now, by))
            detail = (
                f"pause {stored.id} {pause.start.isoformat()} to {pause.end.isoformat()} ({pause.reason})"
            )
            uow.audit.add(AuditEntry(now, by, "schedule.pause", f"patient:{patient_id}", detail))
            self._refresh_patient(uow, patient_id, now)
            uow.commit()
        return stored

    def end_pause(self, pause_id: int, *, by: str) -> PauseRecord:
        """End a pause now (the patient came home early); the doses from now on are offered again."""
        now = self._now()
        with self._uow_factory() as uow:
            record = uow.schedules.get_pause(pause_id)
            if record is None:
                raise NotFound(f"there is no pause {pause_id}", field="pause_id")
            if record.ended_at is not None or record.pause.end <= now:
                raise Conflict(f"pause {pause_id} has ended already")
            ended = uow.schedules.update_pause(dataclasses.replace(record, ended_at=now, ended_by=by))
            subject = f"patient:{record.patient_id}"
            uow.audit.add(AuditEntry(now, by, "schedule.pause_end", subject, f"pause {pause_id}"))
            self._refresh_patient(uow, record.patient_id, now)
            uow.commit()
        return ended

    # -- devices -------------------------------------------------------------------------------------------

    def device_schedule(self, device_id: str) -> tuple[DeviceSchedule | None, str | None]:
        """What the hub last built for the device, and why it has no valid schedule (``None``: it has)."""
        now = self._now()
        with self._uow_factory() as uow:
            device = uow.devices.get(device_id)
            if device is None:
                raise NotFound(f"there is no device {device_id}", field="device_id")
            state = uow.schedules.device_schedule(device_id)
            bound = uow.bindings.active_for_device(device_id) is not None
        return state, (self._schedules.problem(state, offers=None, now=now) if bound else None)

    def _refresh_patient(self, uow: UnitOfWork, patient_id: int, now: datetime) -> None:
        binding = uow.bindings.active_for_patient(patient_id)
        device = None if binding is None else uow.devices.get(binding.device_id)
        if device is not None:
            self._schedules.refresh(uow, device, now)


def _require_patient(uow: UnitOfWork, patient_id: int) -> None:
    if uow.patients.get(patient_id) is None:
        raise NotFound(f"there is no patient {patient_id}", field="patient_id")


def _describe(window: DoseWindow) -> str:
    minutes = {name: int(getattr(window, name).total_seconds() // 60) for name in ("early", "late")}
    return f"window -{minutes['early']}/+{minutes['late']} min, reminders {window.reminders().model_dump()}"
