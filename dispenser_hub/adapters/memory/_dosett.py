"""In-memory repositories of dose-pot trays and supplies: dosett plans, tray fills, opened pots, supplies.

Same rules, orders and errors as ``adapters.db._dosett`` (the contract suite checks both): references are
checked first (``NotFoundError`` for an unknown patient or fill); plans come back by ``valid_from``, then id,
and the plan in force on a day is the greatest (``valid_from``, id) at or before it; "latest" fills are the
greatest (``filled_at``, id); a pot is opened once per fill (its number is not checked against the fill,
as in the database); supplies running out come by ``runs_out_at``, then patient id. Every time is kept
in ``UTC`` itself (as the database returns it).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._registry import MemoryRepository
from dispenser_hub.adapters.memory._tables import stored_id
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from datetime import date, datetime

    from dispenser_hub.domain.model import FillRecord, PlanRecord, SupplyRecord


class MemoryDosettRepository(MemoryRepository):
    """Dosett plans, tray fills and the pots opened from them (see the module docstring)."""

    # -- plans ------------------------------------------------------------------------------------------

    def add_plan(self, record: PlanRecord) -> PlanRecord:
        """Store a new plan version."""
        self._require_patient(record.patient_id)
        tables = self._tx.write()
        stored = rules.with_id(rules.normalise(record), tables.next_id("dosett_plans"))
        tables.dosett_plans.put(stored_id(stored), stored)
        return stored

    def plans(self, patient_id: int) -> list[PlanRecord]:
        """The patient's plans by ``valid_from``, then id."""
        rows = [
            record for record in self._tables.dosett_plans.rows.values() if record.patient_id == patient_id
        ]
        return sorted(rows, key=_plan_order)

    def current_plan(self, patient_id: int, day: date) -> PlanRecord | None:
        """The plan with the latest ``valid_from`` at or before ``day`` (ties: the newest id)."""
        rows = [
            record
            for record in self._tables.dosett_plans.rows.values()
            if record.patient_id == patient_id and record.plan.valid_from <= day
        ]
        return max(rows, key=_plan_order, default=None)

    # -- fills ------------------------------------------------------------------------------------------

    def add_fill(self, record: FillRecord) -> FillRecord:
        """Store a new tray fill."""
        self._require_patient(record.fill.patient_id)
        tables = self._tx.write()
        stored = rules.with_id(_fill_in_utc(rules.normalise(record)), tables.next_id("tray_fills"))
        tables.tray_fills.put(stored_id(stored), stored)
        return stored

    def get_fill(self, fill_id: int) -> FillRecord | None:
        """The fill with this id."""
        return self._tables.tray_fills.rows.get(fill_id)

    def current_fill(self, patient_id: int) -> FillRecord | None:
        """The patient's latest fill (``filled_at``, then id)."""
        rows = [
            record for record in self._tables.tray_fills.rows.values() if record.fill.patient_id == patient_id
        ]
        return max(rows, key=_fill_order, default=None)

    def latest_fill_of_tray(self, tray_id: str) -> FillRecord | None:
        """The tray's latest fill, for any patient (``filled_at``, then id)."""
        rows = [record for record in self._tables.tray_fills.rows.values() if record.fill.tray_id == tray_id]
        return max(rows, key=_fill_order, default=None)

    # -- opened pots ------------------------------------------------------------------------------------

    def mark_opened(self, fill_id: int, pot: int, at: datetime) -> bool:
        """Record the pot as opened; ``False`` if it already was."""
        at = rules.aware_utc(at, "at")
        if fill_id not in self._tables.tray_fills.rows:
            raise NotFoundError(rules.missing("tray fill", fill_id))
        if (fill_id, pot) in self._tables.opened_pots.rows:
            return False
        self._tx.write().opened_pots.put((fill_id, pot), at)
        return True

    def opened(self, fill_id: int) -> frozenset[int]:
        """The pots of the fill recorded as opened."""
        return frozenset(pot for fill, pot in self._tables.opened_pots.rows if fill == fill_id)


class MemorySupplyRepository(MemoryRepository):
    """Per patient: the supply record (see the module docstring)."""

    def supply(self, patient_id: int) -> SupplyRecord | None:
        """The patient's supply record."""
        return self._tables.supplies.rows.get(patient_id)

    def put_supply(self, record: SupplyRecord) -> SupplyRecord:
        """Store (replace) the patient's record."""
        self._require_patient(record.supply.patient_id)
        stored = rules.normalise(record)
        if type(stored.sent) is not frozenset:
            stored = replace(stored, sent=frozenset(stored.sent))
        self._tx.write().supplies.put(stored.supply.patient_id, stored)
        return stored

    def running_out(self, before: datetime) -> list[SupplyRecord]:
        """Records whose known ``runs_out_at`` is before ``before``, by ``runs_out_at``, then patient id."""
        before = rules.aware_utc(before, "before")
        rows = [
            (end, record.supply.patient_id, record)
            for record in self._tables.supplies.rows.values()
            if (end := record.supply.runs_out_at) is not None and end < before
        ]
        rows.sort(key=lambda row: (row[0], row[1]))
        return [record for _, _, record in rows]


def _plan_order(record: PlanRecord) -> tuple[date, int]:
    return record.plan.valid_from, stored_id(record)


def _fill_order(record: FillRecord) -> tuple[datetime, int]:
    return record.fill.filled_at, stored_id(record)


def _fill_in_utc(record: FillRecord) -> FillRecord:
    """The fill with every pot's due in ``UTC`` itself (a zero-offset zone is allowed in; UTC comes out)."""
    pots = record.fill.pots
    if all(pot.due.tzinfo is UTC for pot in pots):
        return record
    in_utc = tuple(replace(pot, due=pot.due.astimezone(UTC)) for pot in pots)
    return replace(record, fill=replace(record.fill, pots=in_utc))
