"""Dose records: every slot a dispenser is sent becomes a ``Dose`` that ends in one terminal outcome.

Rules (the transitions are ``domain.doses``; this service stores them and keeps their deadlines):

- **From the schedule.** When a dispenser's schedule is built (``ScheduleService.refresh``), each slot whose
  window is still open becomes a ``SCHEDULED`` dose if it has no record yet, with a deadline
  (``dose.close``, one per window end) at the window's end plus ``REPORT_GRACE`` (the device reports
  ``dose.not_taken`` itself at the window's end; the grace lets that report, with its reason, arrive
  first). A record whose window moved gets the new window and a new deadline (the old one finds nothing to
  do). A slot that comes back after its record was cancelled (slot ids repeat: they name the due time)
  gets a fresh record (``_fresh``). An open dose that is no longer in the schedule (a pause, a plan change,
  the dispenser unbound) is ``CANCELLED`` with the reason, unless it is presented. Deadlines are never
  cancelled: a deadline that finds its dose closed does nothing, which keeps every path simple.
- **From the device.** Dose events (reminder, presented, taken, not taken, not dispensed, assisted,
  pre-dispensed) apply to the record of their slot at the message's own time. A report proves contact, so
  the alarm it raises is not inhibited; late truth resolves the alarms it names, unless another dose of
  the patient still keeps the same alarm open (``doses.kinds_to_resolve``). A report for a slot the hub
  has no record of (a config older than the hub's database) is logged and left alone.
- **At the deadline.** ``on_close`` (the ``dose.close`` deadline handler): a dose still open is closed as
  ``UNKNOWN`` without an alarm when the dispenser is silent (offline, retired from the registry, or its
  "no contact" alarm open: that alarm covers its doses), else ``MISSED`` with the missed-dose alarm (VKP
  3.3).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain import doses
from dispenser_hub.domain.model import Deadline, SubjectKind
from dispenser_hub.domain.pouches import from_ms, to_ms
from dispenser_hub.domain.presence import NO_CONTACT
from dispenser_hub.services.alarm_records import end_alarm, raise_alarm

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Device
    from dispenser_hub.domain.schedules import Schedule
    from dispenser_hub.ports import UnitOfWork
    from firmware_protocol import Envelope
    from firmware_protocol.messages.common import Body

_log = logging.getLogger(__name__)
CLOSE: Final = "dose.close"
"""Deadline kind: a dose's window has ended (plus the grace for the device's own report)."""
REPORT_GRACE: Final = timedelta(minutes=5)


def _no_contact_key(device_id: str) -> str:
    return f"{SubjectKind.DEVICE.value}:{device_id}:{NO_CONTACT}"


def close_key(dose: doses.Dose) -> str:
    """The key of the dose's closing deadline: one per window end (a moved window gets a new one)."""
    return f"{CLOSE}:{dose.key}:{to_ms(dose.closes)}"


def _fresh(existing: doses.Dose, slot_dose: doses.Dose) -> bool:
    """Whether the slot's dose replaces the stored record of the same (device, slot id).

    Slot ids repeat (they name the due time), so a slot can come back after its record was cancelled (a
    pause withdrawn, a roll put back, a rebinding): a plan cancellation gives way to the slot, and so does
    an open record whose patient, pouch or pot is not the slot's. An outcome that happened (taken,
    missed, skipped, unknown, pre-dispensed for a trip) is never overwritten.
    """
    if existing.state is doses.DoseState.CANCELLED:
        return existing.reason != doses.PREDISPENSED
    if existing.state not in doses.OPEN:
        return False
    same = (existing.patient_id, existing.pouch_id, existing.pot) == (
        slot_dose.patient_id,
        slot_dose.pouch_id,
        slot_dose.pot,
    )
    return not same


class DoseService:
    """Keeps dose records and their deadlines (see the module rules)."""

    def sync(
        self, uow: UnitOfWork, device: Device, patient_id: int | None, schedule: Schedule, now: datetime
    ) -> None:
        """Records for the slots of ``schedule`` (the device's, bound to ``patient_id``); cancel the rest.

        An open dose that left the schedule is cancelled unless it is ``PRESENTED`` (in the patient's hands or
        its pot open: the device leaves it out of the next schedule, and its outcome is still to come).
        """
        wanted = {slot.slot_id for slot in schedule.slots}
        for dose in uow.doses.for_device(device.device_id, since=now - timedelta(days=1)):
            gone = dose.slot_id not in wanted and dose.closes > now
            if gone and dose.state in doses.OPEN and dose.state is not doses.DoseState.PRESENTED:
                why = "no longer in the dispenser's schedule (pause, plan change or unbinding)"
                self._store(uow, doses.cancel(dose, reason=why, now=now), now)
        if patient_id is None:
            return
        for slot in schedule.slots:
            wanted_dose = doses.from_slot(device.device_id, patient_id, slot)
            existing = uow.doses.get(device.device_id, slot.slot_id)
            if existing is None or _fresh(existing, wanted_dose):
                stored = uow.doses.put(wanted_dose)
            elif existing.state in doses.OPEN and (existing.opens, existing.closes) != (
                slot.opens,
                slot.closes,
            ):
                stored = uow.doses.put(dataclasses.replace(existing, opens=slot.opens, closes=slot.closes))
            else:
                continue
            uow.deadlines.schedule(
                Deadline(
                    key=close_key(stored),
                    kind=CLOSE,
                    due_at=stored.closes + REPORT_GRACE,
                    created_at=now,
                    payload={"device_id": stored.device_id, "slot_id": stored.slot_id},
                )
            )

    def on_event(self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime) -> None:
        """Apply a dose event of ``device`` to its record (see the module rules)."""
        body = envelope.body
        slot_id = getattr(body, "slot_id", None)
        if not isinstance(slot_id, str):
            return
        dose = uow.doses.get(device.device_id, slot_id)
        if dose is None:
            _log.info(
                "device %s reported %s for an unscheduled slot %s", device.device_id, body.TYPE, slot_id
            )
            return
        taken_ms = getattr(body, "taken_at", None)
        reason = getattr(body, "reason", None)
        change = doses.on_event(
            dose,
            body.TYPE,
            at=from_ms(envelope.ts),
            now=now,
            taken_at=from_ms(taken_ms) if isinstance(taken_ms, int) else None,
            reason=None if reason is None else str(reason),
        )
        self._store(uow, change, now)

    def on_predispensed(
        self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime
    ) -> None:
        """The slots of a ``dose.predispensed`` left the dispenser for a trip: their doses are cancelled."""
        for slot_id in getattr(envelope.body, "slot_ids", ()):
            dose = uow.doses.get(device.device_id, str(slot_id))
            if dose is not None:
                change = doses.on_event(dose, "dose.predispensed", at=from_ms(envelope.ts), now=now)
                self._store(uow, change, now)

    def on_close(self, uow: UnitOfWork, deadline: Deadline, now: datetime) -> None:
        """The ``dose.close`` deadline handler (see the module rules); a closed dose is left as it is."""
        device_id, slot_id = str(deadline.payload["device_id"]), str(deadline.payload["slot_id"])
        dose = uow.doses.get(device_id, slot_id)
        if dose is None:
            return
        device = uow.devices.get(device_id)
        silent = (
            device is None
            or not device.presence.online
            or uow.alarms.open_by_key(_no_contact_key(device_id)) is not None
        )
        self._store(uow, doses.on_deadline(dose, now=now, device_silent=silent), now)

    @staticmethod
    def _store(uow: UnitOfWork, change: doses.DoseChange, now: datetime) -> None:
        if not change.changed:
            return
        dose = uow.doses.put(change.dose)
        if (
            change.alarm is not None
        ):  # inhibition is decided at the deadline (on_close); reports prove contact
            raise_alarm(uow, change.alarm, now)
        if change.resolve_kinds:
            still_missed = uow.doses.in_states(dose.patient_id, [doses.DoseState.MISSED])
            for kind in doses.kinds_to_resolve(change, still_missed):
                key = f"{SubjectKind.PATIENT.value}:{dose.patient_id}:{kind}"
                end_alarm(
                    uow, key, f"dose {dose.slot_id} reported taken after all ({change.transition})", now
                )
