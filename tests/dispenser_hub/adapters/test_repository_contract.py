"""Repository contract, part 1: units of work, care teams, patients, contacts, devices, codes, bindings.

One suite over every implementation of ``dispenser_hub.ports`` storage: the memory store, SQLite (a file,
migrated with ``migrate.upgrade``) and PostgreSQL (a fresh schema, migrated the same way). Part 2 (events,
dead letters, commands, alarms, audit, time) is ``test_repository_contract_activity.py``. What a service
relies on is asserted here once, so the memory store used in service tests cannot drift from the database.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.model import CareTeam, Contact, DeviceStatus, EnrollmentCode, Presence
from dispenser_hub.ports import ConflictError, NotFoundError
from tests.support.storage import (
    BACKENDS,
    SQL_BACKENDS,
    T0,
    Backend,
    binding,
    device,
    migrated_sqlite_template,
    open_backend,
    patient,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


# -- units of work ---------------------------------------------------------------------------------------


def test_committed_writes_are_seen_by_later_units_of_work(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        team = uow.teams.add(CareTeam("Åsane", phone="+47 55000000"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.teams.get(team.id or 0) == team
        assert team == CareTeam("Åsane", phone="+47 55000000", id=team.id)


def test_leaving_without_commit_discards_the_writes(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        uow.devices.add(device(1))

    def fail_midway() -> None:
        with backend.uow_factory() as uow:
            uow.devices.add(device(2))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_midway()
    with backend.uow_factory() as uow:
        assert uow.devices.select() == []


def test_rollback_discards_and_the_unit_of_work_goes_on(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        uow.devices.add(device(1))
        uow.rollback()
        assert uow.devices.get("RM3-000001") is None
        uow.devices.add(device(2))
        uow.commit()
        uow.devices.add(device(3))
        uow.commit()
    with backend.uow_factory() as uow:
        assert [d.device_id for d in uow.devices.select()] == ["RM3-000002", "RM3-000003"]


def test_a_refused_write_leaves_the_unit_of_work_usable(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        uow.devices.add(device(1))
        with pytest.raises(ConflictError):
            uow.devices.add(device(1))
        uow.devices.add(device(2))
        uow.commit()
    with backend.uow_factory() as uow:
        assert len(uow.devices.select()) == 2


# -- care teams, patients, contacts ----------------------------------------------------------------------


def test_care_teams_by_id_and_name_with_unique_names(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        asane = uow.teams.add(CareTeam("Åsane"))
        arna = uow.teams.add(CareTeam("Arna", email="arna@example.org"))
        with pytest.raises(ConflictError, match=r"^care team 'Åsane' already exists$"):
            uow.teams.add(CareTeam("Åsane"))
        assert uow.teams.get_by_name("Arna") == arna
        assert uow.teams.get_by_name("arna") is None
        assert uow.teams.get(999) is None
        assert uow.teams.select() == [asane, arna]


def test_patient_round_trip_and_lookup_by_national_id(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        team = uow.teams.add(CareTeam("Åsane"))
        stored = uow.patients.add(patient(1, team_id=team.id, address="Åsaneveien 1"))
        uow.commit()
    assert stored.id is not None
    with backend.uow_factory() as uow:
        assert uow.patients.get(stored.id) == stored
        assert uow.patients.find_by_national_id("00000000001") == stored
        assert uow.patients.find_by_national_id("00000000002") is None
        assert stored.phone == "+47 40000001"
        assert stored.created_at == T0


def test_national_id_numbers_are_unique_and_not_repeated_in_the_error(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        uow.patients.add(patient(1))
        with pytest.raises(ConflictError) as caught:
            uow.patients.add(patient(2, national_id="00000000001"))
    assert str(caught.value) == "a patient with this national id number is already registered"


def test_patient_update_rules(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        first = uow.patients.add(patient(1))
        second = uow.patients.add(patient(2))
        moved = uow.patients.update(replace(first, national_id="00000000009", phone=None))
        assert uow.patients.find_by_national_id("00000000009") == moved
        assert uow.patients.find_by_national_id("00000000001") is None
        with pytest.raises(ConflictError, match="already registered"):
            uow.patients.update(replace(second, national_id="00000000009"))
        with pytest.raises(NotFoundError, match=r"^patient 99 does not exist$"):
            uow.patients.update(replace(first, id=99))
        with pytest.raises(NotFoundError, match="no storage id"):
            uow.patients.update(patient(3))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.patients.get(moved.id or 0) == moved
        assert moved.phone is None


def test_patients_select_by_team_in_id_order_with_pages(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        team = uow.teams.add(CareTeam("Arna"))
        stored = [uow.patients.add(patient(n, team_id=team.id if n % 2 else None)) for n in range(1, 8)]
        with pytest.raises(NotFoundError, match=r"^care team 999 does not exist$"):
            uow.patients.add(patient(9, team_id=999))
        assert uow.patients.select() == stored
        assert uow.patients.select(offset=2, limit=3) == stored[2:5]
        assert uow.patients.select(team_id=team.id) == stored[0::2]
        assert uow.patients.select(team_id=team.id, offset=1, limit=2) == stored[2:6:2]
        with pytest.raises(ValueError, match="must not be negative"):
            uow.patients.select(limit=-1)


def test_contacts_by_priority_then_id_and_removal(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        owner = uow.patients.add(patient(1))
        other = uow.patients.add(patient(2))
        pid = owner.id or 0
        second = uow.contacts.add(Contact(pid, "Ola", phone="+47 91111111", priority=2))
        first = uow.contacts.add(Contact(pid, "Kari", phone="+47 92222222", relation="daughter", priority=1))
        also_second = uow.contacts.add(Contact(pid, "Per", email="per@example.org", priority=2))
        uow.contacts.add(Contact(other.id or 0, "Nils"))
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.contacts.add(Contact(999, "Nobody"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.contacts.for_patient(pid) == [first, second, also_second]
        uow.contacts.remove(second.id or 0)
        with pytest.raises(NotFoundError, match=r"^contact 999 does not exist$"):
            uow.contacts.remove(999)
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.contacts.for_patient(pid) == [first, also_second]
        assert uow.contacts.for_patient(999) == []


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_patient_identifiers_are_encrypted_at_rest(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        stored = uow.patients.add(patient(1, national_id="24120112345", phone="+4798765432"))
        uow.contacts.add(Contact(stored.id or 0, "Kari", phone="+4791234567"))
        uow.commit()
    rows = backend.raw_rows("SELECT * FROM patient") + backend.raw_rows("SELECT * FROM contact")
    raw = repr(rows)
    for plaintext in ("24120112345", "4798765432", "4791234567"):
        assert plaintext not in raw
    assert "Patient 1" in raw  # the test does look at the rows
    with backend.uow_factory() as uow:
        assert uow.patients.find_by_national_id("24120112345") == stored
        assert uow.contacts.for_patient(stored.id or 0)[0].phone == "+4791234567"


# -- devices and enrollment codes ------------------------------------------------------------------------


def test_device_round_trip_with_presence(backend: Backend) -> None:
    full = device(
        17,
        status=DeviceStatus.ACTIVE,
        firmware="3.1.0",
        public_key="q2v0" * 10,
        kid="k1",
        certificate_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        certificate_serial=2**158 + 12345,
        enrolled_at=T0 + timedelta(minutes=5),
        presence=Presence(
            online=True,
            last_seen_at=T0 + timedelta(minutes=9),
            since=T0 + timedelta(minutes=6),
            boot_id="01JBOOT",
            connection=3,
            last_seq=2**40,
            battery_pct=87,
            on_mains=False,
            schedule_version=4,
            capabilities=("roll", "scan", "speaker"),
            supply_doses_left=23,
            supply_until=T0 + timedelta(days=7),
            firmware="3.1.1",
        ),
    )
    with backend.uow_factory() as uow:
        assert uow.devices.add(full) == full
        uow.devices.add(device(18))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.devices.get("RM3-000017") == full
        assert uow.devices.get_by_serial("SN-000017") == full
        assert uow.devices.get("RM3-000099") is None
        assert uow.devices.get_by_serial("SN-000099") is None
        assert uow.devices.get("RM3-000018") == device(18)


def test_device_ids_and_serials_are_unique(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        uow.devices.add(device(17))
        with pytest.raises(ConflictError, match=r"^device RM3-000017 is already registered$"):
            uow.devices.add(device(17, serial="SN-OTHER"))
        with pytest.raises(ConflictError, match=r"^serial number SN-000017 is already registered to another"):
            uow.devices.add(device(18, serial="SN-000017"))


def test_device_update_rules(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        seventeen = uow.devices.add(device(17))
        uow.devices.add(device(18))
        retired = replace(seventeen, status=DeviceStatus.RETIRED, retired_at=T0 + timedelta(days=1))
        assert uow.devices.update(retired) == retired
        with pytest.raises(ConflictError, match=r"^serial number SN-000018 is already registered"):
            uow.devices.update(replace(retired, serial="SN-000018"))
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.devices.update(device(99))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.devices.get("RM3-000017") == retired


def test_devices_read_and_written_in_batches(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        seventeen, eighteen, nineteen = (uow.devices.add(device(n)) for n in (17, 18, 19))
        uow.commit()
    seen = Presence(online=True, last_seen_at=T0 + timedelta(minutes=3), boot_id="B2", last_seq=7)
    with backend.uow_factory() as uow:
        assert uow.devices.get_many(["RM3-000019", "RM3-000099", "RM3-000017"]) == {
            "RM3-000017": seventeen,
            "RM3-000019": nineteen,
        }
        assert uow.devices.get_many([]) == {}
        uow.devices.get("RM3-000018")  # read before the batch write: a later read must see the new values
        changed = [
            replace(eighteen, status=DeviceStatus.ACTIVE, firmware="3.2.0", presence=seen),
            replace(seventeen, presence=replace(seen, battery_pct=40)),
        ]
        uow.devices.update_many(changed)
        uow.devices.update_many([])
        assert uow.devices.get("RM3-000018") == changed[0]
        assert uow.devices.get_many(["RM3-000017", "RM3-000018"]) == {
            "RM3-000017": changed[1],
            "RM3-000018": changed[0],
        }
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.devices.get_many(["RM3-000017", "RM3-000018", "RM3-000019"]) == {
            "RM3-000017": changed[1],
            "RM3-000018": changed[0],
            "RM3-000019": nineteen,
        }


def test_a_batch_device_write_is_all_or_nothing(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        seventeen, eighteen, _ = (uow.devices.add(device(n)) for n in (17, 18, 19))
        active = replace(seventeen, status=DeviceStatus.ACTIVE)
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.devices.update_many([active, device(99)])
        with pytest.raises(ConflictError, match=r"^serial number SN-000019 is already registered"):
            uow.devices.update_many([active, replace(eighteen, serial="SN-000019")])
        with pytest.raises(ValueError, match=r"^device_id RM3-000017 occurs twice in one batch$"):
            uow.devices.update_many([active, seventeen])
        assert uow.devices.get_many(["RM3-000017", "RM3-000018"]) == {
            "RM3-000017": seventeen,
            "RM3-000018": eighteen,
        }


def test_devices_select_by_status_in_registration_order(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        for number in (30, 10, 20, 40):
            active = number in {10, 40}
            uow.devices.add(device(number, status=DeviceStatus.ACTIVE if active else DeviceStatus.REGISTERED))
        uow.commit()
    with backend.uow_factory() as uow:
        assert [d.device_id[-2:] for d in uow.devices.select()] == ["30", "10", "20", "40"]
        assert [d.device_id[-2:] for d in uow.devices.select(status=DeviceStatus.ACTIVE)] == ["10", "40"]
        assert [d.device_id[-2:] for d in uow.devices.select(offset=1, limit=2)] == ["10", "20"]
        assert uow.devices.select(status=DeviceStatus.RETIRED) == []


def test_silent_since_finds_online_or_active_devices_not_heard_from(backend: Backend) -> None:
    def seen(minutes: int | None, *, online: bool) -> Presence:
        at = None if minutes is None else T0 + timedelta(minutes=minutes)
        return Presence(online=online, last_seen_at=at)

    cases = {
        1: (DeviceStatus.ACTIVE, seen(30, online=False)),  # active, silent: yes
        2: (DeviceStatus.ENROLLED, seen(10, online=True)),  # online, silent longest: yes, first
        3: (DeviceStatus.ACTIVE, seen(60, online=True)),  # heard at the cut-off exactly: no
        4: (DeviceStatus.REGISTERED, seen(5, online=False)),  # neither online nor active: no
        5: (DeviceStatus.ACTIVE, seen(None, online=False)),  # never heard from: no last message to be old
        6: (DeviceStatus.ACTIVE, seen(90, online=True)),  # heard recently: no
    }
    with backend.uow_factory() as uow:
        for number, (status, presence) in cases.items():
            uow.devices.add(device(number, status=status, presence=presence))
        uow.commit()
    with backend.uow_factory() as uow:
        silent = uow.devices.silent_since(T0 + timedelta(minutes=60))
        assert [d.device_id for d in silent] == ["RM3-000002", "RM3-000001"]


def test_enrollment_codes(backend: Backend) -> None:
    def code(device_id: str, code_hash: str) -> EnrollmentCode:
        return EnrollmentCode(device_id, code_hash, T0 + timedelta(days=2), T0, "operator:kari")

    with backend.uow_factory() as uow:
        uow.devices.add(device(17))
        first = uow.enrollment_codes.add(code("RM3-000017", "h1"))
        second = uow.enrollment_codes.add(code("RM3-000017", "h2"))
        with pytest.raises(
            ConflictError, match=r"^this enrollment code \(for device RM3-000017\) is already"
        ):
            uow.enrollment_codes.add(code("RM3-000017", "h1"))
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.enrollment_codes.add(code("RM3-000099", "h3"))
        used = uow.enrollment_codes.update(replace(first, used_at=T0 + timedelta(hours=1)))
        with pytest.raises(ConflictError, match="already stored"):
            uow.enrollment_codes.update(replace(second, code_hash="h1"))
        with pytest.raises(NotFoundError, match=r"^enrollment code 999 does not exist$"):
            uow.enrollment_codes.update(replace(first, id=999))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.enrollment_codes.find("h1") == used
        assert uow.enrollment_codes.find("nope") is None
        assert uow.enrollment_codes.for_device("RM3-000017") == [used, second]
        assert uow.enrollment_codes.for_device("RM3-000099") == []


# -- bindings --------------------------------------------------------------------------------------------


def test_one_active_binding_per_device_and_per_patient(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        uow.devices.add(device(17))
        uow.devices.add(device(18))
        kari = uow.patients.add(patient(1)).id or 0
        ola = uow.patients.add(patient(2)).id or 0
        bound = uow.bindings.add(binding("RM3-000017", kari))
        with pytest.raises(ConflictError, match=r"^device RM3-000017 already has an active binding$"):
            uow.bindings.add(binding("RM3-000017", ola))
        with pytest.raises(ConflictError, match=rf"^patient {kari} already has an active binding$"):
            uow.bindings.add(binding("RM3-000018", kari))
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.bindings.add(binding("RM3-000099", ola))
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.bindings.add(binding("RM3-000018", 999))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.bindings.active_for_device("RM3-000017") == bound
        assert uow.bindings.active_for_patient(kari) == bound
        assert uow.bindings.active_for_device("RM3-000018") is None
        assert uow.bindings.active_for_patient(ola) is None


def test_binding_history_across_unbind_and_rebind(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        uow.devices.add(device(17))
        kari = uow.patients.add(patient(1)).id or 0
        ola = uow.patients.add(patient(2)).id or 0
        first = uow.bindings.add(binding("RM3-000017", kari))
        ended = replace(
            first,
            unbound_at=T0 + timedelta(days=3),
            unbound_by="operator:per",
            unbind_reason="moved to nursing home",
        )
        assert uow.bindings.update(ended) == ended
        second = uow.bindings.add(binding("RM3-000017", ola, at=T0 + timedelta(days=4)))
        with pytest.raises(ConflictError, match=r"^device RM3-000017 already has an active binding$"):
            uow.bindings.update(replace(ended, unbound_at=None))  # re-opening the old one
        with pytest.raises(NotFoundError, match=r"^binding 999 does not exist$"):
            uow.bindings.update(replace(ended, id=999))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.bindings.history(device_id="RM3-000017") == [ended, second]
        assert uow.bindings.history(patient_id=kari) == [ended]
        assert uow.bindings.history(device_id="RM3-000017", patient_id=ola) == [second]
        assert uow.bindings.active_for_patient(kari) is None
        assert uow.bindings.active_for_device("RM3-000017") == second
        assert not ended.active
        assert second.active
