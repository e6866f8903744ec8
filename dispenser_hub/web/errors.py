"""One error schema for every failure, and the handlers that produce it.

Every 4xx/5xx answer is ``{"error": {"code": ..., "message": ..., "field": ..., "problems": [...]}}``:

* ``RegistryError`` (the services' refusals) -> 400 ``invalid``, ``NotFound`` -> 404 ``not_found``,
  ``Conflict`` -> 409 ``conflict``; ``field`` names the input at fault.
* Request validation (pydantic) -> 422 ``validation_failed``, one entry per invalid input in ``problems``.
  An invalid roll manifest file (``ManifestImportError``) -> 422 too, each problem with its ``line`` (and,
  for JSON, ``column``).
  Messages never echo the input (it may be a national id number).
* Missing or wrong token -> 401 ``unauthorized`` with ``WWW-Authenticate: Bearer``; unknown routes -> 404;
  anything unexpected -> 500 ``internal`` with no detail (logged without the request's data).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispenser_hub.ports import ConflictError, NotFoundError
from dispenser_hub.services.manifest_import import ManifestImportError
from dispenser_hub.services.registry import Conflict, NotFound, RegistryError

_log = logging.getLogger(__name__)

_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    500: "internal",
}
_DESCRIPTIONS = {
    400: "The request breaks a rule; `field` names the input at fault.",
    401: "Missing or unknown API token (send `Authorization: Bearer <token>`).",
    404: "No such record (or route); `field` names the id that was not found.",
    409: "Clashes with existing records or the record's state (duplicate, already bound, retired...).",
    422: "Invalid input: `problems` lists every invalid field.",
}


class FieldProblem(BaseModel):
    """One invalid input."""

    field: str = Field(description="The input, e.g. national_id, limit, reason.")
    message: str
    line: int | None = Field(None, description="Uploaded files (roll manifests): the 1-based line.")
    column: int | None = Field(None, description="Uploaded JSON files: the 1-based character column.")


class ErrorBody(BaseModel):
    """What went wrong."""

    code: str = Field(
        description="Stable code: invalid, unauthorized, not_found, conflict, validation_failed..."
    )
    message: str = Field(description="What is wrong and what to do, for people.")
    field: str | None = Field(None, description="The input at fault, if one is.")
    problems: list[FieldProblem] = Field(default_factory=list, description="422: every invalid input.")


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorBody


class ApiError(Exception):
    """An error answer raised from a route or dependency."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``status`` with ``message``."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``statuses`` with the error schema."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


def error_response(
    status: int,
    message: str,
    *,
    field: str | None = None,
    problems: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON answer for an error."""
    body = ErrorResponse(
        error=ErrorBody(
            code=_CODES.get(status, "error"), message=message, field=field, problems=list(problems)
        )
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the one schema (see the module docstring)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(ManifestImportError, _manifest_error)
    app.add_exception_handler(NotFoundError, _storage_error)
    app.add_exception_handler(ConflictError, _storage_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    return error_response(exc.status, exc.message, field=exc.field, headers=exc.headers)


async def _registry_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)  # noqa: S101 - registered for RegistryError only
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
    return error_response(status, str(exc), field=exc.field)


async def _manifest_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ManifestImportError)  # noqa: S101 - registered for ManifestImportError only
    # Problem messages never contain a full national id number (manifest_import masks them).
    problems = [
        FieldProblem(field=problem.field, message=problem.message, line=problem.line, column=problem.column)
        for problem in exc.problems
    ]
    first = exc.problems[0].format(exc.filename) if exc.problems else "the file cannot be imported"
    count = len(problems)
    message = f"the manifest file has {count} problem{'s' if count != 1 else ''} (see problems): {first}"
    if exc.truncated:
        message += "; reading stopped there, there may be more"
    field = problems[0].field if problems and problems[0].field else None
    return error_response(422, message, field=field, problems=problems)


async def _storage_error(_request: Request, exc: Exception) -> JSONResponse:
    # Storage messages name records by id and never contain patient data (adapters.storage_rules).
    status = 404 if isinstance(exc, NotFoundError) else 409
    return error_response(status, str(exc))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for RequestValidationError only
    problems = [
        FieldProblem(field=_field_name(problem), message=_message(problem)) for problem in exc.errors()
    ]
    fields = ", ".join(dict.fromkeys(problem.field for problem in problems))
    first = problems[0] if problems else FieldProblem(field="body", message="invalid request")
    message = f"invalid input ({fields}): {first.message}"
    return error_response(422, message, field=first.field, problems=problems)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for HTTPException only
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":  # noqa: PLR2004 - HTTP status
        message = "no such route; the API lives under /api/v1 (see /api/v1/docs)"
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Only the exception type and the route: messages and bodies may carry patient data.
    _log.error("unexpected %s answering %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(500, "internal error; the hub's log has the time and route")


def _field_name(problem: Mapping[str, Any]) -> str:
    """``("body", "cmd.lock", "reason")`` -> ``reason``: field names and list positions, not union tags."""
    location: Sequence[object] = problem.get("loc", ())
    if problem.get("type") == "json_invalid":  # its location is a character position
        return "body"
    parts = [str(part) for part in location[1:] if isinstance(part, int) or str(part).isidentifier()]
    if problem.get("type") in {"union_tag_invalid", "union_tag_not_found"}:  # the tag member is at fault
        parts.append(str(problem.get("ctx", {}).get("discriminator", "type")).strip("'"))
    return ".".join(parts) if parts else str(location[0]) if location else "body"


def _message(problem: Mapping[str, Any]) -> str:
    message = str(problem.get("msg", "invalid"))
    return message.removeprefix("Value error, ")
