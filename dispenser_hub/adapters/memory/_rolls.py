"""In-memory repository of multidose rolls: pharmacy manifests, roll loads, dispensed pouches.

Same rules, orders and errors as ``adapters.db`` (the contract suite checks both; the rules are spelled out
in ``adapters.db._rolls``): a manifest once per roll id (same digest: ``False``; other content:
``ConflictError``); references before uniqueness; one active load per device and per roll; loads oldest
first by (``accepted_at``, id); a pouch dispensed once. Manifests are kept with their times in UTC (as the
database returns them); the national id is plaintext here, as everything in this store.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._registry import MemoryRepository
from dispenser_hub.adapters.memory._tables import DispensedPouch, StoredManifest, stored_id
from dispenser_hub.domain.rolls import RollEndReason
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.pouches import RollManifest
    from dispenser_hub.domain.rolls import RollLoad


class MemoryRollRepository(MemoryRepository):
    """Roll manifests, roll loads and dispensed pouches (see the module docstring)."""

    # -- manifests --------------------------------------------------------------------------------------

    def add_manifest(self, manifest: RollManifest, *, imported_at: datetime, imported_by: str) -> bool:
        """Store a manifest; ``False`` if this exact one is stored already, ``ConflictError`` if another."""
        imported_at = rules.aware_utc(imported_at, "imported_at")
        digest = manifest.content_digest()
        stored = self._tables.roll_manifests.rows.get(manifest.roll_id)
        if stored is not None:
            if stored.digest == digest:
                return False
            raise ConflictError(rules.manifest_conflict(manifest.roll_id))
        record = StoredManifest(_in_utc(manifest), digest, imported_at, imported_by)
        self._tx.write().roll_manifests.put(manifest.roll_id, record)
        return True

    def manifest(self, roll_id: str) -> RollManifest | None:
        """The manifest of this roll."""
        stored = self._tables.roll_manifests.rows.get(roll_id)
        return None if stored is None else stored.manifest

    def manifests_for_patient(self, national_id: str, *, limit: int = 100) -> list[RollManifest]:
        """The patient's latest ``limit`` manifests by first intake, latest last (ties: storage order)."""
        rules.check_page(0, limit)
        rows = [
            stored.manifest
            for stored in self._tables.roll_manifests.rows.values()
            if stored.manifest.patient_national_id == national_id
        ]
        rows.sort(key=lambda manifest: manifest.first_intake)  # stable: storage order within a time
        return rows[max(len(rows) - limit, 0) :]

    # -- loads ------------------------------------------------------------------------------------------

    def add_load(self, load: RollLoad) -> RollLoad:
        """Store a new load (references, then one active load per device and per roll)."""
        stored = rules.normalise(load)
        self._check_load(stored, own_id=None)
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("roll_loads"))
        tables.roll_loads.put(stored_id(stored), stored)
        return stored

    def update_load(self, load: RollLoad) -> RollLoad:
        """Replace the stored load with the same id (ending it, usually)."""
        if load.id is None:
            raise NotFoundError(rules.no_id("roll load"))
        if load.id not in self._tables.roll_loads.rows:
            raise NotFoundError(rules.missing("roll load", load.id))
        stored = rules.normalise(load)
        self._check_load(stored, own_id=load.id)
        self._tx.write().roll_loads.put(load.id, stored)
        return stored

    def active_load_for_device(self, device_id: str) -> RollLoad | None:
        """The device's active load."""
        rows = self._tables.roll_loads.rows.values()
        return next((load for load in rows if load.active and load.device_id == device_id), None)

    def active_load_of_roll(self, roll_id: str) -> RollLoad | None:
        """The roll's active load."""
        rows = self._tables.roll_loads.rows.values()
        return next((load for load in rows if load.active and load.roll_id == roll_id), None)

    def latest_load_for_patient(self, patient_id: int) -> RollLoad | None:
        """The patient's load with the latest ``accepted_at`` (then the highest id), active or ended."""
        rows = [load for load in self._tables.roll_loads.rows.values() if load.patient_id == patient_id]
        return max(rows, key=_load_order, default=None)

    def loads(
        self, *, device_id: str | None = None, patient_id: int | None = None, roll_id: str | None = None
    ) -> list[RollLoad]:
        """Loads matching every filter given, oldest first (``accepted_at``, then id)."""
        rows = [
            load
            for load in self._tables.roll_loads.rows.values()
            if (device_id is None or load.device_id == device_id)
            and (patient_id is None or load.patient_id == patient_id)
            and (roll_id is None or load.roll_id == roll_id)
        ]
        return sorted(rows, key=_load_order)

    def was_withdrawn(self, roll_id: str) -> bool:
        """Whether a load of this roll ended ``plan_changed``."""
        rows = self._tables.roll_loads.rows.values()
        return any(load.roll_id == roll_id and load.end_reason == RollEndReason.PLAN_CHANGED for load in rows)

    # -- dispensed pouches ------------------------------------------------------------------------------

    def mark_dispensed(self, roll_id: str, pouch_id: str, *, device_id: str, at: datetime) -> bool:
        """Record the pouch as dispensed; ``False`` if it already was."""
        at = rules.aware_utc(at, "at")
        self._require_device(device_id)
        manifest = self.manifest(roll_id)
        if manifest is None:
            raise NotFoundError(rules.missing("roll manifest", roll_id))
        if manifest.pouch(pouch_id) is None:
            raise NotFoundError(rules.missing_pouch(roll_id, pouch_id))
        if (roll_id, pouch_id) in self._tables.dispensed_pouches.rows:
            return False
        self._tx.write().dispensed_pouches.put((roll_id, pouch_id), DispensedPouch(device_id, at))
        return True

    def dispensed(self, roll_id: str) -> frozenset[str]:
        """The pouch ids of the roll dispensed so far."""
        return frozenset(pouch for roll, pouch in self._tables.dispensed_pouches.rows if roll == roll_id)

    def _check_load(self, load: RollLoad, *, own_id: int | None) -> None:
        self._require_device(load.device_id)
        self._require_patient(load.patient_id)
        if load.roll_id not in self._tables.roll_manifests.rows:
            raise NotFoundError(rules.missing("roll manifest", load.roll_id))
        if not load.active:
            return
        other = self.active_load_for_device(load.device_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.device_has_active_roll(load.device_id))
        other = self.active_load_of_roll(load.roll_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.roll_already_active(load.roll_id))


def _load_order(load: RollLoad) -> tuple[datetime, int]:
    return load.accepted_at, stored_id(load)


def _in_utc(manifest: RollManifest) -> RollManifest:
    """The manifest with every time in ``UTC`` itself (a zero-offset zone is allowed in; UTC comes out)."""
    pouches = tuple(replace(pouch, intake_at=pouch.intake_at.astimezone(UTC)) for pouch in manifest.pouches)
    return replace(manifest, packed_at=manifest.packed_at.astimezone(UTC), pouches=pouches)
