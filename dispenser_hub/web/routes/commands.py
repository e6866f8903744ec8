"""``/devices/{device_id}/commands``: send a safe command through the outbox, and follow its delivery."""

from typing import Annotated

from fastapi import Body, status

from dispenser_hub.domain.model import AuditEntry, DeviceStatus
from dispenser_hub.services.downlink import enqueue
from dispenser_hub.services.registry import Conflict
from dispenser_hub.web.deps import Ctx, Operator, PageQuery
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import DeviceIdPath, get_device, operator_router, utc_now
from dispenser_hub.web.schemas.commands import CommandPage, CommandPublic, CommandRequest

router = operator_router("commands")


@router.post(
    "/devices/{device_id}/commands",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a command to a device",
    response_description="The queued command (status pending).",
    description=(
        "Queues one of `cmd.identify` (beep and blink), `cmd.resync` (send birth and state again), "
        "`cmd.lock` (with a reason shown on the device) or `cmd.unlock` in the outbox. The hub signs and "
        "publishes it, and retries until the device acknowledges or the command expires; follow it with "
        "`GET /devices/{device_id}/commands`. The device must be enrolled and not retired (409). Audited "
        "as `command.enqueue`."
    ),
    responses=error_responses(404, 409, 422),
)
def send_command(
    device_id: DeviceIdPath,
    request: Annotated[CommandRequest, Body()],
    api: Ctx,
    by: Operator,
) -> CommandPublic:
    """Queue a command."""
    now = utc_now(api.clock)
    with api.uow_factory() as uow:
        device = get_device(uow, device_id)
        if device.status is DeviceStatus.RETIRED:
            raise Conflict(f"device {device_id} is retired; it takes no commands", field="device_id")
        if device.status is DeviceStatus.REGISTERED:
            message = f"device {device_id} is not enrolled yet; it cannot verify the hub's commands"
            raise Conflict(message, field="device_id")
        expires_at = request.expires_at(now)
        command = enqueue(uow, device_id, request.body(expires_at), by=by, now=now, expires_at=expires_at)
        subject = f"device:{device_id}"
        uow.audit.add(AuditEntry(now, by, "command.enqueue", subject, f"{command.type} {command.msg_id}"))
        uow.commit()
    return CommandPublic.of(command)


@router.get(
    "/devices/{device_id}/commands",
    summary="List a device's commands",
    response_description="A page of commands with their status.",
    description=(
        "The device's commands, newest first, with their delivery status: pending, sent (awaiting the "
        "device's ack), acked, nacked (see `result`) or expired."
    ),
    responses=error_responses(404, 422),
)
def list_commands(device_id: DeviceIdPath, api: Ctx, page: PageQuery) -> CommandPage:
    """A page of a device's commands."""
    with api.uow_factory() as uow:
        get_device(uow, device_id)
        rows = uow.commands.select(device_id=device_id, offset=page.offset, limit=page.fetch)
    items, next_offset = page.cut(rows)
    return CommandPage(
        items=[CommandPublic.of(command) for command in items],
        offset=page.offset,
        limit=page.limit,
        next_offset=next_offset,
    )
