"""SQL repositories of people: care teams, patients (identifiers encrypted), contacts (phone encrypted).

Rules: the national id number and phone numbers are written only as ``FieldProtector`` tokens (contexts
``patient.national_id``, ``patient.phone``, ``contact.phone``); the national id is found and kept unique
through its keyed lookup hash. References are checked before uniqueness, as in ``adapters.memory``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository
from dispenser_hub.adapters.db.tables import CareTeamRow, ContactRow, PatientRow
from dispenser_hub.domain.model import CareTeam, Contact, Patient, Responsibility
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from dispenser_hub.ports import FieldProtector

NATIONAL_ID_CONTEXT = "patient.national_id"
PATIENT_PHONE_CONTEXT = "patient.phone"
CONTACT_PHONE_CONTEXT = "contact.phone"


class SqlCareTeamRepository(SqlRepository):
    """Care teams; names are unique."""

    def add(self, team: CareTeam) -> CareTeam:
        """Store a new team; ``ConflictError`` if the name is taken."""
        if self.get_by_name(team.name) is not None:
            raise ConflictError(rules.team_name_taken(team.name))
        row = CareTeamRow(name=team.name, phone=team.phone, email=team.email)
        self._session.add(row)
        self._flush({"uq_care_team_name": rules.team_name_taken(team.name)})
        return _team(row)

    def get(self, team_id: int) -> CareTeam | None:
        """The team with this id."""
        row = self._session.get(CareTeamRow, team_id)
        return None if row is None else _team(row)

    def get_by_name(self, name: str) -> CareTeam | None:
        """The team with this exact name."""
        row = self._session.exec(select(CareTeamRow).where(col(CareTeamRow.name) == name)).first()
        return None if row is None else _team(row)

    def select(self) -> list[CareTeam]:
        """Every team, in id order."""
        return [_team(row) for row in self._session.exec(select(CareTeamRow).order_by(col(CareTeamRow.id)))]


class SqlPatientRepository(SqlRepository):
    """Patients; the national id number is unique (by its lookup hash)."""

    def add(self, patient: Patient) -> Patient:
        """Store a new patient (see ``ports.PatientRepository``)."""
        patient = rules.normalise(patient)
        self._check(patient, own_id=None)
        row = PatientRow(**self._values(patient))
        self._session.add(row)
        self._flush({"uq_patient_national_id_hash": rules.national_id_taken()})
        return _patient(row, self._protector)

    def get(self, patient_id: int) -> Patient | None:
        """The patient with this id."""
        row = self._session.get(PatientRow, patient_id)
        return None if row is None else _patient(row, self._protector)

    def find_by_national_id(self, national_id: str) -> Patient | None:
        """The patient with this national id number (by its lookup hash)."""
        row = self._find_row(national_id)
        return None if row is None else _patient(row, self._protector)

    def update(self, patient: Patient) -> Patient:
        """Replace the stored patient with the same id."""
        if patient.id is None:
            raise NotFoundError(rules.no_id("patient"))
        row = self._session.get(PatientRow, patient.id)
        if row is None:
            raise NotFoundError(rules.missing("patient", patient.id))
        patient = rules.normalise(patient)
        self._check(patient, own_id=patient.id)
        row.sqlmodel_update(self._values(patient))
        self._flush({"uq_patient_national_id_hash": rules.national_id_taken()})
        return _patient(row, self._protector)

    def select(self, *, team_id: int | None = None, offset: int = 0, limit: int = 100) -> list[Patient]:
        """Patients in id order, optionally of one team."""
        rules.check_page(offset, limit)
        statement = select(PatientRow).order_by(col(PatientRow.id)).offset(offset).limit(limit)
        if team_id is not None:
            statement = statement.where(col(PatientRow.team_id) == team_id)
        return [_patient(row, self._protector) for row in self._session.exec(statement)]

    def _find_row(self, national_id: str) -> PatientRow | None:
        lookup = self._protector.lookup_hash(national_id, context=NATIONAL_ID_CONTEXT)
        return self._session.exec(
            select(PatientRow).where(col(PatientRow.national_id_hash) == lookup)
        ).first()

    def _check(self, patient: Patient, *, own_id: int | None) -> None:
        if patient.team_id is not None and self._session.get(CareTeamRow, patient.team_id) is None:
            raise NotFoundError(rules.missing("care team", patient.team_id))
        other = self._find_row(patient.national_id)
        if other is not None and other.id != own_id:
            raise ConflictError(rules.national_id_taken())

    def _values(self, patient: Patient) -> dict[str, Any]:
        protector = self._protector
        return {
            "name": patient.name,
            "national_id_enc": protector.encrypt(patient.national_id, context=NATIONAL_ID_CONTEXT),
            "national_id_hash": protector.lookup_hash(patient.national_id, context=NATIONAL_ID_CONTEXT),
            "responsibility": patient.responsibility.value,
            "phone_enc": _encrypt(protector, patient.phone, PATIENT_PHONE_CONTEXT),
            "address": patient.address,
            "team_id": patient.team_id,
            "created_at": patient.created_at,
        }


class SqlContactRepository(SqlRepository):
    """Patients' contacts."""

    def add(self, contact: Contact) -> Contact:
        """Store a new contact of an existing patient."""
        if not self._patient_exists(contact.patient_id):
            raise NotFoundError(rules.missing("patient", contact.patient_id))
        row = ContactRow(
            patient_id=contact.patient_id,
            name=contact.name,
            phone_enc=_encrypt(self._protector, contact.phone, CONTACT_PHONE_CONTEXT),
            email=contact.email,
            relation=contact.relation,
            priority=contact.priority,
        )
        self._session.add(row)
        self._flush({})
        return _contact(row, self._protector)

    def for_patient(self, patient_id: int) -> list[Contact]:
        """The patient's contacts by priority, then id."""
        statement = (
            select(ContactRow)
            .where(col(ContactRow.patient_id) == patient_id)
            .order_by(col(ContactRow.priority), col(ContactRow.id))
        )
        return [_contact(row, self._protector) for row in self._session.exec(statement)]

    def remove(self, contact_id: int) -> None:
        """Delete a contact; ``NotFoundError`` if there is none."""
        row = self._session.get(ContactRow, contact_id)
        if row is None:
            raise NotFoundError(rules.missing("contact", contact_id))
        self._session.delete(row)
        self._flush({})


def _encrypt(protector: FieldProtector, value: str | None, context: str) -> str | None:
    return None if value is None else protector.encrypt(value, context=context)


def _decrypt(protector: FieldProtector, token: str | None, context: str) -> str | None:
    return None if token is None else protector.decrypt(token, context=context)


def _team(row: CareTeamRow) -> CareTeam:
    return CareTeam(name=row.name, phone=row.phone, email=row.email, id=row.id)


def _patient(row: PatientRow, protector: FieldProtector) -> Patient:
    return Patient(
        name=row.name,
        national_id=protector.decrypt(row.national_id_enc, context=NATIONAL_ID_CONTEXT),
        responsibility=Responsibility(row.responsibility),
        phone=_decrypt(protector, row.phone_enc, PATIENT_PHONE_CONTEXT),
        address=row.address,
        team_id=row.team_id,
        created_at=row.created_at,
        id=row.id,
    )


def _contact(row: ContactRow, protector: FieldProtector) -> Contact:
    return Contact(
        patient_id=row.patient_id,
        name=row.name,
        phone=_decrypt(protector, row.phone_enc, CONTACT_PHONE_CONTEXT),
        email=row.email,
        relation=row.relation,
        priority=row.priority,
        id=row.id,
    )
