"""``/dead-letters`` and ``/audit``: refused device messages and who did what."""

from typing import Annotated

from fastapi import Query

from dispenser_hub.web.deps import Ctx, PageQuery
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import operator_router
from dispenser_hub.web.schemas.records import AuditPage, AuditPublic, DeadLetterPage, DeadLetterPublic

dead_letters = operator_router("dead letters")
audit = operator_router("audit")


@dead_letters.get(
    "/dead-letters",
    summary="List refused device messages",
    response_description="A page of dead letters.",
    description=(
        "Messages the hub refused (bad signature, schema, unknown or retired device...), most recently "
        "received first, with the reason code, detail, the field at fault, and the stored bytes as base64 "
        "(`truncated` when only the first bytes were kept; `raw_size` is the whole payload's size)."
    ),
    responses=error_responses(422),
)
def list_dead_letters(
    api: Ctx,
    page: PageQuery,
    device_id: Annotated[
        str | None, Query(max_length=64, description="Only messages naming this device.")
    ] = None,
) -> DeadLetterPage:
    """A page of dead letters."""
    with api.uow_factory() as uow:
        rows = uow.dead_letters.select(device_id=device_id, offset=page.offset, limit=page.fetch)
    items, next_offset = page.cut(rows)
    return DeadLetterPage(
        items=[DeadLetterPublic.of(letter) for letter in items],
        offset=page.offset,
        limit=page.limit,
        next_offset=next_offset,
    )


@audit.get(
    "/audit",
    summary="Read the audit trail",
    response_description="A page of audit entries.",
    description=(
        "Who did what to which record, newest first, optionally about one subject (`device:RM3-000017`, "
        "`patient:12`, `alarm:3`, `team:1`). Never holds patient data."
    ),
    responses=error_responses(422),
)
def list_audit(
    api: Ctx,
    page: PageQuery,
    subject: Annotated[
        str | None, Query(max_length=100, description="Only entries about this subject.")
    ] = None,
) -> AuditPage:
    """A page of the audit trail."""
    with api.uow_factory() as uow:
        rows = uow.audit.select(subject=subject, offset=page.offset, limit=page.fetch)
    items, next_offset = page.cut(rows)
    return AuditPage(
        items=[AuditPublic.of(entry) for entry in items],
        offset=page.offset,
        limit=page.limit,
        next_offset=next_offset,
    )
