"""``/devices``: register, list and inspect dispensers, enrollment codes, retirement, events."""

from typing import Annotated

from fastapi import Query, status

from dispenser_hub.domain.model import DeviceStatus
from dispenser_hub.services.registry import NewCode
from dispenser_hub.web.deps import Ctx, Operator, PageQuery
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import DeviceIdPath, get_device, operator_router
from dispenser_hub.web.schemas.devices import (
    DevicePage,
    DevicePublic,
    DeviceRegister,
    DeviceRegistered,
    EnrollmentCodePublic,
    EventPage,
    EventPublic,
    RetireRequest,
)

router = operator_router("devices")

_SHOWN_ONCE = (
    "The enrollment code is shown once, in this answer only: the hub stores a keyed hash of it and cannot "
    "show it again (make a new one with `POST /devices/{device_id}/enrollment-codes` if it is lost)."
)


def _code(code: NewCode) -> EnrollmentCodePublic:
    return EnrollmentCodePublic(code=code.code, device_id=code.device_id, expires_at=code.expires_at)


@router.post(
    "/devices",
    status_code=status.HTTP_201_CREATED,
    summary="Register a device",
    response_description="The device and its enrollment code (shown once).",
    description=(
        "Registers a dispenser by protocol id and serial number and makes its first one-time enrollment "
        f"code, which the installer types into the device. {_SHOWN_ONCE} Audited as `device.register`."
    ),
    responses=error_responses(400, 409, 422),
)
def register_device(device: DeviceRegister, api: Ctx, by: Operator) -> DeviceRegistered:
    """Register a device and make its first code."""
    stored, code = api.registry.register_device(
        device.device_id, serial=device.serial, family=device.family, model=device.model, by=by
    )
    return DeviceRegistered(device=DevicePublic.of(stored, None), enrollment_code=_code(code))


@router.get(
    "/devices",
    summary="List devices",
    response_description="A page of devices.",
    description="Devices in registration order, a page at a time, optionally with one status.",
    responses=error_responses(422),
)
def list_devices(
    api: Ctx,
    page: PageQuery,
    device_status: Annotated[
        DeviceStatus | None, Query(alias="status", description="Only devices with this status.")
    ] = None,
) -> DevicePage:
    """A page of devices."""
    with api.uow_factory() as uow:
        rows = uow.devices.select(status=device_status, offset=page.offset, limit=page.fetch)
        items, next_offset = page.cut(rows)
        devices = [DevicePublic.of(d, uow.bindings.active_for_device(d.device_id)) for d in items]
    return DevicePage(items=devices, offset=page.offset, limit=page.limit, next_offset=next_offset)


@router.get(
    "/devices/{device_id}",
    summary="Get a device",
    response_description="The device with its presence and binding.",
    description=(
        "One device with its presence (online, last seen, battery, mains, schedule version, capabilities, "
        "supply) and the patient it is bound to. Enrollment codes are never shown here."
    ),
    responses=error_responses(404, 422),
)
def get_one_device(device_id: DeviceIdPath, api: Ctx) -> DevicePublic:
    """One device."""
    with api.uow_factory() as uow:
        device = get_device(uow, device_id)
        return DevicePublic.of(device, uow.bindings.active_for_device(device_id))


@router.post(
    "/devices/{device_id}/enrollment-codes",
    status_code=status.HTTP_201_CREATED,
    summary="Make a new enrollment code",
    response_description="The new code (shown once).",
    description=(
        "Another one-time enrollment code for a device that is not retired (a lost code, a replaced "
        f"board). Older unused codes stay valid until they expire. {_SHOWN_ONCE} Audited as "
        "`device.enrollment_code`."
    ),
    responses=error_responses(404, 409, 422),
)
def new_enrollment_code(device_id: DeviceIdPath, api: Ctx, by: Operator) -> EnrollmentCodePublic:
    """A new code."""
    return _code(api.registry.new_enrollment_code(device_id, by=by))


@router.post(
    "/devices/{device_id}/retire",
    summary="Retire a device",
    response_description="The retired device.",
    description=(
        "Takes the device out of service: its key is revoked (every message from it is refused) and its "
        "binding ends. Cannot be undone. Audited as `device.retire` with the reason."
    ),
    responses=error_responses(400, 404, 409, 422),
)
def retire_device(device_id: DeviceIdPath, request: RetireRequest, api: Ctx, by: Operator) -> DevicePublic:
    """Retire a device."""
    return DevicePublic.of(api.registry.retire_device(device_id, by=by, reason=request.reason), None)


@router.get(
    "/devices/{device_id}/events",
    summary="List a device's events",
    response_description="A page of events.",
    description="Accepted messages from the device, newest first, optionally of some types (repeat `type`).",
    responses=error_responses(404, 422),
)
def list_events(
    device_id: DeviceIdPath,
    api: Ctx,
    page: PageQuery,
    types: Annotated[
        list[str] | None,
        Query(alias="type", max_length=20, description="Only these message types, e.g. dose.taken."),
    ] = None,
) -> EventPage:
    """A page of a device's events."""
    with api.uow_factory() as uow:
        get_device(uow, device_id)
        rows = uow.events.select(device_id=device_id, types=types or (), offset=page.offset, limit=page.fetch)
    items, next_offset = page.cut(rows)
    return EventPage(
        items=[EventPublic.of(event) for event in items],
        offset=page.offset,
        limit=page.limit,
        next_offset=next_offset,
    )
