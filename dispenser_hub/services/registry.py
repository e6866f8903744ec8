"""Operator actions on records: teams, patients and contacts, devices and enrollment codes, bindings, alarms.

Each method is one transaction and one audit entry (who, what, which record; never patient data in the
detail). Rule violations raise ``RegistryError`` subclasses whose message says what to fix; the API turns
them into 4xx answers and the CLI into exit code 2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain import alarms as alarm_rules
from dispenser_hub.domain.bindings import BindingError, bind, unbind
from dispenser_hub.domain.enrollment import new_code
from dispenser_hub.domain.model import (
    AuditEntry,
    CareTeam,
    Contact,
    Device,
    DeviceStatus,
    EnrollmentCode,
    Patient,
    Responsibility,
)
from dispenser_hub.domain.national_id import NationalId
from dispenser_hub.domain.rolls import RollEndReason, end_load
from dispenser_hub.ports import ConflictError
from dispenser_hub.services.escalations import Escalations
from dispenser_hub.services.provisioning import code_hash
from dispenser_hub.services.schedules import ScheduleService
from firmware_protocol import is_device_id

if TYPE_CHECKING:
    from dispenser_hub.domain.model import Alarm, Binding
    from dispenser_hub.ports import Clock, FieldProtector, UnitOfWork, UnitOfWorkFactory
    from firmware_protocol.messages import Family


class RegistryError(ValueError):
    """An operator request the rules refuse; ``field`` names the input at fault, if one is."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        """``message`` says what is wrong and what to do."""
        super().__init__(message)
        self.field = field


class NotFound(RegistryError):  # noqa: N818 - reads as the answer: NotFound("device X")
    """The record asked for does not exist."""


class Conflict(RegistryError):  # noqa: N818 - reads as the answer
    """The request clashes with existing records (duplicate, already bound, wrong state)."""


def _end_roll_load(uow: UnitOfWork, device_id: str, *, by: str, now: datetime) -> None:
    """A dispenser that leaves its patient (unbound, retired) leaves its roll too: the load ends."""
    load = uow.rolls.active_load_for_device(device_id)
    if load is not None:
        uow.rolls.update_load(end_load(load, reason=RollEndReason.UNBOUND, now=now))
        uow.audit.add(AuditEntry(now, by, "roll.end", f"roll:{load.roll_id}", f"unbound from {device_id}"))


def _require_text(value: str, field: str, what: str) -> None:
    if not value.strip():
        raise RegistryError(f"{field} must not be empty: {what}", field=field)


@dataclass(frozen=True, slots=True)
class NewCode:
    """An enrollment code as shown once to the operator (only its hash is stored)."""

    code: str
    device_id: str
    expires_at: datetime


class Registry:
    """Operator actions (see the module docstring)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        protector: FieldProtector,
        clock: Clock,
        *,
        code_ttl: timedelta = timedelta(days=7),
        schedules: ScheduleService | None = None,
    ) -> None:
        """Store through ``uow_factory``; hash codes with ``protector``; schedules by ``schedules``."""
        self._uow_factory = uow_factory
        self._protector = protector
        self._clock = clock
        self._code_ttl = code_ttl
        self._schedules = schedules or ScheduleService()

    def _now(self) -> datetime:
        return self._clock.now().astimezone(UTC)

    # -- teams and patients --------------------------------------------------------------------------------

    def add_team(self, team: CareTeam, *, by: str) -> CareTeam:
        """Register a home-care team (names are unique)."""
        now = self._now()
        with self._uow_factory() as uow:
            if uow.teams.get_by_name(team.name) is not None:
                raise Conflict(f"a team named {team.name!r} exists", field="name")
            stored = uow.teams.add(team)
            uow.audit.add(AuditEntry(now, by, "team.create", f"team:{stored.id}"))
            uow.commit()
        return stored

    def add_patient(self, patient: Patient, *, by: str) -> Patient:
        """Register a patient; the national id number is validated (checksum, date) and must be new."""
        now = self._now()
        try:
            national_id = NationalId.parse(patient.national_id)
        except ValueError as exc:
            raise RegistryError(str(exc), field="national_id") from None
        if not patient.name.strip():
            raise RegistryError("the name must not be empty", field="name")
        with self._uow_factory() as uow:
            if patient.team_id is not None and uow.teams.get(patient.team_id) is None:
                raise NotFound(f"there is no team {patient.team_id}", field="team_id")
            if patient.responsibility is Responsibility.HOME_CARE and patient.team_id is None:
                raise RegistryError("a home-care patient needs a team (team_id)", field="team_id")
            if uow.patients.find_by_national_id(national_id.value) is not None:
                raise Conflict("a patient with this national id number is registered", field="national_id")
            stored = uow.patients.add(
                dataclasses.replace(patient, national_id=national_id.value, created_at=now, id=None)
            )
            uow.audit.add(AuditEntry(now, by, "patient.create", f"patient:{stored.id}"))
            uow.commit()
        return stored

    def add_contact(self, contact: Contact, *, by: str) -> Contact:
        """Add a relative or other contact to a patient."""
        now = self._now()
        if not (contact.phone or contact.email):
            raise RegistryError("a contact needs a phone number or an e-mail address", field="phone")
        with self._uow_factory() as uow:
            if uow.patients.get(contact.patient_id) is None:
                raise NotFound(f"there is no patient {contact.patient_id}", field="patient_id")
            stored = uow.contacts.add(contact)
            subject = f"patient:{contact.patient_id}"
            uow.audit.add(AuditEntry(now, by, "contact.create", subject, f"contact {stored.id}"))
            uow.commit()
        return stored

    # -- devices -------------------------------------------------------------------------------------------

    def register_device(
        self, device_id: str, *, serial: str, family: Family, model: str, by: str
    ) -> tuple[Device, NewCode]:
        """Register a device and make its first enrollment code."""
        if not is_device_id(device_id):
            raise RegistryError(
                f"{device_id!r} is not a valid device id (e.g. RM3-000017: letters, digits, '-', 4-32 chars)",
                field="device_id",
            )
        if not serial.strip():
            raise RegistryError("the serial number must not be empty", field="serial")
        now = self._now()
        with self._uow_factory() as uow:
            if uow.devices.get(device_id) is not None:
                raise Conflict(f"device {device_id} is already registered", field="device_id")
            if uow.devices.get_by_serial(serial) is not None:
                raise Conflict(f"serial {serial!r} belongs to another device", field="serial")
            device = Device(device_id, serial.strip(), family, model.strip(), registered_at=now)
            try:
                device = uow.devices.add(device)
            except ConflictError as exc:
                raise Conflict(str(exc), field="device_id") from None
            code = self._new_code(uow, device_id, now, by)
            uow.audit.add(AuditEntry(now, by, "device.register", f"device:{device_id}", f"serial {serial}"))
            uow.commit()
        return device, code

    def new_enrollment_code(self, device_id: str, *, by: str) -> NewCode:
        """Another one-time code for a registered, not retired device (a lost code, a replaced board)."""
        now = self._now()
        with self._uow_factory() as uow:
            device = self._device(uow, device_id)
            if device.status is DeviceStatus.RETIRED:
                raise Conflict(f"device {device_id} is retired", field="device_id")
            code = self._new_code(uow, device_id, now, by)
            uow.commit()
        return code

    def _new_code(self, uow: UnitOfWork, device_id: str, now: datetime, by: str) -> NewCode:
        code = new_code()
        expires_at = now + self._code_ttl
        uow.enrollment_codes.add(
            EnrollmentCode(device_id, code_hash(self._protector, code), expires_at, now, by)
        )
        uow.audit.add(AuditEntry(now, by, "device.enrollment_code", f"device:{device_id}"))
        return NewCode(code, device_id, expires_at)

    def retire_device(self, device_id: str, *, by: str, reason: str) -> Device:
        """Take a device out of service: its key is revoked (messages refused) and its binding ended."""
        _require_text(reason, "reason", "say why the device is retired")
        now = self._now()
        with self._uow_factory() as uow:
            device = self._device(uow, device_id)
            if device.status is DeviceStatus.RETIRED:
                raise Conflict(f"device {device_id} is already retired", field="device_id")
            binding = uow.bindings.active_for_device(device_id)
            if binding is not None:
                uow.bindings.update(unbind(binding, by=by, reason="device retired", now=now))
                subject = f"device:{device_id}"
                uow.audit.add(AuditEntry(now, by, "binding.end", subject, f"patient {binding.patient_id}"))
            _end_roll_load(uow, device_id, by=by, now=now)
            retired = uow.devices.update(
                dataclasses.replace(device, status=DeviceStatus.RETIRED, retired_at=now)
            )
            self._schedules.check(uow, retired, None, offers=None, now=now)  # out of service: no 3.8
            uow.audit.add(AuditEntry(now, by, "device.retire", f"device:{device_id}", reason.strip()))
            uow.commit()
        return retired

    @staticmethod
    def _device(uow: UnitOfWork, device_id: str) -> Device:
        device = uow.devices.get(device_id)
        if device is None:
            raise NotFound(f"there is no device {device_id}", field="device_id")
        return device

    # -- bindings ------------------------------------------------------------------------------------------

    def bind(self, device_id: str, patient_id: int, *, by: str, reason: str) -> Binding:
        """Bind a device to a patient (each must be free)."""
        _require_text(reason, "reason", "say why (e.g. 'new dispenser installed')")
        now = self._now()
        with self._uow_factory() as uow:
            device = self._device(uow, device_id)
            patient = uow.patients.get(patient_id)
            if patient is None:
                raise NotFound(f"there is no patient {patient_id}", field="patient_id")
            try:
                binding = bind(
                    device,
                    patient,
                    device_binding=uow.bindings.active_for_device(device_id),
                    patient_binding=uow.bindings.active_for_patient(patient_id),
                    by=by,
                    reason=reason,
                    now=now,
                )
                stored = uow.bindings.add(binding)
            except (BindingError, ConflictError) as exc:
                raise Conflict(str(exc)) from None
            uow.audit.add(
                AuditEntry(now, by, "binding.create", f"device:{device_id}", f"patient {patient_id}")
            )
            self._schedules.refresh(uow, device, now)
            uow.commit()
        return stored

    def unbind(self, device_id: str, *, by: str, reason: str) -> Binding:
        """End the device's active binding."""
        _require_text(reason, "reason", "say why (e.g. 'patient moved to a nursing home')")
        now = self._now()
        with self._uow_factory() as uow:
            device = self._device(uow, device_id)
            try:
                ended = unbind(uow.bindings.active_for_device(device_id), by=by, reason=reason, now=now)
            except BindingError as exc:
                raise Conflict(str(exc)) from None
            stored = uow.bindings.update(ended)
            uow.audit.add(
                AuditEntry(now, by, "binding.end", f"device:{device_id}", f"patient {ended.patient_id}")
            )
            _end_roll_load(uow, device_id, by=by, now=now)
            self._schedules.refresh(uow, device, now)  # an empty config: the old patient's doses go
            self._schedules.supply.clear(uow, ended.patient_id, now)  # no dispenser: no refill warnings
            uow.commit()
        return stored

    # -- alarms --------------------------------------------------------------------------------------------

    def acknowledge_alarm(self, alarm_id: int, *, by: str, note: str = "") -> Alarm:
        """An operator takes the alarm on."""
        return self._alarm_transition(alarm_id, by, "alarm.acknowledge", note, acknowledge=True)

    def resolve_alarm(self, alarm_id: int, *, by: str, resolution: str) -> Alarm:
        """An operator closes the alarm."""
        _require_text(resolution, "resolution", "say how the alarm was resolved")
        return self._alarm_transition(alarm_id, by, "alarm.resolve", resolution, acknowledge=False)

    def _alarm_transition(
        self, alarm_id: int, by: str, action: str, text: str, *, acknowledge: bool
    ) -> Alarm:
        now = self._now()
        with self._uow_factory() as uow:
            alarm = uow.alarms.get(alarm_id)
            if alarm is None:
                raise NotFound(f"there is no alarm {alarm_id}", field="alarm_id")
            try:
                change = (
                    alarm_rules.acknowledge(alarm, by=by, now=now, note=text)
                    if acknowledge
                    else alarm_rules.resolve(alarm, by=by, now=now, resolution=text)
                )
            except alarm_rules.AlarmTransitionError as exc:
                raise Conflict(str(exc)) from None
            stored = uow.alarms.update(change.alarm)
            uow.alarms.log(change.log_entry(alarm_id, now))
            uow.audit.add(AuditEntry(now, by, action, f"alarm:{alarm_id}"))
            Escalations.on_acknowledged(uow, stored, now)  # the chain stops: nothing more goes out
            uow.commit()
        return stored
