"""Schedules: a patient's dose window and reminders, pauses, and the schedule a device holds.

Every change is audited and rebuilds the schedule of the patient's bound dispenser at once (a new config
version on its way to the device), see ``services.schedule_admin``.
"""

from typing import Annotated

from fastapi import Path, status

from dispenser_hub.services.registry import RegistryError
from dispenser_hub.web.deps import Ctx, Operator
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import DeviceIdPath, PatientIdPath, operator_router
from dispenser_hub.web.schemas.common import MAX_ID
from dispenser_hub.web.schemas.schedules import (
    DURATIONS,
    DeviceSchedulePublic,
    DoseSettingsPublic,
    DoseSettingsRequest,
    PauseCreate,
    PauseList,
    PausePublic,
    TripCreate,
    TripPublic,
)

router = operator_router("schedules")

PauseIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The pause's id.")]

_REBUILT = "The bound dispenser, if any, gets a new schedule version at once."


@router.get(
    "/patients/{patient_id}/dose-settings",
    summary="Get a patient's dose window and reminders",
    response_description="The settings in force, in whole seconds.",
    description=(
        "The window around each due time and the reminder ladder in force for the patient, durations in "
        "whole seconds (the hub keeps whole seconds, not only whole minutes). `default` is true, and "
        "`updated_at`/`updated_by` null, when nothing was set: the hub's defaults apply."
    ),
    responses=error_responses(404, 422),
)
def get_dose_settings(patient_id: PatientIdPath, api: Ctx) -> DoseSettingsPublic:
    """The patient's dose settings in force."""
    window, record = api.patient_schedules.settings(patient_id)
    return DoseSettingsPublic.of(patient_id, window, record)


@router.put(
    "/patients/{patient_id}/dose-settings",
    summary="Set a patient's dose window and reminders",
    response_description="The settings now in force.",
    description=(
        "Sets some or all of the window and reminder fields (seconds); the others keep their values. "
        "The limits: `early_s` 0-21600, `late_s` 300-18000, `notice_before_s` and `sound_after_s` 0-14400, "
        "`repeat_every_s` 60-14400, `repeat_max` 0-20, and `sound_after_s` shorter than `late_s` (400 "
        f"naming the field). Audited as `schedule.settings`. {_REBUILT}"
    ),
    responses=error_responses(400, 404, 422),
)
def set_dose_settings(
    patient_id: PatientIdPath, request: DoseSettingsRequest, api: Ctx, by: Operator
) -> DoseSettingsPublic:
    """Set the patient's dose settings."""
    try:
        record = api.patient_schedules.set_settings(patient_id, request.changes(), by=by)
    except RegistryError as exc:  # name the API's input (late_s), not the window's field (late)
        if exc.field not in DURATIONS:
            raise
        raise RegistryError(str(exc), field=f"{exc.field}_s") from None
    return DoseSettingsPublic.of(patient_id, record.window, record)


@router.get(
    "/patients/{patient_id}/pauses",
    summary="List a patient's pauses",
    response_description="Every pause of the patient.",
    description=(
        "Every pause of the patient's doses, past, current and planned, by start. `effective_end` is when "
        "the pause stops (earlier than `end` if it was ended early)."
    ),
    responses=error_responses(404, 422),
)
def list_pauses(patient_id: PatientIdPath, api: Ctx) -> PauseList:
    """A patient's pauses."""
    return PauseList(items=[PausePublic.of(record) for record in api.patient_schedules.pauses(patient_id)])


@router.post(
    "/patients/{patient_id}/pauses",
    status_code=status.HTTP_201_CREATED,
    summary="Pause a patient's doses",
    response_description="The pause as stored.",
    description=(
        "Pauses the patient's doses from `start` to `end` (hospital, travel): doses due then are cancelled, "
        "not missed. Times need an offset (422 naming the field otherwise); `end` must be after `start` "
        f"and in the future (400 naming `end`). Audited as `schedule.pause`. {_REBUILT}"
    ),
    responses=error_responses(400, 404, 422),
)
def add_pause(patient_id: PatientIdPath, request: PauseCreate, api: Ctx, by: Operator) -> PausePublic:
    """Pause a patient's doses."""
    record = api.patient_schedules.add_pause(patient_id, request.start, request.end, request.reason, by=by)
    return PausePublic.of(record)


@router.post(
    "/pauses/{pause_id}/end",
    summary="End a pause now",
    response_description="The ended pause.",
    description=(
        "Ends the pause now (the patient came home early): the doses from now on are offered again. 409 "
        f"if it has ended already. Audited as `schedule.pause_end`. {_REBUILT}"
    ),
    responses=error_responses(404, 409, 422),
)
def end_pause(pause_id: PauseIdPath, api: Ctx, by: Operator) -> PausePublic:
    """End a pause."""
    return PausePublic.of(api.patient_schedules.end_pause(pause_id, by=by))


@router.post(
    "/devices/{device_id}/predispense",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Pre-dispense the doses of a trip",
    response_description="The command sent, the doses due in the trip, and whether the supply covers it.",
    description=(
        "Sends `cmd.predispense`: the dispenser gives out every dose due from `from` to `until` (excluded) "
        "now, for a trip. The hub counts the doses from the dispenser's supply (roll or tray, pauses left "
        "out); if that supply ends before the trip does, the alarm 'not enough doses for a trip' (VKP 3.15) "
        "is raised at once and `enough` is false; the command goes out anyway for what there is. The "
        "device answers `dose.predispensed` (3.15 again if it gave out fewer). 409 if the device is not "
        "bound and in service. Audited as `device.predispense`."
    ),
    responses=error_responses(400, 404, 409, 422),
)
def predispense(device_id: DeviceIdPath, request: TripCreate, api: Ctx, by: Operator) -> TripPublic:
    """Pre-dispense for a trip."""
    trip = api.patient_schedules.predispense(device_id, request.from_, request.until, by=by)
    return TripPublic(
        command_msg_id=trip.command_msg_id, doses=trip.doses, enough=trip.enough, detail=trip.detail
    )


@router.get(
    "/devices/{device_id}/schedule",
    summary="The schedule a device holds",
    response_description="The last schedule built for the device and its state.",
    description=(
        "The schedule (config) the hub last built for the device: its version, the version the device "
        "applied or refused, the slots' count and range, and the config body as sent. `problem` says why "
        "a bound device has no valid schedule (the reason of the no-schedule alarm), null if it has one. "
        "When nothing was built yet the answer is still 200, with `version` and `config` null and "
        "`problem` saying so (for a bound device)."
    ),
    responses=error_responses(404, 422),
)
def device_schedule(device_id: DeviceIdPath, api: Ctx) -> DeviceSchedulePublic:
    """A device's schedule state."""
    state, problem = api.patient_schedules.device_schedule(device_id)
    return DeviceSchedulePublic.of(device_id, state, problem)
