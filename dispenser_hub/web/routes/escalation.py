"""Escalation set-up: ``/teams/{id}/roster``, ``/patients/{id}/escalation-policy``, skipping a dose."""

from typing import Annotated

from fastapi import Path, status

from dispenser_hub.services.escalation_admin import EscalationAdmin
from dispenser_hub.web.deps import Ctx, Operator
from dispenser_hub.web.errors import ApiError, error_responses
from dispenser_hub.web.routes.common import PatientIdPath, operator_router
from dispenser_hub.web.schemas.common import MAX_ID
from dispenser_hub.web.schemas.escalation import (
    DosePublic,
    PolicyPublic,
    PolicyRequest,
    RosterPublic,
    RosterRequest,
    SkipRequest,
)

router = operator_router("escalation")
TeamIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The team's id.")]
DeviceIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The dispenser's id.")]
SlotIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The dose's slot id.")]


def _admin(api: Ctx) -> EscalationAdmin:
    return EscalationAdmin(api.uow_factory, api.clock)


@router.get(
    "/teams/{team_id}/roster",
    summary="Get a team's on-call roster",
    response_description="The roster, who is on call now and the gaps of the coming week.",
    description="404 when the team has no roster yet (its escalations then reach the team's console).",
    responses=error_responses(404, 422),
)
def get_roster(team_id: TeamIdPath, api: Ctx) -> RosterPublic:
    """The team's roster."""
    admin = _admin(api)
    record = admin.roster(team_id)
    if record is None:
        raise ApiError(404, f"team {team_id} has no roster yet", field="team_id")
    on_call, gaps = admin.coverage(record)
    return RosterPublic.of(record, on_call, list(gaps))


@router.put(
    "/teams/{team_id}/roster",
    summary="Set a team's on-call roster",
    response_description="The roster as stored, with who is on call now and the coming week's gaps.",
    description=(
        "Replaces the team's staff list and weekly rota (Europe/Oslo wall-clock shifts; a shift keeps its "
        "wall-clock length across a DST change). Home-care-on-call escalation steps reach the primary "
        "person on call by SMS and e-mail. 400 names the field at fault (`rota[2].staff`). Audited as "
        "`team.roster`."
    ),
    responses=error_responses(400, 404, 422),
)
def set_roster(team_id: TeamIdPath, request: RosterRequest, api: Ctx, by: Operator) -> RosterPublic:
    """Replace the team's roster."""
    admin = _admin(api)
    record = admin.set_roster(team_id, request.document(), by=by)
    on_call, gaps = admin.coverage(record)
    return RosterPublic.of(record, on_call, list(gaps))


@router.get(
    "/patients/{patient_id}/escalation-policy",
    summary="Get the escalation policy of a patient's alarms",
    response_description="The policy in force, and warnings for steps that cannot reach anyone.",
    description=(
        "The patient's own policy, or the default of their responsibility level (`own` false). `warnings` "
        "names steps the patient's records cannot deliver (no relative, no home-care team)."
    ),
    responses=error_responses(404, 422),
)
def get_policy(patient_id: PatientIdPath, api: Ctx) -> PolicyPublic:
    """The policy in force."""
    policy, record, warnings = _admin(api).policy(patient_id)
    return PolicyPublic.of(patient_id, policy, record, warnings)


@router.put(
    "/patients/{patient_id}/escalation-policy",
    summary="Give a patient their own escalation policy",
    response_description="The policy now in force.",
    description=(
        "Replaces the default ladder for the patient's alarms raised from now on (alarms already open "
        "keep their plan). Targets: `relative`, `response_centre`, `home_care_on_call`, `named_person` "
        "(with `person`, a staff ref of the patient's team roster). 400 names the field at fault. "
        "Audited as `patient.escalation_policy`."
    ),
    responses=error_responses(400, 404, 422),
)
def set_policy(patient_id: PatientIdPath, request: PolicyRequest, api: Ctx, by: Operator) -> PolicyPublic:
    """Set the patient's own policy."""
    admin = _admin(api)
    admin.set_policy(patient_id, request.document(), by=by)
    policy, record, warnings = admin.policy(patient_id)
    return PolicyPublic.of(patient_id, policy, record, warnings)


@router.delete(
    "/patients/{patient_id}/escalation-policy",
    summary="Return a patient to the default escalation policy",
    response_description="The default policy now in force.",
    description="Audited as `patient.escalation_policy` when the patient had a policy of their own.",
    responses=error_responses(404, 422),
)
def reset_policy(patient_id: PatientIdPath, api: Ctx, by: Operator) -> PolicyPublic:
    """Back to the default."""
    admin = _admin(api)
    admin.reset_policy(patient_id, by=by)
    policy, record, warnings = admin.policy(patient_id)
    return PolicyPublic.of(patient_id, policy, record, warnings)


@router.post(
    "/devices/{device_id}/doses/{slot_id}/skip",
    status_code=status.HTTP_200_OK,
    summary="Skip a dose (staff decision)",
    response_description="The dose, now skipped.",
    description=(
        "Staff decide an open dose is not to be taken (given by hand, doctor's order); it raises no "
        "missed-dose alarm. 409 when the dose is already closed (taken, missed...). Audited as `dose.skip`."
    ),
    responses=error_responses(400, 404, 409, 422),
)
def skip_dose(
    device_id: DeviceIdPath, slot_id: SlotIdPath, request: SkipRequest, api: Ctx, by: Operator
) -> DosePublic:
    """Skip the dose."""
    return DosePublic.of(_admin(api).skip_dose(device_id, slot_id, by=by, reason=request.reason))
