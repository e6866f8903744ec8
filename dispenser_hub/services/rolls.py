"""Rolls in dispensers: the verdict on a loaded roll, the check of each scanned pouch, the end of a roll.

Called by ingest (``IngestService._act``) for an accepted device message, inside the batch's transaction,
so the facts read, the load stored, the alarm raised and the command queued commit together or not at all.
The rules are the domain's (``domain.rolls.judge_roll``, ``domain.pouches.judge_pouch``); this service
gathers the facts from storage and carries the decision out.

``roll.loaded`` (``on_roll_loaded``):

- Facts: the dispenser's bound patient (``BoundPatient``), the roll's manifest, the active load of that
  roll in another dispenser, the patient's latest load (any dispenser, active or ended) and whether the
  roll was withdrawn.
- Accepted: a re-load of the dispenser's own active load (same roll, same patient: the lid was opened)
  continues that load; nothing new is stored. Otherwise the new load is started and stored. If the
  dispenser still has another active load, that load ends first, with a reason that states what the hub
  knows and **never** ``replaced``: ``replaced`` is a person's record that explains an overlap
  (``EXPLAINS_OVERLAP``), and ending a load "replaced" merely because another roll was reported would
  defeat the overlap rule (``domain.rolls``, rule 9). The verdict was reached without any help from
  this end: the new roll joins the old one (no overlap), or the overlap had been explained already.
  The reason is ``NEXT_ROLL_ACCEPTED`` when the old load is the bound patient's, ``unbound`` when it was
  accepted for another patient (the dispenser was rebound and nobody ended it). Neither explains an
  overlap later.
- A signed ``cmd.roll_verdict`` answers the report (``corr_id`` is the report's ``msg_id``), accept or
  refuse with the reason and the detail to show. A refusal keeps the device locked (the protocol's rule
  for an unaccepted roll) and, when the decision says so, raises the wrong-roll alarm (VKP 3.5) on the
  dispenser, with the bound patient's id as a reference and a detail without patient data.
- Every verdict (and every load ended here) gets an audit entry by ``system``.

``pouch.scanned`` (``on_pouch_scanned``): ``judge_pouch`` with the dispenser's active load, its manifest
and the pouches dispensed from it. Accepted: the pouch is recorded as dispensed. Refused: the wrong-roll
alarm, and ``cmd.lock`` so the device does not present it.

The "next due slot" passed to the pouch check is the first slot of the dispenser's schedule
(``ScheduleService.build``: the accepted roll's pouches, the patient's window, pauses) whose window has not
closed at the scan's time and whose pouch has not been dispensed. The scan's time is the message's own
timestamp (signed by the device, skew-checked), so a scan replayed after an outage is judged at the moment
it happened. A pouch whose window closed undispensed (a missed dose) does not block the ones after it; a
pouch in a pause is no slot at all, so it is refused.

``roll.empty`` (``on_roll_empty``): the dispenser's active load of that roll ends ``empty``.

Commands expire after ``COMMAND_TTL`` like ingest's other commands.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.alarms import SYSTEM_ACTOR
from dispenser_hub.domain.model import AuditEntry, SubjectKind
from dispenser_hub.domain.pouches import WRONG_ROLL, PouchScan, from_ms, judge_pouch
from dispenser_hub.domain.rolls import (
    BoundPatient,
    ReportedRoll,
    RollEndReason,
    end_load,
    judge_roll,
    start_load,
)
from dispenser_hub.services.alarm_records import device_condition, raise_alarm
from dispenser_hub.services.downlink import enqueue
from dispenser_hub.services.schedules import ScheduleService
from firmware_protocol.messages import Lock, PouchScanned, RollEmpty, RollLoaded, RollVerdict

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Device
    from dispenser_hub.domain.rolls import RollLoad
    from dispenser_hub.ports import UnitOfWork
    from firmware_protocol import Envelope
    from firmware_protocol.messages.common import Body

_log = logging.getLogger(__name__)

COMMAND_TTL: Final = timedelta(hours=1)
"""How long a roll verdict or lock stays valid (as ingest's other commands)."""
NEXT_ROLL_ACCEPTED: Final = "next_roll_accepted"
"""End reason of a load when the dispenser's next roll was accepted after it (not ``replaced``: see the
module docstring)."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _bound_patient(uow: UnitOfWork, device_id: str) -> BoundPatient | None:
    binding = uow.bindings.active_for_device(device_id)
    if binding is None:
        return None
    patient = uow.patients.get(binding.patient_id)
    if patient is None:  # storage guarantees it; no patient means nobody to compare with
        _log.error("binding of device %s names patient %s, who is not stored", device_id, binding.patient_id)
        return None
    return BoundPatient.of(patient)


class RollService:
    """Roll verdicts, pouch checks and roll ends for ingest (see the module docstring)."""

    def __init__(self, schedules: ScheduleService | None = None) -> None:
        """The next due slot of a dispenser comes from ``schedules``."""
        self._schedules = schedules or ScheduleService()

    def _next_due(
        self, uow: UnitOfWork, device: Device, dispensed: frozenset[str], at: datetime
    ) -> datetime | None:
        """The due time of the dispenser's next due slot at ``at`` (see the module docstring)."""
        schedule, _, _ = self._schedules.build(uow, device, at)
        return next(
            (
                slot.due
                for slot in schedule.slots
                if slot.pouch_id is not None and slot.pouch_id not in dispensed
            ),
            None,
        )

    def on_roll_loaded(
        self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime
    ) -> None:
        """Judge the roll ``envelope`` (``roll.loaded``) reports, store the load and answer the device."""
        body = envelope.body
        if not isinstance(body, RollLoaded):
            msg = f"expected roll.loaded, got {body.TYPE}"
            raise TypeError(msg)
        device_id = device.device_id
        reported = ReportedRoll.from_message(body)
        patient = _bound_patient(uow, device_id)
        manifest = uow.rolls.manifest(reported.roll_id)
        elsewhere = uow.rolls.active_load_of_roll(reported.roll_id)
        if elsewhere is not None and elsewhere.device_id == device_id:
            elsewhere = None
        previous = None if patient is None else uow.rolls.latest_load_for_patient(patient.patient_id)
        decision = judge_roll(
            device_id=device_id,
            patient=patient,
            manifest=manifest,
            reported=reported,
            active_elsewhere=elsewhere,
            previous=previous,
            withdrawn=uow.rolls.was_withdrawn(reported.roll_id),
            now=now,
        )
        if decision.accept:
            assert patient is not None  # noqa: S101 - judge_roll accepts only for a bound patient
            assert manifest is not None  # noqa: S101 - ... and with a manifest
            current = uow.rolls.active_load_for_device(device_id)
            reload = (
                current is not None
                and current.roll_id == manifest.roll_id
                and current.patient_id == patient.patient_id
            )
            if current is not None and not reload:
                reason = (
                    NEXT_ROLL_ACCEPTED if current.patient_id == patient.patient_id else RollEndReason.UNBOUND
                )
                self._end(uow, current, reason, now)
            if not reload:
                uow.rolls.add_load(
                    start_load(manifest, device_id=device_id, patient_id=patient.patient_id, now=now)
                )
            verdict = RollVerdict(expires=_ms(now + COMMAND_TTL), roll_id=reported.roll_id, accept=True)
            outcome = "accepted (re-load)" if reload else "accepted"
        else:
            assert decision.reason is not None  # noqa: S101 - a refusal has a reason (RollDecision)
            verdict = RollVerdict(
                expires=_ms(now + COMMAND_TTL),
                roll_id=reported.roll_id,
                accept=False,
                reason=decision.reason,
                detail=decision.detail,
            )
            outcome = f"refused ({decision.reason.value})"
            if decision.alarm:
                self._wrong_roll(uow, device_id, patient, decision.detail, now)
        enqueue(uow, device_id, verdict, by=SYSTEM_ACTOR, now=now, corr_id=envelope.msg_id)
        uow.audit.add(
            AuditEntry(
                now,
                SYSTEM_ACTOR,
                "roll.verdict",
                f"{SubjectKind.DEVICE.value}:{device_id}",
                f"roll {reported.roll_id} {outcome}: {decision.detail}",
            )
        )

    def on_pouch_scanned(
        self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime
    ) -> None:
        """Check the pouch ``envelope`` (``pouch.scanned``) reports; record it, or alarm and lock."""
        body = envelope.body
        if not isinstance(body, PouchScanned):
            msg = f"expected pouch.scanned, got {body.TYPE}"
            raise TypeError(msg)
        device_id = device.device_id
        scan = PouchScan.from_message(body)
        patient = _bound_patient(uow, device_id)
        load = uow.rolls.active_load_for_device(device_id)
        manifest = None if load is None else uow.rolls.manifest(load.roll_id)
        dispensed = frozenset[str]() if load is None else uow.rolls.dispensed(load.roll_id)
        decision = judge_pouch(
            device_id=device_id,
            patient=patient,
            load=load,
            manifest=manifest,
            scan=scan,
            dispensed=dispensed,
            next_due_at=self._next_due(uow, device, dispensed, from_ms(envelope.ts)),
        )
        if decision.ok:
            assert load is not None  # noqa: S101 - judge_pouch accepts only from an active load
            uow.rolls.mark_dispensed(load.roll_id, scan.pouch_id, device_id=device_id, at=now)
            return
        self._wrong_roll(uow, device_id, patient, decision.detail, now)
        lock = Lock(expires=_ms(now + COMMAND_TTL), reason=decision.detail)
        enqueue(uow, device_id, lock, by=SYSTEM_ACTOR, now=now, corr_id=envelope.msg_id)
        uow.audit.add(
            AuditEntry(
                now,
                SYSTEM_ACTOR,
                "device.lock",
                f"{SubjectKind.DEVICE.value}:{device_id}",
                f"pouch {scan.pouch_id} of roll {scan.roll_id} refused: {decision.detail}",
            )
        )

    def on_roll_empty(self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime) -> None:
        """End the dispenser's active load of the roll ``envelope`` (``roll.empty``) reports, ``empty``."""
        body = envelope.body
        if not isinstance(body, RollEmpty):
            msg = f"expected roll.empty, got {body.TYPE}"
            raise TypeError(msg)
        load = uow.rolls.active_load_for_device(device.device_id)
        if load is None or load.roll_id != body.roll_id:
            _log.info(
                "device %s reported roll %s empty; it has no such active load", device.device_id, body.roll_id
            )
            return
        self._end(uow, load, RollEndReason.EMPTY, now)

    @staticmethod
    def _end(uow: UnitOfWork, load: RollLoad, reason: str, now: datetime) -> None:
        uow.rolls.update_load(end_load(load, reason=reason, now=now))
        uow.audit.add(
            AuditEntry(
                now,
                SYSTEM_ACTOR,
                "roll.end",
                f"{SubjectKind.DEVICE.value}:{load.device_id}",
                f"roll {load.roll_id} ended: {reason}",
            )
        )

    @staticmethod
    def _wrong_roll(
        uow: UnitOfWork, device_id: str, patient: BoundPatient | None, detail: str, now: datetime
    ) -> None:
        patient_id = None if patient is None else patient.patient_id
        raise_alarm(uow, device_condition(WRONG_ROLL, device_id, patient_id, detail), now)
