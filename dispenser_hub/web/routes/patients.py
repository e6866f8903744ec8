"""``/patients``: patients, their contacts, and the audited read of the full national id number."""

from typing import Annotated

from fastapi import Query, status

from dispenser_hub.domain.model import AuditEntry
from dispenser_hub.web.deps import Ctx, Operator, PageQuery
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import PatientIdPath, get_patient, operator_router, utc_now
from dispenser_hub.web.schemas.common import MAX_ID
from dispenser_hub.web.schemas.people import (
    ContactCreate,
    ContactList,
    ContactPublic,
    NationalIdPublic,
    PatientCreate,
    PatientPage,
    PatientPublic,
)

router = operator_router("patients")

_MASKED = "The national id number is masked (`010190*****`); see `GET /patients/{patient_id}/national-id`."


@router.post(
    "/patients",
    status_code=status.HTTP_201_CREATED,
    summary="Register a patient",
    response_description="The patient as stored, national id masked.",
    description=(
        "Registers a patient. The national id number is checked (date and check digits: 422 naming "
        "`national_id`) and must be new (409). A home-care patient needs a team (`team_id`). Audited as "
        f"`patient.create`, without the number. {_MASKED}"
    ),
    responses=error_responses(400, 404, 409, 422),
)
def create_patient(patient: PatientCreate, api: Ctx, by: Operator) -> PatientPublic:
    """Register a patient."""
    return PatientPublic.of(api.registry.add_patient(patient.record(), by=by))


@router.get(
    "/patients",
    summary="List patients",
    response_description="A page of patients, national ids masked.",
    description=f"Patients by id, a page at a time, optionally of one team. {_MASKED}",
    responses=error_responses(422),
)
def list_patients(
    api: Ctx,
    page: PageQuery,
    team_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this team's patients.")] = None,
) -> PatientPage:
    """A page of patients."""
    with api.uow_factory() as uow:
        rows = uow.patients.select(team_id=team_id, offset=page.offset, limit=page.fetch)
    items, next_offset = page.cut(rows)
    return PatientPage(
        items=[PatientPublic.of(patient) for patient in items],
        offset=page.offset,
        limit=page.limit,
        next_offset=next_offset,
    )


@router.get(
    "/patients/{patient_id}",
    summary="Get a patient",
    response_description="The patient, national id masked.",
    description=f"One patient. {_MASKED}",
    responses=error_responses(404, 422),
)
def get_one_patient(patient_id: PatientIdPath, api: Ctx) -> PatientPublic:
    """One patient."""
    with api.uow_factory() as uow:
        return PatientPublic.of(get_patient(uow, patient_id))


@router.get(
    "/patients/{patient_id}/national-id",
    summary="Read a patient's full national id number (audited)",
    response_description="The full number, its kind and OID.",
    description=(
        "The only route that answers the full national id number. Every call is recorded in the audit "
        "trail as `patient.national_id.read` with the operator (the number itself is not recorded). "
        "Answers carry `Cache-Control: no-store`."
    ),
    responses=error_responses(404, 422),
)
def read_national_id(patient_id: PatientIdPath, api: Ctx, by: Operator) -> NationalIdPublic:
    """The full national id number, audited."""
    now = utc_now(api.clock)
    with api.uow_factory() as uow:
        patient = get_patient(uow, patient_id)
        uow.audit.add(AuditEntry(now, by, "patient.national_id.read", f"patient:{patient_id}"))
        uow.commit()
    return NationalIdPublic.of(patient)


@router.post(
    "/patients/{patient_id}/contacts",
    status_code=status.HTTP_201_CREATED,
    summary="Add a contact to a patient",
    response_description="The contact as stored.",
    description=(
        "Adds a relative or other person to tell, in `priority` order. Needs a phone number or an e-mail "
        "address (400 naming `phone`). Audited as `contact.create`."
    ),
    responses=error_responses(400, 404, 422),
)
def add_contact(patient_id: PatientIdPath, contact: ContactCreate, api: Ctx, by: Operator) -> ContactPublic:
    """Add a contact."""
    return ContactPublic.of(api.registry.add_contact(contact.record(patient_id), by=by))


@router.get(
    "/patients/{patient_id}/contacts",
    summary="List a patient's contacts",
    response_description="The patient's contacts.",
    description="The patient's contacts by priority, then id.",
    responses=error_responses(404, 422),
)
def list_contacts(patient_id: PatientIdPath, api: Ctx) -> ContactList:
    """A patient's contacts."""
    with api.uow_factory() as uow:
        get_patient(uow, patient_id)
        contacts = uow.contacts.for_patient(patient_id)
    return ContactList(items=[ContactPublic.of(contact) for contact in contacts])
