"""SQL repositories of dose-pot trays and supplies: dosett plans, tray fills, opened pots, supply records.

Same rules, orders and errors as ``adapters.memory._dosett`` (the contract suite checks both; the tables and
their JSON columns are described in ``_dosett_tables``):

* References are checked first: ``NotFoundError`` for an unknown patient (a plan, fill or supply of one)
  and for marking a pot of an unknown fill. Every time is stored and returned in UTC.
* **Plans** are history: added, never changed. ``plans`` lists them by ``valid_from``, then id; the plan in
  force on a day (``current_plan``) is the greatest (``valid_from``, id) at or before that day.
* **Fills**: "latest" is the greatest (``filled_at``, id), per patient (``current_fill``) or per tray for any
  patient (``latest_fill_of_tray``).
* **Opened pots**: ``INSERT ... ON CONFLICT (fill_id, pot) DO NOTHING`` records a pot once, so a second
  mark, even a racing one, is ``False`` and leaves the transaction usable. The pot number is not checked
  against the fill (the caller judges the opening first, ``dosett.judge_pot_opened``).
* **Supplies** are replaced whole, one row per patient; ``running_out`` gives those with a known
  ``runs_out_at`` strictly before the bound, by ``runs_out_at``, then patient id.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository
from dispenser_hub.adapters.db.tables import DosettPlanRow, OpenedPotRow, SupplyRow, TrayFillRow
from dispenser_hub.domain.dosett import DosettPlan, PlanTime, PotFill, TrayFill
from dispenser_hub.domain.model import FillRecord, PlanRecord, SupplyRecord
from dispenser_hub.domain.pouches import DrugLine, from_ms, to_ms
from dispenser_hub.domain.supply import Supply
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from datetime import date, datetime

    from dispenser_hub.domain.supply import SupplySource


class SqlDosettRepository(SqlRepository):
    """Dosett plans, tray fills and the pots opened from them (see the module docstring)."""

    # -- plans ------------------------------------------------------------------------------------------

    def add_plan(self, record: PlanRecord) -> PlanRecord:
        """Store a new plan version."""
        if not self._patient_exists(record.patient_id):
            raise NotFoundError(rules.missing("patient", record.patient_id))
        row = DosettPlanRow(**_plan_values(rules.normalise(record)))
        self._session.add(row)
        self._flush({})
        return _plan(row)

    def plans(self, patient_id: int) -> list[PlanRecord]:
        """The patient's plans by ``valid_from``, then id."""
        statement = (
            select(DosettPlanRow)
            .where(col(DosettPlanRow.patient_id) == patient_id)
            .order_by(col(DosettPlanRow.valid_from), col(DosettPlanRow.id))
        )
        return [_plan(row) for row in self._session.exec(statement)]

    def current_plan(self, patient_id: int, day: date) -> PlanRecord | None:
        """The plan with the latest ``valid_from`` at or before ``day`` (ties: the newest id)."""
        statement = (
            select(DosettPlanRow)
            .where(col(DosettPlanRow.patient_id) == patient_id)
            .where(col(DosettPlanRow.valid_from) <= day)
            .order_by(col(DosettPlanRow.valid_from).desc(), col(DosettPlanRow.id).desc())
            .limit(1)
        )
        row = self._session.exec(statement).first()
        return None if row is None else _plan(row)

    # -- fills ------------------------------------------------------------------------------------------

    def add_fill(self, record: FillRecord) -> FillRecord:
        """Store a new tray fill."""
        if not self._patient_exists(record.fill.patient_id):
            raise NotFoundError(rules.missing("patient", record.fill.patient_id))
        row = TrayFillRow(**_fill_values(rules.normalise(record)))
        self._session.add(row)
        self._flush({})
        return _fill(row)

    def get_fill(self, fill_id: int) -> FillRecord | None:
        """The fill with this id."""
        row = self._session.get(TrayFillRow, fill_id)
        return None if row is None else _fill(row)

    def current_fill(self, patient_id: int) -> FillRecord | None:
        """The patient's latest fill (``filled_at``, then id)."""
        return self._latest_fill(col(TrayFillRow.patient_id) == patient_id)

    def latest_fill_of_tray(self, tray_id: str) -> FillRecord | None:
        """The tray's latest fill, for any patient (``filled_at``, then id)."""
        return self._latest_fill(col(TrayFillRow.tray_id) == tray_id)

    # -- opened pots ------------------------------------------------------------------------------------

    def mark_opened(self, fill_id: int, pot: int, at: datetime) -> bool:
        """Record the pot as opened; ``False`` if it already was."""
        at = rules.aware_utc(at, "at")
        found = self._session.exec(select(col(TrayFillRow.id)).where(col(TrayFillRow.id) == fill_id)).first()
        if found is None:
            raise NotFoundError(rules.missing("tray fill", fill_id))
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        table: Any = OpenedPotRow.__table__  # type: ignore[attr-defined] # SQLModel sets it on table models
        statement = (
            dialect.insert(table)
            .values({"fill_id": fill_id, "pot": pot, "opened_at": at})
            .on_conflict_do_nothing(index_elements=["fill_id", "pot"])
            .returning(table.c.id)
        )
        return self._session.exec(statement).scalar_one_or_none() is not None

    def opened(self, fill_id: int) -> frozenset[int]:
        """The pots of the fill recorded as opened."""
        statement = select(col(OpenedPotRow.pot)).where(col(OpenedPotRow.fill_id) == fill_id)
        return frozenset(self._session.exec(statement))

    def _latest_fill(self, condition: Any) -> FillRecord | None:  # noqa: ANN401 - a SQL expression
        statement = (
            select(TrayFillRow)
            .where(condition)
            .order_by(col(TrayFillRow.filled_at).desc(), col(TrayFillRow.id).desc())
            .limit(1)
        )
        row = self._session.exec(statement).first()
        return None if row is None else _fill(row)


class SqlSupplyRepository(SqlRepository):
    """Per patient: the supply record (see the module docstring)."""

    def supply(self, patient_id: int) -> SupplyRecord | None:
        """The patient's supply record."""
        row = self._session.get(SupplyRow, patient_id)
        return None if row is None else _supply(row)

    def put_supply(self, record: SupplyRecord) -> SupplyRecord:
        """Store (replace) the patient's record."""
        if not self._patient_exists(record.supply.patient_id):
            raise NotFoundError(rules.missing("patient", record.supply.patient_id))
        values = _supply_values(rules.normalise(record))
        row = self._session.get(SupplyRow, record.supply.patient_id)
        if row is None:
            row = SupplyRow(**values)
            self._session.add(row)
        else:
            row.sqlmodel_update(values)
        self._flush({})
        return _supply(row)

    def running_out(self, before: datetime) -> list[SupplyRecord]:
        """Records whose known ``runs_out_at`` is before ``before``, by ``runs_out_at``, then patient id."""
        before = rules.aware_utc(before, "before")
        statement = (
            select(SupplyRow)
            .where(col(SupplyRow.runs_out_at).is_not(None))
            .where(col(SupplyRow.runs_out_at) < before)
            .order_by(col(SupplyRow.runs_out_at), col(SupplyRow.patient_id))
        )
        return [_supply(row) for row in self._session.exec(statement)]


# -- plans -----------------------------------------------------------------------------------------------


def _plan_values(record: PlanRecord) -> dict[str, Any]:
    plan = record.plan
    return {
        "patient_id": record.patient_id,
        "valid_from": plan.valid_from,
        "times": [
            {
                "at": plan_time.at.strftime("%H:%M"),
                "weekdays": sorted(plan_time.weekdays),
                "label": plan_time.label,
                "contents": [
                    {
                        "name": line.name,
                        "strength": line.strength,
                        "quantity": str(line.quantity),
                        "as_needed": line.as_needed,
                    }
                    for line in plan_time.contents
                ],
            }
            for plan_time in plan.times
        ],
        "note": plan.note,
        "created_at": record.created_at,
        "created_by": record.created_by,
    }


def _plan(row: DosettPlanRow) -> PlanRecord:
    times = tuple(
        PlanTime(
            at=time.fromisoformat(plan_time["at"]),
            weekdays=frozenset(plan_time["weekdays"]),
            label=plan_time["label"],
            contents=tuple(
                DrugLine(
                    name=line["name"],
                    strength=line["strength"],
                    quantity=Decimal(line["quantity"]),
                    as_needed=line["as_needed"],
                )
                for line in plan_time["contents"]
            ),
        )
        for plan_time in row.times
    )
    return PlanRecord(
        patient_id=row.patient_id,
        plan=DosettPlan(times=times, valid_from=row.valid_from, note=row.note),
        created_at=row.created_at,
        created_by=row.created_by,
        id=row.id,
    )


# -- fills -----------------------------------------------------------------------------------------------


def _fill_values(record: FillRecord) -> dict[str, Any]:
    fill = record.fill
    return {
        "tray_id": fill.tray_id,
        "patient_id": fill.patient_id,
        "filled_by": fill.filled_by,
        "filled_at": fill.filled_at,
        "pots": [
            {"pot": pot.pot, "due": to_ms(pot.due), "slot_id": pot.slot_id, "label": pot.label}
            for pot in fill.pots
        ],
    }


def _fill(row: TrayFillRow) -> FillRecord:
    pots = tuple(
        PotFill(pot=pot["pot"], due=from_ms(pot["due"]), slot_id=pot["slot_id"], label=pot["label"])
        for pot in row.pots
    )
    fill = TrayFill(
        tray_id=row.tray_id,
        patient_id=row.patient_id,
        filled_by=row.filled_by,
        filled_at=row.filled_at,
        pots=pots,
    )
    return FillRecord(fill=fill, id=row.id)


# -- supplies --------------------------------------------------------------------------------------------


def _supply_values(record: SupplyRecord) -> dict[str, Any]:
    supply = record.supply
    return {
        "patient_id": supply.patient_id,
        "source": supply.source,
        "source_id": supply.source_id,
        "runs_out_at": supply.runs_out_at,
        "doses_left": supply.doses_left,
        "sent": sorted(record.sent),
        "updated_at": record.updated_at,
    }


def _supply(row: SupplyRow) -> SupplyRecord:
    supply = Supply(
        patient_id=row.patient_id,
        source=cast("SupplySource", row.source),
        source_id=row.source_id,
        runs_out_at=row.runs_out_at,
        doses_left=row.doses_left,
    )
    return SupplyRecord(supply=supply, updated_at=row.updated_at, sent=frozenset(row.sent))
