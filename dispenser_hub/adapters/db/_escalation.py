"""SQL rosters and patient policies (rules in ``_escalation_tables``; same behaviour as the memory store)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository
from dispenser_hub.adapters.db._escalation_tables import PatientPolicyRow, TeamRosterRow
from dispenser_hub.adapters.db.tables import CareTeamRow
from dispenser_hub.domain.escalation import policy_document, policy_from_document
from dispenser_hub.domain.model import PolicyRecord, RosterRecord
from dispenser_hub.domain.rosters import roster_document, roster_from_document
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from sqlmodel import SQLModel

ROSTER_CONTEXT = "team_roster.document"


class SqlEscalationSetupRepository(SqlRepository):
    """Rosters by team id, patients' own policies by patient id."""

    def roster(self, team_id: int) -> RosterRecord | None:
        """The team's roster."""
        row = self._session.get(TeamRosterRow, team_id)
        if row is None:
            return None
        document = json.loads(self._protector.decrypt(row.document_enc, context=ROSTER_CONTEXT))
        roster = roster_from_document(str(team_id), document)
        return RosterRecord(row.team_id, roster, row.updated_at, row.updated_by)

    def put_roster(self, record: RosterRecord) -> RosterRecord:
        """Store (replace) the team's roster."""
        if self._session.get(CareTeamRow, record.team_id) is None:
            raise NotFoundError(rules.missing("team", record.team_id))
        record = rules.normalise(record)
        text = json.dumps(roster_document(record.roster), sort_keys=True)
        values = {
            "team_id": record.team_id,
            "document_enc": self._protector.encrypt(text, context=ROSTER_CONTEXT),
            "updated_at": record.updated_at,
            "updated_by": record.updated_by,
        }
        self._replace(TeamRosterRow, record.team_id, values)
        return record

    def policy(self, patient_id: int) -> PolicyRecord | None:
        """The patient's own policy."""
        row = self._session.get(PatientPolicyRow, patient_id)
        if row is None:
            return None
        return PolicyRecord(
            row.patient_id, policy_from_document(row.document), row.updated_at, row.updated_by
        )

    def put_policy(self, record: PolicyRecord) -> PolicyRecord:
        """Store (replace) the patient's policy."""
        if not self._patient_exists(record.patient_id):
            raise NotFoundError(rules.missing("patient", record.patient_id))
        record = rules.normalise(record)
        values = {
            "patient_id": record.patient_id,
            "document": policy_document(record.policy),
            "updated_at": record.updated_at,
            "updated_by": record.updated_by,
        }
        self._replace(PatientPolicyRow, record.patient_id, values)
        return record

    def remove_policy(self, patient_id: int) -> bool:
        """Back to the default; whether there was a policy of the patient's own."""
        row = self._session.get(PatientPolicyRow, patient_id)
        if row is None:
            return False
        self._session.delete(row)
        self._flush({})
        return True

    def _replace(self, table: type[SQLModel], key: int, values: dict[str, Any]) -> None:
        row = self._session.get(table, key)
        if row is None:
            self._session.add(table(**values))
        else:
            row.sqlmodel_update(values)
        self._flush({})
