"""Models of dose-pot (carousel) dispensers: a patient's dosett plans and the trays filled from them.

Plan times are Europe/Oslo wall-clock times (``HH:MM``) on weekdays 0 (Monday) .. 6 (Sunday); pots are due
at UTC instants. The plan rules are the domain's (``domain.dosett``); a broken rule is a 400 naming the
input as the API sees it (``times[1].at``, ``times[0].contents[2].quantity``).
"""

from datetime import date, time
from decimal import Decimal
from typing import Annotated, Self

from pydantic import Field, StringConstraints

from dispenser_hub.domain.dosett import MAX_DOSES_PER_DAY, MAX_POTS, WEEKDAYS, DosettPlan, PlanTime
from dispenser_hub.domain.model import FillRecord, PlanRecord
from dispenser_hub.domain.pouches import REF_PATTERN, DrugLine, ManifestError
from dispenser_hub.services.registry import RegistryError
from dispenser_hub.web.schemas.common import Input, Name, Public, Timestamp, stored
from dispenser_hub.web.schemas.manifests import DrugLinePublic

MAX_PLAN_TIMES = MAX_DOSES_PER_DAY * len(WEEKDAYS)
"""The most dose times a plan can have (each on at least one weekday, at most 8 a day)."""
MAX_POT_LINES = 20
"""The most drug lines a pot may hold."""

WallClock = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
]
"""A wall-clock time ``HH:MM`` (24 h)."""
Weekday = Annotated[int, Field(ge=0, le=6)]
PlanNote = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
TrayId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64, pattern=REF_PATTERN)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=9, decimal_places=3)]


class PotDrugInput(Input):
    """One drug line of a pot: ``quantity`` units of ``name`` ``strength``."""

    name: Name = Field(examples=["Paracetamol"])
    strength: Name = Field(examples=["500 mg"])
    quantity: Quantity = Field(
        description="Units (tablets), a decimal as a string or number, e.g. `1`, `0.5`.", examples=["1"]
    )
    as_needed: bool = Field(
        default=False,
        description='As-needed ("ved behov") drugs are not filled in pots: true is refused (400).',
    )


class PlanTimeInput(Input):
    """One dose time of the week: a pot is filled for each day it applies to."""

    at: WallClock = Field(description="Europe/Oslo wall-clock time `HH:MM`.", examples=["08:00"])
    weekdays: list[Weekday] = Field(
        min_length=1,
        max_length=7,
        description="The weekdays it applies to: 0 (Monday) .. 6 (Sunday).",
        examples=[[0, 1, 2, 3, 4, 5, 6]],
    )
    label: Name = Field(description="What staff and the device show, e.g. `Morning`.", examples=["Morning"])
    contents: list[PotDrugInput] = Field(
        min_length=1, max_length=MAX_POT_LINES, description="The drugs in each pot of this time."
    )


class PlanCreate(Input):
    """A new dosett plan for the patient, in force from ``valid_from`` until a later plan takes over."""

    valid_from: date = Field(description="The first day (Europe/Oslo) the plan is in force.")
    note: PlanNote | None = Field(None, description="A note for staff (no patient data, please).")
    times: list[PlanTimeInput] = Field(
        min_length=1,
        max_length=MAX_PLAN_TIMES,
        description=(
            "The dose times; on each weekday in time-of-day order, at most one per minute and "
            f"{MAX_DOSES_PER_DAY} a day."
        ),
    )

    def to_plan(self) -> DosettPlan:
        """The domain's plan; a broken rule is a ``RegistryError`` naming the field's API path."""
        times = [_plan_time(number, item) for number, item in enumerate(self.times)]
        try:
            return DosettPlan(tuple(times), self.valid_from, self.note)
        except ManifestError as exc:  # its fields are API paths already: times[1].at, note
            raise RegistryError(str(exc), field=exc.field) from None


def _plan_time(number: int, item: PlanTimeInput) -> PlanTime:
    prefix = f"times[{number}]"
    lines = []
    for line_number, line in enumerate(item.contents):
        try:
            lines.append(DrugLine(line.name, line.strength, line.quantity, as_needed=line.as_needed))
        except ManifestError as exc:
            raise _error(f"{prefix}.contents[{line_number}]", exc) from None
    hours, minutes = (int(part) for part in item.at.split(":"))
    try:
        return PlanTime(time(hours, minutes), frozenset(item.weekdays), item.label, tuple(lines))
    except ManifestError as exc:
        raise _error(prefix, exc) from None


def _error(prefix: str, exc: ManifestError) -> RegistryError:
    field = f"{prefix}.{exc.field}"
    return RegistryError(f"{field}: {str(exc).removeprefix(f'{exc.field}: ')}", field=field)


class PlanTimePublic(Public):
    """One dose time of a plan."""

    at: str = Field(description="Europe/Oslo wall-clock time `HH:MM`.")
    weekdays: list[int] = Field(description="0 (Monday) .. 6 (Sunday), ascending.")
    label: str
    contents: list[DrugLinePublic]

    @classmethod
    def of(cls, plan_time: PlanTime) -> Self:
        """From the domain's plan time."""
        return cls(
            at=f"{plan_time.at:%H:%M}",
            weekdays=sorted(plan_time.weekdays),
            label=plan_time.label,
            contents=[DrugLinePublic.of(line) for line in plan_time.contents],
        )


class PlanPublic(Public):
    """A stored dosett plan: who entered it, when, and its dose times."""

    id: int
    patient_id: int
    valid_from: date = Field(description="The first day (Europe/Oslo) it is in force.")
    note: str | None
    times: list[PlanTimePublic]
    created_at: Timestamp
    created_by: str

    @classmethod
    def of(cls, record: PlanRecord) -> Self:
        """From the record."""
        return cls(
            id=stored(record.id),
            patient_id=record.patient_id,
            valid_from=record.plan.valid_from,
            note=record.plan.note,
            times=[PlanTimePublic.of(plan_time) for plan_time in record.plan.times],
            created_at=record.created_at,
            created_by=record.created_by,
        )


class PlanList(Public):
    """Every plan of a patient, oldest first, and the one in force today."""

    items: list[PlanPublic] = Field(description="By `valid_from`, then id (oldest first).")
    today: date = Field(description="Today's date in Europe/Oslo.")
    in_force_id: int | None = Field(
        description="The plan in force today: the latest `valid_from` at or before today (ties: the "
        "newest); null if none is."
    )


class TrayFillCreate(Input):
    """A tray filled from the plan in force on ``first_day``, from that day's first dose time on."""

    tray_id: TrayId = Field(
        description="The tray's barcode id: 1-64 letters, digits and `._:/-`, starting alphanumeric.",
        examples=["TRAY-0042"],
    )
    first_day: date = Field(description="The day (Europe/Oslo) of the first pot.", examples=["2026-11-24"])
    pot_count: int = Field(28, ge=1, le=MAX_POTS, description=f"Pots to fill: 1..{MAX_POTS}.")
    filled_by: Name = Field(description="Who filled the tray (staff name or id).", examples=["Nurse Berg"])


class PotPublic(Public):
    """One filled pot."""

    pot: int = Field(description="Its number on the carousel, from 1 in due order.")
    due: Timestamp
    slot_id: str = Field(description="The schedule slot id: `s-YYYYMMDD-HHMM` of the due time in Oslo time.")
    label: str = Field(description="The plan time's label.")


class TrayFillPublic(Public):
    """A tray fill: who filled it when, its pots, which are opened and how many doses are left."""

    id: int
    patient_id: int
    tray_id: str
    filled_by: str
    filled_at: Timestamp
    first_due: Timestamp
    last_due: Timestamp = Field(description="When the supply runs out: the due time of the last pot.")
    pots: list[PotPublic] = Field(description="In due order.")
    opened: list[int] = Field(description="Numbers of the pots recorded as opened, ascending.")
    doses_left: int = Field(description="Filled pots not opened yet.")

    @classmethod
    def of(cls, record: FillRecord, opened: frozenset[int] = frozenset()) -> Self:
        """From the record and its opened pots."""
        fill = record.fill
        return cls(
            id=stored(record.id),
            patient_id=fill.patient_id,
            tray_id=fill.tray_id,
            filled_by=fill.filled_by,
            filled_at=fill.filled_at,
            first_due=fill.pots[0].due,
            last_due=fill.last_due,
            pots=[PotPublic(pot=p.pot, due=p.due, slot_id=p.slot_id, label=p.label) for p in fill.pots],
            opened=sorted(opened),
            doses_left=fill.doses_left(opened),
        )
