"""A manifest as read from a file, each value with where it came from, and its assembly into ``RollManifest``.

The format readers fill ``RollDraft``s (a value is ``None`` when its field had a problem, already
recorded; an empty list of pouches or drug lines is the reader's to report). ``assemble`` checks the rules
that span fields (unique pouch ids, strictly increasing intake times, each roll once per file, a printed
reference that is not the national id), reports every broken one with its position, then builds the domain
objects. The domain's own checks (``ManifestError``) run last, as a safety net: the rules here cover them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from dispenser_hub.domain.pouches import DrugLine, ManifestError, Pouch, RollManifest
from dispenser_hub.services.manifests.fields import local_text
from dispenser_hub.services.manifests.problems import Problems, Where, shown

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from decimal import Decimal

T = TypeVar("T")


@dataclass(slots=True)
class Got(Generic[T]):
    """A field's value (``None``: it had a problem, already reported) and where it is."""

    value: T | None
    where: Where


@dataclass(slots=True)
class DrugDraft:
    """One drug line as read."""

    name: Got[str]
    strength: Got[str]
    quantity: Got[Decimal]
    as_needed: Got[bool]


@dataclass(slots=True)
class PouchDraft:
    """One pouch as read; ``where`` is the pouch itself (JSON: its object; CSV: its first row)."""

    pouch_id: Got[str]
    intake_at: Got[datetime]
    where: Where
    drugs: list[DrugDraft] = field(default_factory=list)


@dataclass(slots=True)
class RollDraft:
    """One roll as read; ``where.field`` prefixes the domain's field names (JSON: ``manifests[0]``)."""

    roll_id: Got[str]
    patient_national_id: Got[str]
    printed_patient_ref: Got[str]
    pharmacy: Got[str]
    packed_at: Got[datetime]
    where: Where
    pouches: list[PouchDraft] = field(default_factory=list)


def assemble(rolls: Sequence[RollDraft], problems: Problems) -> list[RollManifest]:
    """The manifests of ``rolls``, or an empty list when any problem was found (all of them reported)."""
    manifests: list[RollManifest] = []
    first_roll: dict[str, Where] = {}
    for roll in rolls:
        roll_id = roll.roll_id.value
        if roll_id is not None:
            if roll_id in first_roll:
                line = problems.line_of(first_roll[roll_id])
                problems.add(
                    roll.roll_id.where,
                    f"roll {shown(roll_id)} is given twice in this file (first on line {line}): "
                    "give each roll once (or correct the roll id)",
                )
            else:
                first_roll[roll_id] = roll.roll_id.where
        _check_roll(roll, problems)
        if not problems.items:  # once anything is wrong, only problems are collected
            manifest = _build(roll, problems)
            if manifest is not None:
                manifests.append(manifest)
    return [] if problems.items else manifests


def _check_roll(roll: RollDraft, problems: Problems) -> None:
    ref, national_id = roll.printed_patient_ref.value, roll.patient_national_id.value
    if ref is not None and national_id is not None and ref == national_id:
        problems.add(
            roll.printed_patient_ref.where,
            "is the patient's national identity number: the printed reference travels in device messages "
            "and must be another reference",
        )
    first_pouch: dict[str, Where] = {}
    previous: PouchDraft | None = None
    for pouch in roll.pouches:
        pouch_id = pouch.pouch_id.value
        if pouch_id is not None:
            if pouch_id in first_pouch:
                line = problems.line_of(first_pouch[pouch_id])
                problems.add(
                    pouch.pouch_id.where,
                    f"pouch id {shown(pouch_id)} is repeated (first on line {line}): every pouch of a roll "
                    "has its own id",
                )
            else:
                first_pouch[pouch_id] = pouch.pouch_id.where
        intake = pouch.intake_at.value
        if intake is None:
            continue
        if previous is not None and previous.intake_at.value is not None:
            earlier = previous.intake_at.value
            if intake <= earlier:
                problems.add(
                    pouch.intake_at.where,
                    f"{local_text(intake)} is not after {local_text(earlier)}, the intake time of pouch "
                    f"{shown(previous.pouch_id.value or '?')} listed before it (line "
                    f"{problems.line_of(previous.intake_at.where)}): list the pouches in roll order, each "
                    "later than the one before",
                )
        previous = pouch


def _build(roll: RollDraft, problems: Problems) -> RollManifest | None:
    try:
        pouches = tuple(
            Pouch(
                _value(pouch.pouch_id),
                _value(pouch.intake_at),
                tuple(
                    DrugLine(
                        _value(drug.name),
                        _value(drug.strength),
                        _value(drug.quantity),
                        _value(drug.as_needed),
                    )
                    for drug in pouch.drugs
                ),
            )
            for pouch in roll.pouches
        )
        return RollManifest(
            _value(roll.roll_id),
            _value(roll.patient_national_id),
            _value(roll.printed_patient_ref),
            _value(roll.pharmacy),
            _value(roll.packed_at),
            pouches,
        )
    except ManifestError as error:  # pragma: no cover - a safety net: the checks above cover the domain's
        prefix = roll.where.field
        problems.add(
            Where(f"{prefix}.{error.field}" if prefix else error.field, roll.where.line, roll.where.offset),
            str(error).removeprefix(f"{error.field}: "),
        )
        return None


def _value(got: Got[T]) -> T:
    if got.value is None:  # pragma: no cover - _build only runs when every field was read
        raise ManifestError(got.where.field, "has no value")
    return got.value
