"""In-memory repositories of the registry: teams, patients, contacts, devices, enrollment codes, bindings.

Same rules, orders and errors as ``adapters.db`` (the contract suite checks both): references are checked
before uniqueness (``NotFoundError`` before ``ConflictError``); lists come in storage-id order unless the port
says otherwise. Lookups scan: this store is for tests and demos, with hundreds of rows, not millions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._tables import stored_id
from dispenser_hub.domain.model import DeviceStatus
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from dispenser_hub.adapters.memory._tables import Tables, Transaction
    from dispenser_hub.domain.model import Binding, CareTeam, Contact, Device, EnrollmentCode, Patient


class MemoryRepository:
    """Base: reads the unit of work's current tables (they change on commit and rollback)."""

    def __init__(self, transaction: Transaction) -> None:
        self._tx = transaction

    @property
    def _tables(self) -> Tables:
        return self._tx.tables

    def _require_device(self, device_id: str) -> None:
        if device_id not in self._tables.devices.rows:
            raise NotFoundError(rules.missing("device", device_id))

    def _require_patient(self, patient_id: int) -> None:
        if patient_id not in self._tables.patients.rows:
            raise NotFoundError(rules.missing("patient", patient_id))


class MemoryCareTeamRepository(MemoryRepository):
    """Care teams; names are unique."""

    def add(self, team: CareTeam) -> CareTeam:
        """Store a new team; ``ConflictError`` if the name is taken."""
        if self.get_by_name(team.name) is not None:
            raise ConflictError(rules.team_name_taken(team.name))
        tables = self._tx.write()
        stored = rules.with_id(rules.normalise(team), tables.next_id("teams"))
        tables.teams.put(stored_id(stored), stored)
        return stored

    def get(self, team_id: int) -> CareTeam | None:
        """The team with this id."""
        return self._tables.teams.rows.get(team_id)

    def get_by_name(self, name: str) -> CareTeam | None:
        """The team with this exact name."""
        return next((team for team in self._tables.teams.rows.values() if team.name == name), None)

    def select(self) -> list[CareTeam]:
        """Every team, in id order."""
        return list(self._tables.teams.rows.values())


class MemoryPatientRepository(MemoryRepository):
    """Patients; national id numbers are unique."""

    def add(self, patient: Patient) -> Patient:
        """Store a new patient (see ``ports.PatientRepository``)."""
        stored = rules.normalise(patient)
        self._check(stored, own_id=None)
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("patients"))
        tables.patients.put(stored_id(stored), stored)
        return stored

    def get(self, patient_id: int) -> Patient | None:
        """The patient with this id."""
        return self._tables.patients.rows.get(patient_id)

    def find_by_national_id(self, national_id: str) -> Patient | None:
        """The patient with this national id number."""
        rows = self._tables.patients.rows.values()
        return next((patient for patient in rows if patient.national_id == national_id), None)

    def update(self, patient: Patient) -> Patient:
        """Replace the stored patient with the same id."""
        if patient.id is None:
            raise NotFoundError(rules.no_id("patient"))
        self._require_patient(patient.id)
        stored = rules.normalise(patient)
        self._check(stored, own_id=patient.id)
        self._tx.write().patients.put(patient.id, stored)
        return stored

    def select(self, *, team_id: int | None = None, offset: int = 0, limit: int = 100) -> list[Patient]:
        """Patients in id order, optionally of one team."""
        rules.check_page(offset, limit)
        rows = [p for p in self._tables.patients.rows.values() if team_id is None or p.team_id == team_id]
        return rows[offset : offset + limit]

    def _check(self, patient: Patient, *, own_id: int | None) -> None:
        if patient.team_id is not None and patient.team_id not in self._tables.teams.rows:
            raise NotFoundError(rules.missing("care team", patient.team_id))
        other = self.find_by_national_id(patient.national_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.national_id_taken())


class MemoryContactRepository(MemoryRepository):
    """Patients' contacts."""

    def add(self, contact: Contact) -> Contact:
        """Store a new contact of an existing patient."""
        self._require_patient(contact.patient_id)
        tables = self._tx.write()
        stored = rules.with_id(rules.normalise(contact), tables.next_id("contacts"))
        tables.contacts.put(stored_id(stored), stored)
        return stored

    def for_patient(self, patient_id: int) -> list[Contact]:
        """The patient's contacts by priority, then id."""
        rows = [c for c in self._tables.contacts.rows.values() if c.patient_id == patient_id]
        return sorted(rows, key=lambda contact: (contact.priority, stored_id(contact)))

    def remove(self, contact_id: int) -> None:
        """Delete a contact; ``NotFoundError`` if there is none."""
        if contact_id not in self._tables.contacts.rows:
            raise NotFoundError(rules.missing("contact", contact_id))
        self._tx.write().contacts.pop(contact_id)


class MemoryDeviceRepository(MemoryRepository):
    """Devices by protocol id; ids and serials are unique."""

    def add(self, device: Device) -> Device:
        """Store a new device."""
        if device.device_id in self._tables.devices.rows:
            raise ConflictError(rules.device_id_taken(device.device_id))
        self._check_serial(device)
        stored = rules.normalise(device)
        self._tx.write().devices.put(stored.device_id, stored)
        return stored

    def get(self, device_id: str) -> Device | None:
        """The device with this protocol id."""
        return self._tables.devices.rows.get(device_id)

    def get_many(self, device_ids: Collection[str]) -> dict[str, Device]:
        """The stored devices among ``device_ids``, by id."""
        rows = self._tables.devices.rows
        return {device_id: rows[device_id] for device_id in device_ids if device_id in rows}

    def get_by_serial(self, serial: str) -> Device | None:
        """The device with this serial number."""
        return next((d for d in self._tables.devices.rows.values() if d.serial == serial), None)

    def update(self, device: Device) -> Device:
        """Replace the stored device with the same protocol id."""
        self._require_device(device.device_id)
        self._check_serial(device)
        stored = rules.normalise(device)
        self._tx.write().devices.put(stored.device_id, stored)
        return stored

    def update_many(self, devices: Sequence[Device]) -> None:
        """``update`` each, all or nothing (every check before the first write)."""
        rules.check_distinct([device.device_id for device in devices], "device_id")
        rules.check_distinct([device.serial for device in devices], "serial")
        for device in devices:
            self._require_device(device.device_id)
            self._check_serial(device)
        stored = [rules.normalise(device) for device in devices]
        table = self._tx.write().devices
        for device in stored:
            table.put(device.device_id, device)

    def select(
        self, *, status: DeviceStatus | None = None, offset: int = 0, limit: int = 100
    ) -> list[Device]:
        """Devices in registration (storage) order, optionally with one status."""
        rules.check_page(offset, limit)
        rows = [d for d in self._tables.devices.rows.values() if status is None or d.status is status]
        return rows[offset : offset + limit]

    def silent_since(self, before: datetime) -> list[Device]:
        """Online or active devices last heard before ``before``, longest silent first."""
        before = rules.aware_utc(before, "before")
        silent = [
            device
            for device in self._tables.devices.rows.values()
            if (device.presence.online or device.status is DeviceStatus.ACTIVE)
            and device.presence.last_seen_at is not None
            and device.presence.last_seen_at < before
        ]
        return sorted(silent, key=lambda device: device.presence.last_seen_at or before)

    def _check_serial(self, device: Device) -> None:
        other = self.get_by_serial(device.serial)
        if other is not None and other.device_id != device.device_id:
            raise ConflictError(rules.serial_taken(device.serial))


class MemoryEnrollmentCodeRepository(MemoryRepository):
    """Enrollment codes by keyed hash (unique)."""

    def add(self, code: EnrollmentCode) -> EnrollmentCode:
        """Store a new code of an existing device."""
        stored = rules.normalise(code)
        self._check(stored, own_id=None)
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("enrollment_codes"))
        tables.enrollment_codes.put(stored_id(stored), stored)
        return stored

    def find(self, code_hash: str) -> EnrollmentCode | None:
        """The code with this hash."""
        rows = self._tables.enrollment_codes.rows.values()
        return next((code for code in rows if code.code_hash == code_hash), None)

    def for_device(self, device_id: str) -> list[EnrollmentCode]:
        """The device's codes in id order."""
        return [c for c in self._tables.enrollment_codes.rows.values() if c.device_id == device_id]

    def update(self, code: EnrollmentCode) -> EnrollmentCode:
        """Replace the stored code with the same id."""
        if code.id is None:
            raise NotFoundError(rules.no_id("enrollment code"))
        if code.id not in self._tables.enrollment_codes.rows:
            raise NotFoundError(rules.missing("enrollment code", code.id))
        stored = rules.normalise(code)
        self._check(stored, own_id=code.id)
        self._tx.write().enrollment_codes.put(code.id, stored)
        return stored

    def _check(self, code: EnrollmentCode, *, own_id: int | None) -> None:
        self._require_device(code.device_id)
        other = self.find(code.code_hash)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.enrollment_code_taken(code.device_id))


class MemoryBindingRepository(MemoryRepository):
    """Bindings with history; one active per device and per patient."""

    def add(self, binding: Binding) -> Binding:
        """Store a new binding."""
        stored = rules.normalise(binding)
        self._check(stored, own_id=None)
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("bindings"))
        tables.bindings.put(stored_id(stored), stored)
        return stored

    def active_for_device(self, device_id: str) -> Binding | None:
        """The device's active binding."""
        rows = self._tables.bindings.rows.values()
        return next((b for b in rows if b.active and b.device_id == device_id), None)

    def active_for_patient(self, patient_id: int) -> Binding | None:
        """The patient's active binding."""
        rows = self._tables.bindings.rows.values()
        return next((b for b in rows if b.active and b.patient_id == patient_id), None)

    def update(self, binding: Binding) -> Binding:
        """Replace the stored binding with the same id (ending it, usually)."""
        if binding.id is None:
            raise NotFoundError(rules.no_id("binding"))
        if binding.id not in self._tables.bindings.rows:
            raise NotFoundError(rules.missing("binding", binding.id))
        stored = rules.normalise(binding)
        self._check(stored, own_id=binding.id)
        self._tx.write().bindings.put(binding.id, stored)
        return stored

    def history(self, *, device_id: str | None = None, patient_id: int | None = None) -> list[Binding]:
        """Bindings of the device and/or patient, oldest first."""
        rows = [
            b
            for b in self._tables.bindings.rows.values()
            if (device_id is None or b.device_id == device_id)
            and (patient_id is None or b.patient_id == patient_id)
        ]
        return sorted(rows, key=lambda binding: (binding.bound_at, stored_id(binding)))

    def _check(self, binding: Binding, *, own_id: int | None) -> None:
        self._require_device(binding.device_id)
        self._require_patient(binding.patient_id)
        if not binding.active:
            return
        other = self.active_for_device(binding.device_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.device_already_bound(binding.device_id))
        other = self.active_for_patient(binding.patient_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.patient_already_bound(binding.patient_id))
