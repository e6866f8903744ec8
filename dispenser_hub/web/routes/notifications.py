"""Notifications: an alarm's messages, the console's live event stream, and SMS replies that acknowledge.

``/stream`` is polled from the store: every ``interval`` seconds it reads what changed since its cursor
and sends it as server-sent events. The cursor is the event id, ``<notification id>.<alarm ms>.<alarm id>``:
the newest console notification sent and the (change time, id) of the latest alarm sent, so a client that
reconnects with ``Last-Event-ID`` gets exactly what came after. Without one, the stream starts with the
open alarms and their console notifications. An alarm's change time is the latest of its raise, repeat,
acknowledgement and resolution; the stream reads the open alarms and the ``RECENT`` most recently raised
ones (a resolution of an alarm older than those is not sent).

``/sms/replies`` is the SMS gateway's, not the operators': it needs the gateway's token (``X-Gateway-Token``)
instead of an operator token.
"""

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import APIRouter, Header, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyHeader

from dispenser_hub.domain.model import Alarm, AlarmStatus, Notification, NotificationStatus
from dispenser_hub.ports import StorageUnavailableError, UnitOfWorkFactory
from dispenser_hub.services.ack import acknowledge_by_reply
from dispenser_hub.services.registry import NotFound
from dispenser_hub.services.routing import CONSOLE
from dispenser_hub.web.deps import Ctx
from dispenser_hub.web.errors import ApiError, error_responses
from dispenser_hub.web.routes.common import operator_router
from dispenser_hub.web.schemas.common import MAX_ID
from dispenser_hub.web.schemas.notifications import (
    NotificationList,
    NotificationPublic,
    SmsReplyCreate,
    SmsReplyPublic,
    StreamEventPublic,
)
from dispenser_hub.web.schemas.records import AlarmPublic

router = operator_router("notifications")
gateway = APIRouter(tags=["notifications"])

PAGE: Final = 200
RECENT: Final = 100
"""Most recently raised alarms the stream reads besides the open ones (to see resolutions)."""
HEARTBEAT_S: Final = 15.0
_SHOWN: Final = frozenset({NotificationStatus.PENDING, NotificationStatus.SENT})
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="dispenser-hub sms gateway"'}
_EVENT_ID: Final = r"^[0-9]{1,19}\.[0-9]{1,16}\.[0-9]{1,19}$"

_gateway_token = APIKeyHeader(
    name="X-Gateway-Token",
    auto_error=False,
    scheme_name="smsGatewayToken",
    description="The SMS gateway's token (DISPENSER_SMS_GATEWAY_TOKEN), for its inbound messages only.",
)


@router.get(
    "/notifications",
    summary="List an alarm's notifications",
    response_description="The alarm's notifications, oldest first.",
    description=(
        "Every message the alarm's escalation queued (SMS, e-mail, console...), oldest first, with its "
        "delivery status. The address (phone number, e-mail address) is never shown: `channel` and "
        "`recipient` (`contact:7`, `team:2`, `response-centre`) say who it went to. 404 for an unknown alarm."
    ),
    responses=error_responses(404, 422),
)
def list_notifications(
    api: Ctx, alarm_id: Annotated[int, Query(ge=1, le=MAX_ID, description="The alarm's id.")]
) -> NotificationList:
    """An alarm's notifications."""
    with api.uow_factory() as uow:
        if uow.alarms.get(alarm_id) is None:
            raise NotFound(f"there is no alarm {alarm_id}", field="alarm_id")
        rows = uow.notifications.for_alarm(alarm_id)
    return NotificationList(items=[NotificationPublic.of(row) for row in rows])


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the stream is: the last console notification and the last alarm change sent."""

    notification_id: int = 0
    alarm_ms: int = 0
    alarm_id: int = 0

    @property
    def event_id(self) -> str:
        """The SSE id of an event sent at this cursor."""
        return f"{self.notification_id}.{self.alarm_ms}.{self.alarm_id}"

    @classmethod
    def parse(cls, event_id: str) -> "Cursor":
        """From an ``event_id`` (checked against ``_EVENT_ID`` already)."""
        notification_id, alarm_ms, alarm_id = (int(part) for part in event_id.split("."))
        return cls(notification_id, alarm_ms, alarm_id)


def _changed_ms(alarm: Alarm) -> int:
    times = [alarm.last_raised_at, alarm.acknowledged_at, alarm.resolved_at]
    return max(int(moment.timestamp() * 1000) for moment in times if moment is not None)


def _poll(uow_factory: UnitOfWorkFactory, cursor: Cursor, *, start: bool) -> list[tuple[str, Cursor, str]]:
    """(event, cursor after it, JSON data) of what changed after ``cursor`` (at ``start``: the open state)."""
    with uow_factory() as uow:
        alarms: dict[int, Alarm] = {}
        offset = 0
        while True:
            page = uow.alarms.select(open_only=True, offset=offset, limit=PAGE)
            alarms.update((alarm.id, alarm) for alarm in page if alarm.id is not None)
            if len(page) < PAGE:
                break
            offset += PAGE
        if not start:
            alarms.update((a.id, a) for a in uow.alarms.select(limit=RECENT) if a.id is not None)
        keyed = [((_changed_ms(alarm), alarm.id), alarm) for alarm in alarms.values() if alarm.id is not None]
        after = (cursor.alarm_ms, cursor.alarm_id)
        changed = sorted((item for item in keyed if start or item[0] > after), key=lambda item: item[0])
        watched = {alarm.id for _, alarm in changed} | {
            alarm_id for alarm_id, alarm in alarms.items() if alarm.status is AlarmStatus.ACTIVE
        }
        notes: list[Notification] = [
            note
            for alarm_id in sorted(i for i in watched if i is not None)
            for note in uow.notifications.for_alarm(alarm_id)
            if note.channel == CONSOLE
            and note.status in _SHOWN
            and note.id is not None
            and note.id > cursor.notification_id
        ]
    events: list[tuple[str, Cursor, str]] = []
    for (alarm_ms, alarm_id), alarm in changed:
        cursor = Cursor(cursor.notification_id, max(alarm_ms, cursor.alarm_ms), alarm_id)
        events.append(("alarm", cursor, AlarmPublic.of(alarm).model_dump_json()))
    for note in sorted(notes, key=lambda n: n.id or 0):
        cursor = Cursor(note.id or 0, cursor.alarm_ms, cursor.alarm_id)
        events.append(("notification", cursor, NotificationPublic.of(note).model_dump_json()))
    return events


def _frame(event: str, cursor: Cursor, data: str) -> str:
    return f"id: {cursor.event_id}\nevent: {event}\ndata: {data}\n\n"


async def _events(
    request: Request,
    uow_factory: UnitOfWorkFactory,
    cursor: Cursor | None,
    *,
    interval: float,
    max_events: int | None,
    duration: float | None,
) -> AsyncIterator[str]:
    """The stream's text: a retry hint, then events as they come, heartbeats while nothing does."""
    started = last_output = time.monotonic()
    sent = 0
    yield f"retry: {int(interval * 1000)}\n\n"
    start, position = cursor is None, cursor or Cursor()
    while True:
        try:
            events = await run_in_threadpool(_poll, uow_factory, position, start=start)
        except StorageUnavailableError:
            events = []  # the store is down for now: try again at the next poll
        else:
            start = False
        for event, position, data in _limit(events, None if max_events is None else max_events - sent):
            yield _frame(event, position, data)
            sent += 1
            last_output = time.monotonic()
        now = time.monotonic()
        if (max_events is not None and sent >= max_events) or (
            duration is not None and now - started >= duration
        ):
            return
        if now - last_output >= HEARTBEAT_S:
            yield ": keep-alive\n\n"
            last_output = now
        if await request.is_disconnected():
            return
        wait = interval if duration is None else min(interval, max(0.0, duration - (now - started)))
        await asyncio.sleep(wait)


def _limit(events: list[tuple[str, Cursor, str]], most: int | None) -> Iterable[tuple[str, Cursor, str]]:
    return events if most is None else events[:most]


@router.get(
    "/stream",
    summary="Live alarms and console notifications (server-sent events)",
    response_model=StreamEventPublic,  # documents one event of the stream
    response_description=(
        "A `text/event-stream`: each event is one `StreamEventPublic` (`event:`, `id:`, `data:` lines)."
    ),
    description=(
        "Server-sent events for the operator console. Every `interval` seconds the hub sends what changed: "
        "`event: alarm` for an alarm raised, repeated, acknowledged or resolved, `event: notification` for "
        "a new console notification (pending or sent); `data` is the alarm or the notification as JSON "
        "(ids, kinds, severities, device ids, texts as stored; no names nor national ids). Each event's "
        "`id` goes back in the `Last-Event-ID` header to resume after it; without one, the stream starts "
        "with the open alarms and their console notifications. `max_events` and `timeout` end the stream "
        "(for scripts and tests); otherwise it runs until the client leaves. The request must accept "
        "`text/event-stream` (406 otherwise)."
    ),
    responses={
        **error_responses(422),
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    },
)
async def stream(
    request: Request,
    api: Ctx,
    *,
    interval: Annotated[float, Query(ge=0.5, le=30, description="Seconds between polls.")] = 2.0,
    max_events: Annotated[int | None, Query(ge=1, le=10_000, description="End after this many.")] = None,
    duration: Annotated[
        float | None, Query(alias="timeout", gt=0, le=86_400, description="End after so many seconds.")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", pattern=_EVENT_ID, description="Resume after this event's id."),
    ] = None,
) -> StreamingResponse:
    """The console's event stream."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise ApiError(406, "this is a server-sent event stream: send Accept: text/event-stream")
    cursor = Cursor.parse(last_event_id) if last_event_id is not None else None
    body = _events(
        request, api.uow_factory, cursor, interval=interval, max_events=max_events, duration=duration
    )
    return StreamingResponse(body, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


def gateway_token(api: Ctx, token: Annotated[str | None, Security(_gateway_token)]) -> None:
    """The SMS gateway's token must be sent, configured and right (constant-time compare)."""
    if token is None:
        raise ApiError(
            401,
            "send the SMS gateway's token: X-Gateway-Token: <token>",
            headers=_CHALLENGE,
        )
    if not api.sms_gateway_token or api.notice_secret is None:
        raise ApiError(503, "SMS replies are not enabled: no SMS gateway token is configured on the hub")
    if not hmac.compare_digest(token.encode(), api.sms_gateway_token.encode()):
        raise ApiError(
            401,
            "the SMS gateway token is not valid",
            headers=_CHALLENGE,
        )


@gateway.post(
    "/sms/replies",
    summary="An SMS reply received by the gateway",
    response_description="Whether the reply acknowledged an alarm.",
    description=(
        "For the SMS gateway, not operators: it posts every inbound SMS here with `X-Gateway-Token` "
        "(401 when missing or wrong; 503 when the hub has no SMS gateway token configured). A reply "
        "carrying the code of an open alarm's SMS step ('OK 4KX9PQ') from the number that SMS went to "
        "acknowledges the alarm (audited as the contact, `sms:contact:<id>`; the escalation stops). "
        "Anything else answers `acknowledged: false`, never saying why."
    ),
    responses=error_responses(401, 422),
    dependencies=[Security(gateway_token)],
)
def sms_reply(request: SmsReplyCreate, api: Ctx) -> SmsReplyPublic:
    """Acknowledge an alarm by SMS reply."""
    if api.notice_secret is None:  # pragma: no cover - gateway_token refuses it first
        raise ApiError(503, "SMS replies are not enabled")
    alarm = acknowledge_by_reply(
        api.uow_factory, api.registry, api.notice_secret, from_number=request.from_, text=request.text
    )
    if alarm is None:
        return SmsReplyPublic(acknowledged=False)
    return SmsReplyPublic(acknowledged=True, alarm_id=alarm.id)
