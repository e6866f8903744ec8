"""Trays in dose-pot dispensers: the check of a loaded tray and of each opened pot.

Called by ingest for an accepted device message, inside the batch's transaction. The rules are the
domain's (``domain.dosett.judge_tray_loaded``, ``judge_pot_opened``); this service gathers the facts:

- ``tray.loaded``: the fill is the latest recorded for that tray id (a refill for another patient
  supersedes an older fill, so a stale fill can never vouch for a tray). Accepted: the dispenser's schedule
  is rebuilt from the fill's unopened pots (``ScheduleService``, which re-checks the tray the same way at
  every build). Refused: the wrong-roll alarm (VKP 3.5, the dose-pot equivalent), ``cmd.lock`` so no pot is
  opened, an audit entry; the schedule is rebuilt too (the refused tray offers nothing).
- ``pot.opened``: checked against the device's accepted fill with the patient's dose window, at the
  message's own time (a replay after an outage is judged when it happened). A pot of the fill opened for
  the first time is recorded as opened; a wrong tray, unknown pot or wrong slot raises the wrong-roll alarm;
  early or late openings and repeats are facts for the dose records, not alarms (``domain.dosett``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.alarms import SYSTEM_ACTOR
from dispenser_hub.domain.dosett import judge_pot_opened, judge_tray_loaded
from dispenser_hub.domain.model import AuditEntry, SubjectKind
from dispenser_hub.domain.pouches import from_ms
from dispenser_hub.services.alarm_records import device_condition, raise_alarm
from dispenser_hub.services.downlink import enqueue
from dispenser_hub.services.schedules import ScheduleService, dose_window
from firmware_protocol.messages import Lock, PotOpened, TrayLoaded

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Device
    from dispenser_hub.ports import UnitOfWork
    from firmware_protocol import Envelope
    from firmware_protocol.messages.common import Body

COMMAND_TTL = timedelta(hours=1)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class TrayService:
    """Tray and pot checks for ingest (see the module docstring)."""

    def __init__(self, schedules: ScheduleService | None = None) -> None:
        """Rebuild schedules with ``schedules``."""
        self._schedules = schedules or ScheduleService()

    def on_tray_loaded(
        self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime
    ) -> None:
        """Judge the tray ``envelope`` (``tray.loaded``) reports; refuse with an alarm and a lock."""
        body = envelope.body
        if not isinstance(body, TrayLoaded):
            msg = f"expected tray.loaded, got {body.TYPE}"
            raise TypeError(msg)
        binding = uow.bindings.active_for_device(device.device_id)
        record = uow.dosett.latest_fill_of_tray(body.tray_id)
        decision = judge_tray_loaded(
            None if record is None else record.fill,
            bound_patient_id=None if binding is None else binding.patient_id,
            tray_id=body.tray_id,
            pots_filled=body.pots_filled,
            now=now,
        )
        subject = f"{SubjectKind.DEVICE.value}:{device.device_id}"
        outcome = "accepted" if decision.accept else f"refused ({decision.reason}): {decision.detail}"
        uow.audit.add(
            AuditEntry(now, SYSTEM_ACTOR, "tray.verdict", subject, f"tray {body.tray_id} {outcome}")
        )
        if not decision.accept:
            if decision.alarm_kind is not None:
                patient_id = None if binding is None else binding.patient_id
                condition = device_condition(
                    decision.alarm_kind, device.device_id, patient_id, decision.detail
                )
                raise_alarm(uow, condition, now)
            lock = Lock(expires=_ms(now + COMMAND_TTL), reason=decision.detail)
            enqueue(uow, device.device_id, lock, by=SYSTEM_ACTOR, now=now, corr_id=envelope.msg_id)
        self._schedules.refresh(uow, device, now)

    def on_pot_opened(self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime) -> None:
        """Check the pot ``envelope`` (``pot.opened``) reports; record it, or alarm."""
        body = envelope.body
        if not isinstance(body, PotOpened):
            msg = f"expected pot.opened, got {body.TYPE}"
            raise TypeError(msg)
        binding = uow.bindings.active_for_device(device.device_id)
        patient_id = None if binding is None else binding.patient_id
        record = self._schedules.accepted_fill(uow, device, from_ms(envelope.ts))
        window = dose_window(uow, patient_id)
        opened = frozenset[int]() if record is None or record.id is None else uow.dosett.opened(record.id)
        decision = judge_pot_opened(
            None if record is None else record.fill,
            tray_id=body.tray_id,
            pot=body.pot,
            slot_id=body.slot_id,
            opened_at=from_ms(envelope.ts),
            opened_before=opened,
            opens_early=window.early,
            closes_after=window.late,
        )
        if decision.mark_opened and record is not None and record.id is not None:
            uow.dosett.mark_opened(record.id, body.pot, from_ms(envelope.ts))
        if decision.alarm_kind is not None:
            condition = device_condition(decision.alarm_kind, device.device_id, patient_id, decision.detail)
            raise_alarm(uow, condition, now)
