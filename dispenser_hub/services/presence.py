"""The no-contact check: a device silent longer than allowed raises one ``no_contact`` alarm (VKP 3.10).

Rules: only devices in service (enrolled or active, not retired) are checked; silence is measured from
the last valid message the hub received (``Presence.last_seen_at``), or from enrollment for a device never
heard from. The alarm deduplicates (one per device however often the sweep runs) and is resolved by the
device's next birth (``domain.presence``). Run ``sweep`` from a timer.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import DeviceStatus
from dispenser_hub.domain.presence import silence_condition
from dispenser_hub.services.alarm_records import raise_alarm

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from dispenser_hub.domain.model import Device
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory


class PresenceMonitor:
    """Raises ``no_contact`` for silent devices."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, *, allowed_silence: timedelta) -> None:
        """Allow ``allowed_silence`` without a message before raising the alarm."""
        self._uow_factory = uow_factory
        self._clock = clock
        self.allowed_silence = allowed_silence

    def sweep(self) -> int:
        """Raise or refresh the alarm of every silent device; returns how many newly raised."""
        now = self._clock.now().astimezone(UTC)
        raised = 0
        cutoff = now - self.allowed_silence
        with self._uow_factory() as uow:
            for device in [*uow.devices.silent_since(cutoff), *_never_heard_since(uow, cutoff)]:
                if device.status not in {DeviceStatus.ENROLLED, DeviceStatus.ACTIVE}:
                    continue
                binding = uow.bindings.active_for_device(device.device_id)
                condition = silence_condition(
                    device.device_id,
                    device.presence.last_seen_at or device.enrolled_at,
                    patient_id=binding.patient_id if binding else None,
                    now=now,
                )
                existing = uow.alarms.open_by_key(condition.dedup_key)
                if existing is not None:
                    continue  # one alarm per silence; the sweep does not count repeats
                raise_alarm(uow, condition, now)
                raised += 1
            uow.commit()
        return raised


PAGE = 500


def _never_heard_since(uow: UnitOfWork, cutoff: datetime) -> Iterator[Device]:
    """Enrolled devices that never sent a valid message after enrolling, enrolled before ``cutoff``."""
    offset = 0
    while page := uow.devices.select(status=DeviceStatus.ENROLLED, offset=offset, limit=PAGE):
        for device in page:
            enrolled = device.enrolled_at
            if device.presence.last_seen_at is None and enrolled is not None and enrolled < cutoff:
                yield device
        offset += PAGE
