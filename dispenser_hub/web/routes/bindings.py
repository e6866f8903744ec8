"""``/devices/{device_id}/binding(s)``: which patient a device serves, with the history of who and why."""

from typing import Annotated

from fastapi import Body, Query, status
from fastapi.exceptions import RequestValidationError

from dispenser_hub.web.deps import Ctx, Operator
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import DeviceIdPath, get_device, operator_router
from dispenser_hub.web.schemas.devices import BindingCreate, BindingList, BindingPublic, UnbindRequest

router = operator_router("bindings")


@router.get(
    "/devices/{device_id}/bindings",
    summary="A device's binding history",
    response_description="Every binding of the device.",
    description="Every binding of the device, active and ended, oldest first.",
    responses=error_responses(404, 422),
)
def binding_history(device_id: DeviceIdPath, api: Ctx) -> BindingList:
    """Every binding of a device."""
    with api.uow_factory() as uow:
        get_device(uow, device_id)
        bindings = uow.bindings.history(device_id=device_id)
    return BindingList(items=[BindingPublic.of(binding) for binding in bindings])


@router.post(
    "/devices/{device_id}/binding",
    status_code=status.HTTP_201_CREATED,
    summary="Bind a device to a patient",
    response_description="The new active binding.",
    description=(
        "Binds the device to the patient. Both must be free (409 otherwise: unbind first, with a reason), "
        "and the device must not be retired. Audited as `binding.create`."
    ),
    responses=error_responses(404, 409, 422),
)
def bind_device(device_id: DeviceIdPath, request: BindingCreate, api: Ctx, by: Operator) -> BindingPublic:
    """Bind a device."""
    return BindingPublic.of(api.registry.bind(device_id, request.patient_id, by=by, reason=request.reason))


@router.delete(
    "/devices/{device_id}/binding",
    summary="Unbind a device",
    response_description="The ended binding.",
    description=(
        'Ends the device\'s active binding. The reason goes in the body (`{"reason": ...}`) or in the '
        "`reason` query parameter (for clients that send no body with DELETE). The ended binding stays in "
        "the history. Audited as `binding.end`."
    ),
    responses=error_responses(404, 409, 422),
)
def unbind_device(
    device_id: DeviceIdPath,
    api: Ctx,
    by: Operator,
    request: Annotated[UnbindRequest | None, Body()] = None,
    reason: Annotated[
        str | None, Query(max_length=500, description="Why the binding ends (if not in the body).")
    ] = None,
) -> BindingPublic:
    """Unbind a device."""
    text = request.reason if request is not None else (reason or "").strip()
    if not text:
        message = "say why the binding ends (reason, in the body or the query)"
        raise RequestValidationError([{"loc": ("query", "reason"), "msg": message, "type": "missing"}])
    return BindingPublic.of(api.registry.unbind(device_id, by=by, reason=text))
