"""What operators set up for escalation: on-call rosters, patients' own policies, staff skipping a dose.

Rules:

- A roster or a policy is sent and stored whole (a document, ``rosters.roster_document`` and
  ``escalation.policy_document`` shapes); a bad one is refused with ``RegistryError`` naming the field
  (``staff[1].phone``, ``steps[0].after_minutes``) and nothing is stored. Every change is audited
  (``team.roster``, ``patient.escalation_policy``, ``dose.skip``); the audit names the team or patient, never
  a phone number.
- A policy takes effect for alarms raised after it is stored: an alarm in flight keeps its plan (the
  snapshot). ``policy`` answers the policy in force (the patient's own or the default of the responsibility
  level) with warnings for steps the patient's records cannot deliver (no relative, no team).
- **Skip**: staff decide an open dose is not to be taken (``doses.skip``: who and why required); it then
  raises no missed-dose alarm. A dose already closed cannot be skipped (the error says its state).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.doses import DoseError
from dispenser_hub.domain.doses import skip as skip_rule
from dispenser_hub.domain.escalation import (
    EscalationError,
    default_policy,
    policy_from_document,
    validate_for_patient,
)
from dispenser_hub.domain.model import AuditEntry, PolicyRecord, RosterRecord
from dispenser_hub.domain.rosters import RosterError, gaps, roster_from_document
from dispenser_hub.services.operator import require_patient
from dispenser_hub.services.registry import Conflict, NotFound, RegistryError

if TYPE_CHECKING:
    from dispenser_hub.domain.doses import Dose
    from dispenser_hub.domain.escalation import Policy, Undeliverable
    from dispenser_hub.domain.rosters import StaffMember
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory

LOOK_AHEAD = timedelta(days=7)
"""How far ``coverage`` looks for gaps in a rota."""


class EscalationAdmin:
    """Rosters, patients' policies and skipped doses, for the API and the CLI (see the module rules)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        """Store through ``uow_factory``; ``clock`` dates changes."""
        self._uow_factory = uow_factory
        self._clock = clock

    def _now(self) -> datetime:
        return self._clock.now().astimezone(UTC)

    # -- rosters ------------------------------------------------------------------------------------------

    def roster(self, team_id: int) -> RosterRecord | None:
        """The team's roster (``NotFound`` for an unknown team)."""
        with self._uow_factory() as uow:
            _require_team(uow, team_id)
            return uow.escalation.roster(team_id)

    def set_roster(self, team_id: int, document: object, *, by: str) -> RosterRecord:
        """Replace the team's roster with ``document``."""
        now = self._now()
        try:
            roster = roster_from_document(str(team_id), document)
        except RosterError as error:
            raise RegistryError(str(error), field=error.field) from None
        with self._uow_factory() as uow:
            _require_team(uow, team_id)
            stored = uow.escalation.put_roster(RosterRecord(team_id, roster, now, by))
            detail = f"{len(roster.staff)} staff, {len(roster.rota)} weekly shifts"
            uow.audit.add(AuditEntry(now, by, "team.roster", f"team:{team_id}", detail))
            uow.commit()
        return stored

    def coverage(self, record: RosterRecord) -> tuple[list[StaffMember], list[tuple[datetime, datetime]]]:
        """Who is on call now, and the gaps in the rota over the next ``LOOK_AHEAD``."""
        now = self._now()
        roster = record.roster
        shifts = roster.shifts_around(now) + roster.shifts_around(now + LOOK_AHEAD)
        unique = list(dict.fromkeys(shifts))
        return roster.on_call(now), gaps(unique, roster.team_id, now, now + LOOK_AHEAD)

    # -- policies -----------------------------------------------------------------------------------------

    def policy(self, patient_id: int) -> tuple[Policy, PolicyRecord | None, list[Undeliverable]]:
        """The policy in force for the patient's alarms, their own record (if any), and its warnings."""
        with self._uow_factory() as uow:
            return _in_force(uow, patient_id)

    def set_policy(self, patient_id: int, document: object, *, by: str) -> PolicyRecord:
        """Give the patient their own policy (``document``)."""
        now = self._now()
        try:
            policy = policy_from_document(document)
        except EscalationError as error:
            raise RegistryError(str(error), field=error.field) from None
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            stored = uow.escalation.put_policy(PolicyRecord(patient_id, policy, now, by))
            uow.audit.add(
                AuditEntry(now, by, "patient.escalation_policy", f"patient:{patient_id}", policy.name)
            )
            uow.commit()
        return stored

    def reset_policy(self, patient_id: int, *, by: str) -> bool:
        """Back to the default of the patient's responsibility level; whether they had their own."""
        now = self._now()
        with self._uow_factory() as uow:
            require_patient(uow, patient_id)
            removed = uow.escalation.remove_policy(patient_id)
            if removed:
                uow.audit.add(
                    AuditEntry(now, by, "patient.escalation_policy", f"patient:{patient_id}", "default")
                )
            uow.commit()
        return removed

    # -- doses --------------------------------------------------------------------------------------------

    def skip_dose(self, device_id: str, slot_id: str, *, by: str, reason: str) -> Dose:
        """Staff skip an open dose (see the module rules)."""
        now = self._now()
        with self._uow_factory() as uow:
            dose = uow.doses.get(device_id, slot_id)
            if dose is None:
                raise NotFound(f"there is no dose {slot_id} on dispenser {device_id}", field="slot_id")
            try:
                change = skip_rule(dose, by=by, reason=reason, now=now)
            except DoseError as error:
                if error.field == "state":
                    raise Conflict(str(error), field="slot_id") from None
                raise RegistryError(str(error), field=error.field) from None
            stored = uow.doses.put(change.dose)
            uow.audit.add(AuditEntry(now, by, "dose.skip", f"dose:{device_id}/{slot_id}", reason))
            uow.commit()
        return stored


def _require_team(uow: UnitOfWork, team_id: int) -> None:
    if uow.teams.get(team_id) is None:
        raise NotFound(f"there is no team {team_id}", field="team_id")


def _in_force(uow: UnitOfWork, patient_id: int) -> tuple[Policy, PolicyRecord | None, list[Undeliverable]]:
    patient = uow.patients.get(patient_id)
    if patient is None or patient.id is None:
        raise NotFound(f"there is no patient {patient_id}", field="patient_id")
    own = uow.escalation.policy(patient_id)
    policy = own.policy if own is not None else default_policy(patient.responsibility)
    has_relative = any(c.phone or c.email for c in uow.contacts.for_patient(patient.id))
    return (
        policy,
        own,
        validate_for_patient(policy, has_relative=has_relative, has_team=patient.team_id is not None),
    )
