"""Models of care teams, patients, their contacts and the national id number.

The national id number is validated on the way in (checksum and date, ``domain.national_id``) and leaves
the API only masked (``010190*****``), except in ``NationalIdPublic``, the answer of the one audited route
that exists for it.
"""

from typing import Self

from pydantic import Field, field_validator

from dispenser_hub.domain.model import CareTeam, Contact, Patient, Responsibility
from dispenser_hub.domain.national_id import LENGTH, InvalidNationalIdError, NationalId
from dispenser_hub.web.schemas.common import (
    Email,
    Input,
    Name,
    Page,
    Phone,
    Public,
    RecordId,
    Timestamp,
    stored,
)

_SHOWN_DIGITS = 6


def mask_national_id(value: str) -> str:
    """The six date digits and five stars: ``01019012345`` -> ``010190*****``."""
    return value[:_SHOWN_DIGITS] + "*" * (LENGTH - _SHOWN_DIGITS)


# -- teams ---------------------------------------------------------------------------------------------------


class TeamCreate(Input):
    """A new home-care team (district)."""

    name: Name = Field(description="Unique name, e.g. Åsane.", examples=["Åsane"])
    phone: Phone | None = Field(None, description="The team's on-call phone.")
    email: Email | None = Field(None, description="The team's e-mail address.")

    def record(self) -> CareTeam:
        """The record to register."""
        return CareTeam(name=self.name, phone=self.phone, email=self.email)


class TeamPublic(Public):
    """A home-care team."""

    id: int
    name: str
    phone: str | None
    email: str | None

    @classmethod
    def of(cls, team: CareTeam) -> Self:
        """From the record."""
        return cls(id=stored(team.id), name=team.name, phone=team.phone, email=team.email)


class TeamList(Public):
    """Every team, by id."""

    items: list[TeamPublic]


# -- patients ------------------------------------------------------------------------------------------------


class PatientCreate(Input):
    """A new patient."""

    name: Name = Field(description="Full name.")
    national_id: str = Field(
        max_length=32,
        description=(
            "Norwegian national identity number (fødselsnummer, D- or H-number), 11 digits, "
            "optionally written 'DDMMYY NNNNN'. Checked (date and check digits); must be new."
        ),
        examples=["01019000008"],
    )
    responsibility: Responsibility = Field(
        description="Who follows up the medication; decides the escalation path."
    )
    phone: Phone | None = Field(None, description="The patient's phone.")
    address: Name | None = Field(None, description="Home address (for call-outs).")
    team_id: RecordId | None = Field(None, description="Home-care team; required for home_care patients.")

    @field_validator("national_id")
    @classmethod
    def _valid_national_id(cls, value: str) -> str:
        try:
            return NationalId.parse(value).value
        except InvalidNationalIdError as exc:  # the message never contains the number
            raise ValueError(str(exc)) from None

    def record(self) -> Patient:
        """The record to register."""
        return Patient(
            name=self.name,
            national_id=self.national_id,
            responsibility=self.responsibility,
            phone=self.phone,
            address=self.address,
            team_id=self.team_id,
        )


class PatientPublic(Public):
    """A patient, with the national id number masked."""

    id: int
    name: str
    national_id_masked: str = Field(
        description="Date digits only (010190*****); the full number: GET /patients/{id}/national-id.",
        examples=["010190*****"],
    )
    responsibility: Responsibility
    phone: str | None
    address: str | None
    team_id: int | None
    created_at: Timestamp | None

    @classmethod
    def of(cls, patient: Patient) -> Self:
        """From the record (masking the national id number)."""
        return cls(
            id=stored(patient.id),
            name=patient.name,
            national_id_masked=mask_national_id(patient.national_id),
            responsibility=patient.responsibility,
            phone=patient.phone,
            address=patient.address,
            team_id=patient.team_id,
            created_at=patient.created_at,
        )


class PatientPage(Page):
    """A page of patients, by id."""

    items: list[PatientPublic]


class NationalIdPublic(Public):
    """A patient's full national id number (each read is audited)."""

    patient_id: int
    national_id: str = Field(description="The full 11 digits.")
    kind: str = Field(description="FNR (fødselsnummer), DNR (D-number), HNR (H-number) or SYNTHETIC.")
    oid: str = Field(description="The FHIR identifier system OID of this kind of number.")

    @classmethod
    def of(cls, patient: Patient) -> Self:
        """From the record."""
        number = NationalId(patient.national_id)
        return cls(
            patient_id=stored(patient.id), national_id=number.value, kind=number.kind.value, oid=number.oid
        )


# -- contacts ------------------------------------------------------------------------------------------------


class ContactCreate(Input):
    """A new relative or other contact of a patient; needs a phone number or an e-mail address."""

    name: Name
    phone: Phone | None = None
    email: Email | None = None
    relation: Name = Field("relative", description="e.g. relative, daughter, neighbour, GP.")
    priority: int = Field(1, ge=1, le=99, description="Order in which contacts are told (1 first).")

    def record(self, patient_id: int) -> Contact:
        """The record to add."""
        return Contact(
            patient_id=patient_id,
            name=self.name,
            phone=self.phone,
            email=self.email,
            relation=self.relation,
            priority=self.priority,
        )


class ContactPublic(Public):
    """A patient's contact."""

    id: int
    patient_id: int
    name: str
    phone: str | None
    email: str | None
    relation: str
    priority: int

    @classmethod
    def of(cls, contact: Contact) -> Self:
        """From the record."""
        return cls(
            id=stored(contact.id),
            patient_id=contact.patient_id,
            name=contact.name,
            phone=contact.phone,
            email=contact.email,
            relation=contact.relation,
            priority=contact.priority,
        )


class ContactList(Public):
    """A patient's contacts by priority, then id."""

    items: list[ContactPublic]
