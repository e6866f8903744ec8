"""The demo's care set-up: who is told when a simulated patient misses a dose.

What an operator would register before go-live, done for the demo's synthetic patients (no real person):

- every patient gets a relative with a (synthetic) mobile number, reached by SMS;
- patients whose simulated behaviour is ``forgetful`` are followed up by home care (``HOME_CARE``: relative
  at +30 min, response centre at +60, home care on call at +90) in the team "Hjemmetjenesten demo", whose
  roster has a nurse on call around the clock and a day nurse on weekdays;
- the others stay with the response centre (``RESPONSE_CENTRE``).

The demo's embedded outbox (``demo_outbox``) stands in for the SMS operator and the response centre's
alarm system, so every message the chain sends shows in the terminal.
"""

from __future__ import annotations

import dataclasses
from datetime import time, timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.model import CareTeam, Contact, Responsibility, RosterRecord
from dispenser_hub.domain.rosters import StaffMember, TeamRoster, WeeklyShift

if TYPE_CHECKING:
    from datetime import datetime

    from device_sim.scenario import Scenario
    from dispenser_hub.demo_pharmacy import DemoOffice
    from dispenser_hub.ports import UnitOfWorkFactory
    from dispenser_hub.services.registry import Registry

BY: Final = "demo:office"
TEAM: Final = "Hjemmetjenesten demo"
NIGHT_NURSE: Final = StaffMember("nurse-on-call", "Vakthavende sykepleier", phone="+4740000900")
DAY_NURSE: Final = StaffMember("day-nurse", "Dagsykepleier", phone="+4740000901")
FOLLOWED_BY_HOME_CARE: Final = frozenset({"forgetful"})


def relative_phone(index: int) -> str:
    """The synthetic mobile number of demo patient ``index``'s relative (+47 4000 0xxx)."""
    return f"+474000{index:04d}"


def demo_roster(team_id: int) -> TeamRoster:
    """The nurse on call around the clock, and a day nurse 08:00-16:00 on weekdays."""
    team = str(team_id)
    rota = [
        WeeklyShift(team, NIGHT_NURSE.ref, NIGHT_NURSE.ref, day, time(0, 0), timedelta(hours=24))
        for day in range(7)
    ]
    rota += [
        WeeklyShift(team, DAY_NURSE.ref, DAY_NURSE.ref, day, time(8, 0), timedelta(hours=8))
        for day in range(5)
    ]
    return TeamRoster(team, (NIGHT_NURSE, DAY_NURSE), tuple(rota))


def set_up_care(
    scenario: Scenario,
    registry: Registry,
    uow_factory: UnitOfWorkFactory,
    office: DemoOffice,
    *,
    now: datetime,
) -> list[int]:
    """Relatives, the home-care team and its roster (module docstring); returns who home care follows."""
    team = registry.add_team(CareTeam(TEAM, phone="+4740000999"), by=BY)
    assert team.id is not None  # noqa: S101 - stored teams have ids
    followed: list[int] = []
    for spec in scenario.devices():
        patient_id = office.patients[spec.device_id]
        registry.add_contact(
            Contact(patient_id, f"Pårørende {spec.index}", phone=relative_phone(spec.index)), by=BY
        )
        if spec.patient.name in FOLLOWED_BY_HOME_CARE:
            followed.append(patient_id)
    with uow_factory() as uow:
        uow.escalation.put_roster(RosterRecord(team.id, demo_roster(team.id), now, BY))
        for patient_id in followed:
            patient = uow.patients.get(patient_id)
            if patient is not None:
                home_care = dataclasses.replace(
                    patient, responsibility=Responsibility.HOME_CARE, team_id=team.id
                )
                uow.patients.update(home_care)
        uow.commit()
    return followed
