"""``/alarms``: the alarm board, each alarm's log, acknowledge and resolve."""

from typing import Annotated

from fastapi import Query

from dispenser_hub.domain.model import AlarmStatus
from dispenser_hub.services.registry import NotFound
from dispenser_hub.web.deps import Ctx, Operator, PageQuery
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import AlarmIdPath, operator_router
from dispenser_hub.web.schemas.records import (
    AcknowledgeRequest,
    AlarmDetail,
    AlarmPage,
    AlarmPublic,
    ResolveRequest,
)

router = operator_router("alarms")


@router.get(
    "/alarms",
    summary="List alarms",
    response_description="A page of alarms.",
    description=(
        "Alarms, most recently raised first, optionally by status, open or closed (`open=true`: active "
        "or acknowledged; `open=false`: resolved) and device."
    ),
    responses=error_responses(422),
)
def list_alarms(
    api: Ctx,
    page: PageQuery,
    alarm_status: Annotated[
        AlarmStatus | None, Query(alias="status", description="Only this status.")
    ] = None,
    is_open: Annotated[
        bool | None, Query(alias="open", description="Only open (true) or resolved (false).")
    ] = None,
    device_id: Annotated[str | None, Query(max_length=64, description="Only this device's alarms.")] = None,
) -> AlarmPage:
    """A page of alarms."""
    if is_open is False:
        if alarm_status not in {None, AlarmStatus.RESOLVED}:
            return AlarmPage(items=[], offset=page.offset, limit=page.limit, next_offset=None)
        alarm_status = AlarmStatus.RESOLVED
    with api.uow_factory() as uow:
        rows = uow.alarms.select(
            status=alarm_status,
            open_only=is_open is True,
            device_id=device_id,
            offset=page.offset,
            limit=page.fetch,
        )
    items, next_offset = page.cut(rows)
    return AlarmPage(
        items=[AlarmPublic.of(alarm) for alarm in items],
        offset=page.offset,
        limit=page.limit,
        next_offset=next_offset,
    )


@router.get(
    "/alarms/{alarm_id}",
    summary="Get an alarm with its log",
    response_description="The alarm and its log.",
    description="One alarm and its append-only log (raised, repeated, acknowledged, resolved; who and when).",
    responses=error_responses(404, 422),
)
def get_alarm(alarm_id: AlarmIdPath, api: Ctx) -> AlarmDetail:
    """One alarm with its log."""
    with api.uow_factory() as uow:
        alarm = uow.alarms.get(alarm_id)
        if alarm is None:
            raise NotFound(f"there is no alarm {alarm_id}", field="alarm_id")
        log = uow.alarms.history(alarm_id)
    return AlarmDetail.with_log(alarm, log)


@router.post(
    "/alarms/{alarm_id}/acknowledge",
    summary="Acknowledge an alarm",
    response_description="The acknowledged alarm.",
    description=(
        "The operator takes the alarm on (time to acknowledge is reported). Only an active alarm, once "
        "(409 otherwise). Logged and audited as `alarm.acknowledge`."
    ),
    responses=error_responses(404, 409, 422),
)
def acknowledge_alarm(
    alarm_id: AlarmIdPath, request: AcknowledgeRequest, api: Ctx, by: Operator
) -> AlarmPublic:
    """Acknowledge an alarm."""
    return AlarmPublic.of(api.registry.acknowledge_alarm(alarm_id, by=by, note=request.note))


@router.post(
    "/alarms/{alarm_id}/resolve",
    summary="Resolve an alarm",
    response_description="The resolved alarm.",
    description=(
        "Closes the alarm with a resolution (required). An active or acknowledged alarm, once (409 "
        "otherwise). Logged and audited as `alarm.resolve`."
    ),
    responses=error_responses(404, 409, 422),
)
def resolve_alarm(alarm_id: AlarmIdPath, request: ResolveRequest, api: Ctx, by: Operator) -> AlarmPublic:
    """Resolve an alarm."""
    return AlarmPublic.of(api.registry.resolve_alarm(alarm_id, by=by, resolution=request.resolution))
