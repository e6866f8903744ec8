"""Supply forecasting: each patient's roll or tray, when it runs out, and the refill warnings (VKP 3.25).

``SupplyService`` keeps the forecast (``SupplyRecord``) inside a caller's transaction: a new roll or tray
in use (``set_source``), a device's almost-empty and empty reports (``almost_empty``, ``empty``), and a
patient without a dispenser supply any more (``clear``). ``SupplySweep`` is the timer's side: it raises
the refill-needed alarm for every warning whose time has come (``domain.supply``: stages, quiet hours) and
records its key, so each stage notifies once, also across restarts.

The alarm is about the patient (one open per patient, dedup key of ``RefillWarning.condition``); a later
stage counts a repeat on it. It ends when a new roll or tray covers the patient beyond the first stage,
or when the patient has no dispenser supply any more. Its detail carries no patient data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import SubjectKind, SupplyRecord
from dispenser_hub.domain.supply import (
    REFILL_NEEDED,
    QuietHours,
    RefillPolicy,
    Supply,
    due_warnings,
    refill_warnings,
)
from dispenser_hub.services.alarm_records import end_alarm, raise_alarm

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.supply import RefillWarning, SupplySource
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory

COVERED = "a new roll or tray covers the patient"
"""Resolution of the refill alarm when a new supply runs out beyond the first stage."""
NO_SOURCE = "the patient has no dispenser supply any more"
"""Resolution of the refill alarm when the patient's dispenser is unbound."""
_MARGIN = timedelta(days=1)


def refill_key(patient_id: int) -> str:
    """The dedup key of the patient's refill-needed alarm (as ``RefillWarning.condition`` makes it)."""
    return f"{SubjectKind.PATIENT.value}:{patient_id}:{REFILL_NEEDED}"


@dataclass(frozen=True, slots=True)
class SupplyView:
    """What the API shows: the stored record (``None``: nothing known) and the next warning not sent."""

    record: SupplyRecord | None
    next_warning_at: datetime | None


class SupplyService:
    """Supply forecasts and refill warnings; every method runs inside the caller's transaction."""

    def __init__(self, policy: RefillPolicy | None = None, quiet: QuietHours | None = None) -> None:
        """Warn by ``policy`` (72 h and 24 h ahead by default), outside ``quiet`` (22:00-07:00 Oslo)."""
        self.policy = policy or RefillPolicy()
        self.quiet = quiet or QuietHours()

    @property
    def horizon(self) -> timedelta:
        """How far ahead a supply can have a warning due: the longest lead (plus a day's margin)."""
        return max(self.policy.leads) + _MARGIN

    # -- changes ------------------------------------------------------------------------------------------

    def set_source(
        self,
        uow: UnitOfWork,
        patient_id: int,
        *,
        source: SupplySource,
        source_id: str,
        runs_out_at: datetime | None,
        doses_left: int | None,
        now: datetime,
    ) -> SupplyRecord:
        """A new roll or tray in use: it is the supply from now on.

        The warnings sent are kept for the same ``source_id`` (a stage already sent for this roll is not
        sent again) and dropped for another (a new roll starts fresh). When the new supply runs out after
        its first stage's nominal time still to come, the open refill alarm ends.
        """
        supply = Supply(patient_id, source, source_id, runs_out_at, doses_left)
        current = uow.supplies.supply(patient_id)
        same = current is not None and current.supply.source_id == source_id
        sent = current.sent if current is not None and same else frozenset()
        stored = uow.supplies.put_supply(SupplyRecord(supply, now, sent))
        if runs_out_at is not None and runs_out_at - self.policy.leads[0] > now:
            end_alarm(uow, refill_key(patient_id), COVERED, now)
        return stored

    def almost_empty(
        self,
        uow: UnitOfWork,
        patient_id: int,
        *,
        source_id: str,
        doses_left: int,
        until: datetime,
        now: datetime,
        source: SupplySource = "roll",
    ) -> SupplyRecord:
        """Apply a device's almost-empty report (``Supply.after_almost_empty``).

        Without a record the report is the forecast (of a ``source``, roll by default); a report about
        another roll or tray than the record's is stale and changes nothing.
        """
        current = uow.supplies.supply(patient_id)
        if current is None:
            supply = Supply(patient_id, source, source_id, until, doses_left)
            return uow.supplies.put_supply(SupplyRecord(supply, now))
        changed = current.supply.after_almost_empty(source_id, doses_left, until)
        if changed == current.supply:
            return current
        return uow.supplies.put_supply(dataclasses.replace(current, supply=changed, updated_at=now))

    def empty(
        self,
        uow: UnitOfWork,
        patient_id: int,
        *,
        source_id: str,
        now: datetime,
        source: SupplySource = "roll",
    ) -> SupplyRecord:
        """Apply a device's empty report (``Supply.after_empty``): the supply runs out now."""
        current = uow.supplies.supply(patient_id)
        if current is None:
            supply = Supply(patient_id, source, source_id, now, 0)
            return uow.supplies.put_supply(SupplyRecord(supply, now))
        changed = current.supply.after_empty(source_id, now=now)
        if changed == current.supply:
            return current
        return uow.supplies.put_supply(dataclasses.replace(current, supply=changed, updated_at=now))

    def clear(self, uow: UnitOfWork, patient_id: int, now: datetime) -> SupplyRecord | None:
        """The patient has no dispenser supply any more (unbound): no forecast, the refill alarm ends.

        The record keeps its source and the warnings sent, with ``runs_out_at`` and ``doses_left`` unknown
        (no warnings); ``None`` when there was no record.
        """
        end_alarm(uow, refill_key(patient_id), NO_SOURCE, now)
        current = uow.supplies.supply(patient_id)
        if current is None:
            return None
        if current.supply.runs_out_at is None and current.supply.doses_left is None:
            return current
        supply = dataclasses.replace(current.supply, runs_out_at=None, doses_left=None)
        return uow.supplies.put_supply(dataclasses.replace(current, supply=supply, updated_at=now))

    # -- warnings -----------------------------------------------------------------------------------------

    def due(self, record: SupplyRecord, now: datetime) -> list[RefillWarning]:
        """The record's warnings whose time has come and that were not sent."""
        return due_warnings(record.supply, self.policy, self.quiet, now=now, sent=record.sent)

    def next_warning_at(self, record: SupplyRecord, now: datetime) -> datetime | None:
        """When the next warning not sent is (``now`` if one is due), ``None`` if there is none."""
        times = [
            warning.at
            for warning in refill_warnings(record.supply, self.policy, self.quiet, now=now)
            if warning.key not in record.sent
        ]
        return min(times, default=None)

    def sent_stages(self, record: SupplyRecord) -> list[int]:
        """The stages (0 = first) of the record's roll or tray whose warning was sent, in order."""
        prefix = f"refill:{record.supply.patient_id}:{record.supply.source_id}:"  # RefillWarning.key
        rests = [key[len(prefix) :] for key in record.sent if key.startswith(prefix)]
        return sorted({int(rest) for rest in rests if rest.isdecimal()})

    def notify_due(self, uow: UnitOfWork, record: SupplyRecord, now: datetime) -> int:
        """Raise the refill alarm for each due warning, record their keys; returns how many raised."""
        warnings = self.due(record, now)
        if not warnings:
            return 0
        patient_id = record.supply.patient_id
        binding = uow.bindings.active_for_patient(patient_id)
        device_id = binding.device_id if binding is not None else None
        for warning in warnings:
            raise_alarm(uow, warning.condition(device_id), now)
        sent = record.sent | {warning.key for warning in warnings}
        uow.supplies.put_supply(dataclasses.replace(record, sent=frozenset(sent)))
        return len(warnings)

    def view(self, uow: UnitOfWork, patient_id: int, now: datetime) -> SupplyView:
        """The patient's record and next warning (the caller checks that the patient exists)."""
        record = uow.supplies.supply(patient_id)
        return SupplyView(record, None if record is None else self.next_warning_at(record, now))


class SupplySweep:
    """The timer's side: send every refill warning whose time has come, once."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, service: SupplyService) -> None:
        """Warn through ``service`` at ``clock``'s time."""
        self._uow_factory = uow_factory
        self._clock = clock
        self.service = service

    def sweep(self) -> int:
        """Raise the refill alarm for each due warning not sent; returns how many were raised."""
        now = self._clock.now().astimezone(UTC)
        raised = 0
        with self._uow_factory() as uow:
            for record in uow.supplies.running_out(now + self.service.horizon):
                raised += self.service.notify_due(uow, record, now)
            uow.commit()
        return raised
