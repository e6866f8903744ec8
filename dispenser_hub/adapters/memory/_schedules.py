"""In-memory repository of schedules: per-patient dose settings and pauses, per-device schedule state.

Same rules, orders and errors as ``adapters.db._schedules`` (the contract suite checks both): references are
checked first (``NotFoundError`` for an unknown patient or device); pauses come back by start, then id;
times in UTC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._registry import MemoryRepository
from dispenser_hub.adapters.memory._tables import stored_id
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import DeviceSchedule, DoseSettings, PauseRecord


class MemoryScheduleRepository(MemoryRepository):
    """Dose settings, pauses and device schedule state (see the module docstring)."""

    def settings(self, patient_id: int) -> DoseSettings | None:
        """The patient's dose settings."""
        return self._tables.dose_settings.rows.get(patient_id)

    def put_settings(self, settings: DoseSettings) -> DoseSettings:
        """Store (replace) the patient's settings."""
        self._require_patient(settings.patient_id)
        stored = rules.normalise(settings)
        self._tx.write().dose_settings.put(stored.patient_id, stored)
        return stored

    def add_pause(self, record: PauseRecord) -> PauseRecord:
        """Store a new pause."""
        self._require_patient(record.patient_id)
        tables = self._tx.write()
        stored = rules.with_id(rules.normalise(record), tables.next_id("pauses"))
        tables.pauses.put(stored_id(stored), stored)
        return stored

    def get_pause(self, pause_id: int) -> PauseRecord | None:
        """The pause with this id."""
        return self._tables.pauses.rows.get(pause_id)

    def update_pause(self, record: PauseRecord) -> PauseRecord:
        """Replace the stored pause with the same id."""
        if record.id is None or record.id not in self._tables.pauses.rows:
            raise NotFoundError(rules.missing("pause", record.id))
        self._require_patient(record.patient_id)
        stored = rules.normalise(record)
        self._tx.write().pauses.put(stored_id(stored), stored)
        return stored

    def pauses(self, patient_id: int, *, ending_after: datetime | None = None) -> list[PauseRecord]:
        """The patient's pauses by start, then id; optionally only those ending after ``ending_after``."""
        after = None if ending_after is None else rules.aware_utc(ending_after, "ending_after")
        rows = [
            record
            for record in self._tables.pauses.rows.values()
            if record.patient_id == patient_id and (after is None or record.pause.end > after)
        ]
        return sorted(rows, key=lambda record: (record.pause.start, stored_id(record)))

    def device_schedule(self, device_id: str) -> DeviceSchedule | None:
        """The device's schedule state."""
        return self._tables.device_schedules.rows.get(device_id)

    def put_device_schedule(self, schedule: DeviceSchedule) -> DeviceSchedule:
        """Store (replace) the device's schedule state."""
        self._require_device(schedule.device_id)
        stored = rules.normalise(schedule)
        self._tx.write().device_schedules.put(stored.device_id, stored)
        return stored
