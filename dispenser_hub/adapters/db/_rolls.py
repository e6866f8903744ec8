"""SQL repository of multidose rolls: pharmacy manifests, roll loads, dispensed pouches (``_roll_tables``).

Rules:

* **A manifest is stored once per roll id.** ``INSERT ... ON CONFLICT (roll_id) DO NOTHING``; when nothing was
  inserted, the stored ``content_digest`` decides: the same one is "already stored" (``False``), another one a
  ``ConflictError`` naming the roll only. A racing import of the same roll ends the same way (the insert waits
  for the other transaction, then finds its row), and the transaction stays usable either way.
* The patient's national id is written only as a ``FieldProtector`` token and found through its keyed lookup
  hash (context ``roll.patient_national_id``), like the patient's own (``_people``).
* ``manifests_for_patient`` returns the ``limit`` manifests with the latest first intake, oldest of them first
  (latest last); ties by storage order.
* **Loads**: references (device, patient, the roll's manifest) are checked first (``NotFoundError``), then
  "one active load per device and per roll" (``ConflictError``); the unique columns ``active_device_id`` and
  ``active_roll_id`` catch a race past the checks with the same messages. Lists are oldest first by
  ``accepted_at``, then id; "latest" is the greatest (``accepted_at``, id).
* **Dispensed pouches**: the device, the roll's manifest and the pouch on it must exist (``NotFoundError``);
  ``INSERT ... ON CONFLICT DO NOTHING`` records a pouch once, so a second mark, even a racing one, is
  ``False`` and leaves the transaction usable.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository
from dispenser_hub.adapters.db.tables import DispensedPouchRow, RollLoadRow, RollManifestRow
from dispenser_hub.domain.pouches import DrugLine, Pouch, RollManifest, from_ms, to_ms
from dispenser_hub.domain.rolls import RollEndReason, RollLoad
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from dispenser_hub.adapters.db.tables import TableBase
    from dispenser_hub.ports import FieldProtector

ROLL_NATIONAL_ID_CONTEXT = "roll.patient_national_id"
_MICROSECOND = timedelta(microseconds=1)


class SqlRollRepository(SqlRepository):
    """Roll manifests, roll loads and dispensed pouches (see the module docstring)."""

    # -- manifests --------------------------------------------------------------------------------------

    def add_manifest(self, manifest: RollManifest, *, imported_at: datetime, imported_by: str) -> bool:
        """Store a manifest; ``False`` if this exact one is stored already, ``ConflictError`` if another."""
        digest = manifest.content_digest()
        values = _manifest_values(manifest, self._protector) | {
            "content_digest": digest,
            "imported_at": rules.aware_utc(imported_at, "imported_at"),
            "imported_by": imported_by,
        }
        if self._insert_once(RollManifestRow, values, ("roll_id",)):
            return True
        statement = select(col(RollManifestRow.content_digest)).where(
            col(RollManifestRow.roll_id) == manifest.roll_id
        )
        if self._session.exec(statement).one() == digest:
            return False
        raise ConflictError(rules.manifest_conflict(manifest.roll_id))

    def manifest(self, roll_id: str) -> RollManifest | None:
        """The manifest of this roll."""
        statement = select(RollManifestRow).where(col(RollManifestRow.roll_id) == roll_id)
        row = self._session.exec(statement).first()
        return None if row is None else _manifest(row, self._protector)

    def manifests_for_patient(self, national_id: str, *, limit: int = 100) -> list[RollManifest]:
        """The patient's latest ``limit`` manifests by first intake, latest last (by the lookup hash)."""
        rules.check_page(0, limit)
        lookup = self._protector.lookup_hash(national_id, context=ROLL_NATIONAL_ID_CONTEXT)
        statement = (
            select(RollManifestRow)
            .where(col(RollManifestRow.patient_national_id_hash) == lookup)
            .order_by(col(RollManifestRow.first_intake).desc(), col(RollManifestRow.id).desc())
            .limit(limit)
        )
        return [_manifest(row, self._protector) for row in reversed(self._session.exec(statement).all())]

    # -- loads ------------------------------------------------------------------------------------------

    def add_load(self, load: RollLoad) -> RollLoad:
        """Store a new load (see the module docstring for the checks)."""
        load = rules.normalise(load)
        self._check_load(load, own_id=None)
        row = RollLoadRow(**_load_values(load))
        self._session.add(row)
        self._flush(_load_messages(load))
        return _load(row)

    def update_load(self, load: RollLoad) -> RollLoad:
        """Replace the stored load with the same id (ending it, usually)."""
        if load.id is None:
            raise NotFoundError(rules.no_id("roll load"))
        row = self._session.get(RollLoadRow, load.id)
        if row is None:
            raise NotFoundError(rules.missing("roll load", load.id))
        load = rules.normalise(load)
        self._check_load(load, own_id=load.id)
        row.sqlmodel_update(_load_values(load))
        self._flush(_load_messages(load))
        return _load(row)

    def active_load_for_device(self, device_id: str) -> RollLoad | None:
        """The device's active load."""
        statement = select(RollLoadRow).where(col(RollLoadRow.active_device_id) == device_id)
        row = self._session.exec(statement).first()
        return None if row is None else _load(row)

    def active_load_of_roll(self, roll_id: str) -> RollLoad | None:
        """The roll's active load."""
        statement = select(RollLoadRow).where(col(RollLoadRow.active_roll_id) == roll_id)
        row = self._session.exec(statement).first()
        return None if row is None else _load(row)

    def latest_load_for_patient(self, patient_id: int) -> RollLoad | None:
        """The patient's load with the latest ``accepted_at`` (then the highest id), active or ended."""
        statement = (
            select(RollLoadRow)
            .where(col(RollLoadRow.patient_id) == patient_id)
            .order_by(col(RollLoadRow.accepted_at).desc(), col(RollLoadRow.id).desc())
            .limit(1)
        )
        row = self._session.exec(statement).first()
        return None if row is None else _load(row)

    def loads(
        self, *, device_id: str | None = None, patient_id: int | None = None, roll_id: str | None = None
    ) -> list[RollLoad]:
        """Loads matching every filter given, oldest first (``accepted_at``, then id)."""
        statement = select(RollLoadRow).order_by(col(RollLoadRow.accepted_at), col(RollLoadRow.id))
        if device_id is not None:
            statement = statement.where(col(RollLoadRow.device_id) == device_id)
        if patient_id is not None:
            statement = statement.where(col(RollLoadRow.patient_id) == patient_id)
        if roll_id is not None:
            statement = statement.where(col(RollLoadRow.roll_id) == roll_id)
        return [_load(row) for row in self._session.exec(statement)]

    def was_withdrawn(self, roll_id: str) -> bool:
        """Whether a load of this roll ended ``plan_changed``."""
        statement = (
            select(col(RollLoadRow.id))
            .where(col(RollLoadRow.roll_id) == roll_id)
            .where(col(RollLoadRow.end_reason) == RollEndReason.PLAN_CHANGED.value)
            .limit(1)
        )
        return self._session.exec(statement).first() is not None

    # -- dispensed pouches ------------------------------------------------------------------------------

    def mark_dispensed(self, roll_id: str, pouch_id: str, *, device_id: str, at: datetime) -> bool:
        """Record the pouch as dispensed; ``False`` if it already was."""
        at = rules.aware_utc(at, "at")
        if not self._device_exists(device_id):
            raise NotFoundError(rules.missing("device", device_id))
        statement = select(col(RollManifestRow.pouches)).where(col(RollManifestRow.roll_id) == roll_id)
        pouches = self._session.exec(statement).first()
        if pouches is None:
            raise NotFoundError(rules.missing("roll manifest", roll_id))
        if all(pouch["pouch_id"] != pouch_id for pouch in pouches):
            raise NotFoundError(rules.missing_pouch(roll_id, pouch_id))
        values = {"roll_id": roll_id, "pouch_id": pouch_id, "device_id": device_id, "dispensed_at": at}
        return self._insert_once(DispensedPouchRow, values, ("roll_id", "pouch_id"))

    def dispensed(self, roll_id: str) -> frozenset[str]:
        """The pouch ids of the roll dispensed so far."""
        statement = select(col(DispensedPouchRow.pouch_id)).where(col(DispensedPouchRow.roll_id) == roll_id)
        return frozenset(self._session.exec(statement))

    # -- helpers ----------------------------------------------------------------------------------------

    def _insert_once(self, row_type: type[TableBase], values: dict[str, Any], unique: Sequence[str]) -> bool:
        """``INSERT ... ON CONFLICT (unique) DO NOTHING``: whether the row was inserted."""
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        table: Any = row_type.__table__  # type: ignore[attr-defined] # SQLModel sets it on table models
        statement = (
            dialect.insert(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=list(unique))
            .returning(table.c.id)
        )
        return self._session.exec(statement).scalar_one_or_none() is not None

    def _check_load(self, load: RollLoad, *, own_id: int | None) -> None:
        if not self._device_exists(load.device_id):
            raise NotFoundError(rules.missing("device", load.device_id))
        if not self._patient_exists(load.patient_id):
            raise NotFoundError(rules.missing("patient", load.patient_id))
        statement = select(col(RollManifestRow.id)).where(col(RollManifestRow.roll_id) == load.roll_id)
        if self._session.exec(statement).first() is None:
            raise NotFoundError(rules.missing("roll manifest", load.roll_id))
        if not load.active:
            return
        other = self.active_load_for_device(load.device_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.device_has_active_roll(load.device_id))
        other = self.active_load_of_roll(load.roll_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.roll_already_active(load.roll_id))


def _manifest_values(manifest: RollManifest, protector: FieldProtector) -> dict[str, Any]:
    national_id = manifest.patient_national_id
    return {
        "roll_id": manifest.roll_id,
        "patient_national_id_enc": protector.encrypt(national_id, context=ROLL_NATIONAL_ID_CONTEXT),
        "patient_national_id_hash": protector.lookup_hash(national_id, context=ROLL_NATIONAL_ID_CONTEXT),
        "printed_patient_ref": manifest.printed_patient_ref,
        "pharmacy": manifest.pharmacy,
        "packed_at": manifest.packed_at,
        "first_intake": manifest.first_intake,
        "last_intake": manifest.last_intake,
        "pouches": [
            {
                "pouch_id": pouch.pouch_id,
                "intake_at": to_ms(pouch.intake_at),
                "drugs": [
                    {
                        "name": line.name,
                        "strength": line.strength,
                        "quantity": str(line.quantity),
                        "as_needed": line.as_needed,
                    }
                    for line in pouch.drugs
                ],
            }
            for pouch in manifest.pouches
        ],
    }


def _manifest(row: RollManifestRow, protector: FieldProtector) -> RollManifest:
    pouches = tuple(
        Pouch(
            pouch_id=pouch["pouch_id"],
            intake_at=from_ms(pouch["intake_at"]),
            drugs=tuple(
                DrugLine(
                    name=line["name"],
                    strength=line["strength"],
                    quantity=Decimal(line["quantity"]),
                    as_needed=line["as_needed"],
                )
                for line in pouch["drugs"]
            ),
        )
        for pouch in row.pouches
    )
    return RollManifest(
        roll_id=row.roll_id,
        patient_national_id=protector.decrypt(row.patient_national_id_enc, context=ROLL_NATIONAL_ID_CONTEXT),
        printed_patient_ref=row.printed_patient_ref,
        pharmacy=row.pharmacy,
        packed_at=row.packed_at,
        pouches=pouches,
    )


def _load_values(load: RollLoad) -> dict[str, Any]:
    return {
        "roll_id": load.roll_id,
        "device_id": load.device_id,
        "patient_id": load.patient_id,
        "accepted_at": load.accepted_at,
        "first_intake": load.first_intake,
        "last_intake": load.last_intake,
        "max_spacing_us": load.max_spacing // _MICROSECOND,
        "ended_at": load.ended_at,
        "end_reason": load.end_reason,
        "active_device_id": rules.load_active_device(load),
        "active_roll_id": rules.load_active_roll(load),
    }


def _load_messages(load: RollLoad) -> dict[str, str]:
    return {
        "uq_roll_load_active_device_id": rules.device_has_active_roll(load.device_id),
        "uq_roll_load_active_roll_id": rules.roll_already_active(load.roll_id),
    }


def _load(row: RollLoadRow) -> RollLoad:
    return RollLoad(
        roll_id=row.roll_id,
        device_id=row.device_id,
        patient_id=row.patient_id,
        accepted_at=row.accepted_at,
        first_intake=row.first_intake,
        last_intake=row.last_intake,
        max_spacing=row.max_spacing_us * _MICROSECOND,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        id=row.id,
    )
