"""Importing pharmacy roll manifests: a file in, every roll stored (or none), one audit entry per new roll.

``ManifestImporter.import_file`` parses the file (``manifest_import.parse_manifests``: a
``ManifestImportError`` naming every problem's line and field is raised as it is), then, in ONE transaction:

- every manifest's patient must be registered (found by national id number); otherwise the whole file is
  refused (``PatientNotRegistered``, naming the roll id, never the number);
- a manifest already stored with the same content is ``unchanged`` (importing a file twice is harmless);
  different content under a known roll id refuses the whole file (``Conflict`` naming the roll id: a changed
  plan needs a new roll id);
- each new manifest is stored and audited as ``roll.manifest_import`` on ``roll:<id>`` (detail: pouch count
  and content digest; no patient data).

Nothing is stored unless every roll of the file is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from dispenser_hub.domain.model import AuditEntry
from dispenser_hub.ports import ConflictError
from dispenser_hub.services.manifest_import import parse_manifests
from dispenser_hub.services.registry import Conflict, RegistryError

if TYPE_CHECKING:
    from dispenser_hub.domain.pouches import RollManifest
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory

AUDIT_ACTION = "roll.manifest_import"

ImportStatus = Literal["imported", "unchanged"]


class PatientNotRegistered(RegistryError):  # noqa: N818 - reads as the answer, like NotFound
    """A manifest names a patient the hub does not know: register the patient first (API answer 400)."""


@dataclass(frozen=True, slots=True)
class RollImport:
    """What happened to one roll of the file."""

    roll_id: str
    status: ImportStatus
    patient_id: int
    pouches: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Every roll of the file, in file order."""

    filename: str
    rolls: tuple[RollImport, ...]

    @property
    def imported(self) -> int:
        """How many rolls were new."""
        return sum(1 for roll in self.rolls if roll.status == "imported")

    @property
    def unchanged(self) -> int:
        """How many rolls were stored already with the same content."""
        return sum(1 for roll in self.rolls if roll.status == "unchanged")


def conflict_message(roll_id: str) -> str:
    """The refusal of a manifest that differs from the one stored for ``roll_id``."""
    return f"roll {roll_id} already has a different manifest; a changed plan needs a new roll id"


class ManifestImporter:
    """Imports manifest files (see the module docstring)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        """Store through ``uow_factory``; time the imports with ``clock``."""
        self._uow_factory = uow_factory
        self._clock = clock

    def import_file(
        self, data: bytes, *, filename: str, content_type: str | None = None, by: str
    ) -> ImportResult:
        """Import every manifest of the file, or none (``ManifestImportError``, ``RegistryError``)."""
        manifests = parse_manifests(data, filename=filename, content_type=content_type)
        now = self._clock.now().astimezone(UTC)
        with self._uow_factory() as uow:
            rolls: list[RollImport] = []
            for manifest in manifests:
                patient = uow.patients.find_by_national_id(manifest.patient_national_id)
                if patient is None or patient.id is None:
                    msg = (
                        f"roll {manifest.roll_id}: its patient is not registered in the hub; register the "
                        "patient first (by national id number), then import the file again"
                    )
                    raise PatientNotRegistered(msg, field="patient_national_id")
                status = self._add(uow, manifest, now, by)
                if status == "imported":
                    detail = f"{len(manifest.pouches)} pouches, sha256 {manifest.content_digest()[:16]}"
                    uow.audit.add(AuditEntry(now, by, AUDIT_ACTION, f"roll:{manifest.roll_id}", detail))
                rolls.append(RollImport(manifest.roll_id, status, patient.id, len(manifest.pouches)))
            uow.commit()
        return ImportResult(filename, tuple(rolls))

    @staticmethod
    def _add(uow: UnitOfWork, manifest: RollManifest, now: datetime, by: str) -> ImportStatus:
        try:
            stored = uow.rolls.add_manifest(manifest, imported_at=now, imported_by=by)
        except ConflictError:
            raise Conflict(conflict_message(manifest.roll_id), field="roll_id") from None
        return "imported" if stored else "unchanged"
