"""In-memory rosters and patient policies: one record per team and per patient, replaced whole.

Same rules and errors as ``adapters.db._escalation`` (the contract suite checks both): the team or patient
must exist (``NotFoundError``); times are kept in ``UTC`` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._registry import MemoryRepository
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from dispenser_hub.domain.model import PolicyRecord, RosterRecord


class MemoryEscalationSetupRepository(MemoryRepository):
    """Rosters by team id, patients' own policies by patient id."""

    def roster(self, team_id: int) -> RosterRecord | None:
        """The team's roster."""
        return self._tables.rosters.rows.get(team_id)

    def put_roster(self, record: RosterRecord) -> RosterRecord:
        """Store (replace) the team's roster."""
        if record.team_id not in self._tables.teams.rows:
            raise NotFoundError(rules.missing("team", record.team_id))
        stored = rules.normalise(record)
        self._tx.write().rosters.put(record.team_id, stored)
        return stored

    def policy(self, patient_id: int) -> PolicyRecord | None:
        """The patient's own policy."""
        return self._tables.policies.rows.get(patient_id)

    def put_policy(self, record: PolicyRecord) -> PolicyRecord:
        """Store (replace) the patient's policy."""
        self._require_patient(record.patient_id)
        stored = rules.normalise(record)
        self._tx.write().policies.put(record.patient_id, stored)
        return stored

    def remove_policy(self, patient_id: int) -> bool:
        """Back to the default; whether there was a policy of the patient's own."""
        if patient_id not in self._tables.policies.rows:
            return False
        self._tx.write().policies.pop(patient_id)
        return True
