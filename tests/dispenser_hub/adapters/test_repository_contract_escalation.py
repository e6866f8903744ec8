"""Repository contract, escalation set-up: teams' on-call rosters and patients' own policies.

The same backends as part 1 (``test_repository_contract.py``): memory, SQLite, PostgreSQL. A roster and a
policy are documents edited whole: they come back exactly as written (staff, phone numbers, e-mail, every
shift; every step) and a second put replaces the first. References are checked (``NotFoundError``), and
nothing is kept without a commit. On SQL the roster (staff phone numbers) is not stored in the clear.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.escalation import Policy, Step, Target
from dispenser_hub.domain.model import CareTeam, PolicyRecord, RosterRecord
from dispenser_hub.domain.rosters import StaffMember, TeamRoster, WeeklyShift
from dispenser_hub.ports import NotFoundError
from tests.support.storage import (
    BACKENDS,
    SQL_BACKENDS,
    T0,
    Backend,
    migrated_sqlite_template,
    open_backend,
    patient,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

OPERATOR = "operator:kari"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


def _roster(team_id: int, *, night: str = "nurse-1") -> TeamRoster:
    staff = (
        StaffMember("nurse-1", "Åse Ødegård", phone="+47 912 34 567", email="ase@kommune.no"),
        StaffMember("nurse-2", "Per", phone="+4791234568"),
        StaffMember("nurse-3", "Kari", email="kari@kommune.no"),
    )
    rota = tuple(
        WeeklyShift(str(team_id), ref, ref, day, start, timedelta(hours=hours))
        for day in range(7)
        for ref, start, hours in (
            (night, time(22, 0), 9),
            ("nurse-2", time(7, 0), 8),
            ("nurse-3", time(15), 7),
        )
    )
    return TeamRoster(str(team_id), staff, rota)


def _team(backend: Backend) -> int:
    with backend.uow_factory() as uow:
        team = uow.teams.add(CareTeam("Sone Nord", phone="+47 22 00 00 00"))
        uow.commit()
    assert team.id is not None
    return team.id


def test_a_roster_comes_back_as_written_and_a_second_replaces_it(backend: Backend) -> None:
    team_id = _team(backend)
    first = RosterRecord(team_id, _roster(team_id), T0, OPERATOR)
    with backend.uow_factory() as uow:
        assert uow.escalation.roster(team_id) is None
        uow.escalation.put_roster(first)
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.escalation.roster(team_id) == first
        second = RosterRecord(team_id, _roster(team_id, night="nurse-3"), T0 + timedelta(hours=1), "op:per")
        uow.escalation.put_roster(second)
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.escalation.roster(team_id) == second


def test_a_policy_comes_back_as_written_and_can_be_removed(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        patient_id = uow.patients.add(patient(1)).id or 0
        uow.commit()
    policy = Policy(
        "Kari: relative first, then the night nurse",
        (
            Step(timedelta(minutes=20), Target.RELATIVE),
            Step(timedelta(minutes=45), Target.NAMED_PERSON, person="nurse-1"),
            Step(
                timedelta(minutes=70),
                Target.RESPONSE_CENTRE,
                repeat_every=timedelta(minutes=15),
                repeat_max=2,
            ),
        ),
    )
    record = PolicyRecord(patient_id, policy, T0, OPERATOR)
    with backend.uow_factory() as uow:
        uow.escalation.put_policy(record)
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.escalation.policy(patient_id) == record
        assert uow.escalation.remove_policy(patient_id)
        assert not uow.escalation.remove_policy(patient_id)
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.escalation.policy(patient_id) is None


def test_unknown_teams_and_patients_are_refused_and_nothing_is_kept_without_a_commit(
    backend: Backend,
) -> None:
    team_id = _team(backend)
    policy = Policy("p", (Step(timedelta(minutes=5), Target.RESPONSE_CENTRE),))
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match="team"):
            uow.escalation.put_roster(RosterRecord(team_id + 99, _roster(team_id + 99), T0, OPERATOR))
        with pytest.raises(NotFoundError, match="patient"):
            uow.escalation.put_policy(PolicyRecord(12345, policy, T0, OPERATOR))
        uow.escalation.put_roster(RosterRecord(team_id, _roster(team_id), T0, OPERATOR))
    with backend.uow_factory() as uow:
        assert uow.escalation.roster(team_id) is None


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_staff_phone_numbers_are_not_stored_in_the_clear(backend: Backend) -> None:
    team_id = _team(backend)
    with backend.uow_factory() as uow:
        uow.escalation.put_roster(RosterRecord(team_id, _roster(team_id), T0, OPERATOR))
        uow.commit()
    stored = repr(backend.raw_rows("SELECT * FROM team_roster"))
    assert "912 34 567" not in stored
    assert "kommune.no" not in stored
