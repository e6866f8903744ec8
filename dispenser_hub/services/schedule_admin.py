"""Operator actions on schedules: dose window and reminders, pauses, trips, and what a device holds.

Rules: every change is audited (who, what, never patient data) and the patient's bound dispenser gets its
new schedule in the same transaction (``ScheduleService.refresh``), so a change is never stored without
being on its way to the device. Invalid values are ``RegistryError``s naming the field (the rules of
``domain.schedules``); an unknown patient, pause or device is ``NotFound``; ending a pause that has ended
is a ``Conflict``.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.model import AuditEntry, DeviceStatus, DoseSettings, PauseRecord
from dispenser_hub.domain.pouches import to_ms
from dispenser_hub.domain.schedules import (
    TRIP_SHORT,
    DoseWindow,
    Pause,
    PlannedDose,
    ScheduleError,
    trip_doses,
)
from dispenser_hub.domain.wallclock import OSLO
from dispenser_hub.services.alarm_records import device_condition, raise_alarm
from dispenser_hub.services.downlink import enqueue
from dispenser_hub.services.operator import OperatorService, require_patient
from dispenser_hub.services.registry import Conflict, NotFound, RegistryError
from firmware_protocol.messages import Predispense

if TYPE_CHECKING:
    from dispenser_hub.domain.model import DeviceSchedule


MAX_TRIP: Final = timedelta(days=28)
TRIP_COMMAND_TTL: Final = timedelta(hours=1)
"""A pre-dispense is for someone standing at the dispenser: not carried out within an hour, it lapses."""


class PatientSchedules(OperatorService):
    """Dose settings and pauses per patient; the schedule state per device (see the module rules)."""

    # -- dose settings -------------------------------------------------------------------------------------

    def settings(self, patient_id: int) -> tuple[DoseWindow, DoseSettings | None]:
        """The patient's window in force (defaults when none was set) and the stored record, if any."""
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            stored = uow.schedules.settings(patient_id)
        return (stored.window if stored else DoseWindow()), stored

    def set_settings(self, patient_id: int, values: dict[str, timedelta | int], *, by: str) -> DoseSettings:
        """Set the patient's window and reminders (unnamed fields keep their current values)."""
        now = self._now()
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
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
            require_patient(uow, patient_id)
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
            require_patient(uow, patient_id)
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

    # -- trips ---------------------------------------------------------------------------------------------

    def predispense(self, device_id: str, start: datetime, end: datetime, *, by: str) -> Trip:
        """Have the dispenser give out every dose due in ``[start, end)`` now, for a trip (cmd.predispense).

        The doses are counted from the dispenser's supply (roll or tray, pauses left out). When that
        supply ends before the trip does, "not enough doses for a trip" (VKP 3.15) is raised at once, so
        someone can bring the next roll or tray before the patient leaves; the command goes out anyway for
        what there is. The device's ``dose.predispensed`` answer raises 3.15 too if it gave out fewer.
        """
        now = self._now()
        if end <= start:
            raise RegistryError("until: the trip must end after it starts", field="until")
        if end <= now:
            raise RegistryError("until: the trip is over already; give an end in the future", field="until")
        if end - start > MAX_TRIP:
            raise RegistryError(f"until: a trip is at most {MAX_TRIP.days} days", field="until")
        with self._uow_factory() as uow:
            device = uow.devices.get(device_id)
            if device is None:
                raise NotFound(f"there is no device {device_id}", field="device_id")
            binding = uow.bindings.active_for_device(device_id)
            if binding is None or device.status not in {DeviceStatus.ENROLLED, DeviceStatus.ACTIVE}:
                raise Conflict(f"device {device_id} is not bound and in service", field="device_id")
            horizon = end - now + timedelta(days=1)
            schedule, _, _ = self._schedules.build(uow, device, now, horizon=horizon)
            doses = [PlannedDose(s.due, pouch_id=s.pouch_id, pot=s.pot) for s in schedule.slots]
            trip = trip_doses(doses, max(start, now), end)
            covered = _covered_until(doses)
            short = covered is None or (covered < end and not schedule.left_out)  # left out: more to come
            detail = _trip_detail(len(trip.requested), covered, end)
            if short:
                short_detail = f"not enough doses for the trip: {detail}"
                raise_alarm(
                    uow, device_condition(TRIP_SHORT, device_id, binding.patient_id, short_detail), now
                )
            command = enqueue(
                uow,
                device_id,
                Predispense.model_validate(
                    {"expires": to_ms(now + TRIP_COMMAND_TTL), "from": to_ms(start), "until": to_ms(end)}
                ),
                by=by,
                now=now,
                expires_at=now + TRIP_COMMAND_TTL,
            )
            uow.audit.add(AuditEntry(now, by, "device.predispense", f"device:{device_id}", detail))
            uow.commit()
        return Trip(command.msg_id, len(trip.requested), not short, detail)

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


@dataclass(frozen=True, slots=True)
class Trip:
    """What ``predispense`` did: the command, the doses due in the trip, whether the supply covers it."""

    command_msg_id: str
    doses: int
    enough: bool
    detail: str


def _covered_until(doses: list[PlannedDose]) -> datetime | None:
    """Until when the supply covers the patient: its last dose plus the longest interval between two doses."""
    if not doses:
        return None
    dues = sorted(dose.due for dose in doses)
    spacing = max((b - a for a, b in itertools.pairwise(dues)), default=timedelta(days=1))
    return dues[-1] + spacing


def _trip_detail(requested: int, covered: datetime | None, end: datetime) -> str:
    until = "nothing" if covered is None else f"until {covered.astimezone(OSLO):%Y-%m-%d %H:%M}"
    return (
        f"{requested} doses due in the trip; the supply in the dispenser covers {until}, "
        f"the trip ends {end.astimezone(OSLO):%Y-%m-%d %H:%M} (Europe/Oslo)"
    )


def _describe(window: DoseWindow) -> str:
    minutes = {name: int(getattr(window, name).total_seconds() // 60) for name in ("early", "late")}
    return f"window -{minutes['early']}/+{minutes['late']} min, reminders {window.reminders().model_dump()}"
