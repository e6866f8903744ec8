"""SQL repositories of devices: dispensers (with presence), enrollment codes, device-patient bindings.

Rules: device ids and serials are unique; "one active binding per device and per patient" is the pair of
unique columns ``active_device_id``/``active_patient_id`` (see ``tables``), kept in step with ``unbound_at``
here. References are checked before uniqueness, as in ``adapters.memory``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository, integrity_error
from dispenser_hub.adapters.db.tables import BindingRow, DeviceRow, EnrollmentCodeRow, metadata
from dispenser_hub.domain.model import Binding, Device, DeviceStatus, EnrollmentCode, Presence
from dispenser_hub.ports import ConflictError, NotFoundError
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime


class SqlDeviceRepository(SqlRepository):
    """Dispensers by protocol id; ids and serials are unique."""

    def add(self, device: Device) -> Device:
        """Store a new device."""
        device = rules.normalise(device)
        if self._row(device.device_id) is not None:
            raise ConflictError(rules.device_id_taken(device.device_id))
        self._check_serial(device)
        self._session.add(DeviceRow(**_device_values(device)))
        self._flush(self._messages(device))
        return device

    def get(self, device_id: str) -> Device | None:
        """The device with this protocol id."""
        row = self._row(device_id)
        return None if row is None else _device(row)

    def get_many(self, device_ids: Collection[str]) -> dict[str, Device]:
        """The stored devices among ``device_ids``, by id (one query; the rows join the session's cache).

        The rows read are locked until the transaction ends: ingest writes them back whole
        (``update_many``), so an operator's change made meanwhile (a retirement) waits, not undone.
        """
        return {row.device_id: _device(row) for row in self._device_rows(device_ids, lock=True).values()}

    def get_by_serial(self, serial: str) -> Device | None:
        """The device with this serial number."""
        row = self._session.exec(select(DeviceRow).where(col(DeviceRow.serial) == serial)).first()
        return None if row is None else _device(row)

    def update(self, device: Device) -> Device:
        """Replace the stored device with the same protocol id."""
        device = rules.normalise(device)
        row = self._row(device.device_id)
        if row is None:
            raise NotFoundError(rules.missing("device", device.device_id))
        if device.serial != row.serial:  # an unchanged serial is this row's own: nothing to check
            self._check_serial(device)
        for name, value in _device_values(device).items():
            if getattr(row, name) != value:  # only what changed (the UPDATE holds only those anyway)
                setattr(row, name, value)
        self._flush(self._messages(device))
        return device

    def update_many(self, devices: Sequence[Device]) -> None:
        """Replace several stored devices with one executemany ``UPDATE`` (all or nothing).

        Every check comes first: the rows exist (one query for those not cached), ids and serials are
        distinct in the batch, and a changed serial is not another device's. The session's cached rows of
        these devices are then expired, so a later read in this transaction sees the new values.
        """
        if not devices:
            return
        rules.check_distinct([device.device_id for device in devices], "device_id")
        rules.check_distinct([device.serial for device in devices], "serial")
        devices = [rules.normalise(device) for device in devices]
        rows = self._device_rows([device.device_id for device in devices])
        for device in devices:
            row = rows.get(device.device_id)
            if row is None:
                raise NotFoundError(rules.missing("device", device.device_id))
            if device.serial != row.serial:
                self._check_serial(device)
        self._session.flush()  # pending ORM changes first, so the UPDATE is the last word
        values = [_device_values(device) for device in devices]
        statement = _update_device(tuple(values[0]))
        params = [{f"b_{name}": value for name, value in row.items()} for row in values]
        try:
            self._session.connection().execute(statement, params)
        except IntegrityError as exc:
            raise integrity_error(exc, self._messages(devices[0])) from exc
        for row in rows.values():
            self._session.expire(row)

    def select(
        self, *, status: DeviceStatus | None = None, offset: int = 0, limit: int = 100
    ) -> list[Device]:
        """Devices in registration (storage) order, optionally with one status."""
        rules.check_page(offset, limit)
        statement = select(DeviceRow).order_by(col(DeviceRow.id)).offset(offset).limit(limit)
        if status is not None:
            statement = statement.where(col(DeviceRow.status) == status.value)
        return [_device(row) for row in self._session.exec(statement)]

    def silent_since(self, before: datetime) -> list[Device]:
        """Online or active devices last heard before ``before``, longest silent first."""
        before = rules.aware_utc(before, "before")
        statement = (
            select(DeviceRow)
            .where(
                or_(col(DeviceRow.online).is_(True), col(DeviceRow.status) == DeviceStatus.ACTIVE.value),
                col(DeviceRow.last_seen_at) < before,
            )
            .order_by(col(DeviceRow.last_seen_at), col(DeviceRow.id))
        )
        return [_device(row) for row in self._session.exec(statement)]

    def _row(self, device_id: str) -> DeviceRow | None:
        return self._device_row(device_id)

    def _check_serial(self, device: Device) -> None:
        other = self.get_by_serial(device.serial)
        if other is not None and other.device_id != device.device_id:
            raise ConflictError(rules.serial_taken(device.serial))

    @staticmethod
    def _messages(device: Device) -> dict[str, str]:
        return {
            "uq_device_device_id": rules.device_id_taken(device.device_id),
            "uq_device_serial": rules.serial_taken(device.serial),
        }


class SqlEnrollmentCodeRepository(SqlRepository):
    """Enrollment codes by keyed hash (unique)."""

    def add(self, code: EnrollmentCode) -> EnrollmentCode:
        """Store a new code of an existing device."""
        code = rules.normalise(code)
        self._check(code, own_id=None)
        row = EnrollmentCodeRow(**_code_values(code))
        self._session.add(row)
        self._flush({"uq_enrollment_code_code_hash": rules.enrollment_code_taken(code.device_id)})
        return _code(row)

    def find(self, code_hash: str) -> EnrollmentCode | None:
        """The code with this hash."""
        row = self._find_row(code_hash)
        return None if row is None else _code(row)

    def for_device(self, device_id: str) -> list[EnrollmentCode]:
        """The device's codes in id order."""
        statement = (
            select(EnrollmentCodeRow)
            .where(col(EnrollmentCodeRow.device_id) == device_id)
            .order_by(col(EnrollmentCodeRow.id))
        )
        return [_code(row) for row in self._session.exec(statement)]

    def update(self, code: EnrollmentCode) -> EnrollmentCode:
        """Replace the stored code with the same id."""
        if code.id is None:
            raise NotFoundError(rules.no_id("enrollment code"))
        row = self._session.get(EnrollmentCodeRow, code.id)
        if row is None:
            raise NotFoundError(rules.missing("enrollment code", code.id))
        code = rules.normalise(code)
        self._check(code, own_id=code.id)
        row.sqlmodel_update(_code_values(code))
        self._flush({"uq_enrollment_code_code_hash": rules.enrollment_code_taken(code.device_id)})
        return _code(row)

    def _find_row(self, code_hash: str) -> EnrollmentCodeRow | None:
        statement = select(EnrollmentCodeRow).where(col(EnrollmentCodeRow.code_hash) == code_hash)
        return self._session.exec(statement).first()

    def _check(self, code: EnrollmentCode, *, own_id: int | None) -> None:
        if not self._device_exists(code.device_id):
            raise NotFoundError(rules.missing("device", code.device_id))
        other = self._find_row(code.code_hash)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.enrollment_code_taken(code.device_id))


class SqlBindingRepository(SqlRepository):
    """Bindings with history; one active per device and per patient."""

    def add(self, binding: Binding) -> Binding:
        """Store a new binding."""
        binding = rules.normalise(binding)
        self._check(binding, own_id=None)
        row = BindingRow(**_binding_values(binding))
        self._session.add(row)
        self._flush(_binding_messages(binding))
        return _binding(row)

    def active_for_device(self, device_id: str) -> Binding | None:
        """The device's active binding."""
        statement = select(BindingRow).where(col(BindingRow.active_device_id) == device_id)
        row = self._session.exec(statement).first()
        return None if row is None else _binding(row)

    def active_for_patient(self, patient_id: int) -> Binding | None:
        """The patient's active binding."""
        statement = select(BindingRow).where(col(BindingRow.active_patient_id) == patient_id)
        row = self._session.exec(statement).first()
        return None if row is None else _binding(row)

    def update(self, binding: Binding) -> Binding:
        """Replace the stored binding with the same id (ending it, usually)."""
        if binding.id is None:
            raise NotFoundError(rules.no_id("binding"))
        row = self._session.get(BindingRow, binding.id)
        if row is None:
            raise NotFoundError(rules.missing("binding", binding.id))
        binding = rules.normalise(binding)
        self._check(binding, own_id=binding.id)
        row.sqlmodel_update(_binding_values(binding))
        self._flush(_binding_messages(binding))
        return _binding(row)

    def history(self, *, device_id: str | None = None, patient_id: int | None = None) -> list[Binding]:
        """Bindings of the device and/or patient, oldest first."""
        statement = select(BindingRow).order_by(col(BindingRow.bound_at), col(BindingRow.id))
        if device_id is not None:
            statement = statement.where(col(BindingRow.device_id) == device_id)
        if patient_id is not None:
            statement = statement.where(col(BindingRow.patient_id) == patient_id)
        return [_binding(row) for row in self._session.exec(statement)]

    def _check(self, binding: Binding, *, own_id: int | None) -> None:
        if not self._device_exists(binding.device_id):
            raise NotFoundError(rules.missing("device", binding.device_id))
        if not self._patient_exists(binding.patient_id):
            raise NotFoundError(rules.missing("patient", binding.patient_id))
        if not binding.active:
            return
        other = self.active_for_device(binding.device_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.device_already_bound(binding.device_id))
        other = self.active_for_patient(binding.patient_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.patient_already_bound(binding.patient_id))


@cache
def _update_device(names: tuple[str, ...]) -> sa.Update:
    """``UPDATE ... SET <names> WHERE device_id = :b_device_id`` (bind names ``b_<column>``), built once."""
    table = metadata.tables[DeviceRow.__tablename__]
    return (
        sa.update(table)
        .where(table.c.device_id == sa.bindparam("b_device_id"))
        .values({name: sa.bindparam(f"b_{name}", type_=table.c[name].type) for name in names})
    )


def _device_values(device: Device) -> dict[str, Any]:
    presence = device.presence
    return {
        "device_id": device.device_id,
        "serial": device.serial,
        "family": device.family.value,
        "model": device.model,
        "status": device.status.value,
        "firmware": device.firmware,
        "public_key": device.public_key,
        "kid": device.kid,
        "certificate_pem": device.certificate_pem,
        "certificate_serial": None if device.certificate_serial is None else str(device.certificate_serial),
        "registered_at": device.registered_at,
        "enrolled_at": device.enrolled_at,
        "retired_at": device.retired_at,
        "online": presence.online,
        "last_seen_at": presence.last_seen_at,
        "online_since": presence.since,
        "boot_id": presence.boot_id,
        "connection": presence.connection,
        "last_seq": presence.last_seq,
        "battery_pct": presence.battery_pct,
        "on_mains": presence.on_mains,
        "schedule_version": presence.schedule_version,
        "capabilities": list(presence.capabilities),
        "supply_doses_left": presence.supply_doses_left,
        "supply_until": presence.supply_until,
        "reported_firmware": presence.firmware,
    }


def _device(row: DeviceRow) -> Device:
    return Device(
        device_id=row.device_id,
        serial=row.serial,
        family=Family(row.family),
        model=row.model,
        status=DeviceStatus(row.status),
        firmware=row.firmware,
        public_key=row.public_key,
        kid=row.kid,
        certificate_pem=row.certificate_pem,
        certificate_serial=None if row.certificate_serial is None else int(row.certificate_serial),
        registered_at=row.registered_at,
        enrolled_at=row.enrolled_at,
        retired_at=row.retired_at,
        presence=Presence(
            online=row.online,
            last_seen_at=row.last_seen_at,
            since=row.online_since,
            boot_id=row.boot_id,
            connection=row.connection,
            last_seq=row.last_seq,
            battery_pct=row.battery_pct,
            on_mains=row.on_mains,
            schedule_version=row.schedule_version,
            capabilities=tuple(row.capabilities),
            supply_doses_left=row.supply_doses_left,
            supply_until=row.supply_until,
            firmware=row.reported_firmware,
        ),
    )


def _code_values(code: EnrollmentCode) -> dict[str, Any]:
    return {
        "device_id": code.device_id,
        "code_hash": code.code_hash,
        "expires_at": code.expires_at,
        "created_at": code.created_at,
        "created_by": code.created_by,
        "used_at": code.used_at,
    }


def _code(row: EnrollmentCodeRow) -> EnrollmentCode:
    return EnrollmentCode(
        device_id=row.device_id,
        code_hash=row.code_hash,
        expires_at=row.expires_at,
        created_at=row.created_at,
        created_by=row.created_by,
        used_at=row.used_at,
        id=row.id,
    )


def _binding_values(binding: Binding) -> dict[str, Any]:
    return {
        "device_id": binding.device_id,
        "patient_id": binding.patient_id,
        "bound_at": binding.bound_at,
        "bound_by": binding.bound_by,
        "reason": binding.reason,
        "unbound_at": binding.unbound_at,
        "unbound_by": binding.unbound_by,
        "unbind_reason": binding.unbind_reason,
        "active_device_id": rules.binding_active_device(binding),
        "active_patient_id": rules.binding_active_patient(binding),
    }


def _binding_messages(binding: Binding) -> dict[str, str]:
    return {
        "uq_binding_active_device_id": rules.device_already_bound(binding.device_id),
        "uq_binding_active_patient_id": rules.patient_already_bound(binding.patient_id),
    }


def _binding(row: BindingRow) -> Binding:
    return Binding(
        device_id=row.device_id,
        patient_id=row.patient_id,
        bound_at=row.bound_at,
        bound_by=row.bound_by,
        reason=row.reason,
        unbound_at=row.unbound_at,
        unbound_by=row.unbound_by,
        unbind_reason=row.unbind_reason,
        id=row.id,
    )
