"""Models of roll manifests: the import's per-roll results, and a stored manifest without the national id.

A manifest names its patient by national id number; the API answers the patient's storage id instead
(``patient_id``), so the number never leaves through these routes.
"""

from typing import Literal, Self

from pydantic import Field

from dispenser_hub.domain.pouches import DrugLine, Pouch, RollManifest
from dispenser_hub.domain.rolls import RollLoad
from dispenser_hub.services.manifest_service import ImportResult, RollImport
from dispenser_hub.services.roll_admin import EndReason
from dispenser_hub.web.schemas.common import Input, Public, Reason, Timestamp


class RollImportPublic(Public):
    """What the import did with one roll."""

    roll_id: str
    status: Literal["imported", "unchanged"] = Field(
        description="`imported`: stored now; `unchanged`: this exact manifest was stored already."
    )
    patient_id: int = Field(description="The registered patient the roll belongs to.")
    pouches: int = Field(description="How many pouches the roll has.")

    @classmethod
    def of(cls, roll: RollImport) -> Self:
        """From the service's result."""
        return cls(roll_id=roll.roll_id, status=roll.status, patient_id=roll.patient_id, pouches=roll.pouches)


class ManifestImportList(Public):
    """Every roll of the imported file, in file order."""

    items: list[RollImportPublic]
    imported: int = Field(description="Rolls stored by this request.")
    unchanged: int = Field(description="Rolls whose identical manifest was stored already.")

    @classmethod
    def of(cls, result: ImportResult) -> Self:
        """From the service's result."""
        return cls(
            items=[RollImportPublic.of(roll) for roll in result.rolls],
            imported=result.imported,
            unchanged=result.unchanged,
        )


class DrugLinePublic(Public):
    """One drug in a pouch."""

    name: str
    strength: str
    quantity: str = Field(description="Units (tablets) as a decimal string, e.g. `1`, `0.5`.")
    as_needed: bool = Field(description='Taken only when needed ("ved behov").')

    @classmethod
    def of(cls, line: DrugLine) -> Self:
        """From the record."""
        quantity = format(line.quantity.normalize(), "f")
        return cls(name=line.name, strength=line.strength, quantity=quantity, as_needed=line.as_needed)


class PouchPublic(Public):
    """One pouch: its barcode id, intake time and drugs."""

    pouch_id: str
    intake_at: Timestamp
    drugs: list[DrugLinePublic]

    @classmethod
    def of(cls, pouch: Pouch) -> Self:
        """From the record."""
        return cls(
            pouch_id=pouch.pouch_id,
            intake_at=pouch.intake_at,
            drugs=[DrugLinePublic.of(line) for line in pouch.drugs],
        )


class RollManifestDetail(Public):
    """A stored roll manifest; the patient by id (the national id number is not shown)."""

    roll_id: str
    patient_id: int | None = Field(
        description="The registered patient whose national id number the manifest names (null if none is)."
    )
    printed_patient_ref: str = Field(description="The patient reference printed on the roll and pouches.")
    pharmacy: str
    packed_at: Timestamp
    first_intake_at: Timestamp
    last_intake_at: Timestamp
    pouches: list[PouchPublic] = Field(description="In roll order (intake times increasing).")

    @classmethod
    def of(cls, manifest: RollManifest, patient_id: int | None) -> Self:
        """From the record and the patient's id."""
        return cls(
            roll_id=manifest.roll_id,
            patient_id=patient_id,
            printed_patient_ref=manifest.printed_patient_ref,
            pharmacy=manifest.pharmacy,
            packed_at=manifest.packed_at,
            first_intake_at=manifest.first_intake,
            last_intake_at=manifest.last_intake,
            pouches=[PouchPublic.of(pouch) for pouch in manifest.pouches],
        )


class RollEndRequest(Input):
    """An operator's record that the roll in a dispenser ended: replaced, or withdrawn by a plan change."""

    reason: EndReason = Field(
        description="`replaced`: taken out for another roll; `plan_changed`: the pharmacy changed the plan "
        "and its remaining pouches are withdrawn (VKP 3.22)."
    )
    note: Reason = Field(examples=["new plan from Apotek 1 Bergen, faxed 24 Nov"])


class RollLoadPublic(Public):
    """A roll accepted in a dispenser for a patient, and how it ended."""

    roll_id: str
    device_id: str
    patient_id: int
    accepted_at: Timestamp
    first_intake: Timestamp
    last_intake: Timestamp
    ended_at: Timestamp | None
    end_reason: str | None

    @classmethod
    def of(cls, load: RollLoad) -> Self:
        """From the record."""
        return cls(
            roll_id=load.roll_id,
            device_id=load.device_id,
            patient_id=load.patient_id,
            accepted_at=load.accepted_at,
            first_intake=load.first_intake,
            last_intake=load.last_intake,
            ended_at=load.ended_at,
            end_reason=load.end_reason,
        )
