"""Repository contract, part 3: multidose rolls (manifests, roll loads, dispensed pouches).

The same backends as part 1 (``test_repository_contract.py``): memory, SQLite, PostgreSQL. A manifest is the
pharmacy's word on what a patient gets: it must come back exactly as imported (every pouch, drug line,
decimal quantity and time), never be replaced by other content under the same roll id, and keep the
patient's national id encrypted at rest. A roll is active in one dispenser at a time, a dispenser holds one
active roll, and a pouch is dispensed once.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.db._rolls import SqlRollRepository
from dispenser_hub.domain.pouches import DrugLine, Pouch
from dispenser_hub.domain.rolls import RollEndReason, end_load
from dispenser_hub.ports import ConflictError, NotFoundError
from tests.support.storage import (
    BACKENDS,
    NATIONAL_IDS,
    SQL_BACKENDS,
    T0,
    Backend,
    device,
    field_cipher,
    migrated_sqlite_template,
    open_backend,
    patient,
    roll_load,
    roll_manifest,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from dispenser_hub.domain.pouches import RollManifest

NID_A, NID_B, NID_C = NATIONAL_IDS
DAY = timedelta(days=1)
IMPORTER = "operator:kari"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


def _import(backend: Backend, *manifests: RollManifest) -> None:
    with backend.uow_factory() as uow:
        for manifest in manifests:
            assert uow.rolls.add_manifest(manifest, imported_at=T0, imported_by=IMPORTER)
        uow.commit()


def _registry(backend: Backend) -> tuple[int, int]:
    """Dispensers RM3-000017 and RM3-000018, two patients, manifests R-1 and R-2 (patient 1), R-3 (2)."""
    _import(backend, roll_manifest("R-1"), roll_manifest("R-2", first_intake=T0 + 2 * DAY))
    _import(backend, roll_manifest("R-3", national_id=NID_B))
    with backend.uow_factory() as uow:
        uow.devices.add(device(17))
        uow.devices.add(device(18))
        kari = uow.patients.add(patient(1, national_id=NID_A)).id or 0
        ola = uow.patients.add(patient(2, national_id=NID_B)).id or 0
        uow.commit()
    return kari, ola


# -- manifests -------------------------------------------------------------------------------------------


def test_a_manifest_comes_back_exactly_as_imported(backend: Backend) -> None:
    zero_offset = timezone(timedelta(0))  # UTC under another name: accepted, returned as UTC
    pouches = (
        Pouch(
            "R-1-P001",
            T0.astimezone(zero_offset),
            (
                DrugLine("Paracetamol", "500 mg", Decimal("1.0")),
                DrugLine("Furosemid", "40 mg", Decimal("0.25")),
                DrugLine("Oksykodon", "5 mg", Decimal("1.5"), as_needed=True),
            ),
        ),
        Pouch(
            "R-1-P002", T0 + timedelta(hours=11, milliseconds=1), (DrugLine("Ærbium", "2 µg", Decimal(3)),)
        ),
    )
    imported = replace(roll_manifest("R-1"), pouches=pouches, packed_at=T0 - timedelta(milliseconds=123))
    with backend.uow_factory() as uow:
        assert uow.rolls.add_manifest(imported, imported_at=T0, imported_by=IMPORTER) is True
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.rolls.manifest("R-1")
        assert uow.rolls.manifest("R-2") is None
    assert stored is not None
    assert stored == imported
    assert stored.content_digest() == imported.content_digest()
    assert [str(line.quantity) for line in stored.pouches[0].drugs] == ["1.0", "0.25", "1.5"]
    assert [line.as_needed for line in stored.pouches[0].drugs] == [False, False, True]
    assert stored.packed_at.tzinfo is UTC
    assert all(pouch.intake_at.tzinfo is UTC for pouch in stored.pouches)
    assert stored.pouches[1].intake_at.microsecond == 1000


def test_the_same_manifest_again_is_stored_once(backend: Backend) -> None:
    first = roll_manifest("R-1")
    # The same content, written differently: drug lines in another order, "1" for "1.0".
    reordered = tuple(
        replace(
            pouch,
            drugs=tuple(replace(line, quantity=line.quantity.normalize()) for line in pouch.drugs[::-1]),
        )
        for pouch in first.pouches
    )
    again = replace(first, pouches=reordered)
    assert again != first
    assert again.content_digest() == first.content_digest()
    with backend.uow_factory() as uow:
        assert uow.rolls.add_manifest(first, imported_at=T0, imported_by=IMPORTER) is True
        assert uow.rolls.add_manifest(first, imported_at=T0, imported_by=IMPORTER) is False
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.rolls.add_manifest(again, imported_at=T0 + DAY, imported_by="operator:per") is False
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.rolls.manifest("R-1") == first  # the first import is kept, nothing was stored again
        assert uow.rolls.manifests_for_patient(NID_A) == [first]


def test_other_content_under_a_known_roll_id_is_a_conflict(backend: Backend) -> None:
    first = roll_manifest("R-1")
    changed = [
        roll_manifest("R-1", national_id=NID_B),  # another patient
        roll_manifest("R-1", first_intake=T0 + timedelta(hours=2)),  # other times
        roll_manifest("R-1", pouches=3),  # a pouch less
        replace(first, pharmacy="Vitusapotek"),
    ]
    _import(backend, first)
    with backend.uow_factory() as uow:
        for manifest in changed:
            with pytest.raises(ConflictError, match=r"^roll R-1 already has a different manifest$") as caught:
                uow.rolls.add_manifest(manifest, imported_at=T0, imported_by=IMPORTER)
            for patient_data in (NID_A, NID_B, first.printed_patient_ref):
                assert patient_data not in str(caught.value)
        assert uow.rolls.add_manifest(roll_manifest("R-2"), imported_at=T0, imported_by=IMPORTER)  # usable
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.rolls.manifest("R-1") == first
        assert uow.rolls.manifests_for_patient(NID_B) == []
        assert [m.roll_id for m in uow.rolls.manifests_for_patient(NID_A)] == ["R-1", "R-2"]


def test_manifests_for_patient_by_first_intake_latest_last(backend: Backend) -> None:
    week_2 = roll_manifest("R-week2", first_intake=T0 + 14 * DAY)
    week_0 = roll_manifest("R-week0", first_intake=T0)
    week_1 = roll_manifest("R-week1", first_intake=T0 + 7 * DAY)
    also_week_1 = roll_manifest("R-week1b", first_intake=T0 + 7 * DAY)  # same first intake: import order
    _import(backend, week_2, week_0, roll_manifest("R-other", national_id=NID_B), week_1, also_week_1)
    with backend.uow_factory() as uow:
        assert uow.rolls.manifests_for_patient(NID_A) == [week_0, week_1, also_week_1, week_2]
        assert uow.rolls.manifests_for_patient(NID_A, limit=2) == [also_week_1, week_2]  # the latest two
        assert uow.rolls.manifests_for_patient(NID_A, limit=0) == []
        assert [m.roll_id for m in uow.rolls.manifests_for_patient(NID_B)] == ["R-other"]
        assert uow.rolls.manifests_for_patient(NID_C) == []
        with pytest.raises(ValueError, match="must not be negative"):
            uow.rolls.manifests_for_patient(NID_A, limit=-1)


def test_a_rolled_back_import_is_not_stored(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        assert uow.rolls.add_manifest(roll_manifest("R-1"), imported_at=T0, imported_by=IMPORTER)
        uow.rollback()
        assert uow.rolls.manifest("R-1") is None
        with pytest.raises(ValueError, match="imported_at is a naive datetime"):
            uow.rolls.add_manifest(roll_manifest("R-1"), imported_at=T0.replace(tzinfo=None), imported_by="x")
    with backend.uow_factory() as uow:
        assert uow.rolls.manifest("R-1") is None


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_the_national_id_in_a_manifest_is_encrypted_at_rest(backend: Backend) -> None:
    _import(backend, roll_manifest("R-1", national_id=NID_C))
    rows = backend.raw_rows(
        "SELECT roll_id, patient_national_id_enc, patient_national_id_hash, printed_patient_ref, pouches"
        " FROM roll_manifest"
    )
    assert NID_C not in repr(backend.raw_rows("SELECT * FROM roll_manifest"))
    ((roll_id, token, lookup, printed_ref, pouches),) = rows
    assert (roll_id, printed_ref) == ("R-1", "PX-0001")  # the test does look at the row
    assert "R-1-P000" in str(pouches)
    cipher = field_cipher()  # as the patient's own: a token and a keyed hash, bound to the column's context
    assert cipher.decrypt(token, context="roll.patient_national_id") == NID_C
    assert lookup == cipher.lookup_hash(NID_C, context="roll.patient_national_id")
    with backend.uow_factory() as uow:
        assert [m.roll_id for m in uow.rolls.manifests_for_patient(NID_C)] == ["R-1"]


# -- roll loads ------------------------------------------------------------------------------------------


def test_one_active_load_per_device_and_per_roll(backend: Backend) -> None:
    kari, ola = _registry(backend)
    r1, r2, r3 = (roll_manifest("R-1"), roll_manifest("R-2", first_intake=T0 + 2 * DAY), roll_manifest("R-3"))
    with backend.uow_factory() as uow:
        loaded = uow.rolls.add_load(
            roll_load(r1, "RM3-000017", kari, max_spacing=timedelta(hours=13, microseconds=7))
        )
        assert loaded.id is not None
        assert loaded == replace(
            roll_load(r1, "RM3-000017", kari, max_spacing=loaded.max_spacing), id=loaded.id
        )
        with pytest.raises(ConflictError, match=r"^device RM3-000017 already has an active roll$"):
            uow.rolls.add_load(roll_load(r2, "RM3-000017", kari))
        with pytest.raises(ConflictError, match=r"^roll R-1 is already active in a dispenser$"):
            uow.rolls.add_load(roll_load(r1, "RM3-000018", ola))
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.rolls.add_load(roll_load(r3, "RM3-000099", ola))
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.rolls.add_load(roll_load(r3, "RM3-000018", 999))
        with pytest.raises(NotFoundError, match=r"^roll manifest R-9 does not exist$"):
            uow.rolls.add_load(roll_load(roll_manifest("R-9"), "RM3-000018", ola))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.rolls.active_load_for_device("RM3-000017") == loaded
        assert uow.rolls.active_load_of_roll("R-1") == loaded
        assert loaded.max_spacing == timedelta(hours=13, microseconds=7)
        assert uow.rolls.active_load_for_device("RM3-000018") is None
        assert uow.rolls.active_load_of_roll("R-3") is None


def test_ending_a_load_frees_the_device_and_the_roll(backend: Backend) -> None:
    kari, _ = _registry(backend)
    r1, r2 = roll_manifest("R-1"), roll_manifest("R-2", first_intake=T0 + 2 * DAY)
    with backend.uow_factory() as uow:
        first = uow.rolls.add_load(roll_load(r1, "RM3-000017", kari))
        ended = end_load(first, reason=RollEndReason.REPLACED, now=T0 + DAY)
        assert uow.rolls.update_load(ended) == ended
        assert uow.rolls.active_load_for_device("RM3-000017") is None
        assert uow.rolls.active_load_of_roll("R-1") is None
        second = uow.rolls.add_load(roll_load(r2, "RM3-000017", kari, at=T0 + DAY))
        moved = uow.rolls.add_load(roll_load(r1, "RM3-000018", kari, at=T0 + DAY))  # the roll, elsewhere
        with pytest.raises(ConflictError, match=r"^device RM3-000017 already has an active roll$"):
            uow.rolls.update_load(replace(ended, ended_at=None, end_reason=None))  # re-opening the old one
        with pytest.raises(NotFoundError, match=r"^roll load 999 does not exist$"):
            uow.rolls.update_load(replace(ended, id=999))
        with pytest.raises(NotFoundError, match="no storage id"):
            uow.rolls.update_load(roll_load(r1, "RM3-000017", kari))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.rolls.loads(roll_id="R-1") == [ended, moved]
        assert uow.rolls.active_load_for_device("RM3-000017") == second
        assert uow.rolls.active_load_of_roll("R-1") == moved
        assert ended.end_reason == "replaced"


def test_load_history_and_the_latest_load_of_a_patient(backend: Backend) -> None:
    kari, ola = _registry(backend)
    r1, r2, r3 = (roll_manifest("R-1"), roll_manifest("R-2", first_intake=T0 + 2 * DAY), roll_manifest("R-3"))
    with backend.uow_factory() as uow:
        assert uow.rolls.latest_load_for_patient(kari) is None
        # Stored out of time order: lists and "latest" go by accepted_at, not by storage order.
        later = uow.rolls.add_load(roll_load(r2, "RM3-000018", kari, at=T0 + 2 * DAY))
        earlier = uow.rolls.add_load(roll_load(r1, "RM3-000017", kari, at=T0))
        earlier = uow.rolls.update_load(end_load(earlier, reason=RollEndReason.EMPTY, now=T0 + DAY))
        other = uow.rolls.add_load(roll_load(r3, "RM3-000017", ola, at=T0 + DAY))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.rolls.loads() == [earlier, other, later]
        assert uow.rolls.loads(patient_id=kari) == [earlier, later]
        assert uow.rolls.loads(device_id="RM3-000017") == [earlier, other]
        assert uow.rolls.loads(device_id="RM3-000017", patient_id=kari) == [earlier]
        assert uow.rolls.loads(device_id="RM3-000018", roll_id="R-1") == []
        assert uow.rolls.latest_load_for_patient(kari) == later
        assert uow.rolls.latest_load_for_patient(ola) == other
        assert uow.rolls.latest_load_for_patient(999) is None
        ended = uow.rolls.update_load(end_load(later, reason=RollEndReason.UNBOUND, now=T0 + 3 * DAY))
        tie = uow.rolls.add_load(roll_load(r1, "RM3-000018", kari, at=T0 + 2 * DAY))  # same time: higher id
        assert uow.rolls.latest_load_for_patient(kari) == tie
        assert uow.rolls.loads(patient_id=kari) == [earlier, ended, tie]


def test_a_roll_is_withdrawn_once_a_load_of_it_ended_for_a_plan_change(backend: Backend) -> None:
    kari, ola = _registry(backend)
    with backend.uow_factory() as uow:
        first = uow.rolls.add_load(roll_load(roll_manifest("R-1"), "RM3-000017", kari))
        uow.rolls.update_load(end_load(first, reason=RollEndReason.REPLACED, now=T0 + DAY))
        assert not uow.rolls.was_withdrawn("R-1")
        second = uow.rolls.add_load(roll_load(roll_manifest("R-1"), "RM3-000017", kari, at=T0 + DAY))
        uow.rolls.update_load(end_load(second, reason=RollEndReason.PLAN_CHANGED, now=T0 + 2 * DAY))
        third = uow.rolls.add_load(roll_load(roll_manifest("R-3"), "RM3-000018", ola))
        uow.rolls.update_load(end_load(third, reason="battery swap", now=T0 + DAY))  # another recorded reason
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.rolls.was_withdrawn("R-1")
        assert not uow.rolls.was_withdrawn("R-2")
        assert not uow.rolls.was_withdrawn("R-3")
        assert not uow.rolls.was_withdrawn("R-9")


# -- dispensed pouches -----------------------------------------------------------------------------------


def test_a_pouch_is_dispensed_once(backend: Backend) -> None:
    _registry(backend)
    with backend.uow_factory() as uow:
        assert uow.rolls.dispensed("R-1") == frozenset()
        assert uow.rolls.mark_dispensed("R-1", "R-1-P000", device_id="RM3-000017", at=T0) is True
        assert uow.rolls.mark_dispensed("R-1", "R-1-P000", device_id="RM3-000017", at=T0) is False
        assert uow.rolls.mark_dispensed("R-1", "R-1-P001", device_id="RM3-000017", at=T0 + DAY) is True
        assert uow.rolls.mark_dispensed("R-2", "R-2-P000", device_id="RM3-000018", at=T0) is True
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.rolls.mark_dispensed("R-1", "R-1-P002", device_id="RM3-000099", at=T0)
        with pytest.raises(NotFoundError, match=r"^roll manifest R-9 does not exist$"):
            uow.rolls.mark_dispensed("R-9", "R-9-P000", device_id="RM3-000017", at=T0)
        with pytest.raises(NotFoundError, match=r"^pouch R-2-P001 is not on the manifest of roll R-1$"):
            uow.rolls.mark_dispensed("R-1", "R-2-P001", device_id="RM3-000017", at=T0)
        with pytest.raises(ValueError, match="at is a naive datetime"):
            uow.rolls.mark_dispensed("R-1", "R-1-P002", device_id="RM3-000017", at=T0.replace(tzinfo=None))
        uow.commit()
    with backend.uow_factory() as uow:
        # Once means once: a later transaction, or the roll moved to another dispenser, changes nothing.
        assert uow.rolls.mark_dispensed("R-1", "R-1-P001", device_id="RM3-000018", at=T0 + 2 * DAY) is False
        assert uow.rolls.mark_dispensed("R-1", "R-1-P002", device_id="RM3-000018", at=T0 + 2 * DAY) is True
        uow.rollback()
        assert uow.rolls.dispensed("R-1") == {"R-1-P000", "R-1-P001"}
        assert uow.rolls.dispensed("R-2") == {"R-2-P000"}
        assert uow.rolls.dispensed("R-3") == frozenset()


# -- races (SQL) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_a_load_racing_past_the_checks_gets_the_same_errors(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    kari, ola = _registry(backend)
    with backend.uow_factory() as uow:
        uow.rolls.add_load(roll_load(roll_manifest("R-1"), "RM3-000017", kari))
        uow.commit()
    # As if another transaction had committed between our check and our write:
    monkeypatch.setattr(SqlRollRepository, "_check_load", lambda *_args, **_kwargs: None)
    with backend.uow_factory() as uow, pytest.raises(ConflictError, match=r"^device RM3-000017 already has"):
        uow.rolls.add_load(roll_load(roll_manifest("R-3"), "RM3-000017", ola))
    with (
        backend.uow_factory() as uow,
        pytest.raises(ConflictError, match=r"^roll R-1 is already active in a"),
    ):
        uow.rolls.add_load(roll_load(roll_manifest("R-1"), "RM3-000018", ola))


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
@pytest.mark.parametrize("same", [True, False], ids=["same-manifest", "other-content"])
def test_racing_imports_of_one_roll_end_as_sequential_ones(backend: Backend, *, same: bool) -> None:
    first = roll_manifest("R-1")
    second = first if same else roll_manifest("R-1", national_id=NID_B)
    outcome: list[bool | Exception] = []

    def import_second() -> None:
        with backend.uow_factory() as uow:
            try:
                outcome.append(uow.rolls.add_manifest(second, imported_at=T0, imported_by="operator:per"))
            except ConflictError as error:
                outcome.append(error)
            uow.commit()

    with backend.uow_factory() as uow:
        assert uow.rolls.add_manifest(first, imported_at=T0, imported_by=IMPORTER)
        racer = threading.Thread(target=import_second)
        racer.start()  # waits for our transaction: the row (PostgreSQL) or the write lock (SQLite)
        racer.join(timeout=0.3)
        assert outcome == []  # still waiting: the race is real
        uow.commit()
    racer.join(timeout=10)
    assert len(outcome) == 1
    if same:
        assert outcome == [False]
    else:
        assert isinstance(outcome[0], ConflictError)
        assert str(outcome[0]) == "roll R-1 already has a different manifest"
    with backend.uow_factory() as uow:
        assert uow.rolls.manifest("R-1") == first
