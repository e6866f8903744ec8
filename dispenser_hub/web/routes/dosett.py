"""Dose-pot (carousel) dispensers: a patient's dosett plans and the trays filled from them.

Every change is audited and rebuilds the schedule of the patient's bound dispenser at once (a new config
version on its way to the device), see ``services.dosett_admin``.
"""

from fastapi import status

from dispenser_hub.domain.wallclock import oslo_day
from dispenser_hub.services.registry import NotFound
from dispenser_hub.web.deps import Ctx, Operator
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import PatientIdPath, operator_router
from dispenser_hub.web.schemas.dosett import PlanCreate, PlanList, PlanPublic, TrayFillCreate, TrayFillPublic

router = operator_router("dosett")

_REBUILT = "The bound dispenser, if any, gets a new schedule version at once."


@router.post(
    "/patients/{patient_id}/dosett-plans",
    status_code=status.HTTP_201_CREATED,
    summary="Add a dosett plan for a patient",
    response_description="The plan as stored.",
    description=(
        "Adds a new version of the patient's dosett plan (the dose times of the week for a dose-pot "
        "dispenser), in force from `valid_from` (a Europe/Oslo date) until a plan with a later "
        "`valid_from` takes over; plans are kept as history, never edited. Each time is an Oslo "
        "wall-clock `HH:MM` on weekdays 0 (Monday) .. 6 (Sunday) with a label and the drugs in its pot. "
        "On each weekday the times must be in time-of-day order, at most one per minute and 8 a day; "
        "as-needed drugs are not filled in pots. A broken rule is a 400 naming the input "
        "(`times[1].at`, `times[0].contents[0].as_needed`); malformed input a 422. Audited as "
        f"`dosett.plan`. {_REBUILT}"
    ),
    responses=error_responses(400, 404, 422),
)
def add_dosett_plan(patient_id: PatientIdPath, request: PlanCreate, api: Ctx, by: Operator) -> PlanPublic:
    """Add a dosett plan."""
    return PlanPublic.of(api.patient_dosett.add_plan(patient_id, request.to_plan(), by=by))


@router.get(
    "/patients/{patient_id}/dosett-plans",
    summary="List a patient's dosett plans",
    response_description="Every plan of the patient and the one in force today.",
    description=(
        "Every dosett plan of the patient, by `valid_from`, then id (oldest first). `in_force_id` is the "
        "plan in force `today` (Europe/Oslo): the latest `valid_from` at or before it (ties: the newest "
        "plan); null if none is."
    ),
    responses=error_responses(404, 422),
)
def list_dosett_plans(patient_id: PatientIdPath, api: Ctx) -> PlanList:
    """A patient's dosett plans."""
    today = oslo_day(api.clock.now())
    plans = api.patient_dosett.plans(patient_id)
    current = api.patient_dosett.plan_in_force(patient_id, today)
    return PlanList(
        items=[PlanPublic.of(record) for record in plans],
        today=today,
        in_force_id=None if current is None else current.id,
    )


@router.post(
    "/patients/{patient_id}/tray-fills",
    status_code=status.HTTP_201_CREATED,
    summary="Record a tray filled for a patient",
    response_description="The fill as stored, with its pots.",
    description=(
        "Records tray `tray_id` filled now by `filled_by` with `pot_count` pots (1-64, default 28) from "
        "the plan in force on `first_day`, from that day's first dose time on: one pot per dose time, "
        "numbered from 1 in due order, each with its due time (UTC) and slot id (`s-YYYYMMDD-HHMM` in "
        "Oslo time; a daylight-saving change gives neither a missing nor a repeated pot). 400 naming "
        "`first_day` when no plan is in force on that day. The dispenser offers the pots once it reports "
        f"this tray loaded. Audited as `dosett.fill`. {_REBUILT}"
    ),
    responses=error_responses(400, 404, 422),
)
def add_tray_fill(
    patient_id: PatientIdPath, request: TrayFillCreate, api: Ctx, by: Operator
) -> TrayFillPublic:
    """Record a tray fill."""
    record = api.patient_dosett.fill_tray(
        patient_id,
        tray_id=request.tray_id,
        first_day=request.first_day,
        pot_count=request.pot_count,
        filled_by=request.filled_by,
        by=by,
    )
    return TrayFillPublic.of(record)


@router.get(
    "/patients/{patient_id}/tray-fills/current",
    summary="The patient's current tray fill",
    response_description="The latest fill, its opened pots and the doses left.",
    description=(
        "The tray last filled for the patient (by fill time), with its pots, the pots recorded as "
        "`opened` and the `doses_left` (filled pots not opened yet). 404 when no tray has been filled "
        "for the patient."
    ),
    responses=error_responses(404, 422),
)
def current_tray_fill(patient_id: PatientIdPath, api: Ctx) -> TrayFillPublic:
    """A patient's current tray fill."""
    current = api.patient_dosett.fills(patient_id)
    if current is None:
        raise NotFound(f"no tray has been filled for patient {patient_id}; record a fill first")
    record, opened = current
    return TrayFillPublic.of(record, opened)
