"""Rolls: import pharmacy roll manifests (JSON or CSV), read one, record a dispenser's roll ended.

``/roll-manifests`` and ``/devices/{id}/roll/end`` (replaced, or withdrawn by a pharmacy plan change).
"""

from typing import Annotated, Final

from fastapi import Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from dispenser_hub.domain.pouches import REF_PATTERN
from dispenser_hub.services.manifest_import import MAX_BYTES, ManifestImportError, Problem
from dispenser_hub.services.registry import NotFound
from dispenser_hub.services.roll_admin import RollAdmin
from dispenser_hub.web.deps import Ctx, Operator
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import DeviceIdPath, operator_router
from dispenser_hub.web.schemas.manifests import (
    ManifestImportList,
    RollEndRequest,
    RollLoadPublic,
    RollManifestDetail,
)

router = operator_router("roll manifests")

DEFAULT_FILENAME: Final = "upload"
RollIdPath = Annotated[
    str, Path(pattern=REF_PATTERN, max_length=64, description="The roll id, e.g. R-2026-000123.")
]
_BODY: Final = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "A JSON roll manifest (docs/roll-manifest-format.md).",
            }
        },
        "text/csv": {
            "schema": {"type": "string", "description": "A CSV roll manifest, one row per drug line."}
        },
    },
}


async def _read_body(request: Request, filename: str) -> bytes:
    """The request body, refused unread past ``MAX_BYTES`` (a manifest file is far smaller)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BYTES:
            msg = (
                f"the file is larger than {MAX_BYTES:,} bytes (5 MiB), the most that is read; split the "
                "manifests over several files"
            )
            raise ManifestImportError(filename, [Problem(None, None, "", msg)])
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/roll-manifests",
    status_code=status.HTTP_201_CREATED,
    summary="Import a roll manifest file (JSON or CSV)",
    response_description="Every roll of the file: `imported` or `unchanged`.",
    description=(
        "Imports the pharmacy's roll manifests: the request body is the file, JSON (`application/json`) or "
        "CSV (`text/csv`), as documented in `docs/roll-manifest-format.md`. The whole file is imported or "
        "none of it. Answers 201 when a roll was stored, 200 when every roll was stored already with the "
        "same content (importing a file twice is harmless). An invalid file is a 422 whose `problems` list "
        "every problem with its `line` (JSON: and `column`) and `field`. A roll whose patient is not "
        "registered is a 400 naming the roll (register the patient first); a roll id already stored with "
        "a different manifest is a 409 naming the roll (a changed plan needs a new roll id). Each stored "
        "roll is audited as `roll.manifest_import` on `roll:<id>`, without patient data."
    ),
    responses=error_responses(400, 409, 422),
    openapi_extra={"requestBody": _BODY},
)
async def import_roll_manifests(
    request: Request,
    response: Response,
    api: Ctx,
    by: Operator,
    filename: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="The file's name: used in problem messages, and its extension (.json, .csv) tells "
            "the format when the content type does not.",
        ),
    ] = None,
) -> ManifestImportList:
    """Import a manifest file."""
    name = filename or DEFAULT_FILENAME
    data = await _read_body(request, name)
    result = await run_in_threadpool(
        api.manifest_importer.import_file,
        data,
        filename=name,
        content_type=request.headers.get("content-type"),
        by=by,
    )
    if not result.imported:
        response.status_code = status.HTTP_200_OK
    return ManifestImportList.of(result)


@router.get(
    "/roll-manifests/{roll_id}",
    summary="Get a roll manifest",
    response_description="The manifest, the patient by id (no national id number).",
    description=(
        "The stored manifest of a roll: the patient by `patient_id` (the national id number is not "
        "shown), the printed patient reference, the pharmacy and packing time, and every pouch with its "
        "intake time and drug lines."
    ),
    responses=error_responses(404, 422),
)
def get_roll_manifest(roll_id: RollIdPath, api: Ctx) -> RollManifestDetail:
    """One roll's manifest."""
    with api.uow_factory() as uow:
        manifest = uow.rolls.manifest(roll_id)
        if manifest is None:
            raise NotFound(f"there is no manifest for roll {roll_id}", field="roll_id")
        patient = uow.patients.find_by_national_id(manifest.patient_national_id)
    return RollManifestDetail.of(manifest, None if patient is None else patient.id)


@router.post(
    "/devices/{device_id}/roll/end",
    summary="Record the roll in a dispenser replaced or withdrawn",
    response_description="The ended roll load.",
    description=(
        "Ends the dispenser's accepted roll on an operator's word. `replaced`: the roll was taken out for "
        "another one (which may then overlap it). `plan_changed`: the pharmacy changed the plan mid-roll "
        "(VKP 3.22): the remaining pouches are withdrawn, the dispenser gets a schedule without them at "
        "once, the roll is never accepted again, and a 'plan changed' alarm asks for the new roll. 409 if "
        "the dispenser has no roll accepted. Audited as `roll.end`."
    ),
    responses=error_responses(400, 404, 409, 422),
)
def end_roll(device_id: DeviceIdPath, request: RollEndRequest, api: Ctx, by: Operator) -> RollLoadPublic:
    """End the roll in a dispenser."""
    admin = RollAdmin(api.uow_factory, api.clock)
    return RollLoadPublic.of(admin.end_roll(device_id, request.reason, note=request.note, by=by))
