"""The FastAPI application: ``create_app(api)`` builds it; nothing is built at import time.

The REST API lives under ``/api/v1`` (OpenAPI document at ``/api/v1/openapi.json``, interactive docs at
``/api/v1/docs``). Every route but ``/api/v1/health`` needs an operator token (``/api/v1/sms/replies`` the
SMS gateway's instead); every error has one schema (``web.errors``). Answers are marked
``Cache-Control: no-store``: they may carry patient data, which must not linger in a browser's or proxy's
cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from dispenser_hub.web.errors import install_error_handlers
from dispenser_hub.web.routes import (
    ack,
    alarms,
    bindings,
    commands,
    devices,
    dosett,
    escalation,
    health,
    manifests,
    notifications,
    patients,
    records,
    schedules,
    supply,
    teams,
)

if TYPE_CHECKING:
    from fastapi.routing import APIRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from dispenser_hub.web.context import ApiContext

API_PREFIX = "/api/v1"
TITLE = "dispenser-hub API"
DESCRIPTION = """\
REST API of **dispenser-hub**, the edge service for networked medication dispensers at a municipal response
centre. The operator console and integrators use it to register care teams, patients and their contacts,
register and enroll dispensers, bind them to patients, send safe commands, and work the alarm board.

* **Authentication**: `Authorization: Bearer <token>` with an operator API token (`DISPENSER_API_TOKENS`).
  The token's name is recorded as the actor of every action in the audit trail. `/api/v1/health` is open;
  `/api/v1/sms/replies` takes the SMS gateway's token (`X-Gateway-Token`) instead.
* **Errors** all have one shape: `{"error": {"code", "message", "field", "problems"}}`.
* **Times** are ISO 8601 in UTC with an offset (`2026-11-23T07:00:00+00:00`).
* **Patient identifiers**: national id numbers are masked (`010190*****`) everywhere except
  `GET /api/v1/patients/{patient_id}/national-id`, whose every call is audited.
* **Lists** are paged with `offset` and `limit`; `next_offset` is null on the last page.
"""
TAGS = [
    {"name": "health", "description": "Is the hub up; no token needed, no patient data."},
    {"name": "teams", "description": "Home-care teams (districts) that receive escalations."},
    {"name": "patients", "description": "Patients, their contacts, the audited national id read."},
    {"name": "devices", "description": "Dispensers: registration, enrollment codes, presence, events."},
    {"name": "bindings", "description": "Which patient a dispenser serves, with the history of who and why."},
    {"name": "schedules", "description": "Dose windows and reminders, pauses, what a dispenser holds."},
    {"name": "dosett", "description": "Dose-pot dispensers: dosett plans and the trays filled from them."},
    {"name": "supply", "description": "When a patient's roll or tray runs out, and the refill warnings."},
    {"name": "commands", "description": "Safe commands to a dispenser through the signed outbox."},
    {"name": "alarms", "description": "The alarm board: list, log, acknowledge, resolve."},
    {
        "name": "notifications",
        "description": "An alarm's messages, the console's live stream, SMS replies that acknowledge.",
    },
    {"name": "roll manifests", "description": "Pharmacy roll manifests: import JSON or CSV files, read one."},
    {"name": "dead letters", "description": "Device messages the hub refused, with the reason."},
    {"name": "escalation", "description": "On-call rosters, patients' escalation policies, skipped doses."},
    {"name": "audit", "description": "Who did what to which record."},
]


def create_app(api: ApiContext) -> FastAPI:
    """The hub's web application over ``api``."""
    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version=api.version,
        openapi_tags=TAGS,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        swagger_ui_oauth2_redirect_url=f"{API_PREFIX}/docs/oauth2-redirect",
        redoc_url=None,
        generate_unique_id_function=_operation_id,
    )
    app.state.api = api
    install_error_handlers(app)
    for router in (
        health.router,
        teams.router,
        patients.router,
        devices.router,
        bindings.router,
        schedules.router,
        dosett.router,
        supply.router,
        commands.router,
        alarms.router,
        escalation.router,
        notifications.router,
        notifications.gateway,
        manifests.router,
        records.dead_letters,
        records.audit,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(ack.router)  # people's one-time links: /ack/<token>, outside the API
    app.add_middleware(NoStore)
    return app


def _operation_id(route: APIRoute) -> str:
    """The route function's name (``register_device``): readable names for generated clients."""
    return route.name


class NoStore:
    """ASGI middleware: ``Cache-Control: no-store`` on every HTTP answer (unless the route set one)."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, adding the header to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)
