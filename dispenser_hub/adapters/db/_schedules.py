"""SQL repository of schedules: per-patient dose settings and pauses, per-device schedule state.

Same rules, orders and errors as ``adapters.memory._schedules`` (the contract suite checks both):

* References are checked first: ``NotFoundError`` for an unknown patient or device (and for the update of a
  pause that is not stored). Every time is stored and returned in UTC.
* Settings and device schedules are replaced whole: one row per patient (``dose_settings``) and per device
  (``device_schedule``), updated in place when it exists. ``DoseWindow`` durations are whole seconds.
* Pauses come back by start, then id; ``ending_after`` keeps those whose (planned) end is strictly later.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository
from dispenser_hub.adapters.db.tables import DeviceScheduleRow, DoseSettingsRow, PauseRow
from dispenser_hub.domain.model import DeviceSchedule, DoseSettings, PauseRecord
from dispenser_hub.domain.schedules import DoseWindow, Pause
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from datetime import datetime


class SqlScheduleRepository(SqlRepository):
    """Dose settings, pauses and device schedule state (see the module docstring)."""

    # -- dose settings ----------------------------------------------------------------------------------

    def settings(self, patient_id: int) -> DoseSettings | None:
        """The patient's dose settings."""
        row = self._session.get(DoseSettingsRow, patient_id)
        return None if row is None else _settings(row)

    def put_settings(self, settings: DoseSettings) -> DoseSettings:
        """Store (replace) the patient's settings."""
        if not self._patient_exists(settings.patient_id):
            raise NotFoundError(rules.missing("patient", settings.patient_id))
        stored = rules.normalise(settings)
        values = _settings_values(stored)
        row = self._session.get(DoseSettingsRow, stored.patient_id)
        if row is None:
            row = DoseSettingsRow(**values)
            self._session.add(row)
        else:
            row.sqlmodel_update(values)
        self._flush({})
        return _settings(row)

    # -- pauses -----------------------------------------------------------------------------------------

    def add_pause(self, record: PauseRecord) -> PauseRecord:
        """Store a new pause."""
        if not self._patient_exists(record.patient_id):
            raise NotFoundError(rules.missing("patient", record.patient_id))
        row = PauseRow(**_pause_values(rules.normalise(record)))
        self._session.add(row)
        self._flush({})
        return _pause(row)

    def get_pause(self, pause_id: int) -> PauseRecord | None:
        """The pause with this id."""
        row = self._session.get(PauseRow, pause_id)
        return None if row is None else _pause(row)

    def update_pause(self, record: PauseRecord) -> PauseRecord:
        """Replace the stored pause with the same id."""
        row = None if record.id is None else self._session.get(PauseRow, record.id)
        if row is None:
            raise NotFoundError(rules.missing("pause", record.id))
        if not self._patient_exists(record.patient_id):
            raise NotFoundError(rules.missing("patient", record.patient_id))
        row.sqlmodel_update(_pause_values(rules.normalise(record)))
        self._flush({})
        return _pause(row)

    def pauses(self, patient_id: int, *, ending_after: datetime | None = None) -> list[PauseRecord]:
        """The patient's pauses by start, then id; optionally only those ending after ``ending_after``."""
        statement = (
            select(PauseRow)
            .where(col(PauseRow.patient_id) == patient_id)
            .order_by(col(PauseRow.start_at), col(PauseRow.id))
        )
        if ending_after is not None:
            after = rules.aware_utc(ending_after, "ending_after")
            statement = statement.where(col(PauseRow.end_at) > after)
        return [_pause(row) for row in self._session.exec(statement)]

    # -- device schedules -------------------------------------------------------------------------------

    def device_schedule(self, device_id: str) -> DeviceSchedule | None:
        """The device's schedule state."""
        row = self._session.get(DeviceScheduleRow, device_id)
        return None if row is None else _device_schedule(row)

    def put_device_schedule(self, schedule: DeviceSchedule) -> DeviceSchedule:
        """Store (replace) the device's schedule state."""
        if not self._device_exists(schedule.device_id):
            raise NotFoundError(rules.missing("device", schedule.device_id))
        stored = rules.normalise(schedule)
        values = _device_schedule_values(stored)
        row = self._session.get(DeviceScheduleRow, stored.device_id)
        if row is None:
            row = DeviceScheduleRow(**values)
            self._session.add(row)
        else:
            row.sqlmodel_update(values)
        self._flush({})
        return _device_schedule(row)


def _seconds(value: timedelta) -> int:
    """A whole-second duration (``DoseWindow`` accepts no other) as an integer."""
    return value // timedelta(seconds=1)


def _settings_values(settings: DoseSettings) -> dict[str, Any]:
    window = settings.window
    return {
        "patient_id": settings.patient_id,
        "early_s": _seconds(window.early),
        "late_s": _seconds(window.late),
        "notice_before_s": _seconds(window.notice_before),
        "sound_after_s": _seconds(window.sound_after),
        "repeat_every_s": _seconds(window.repeat_every),
        "repeat_max": window.repeat_max,
        "updated_at": settings.updated_at,
        "updated_by": settings.updated_by,
    }


def _settings(row: DoseSettingsRow) -> DoseSettings:
    window = DoseWindow(
        early=timedelta(seconds=row.early_s),
        late=timedelta(seconds=row.late_s),
        notice_before=timedelta(seconds=row.notice_before_s),
        sound_after=timedelta(seconds=row.sound_after_s),
        repeat_every=timedelta(seconds=row.repeat_every_s),
        repeat_max=row.repeat_max,
    )
    return DoseSettings(
        patient_id=row.patient_id, window=window, updated_at=row.updated_at, updated_by=row.updated_by
    )


def _pause_values(record: PauseRecord) -> dict[str, Any]:
    return {
        "patient_id": record.patient_id,
        "start_at": record.pause.start,
        "end_at": record.pause.end,
        "reason": record.pause.reason,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "ended_at": record.ended_at,
        "ended_by": record.ended_by,
    }


def _pause(row: PauseRow) -> PauseRecord:
    return PauseRecord(
        patient_id=row.patient_id,
        pause=Pause(start=row.start_at, end=row.end_at, reason=row.reason),
        created_at=row.created_at,
        created_by=row.created_by,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        id=row.id,
    )


def _device_schedule_values(schedule: DeviceSchedule) -> dict[str, Any]:
    return {
        "device_id": schedule.device_id,
        "version": schedule.version,
        "digest": schedule.digest,
        "config": schedule.config,
        "built_at": schedule.built_at,
        "command_msg_id": schedule.command_msg_id,
        "slots": schedule.slots,
        "first_due": schedule.first_due,
        "last_due": schedule.last_due,
        "applied_version": schedule.applied_version,
        "applied_at": schedule.applied_at,
        "rejected_version": schedule.rejected_version,
        "rejected_reason": schedule.rejected_reason,
    }


def _device_schedule(row: DeviceScheduleRow) -> DeviceSchedule:
    return DeviceSchedule(
        device_id=row.device_id,
        version=row.version,
        digest=row.digest,
        config=rules.json_copy(row.config, "device_schedule.config"),
        built_at=row.built_at,
        command_msg_id=row.command_msg_id,
        slots=row.slots,
        first_due=row.first_due,
        last_due=row.last_due,
        applied_version=row.applied_version,
        applied_at=row.applied_at,
        rejected_version=row.rejected_version,
        rejected_reason=row.rejected_reason,
    )
