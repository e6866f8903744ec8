"""Operator actions for dose-pot (carousel) dispensers: a patient's dosett plans and trays filled from them.

Rules: plans are kept as history (a new plan with a later ``valid_from`` takes over from that day; plans
are never edited). A tray is filled from the plan in force on its first day (``dosett.fill_tray``), at the
hub's time in whole milliseconds. Every change is audited (``dosett.plan``, ``dosett.fill``: ids, dates
and counts, never patient data or drugs), and the patient's bound dispenser gets its schedule rebuilt in
the same transaction (``ScheduleService.refresh``; a bound dose-pot dispenser always gets a new version,
since what it should hold changed even if it has not reported the tray loaded yet). Invalid values are
``RegistryError``s naming the field (the rules of ``domain.dosett``); an unknown patient is ``NotFound``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dispenser_hub.domain import dosett
from dispenser_hub.domain.model import AuditEntry, FillRecord, PlanRecord
from dispenser_hub.domain.pouches import ManifestError, from_ms, to_ms
from dispenser_hub.services.operator import OperatorService, require_patient
from dispenser_hub.services.registry import RegistryError
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from datetime import date

    from dispenser_hub.domain.dosett import DosettPlan
    from dispenser_hub.ports import UnitOfWork


class PatientDosett(OperatorService):
    """Dosett plans and tray fills per patient (see the module rules)."""

    def _now(self) -> datetime:
        """The clock's time in UTC, in whole milliseconds (the precision of fills and the wire)."""
        return from_ms(to_ms(self._clock.now().astimezone(UTC)))

    # -- plans ---------------------------------------------------------------------------------------------

    def add_plan(self, patient_id: int, plan: DosettPlan, *, by: str) -> PlanRecord:
        """Store a new plan version for the patient, in force from its ``valid_from``."""
        now = self._now()
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            stored = uow.dosett.add_plan(PlanRecord(patient_id, plan, now, by))
            detail = (
                f"plan {stored.id} valid from {plan.valid_from.isoformat()}, {len(plan.times)} dose times"
            )
            uow.audit.add(AuditEntry(now, by, "dosett.plan", f"patient:{patient_id}", detail))
            self._refresh_for_trays(uow, patient_id, now)
            uow.commit()
        return stored

    def plans(self, patient_id: int) -> list[PlanRecord]:
        """The patient's plans by ``valid_from``, then id (oldest first)."""
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            return uow.dosett.plans(patient_id)

    def plan_in_force(self, patient_id: int, day: date) -> PlanRecord | None:
        """The patient's plan in force on ``day`` (``None``: none is)."""
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            return uow.dosett.current_plan(patient_id, day)

    # -- tray fills ----------------------------------------------------------------------------------------

    def fill_tray(
        self,
        patient_id: int,
        *,
        tray_id: str,
        first_day: date,
        pot_count: int = 28,
        filled_by: str,
        by: str,
    ) -> FillRecord:
        """Record ``tray_id`` filled now with ``pot_count`` pots from the plan in force on ``first_day``."""
        now = self._now()
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            plan = uow.dosett.current_plan(patient_id, first_day)
            if plan is None:
                msg = f"no dosett plan in force on {first_day.isoformat()}; add one first"
                raise RegistryError(msg, field="first_day")
            try:
                fill = dosett.fill_tray(
                    plan.plan,
                    tray_id=tray_id,
                    patient_id=patient_id,
                    first_day=first_day,
                    pot_count=pot_count,
                    filled_by=filled_by,
                    filled_at=now,
                )
            except ManifestError as exc:  # PlanError too
                raise RegistryError(str(exc), field=exc.field) from None
            previous = uow.dosett.latest_fill_of_tray(fill.tray_id)
            stored = uow.dosett.add_fill(FillRecord(fill))
            detail = (
                f"fill {stored.id} of tray {fill.tray_id}: {len(fill.pots)} pots from "
                f"{first_day.isoformat()} (plan {plan.id})"
            )
            uow.audit.add(AuditEntry(now, by, "dosett.fill", f"patient:{patient_id}", detail))
            self._refresh_for_trays(uow, patient_id, now)
            if previous is not None and previous.fill.patient_id != patient_id:
                # The tray was another patient's: their dispenser loses its pots at once.
                self._refresh_for_trays(uow, previous.fill.patient_id, now)
            uow.commit()
        return stored

    def fills(self, patient_id: int) -> tuple[FillRecord, frozenset[int]] | None:
        """The patient's latest fill and its pots recorded as opened; ``None`` if none was filled."""
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            record = uow.dosett.current_fill(patient_id)
            if record is None or record.id is None:
                return None
            return record, uow.dosett.opened(record.id)

    def _refresh_for_trays(self, uow: UnitOfWork, patient_id: int, now: datetime) -> None:
        """Rebuild; a carousel's version goes up even before its tray is loaded (plan or fill changed)."""
        binding = uow.bindings.active_for_patient(patient_id)
        device = None if binding is None else uow.devices.get(binding.device_id)
        self._refresh_patient(
            uow, patient_id, now, force=device is not None and device.family is Family.DOSE_POT
        )
