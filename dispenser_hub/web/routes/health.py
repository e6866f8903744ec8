"""``/health``: open, for load balancers and the console's status line; no patient data."""

from fastapi import APIRouter

from dispenser_hub.web.deps import Ctx
from dispenser_hub.web.routes.common import utc_now
from dispenser_hub.web.schemas.records import HealthPublic

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Health of the hub",
    response_description="The hub's status, version, clock and details.",
    description=(
        "Answers without a token. `status` is `ok` when the API answers; `details` carries what the hub "
        "knows of its MQTT connection, outbox backlog and the like. Never patient data."
    ),
)
def health(api: Ctx) -> HealthPublic:
    """The hub's health."""
    details = dict(api.health()) if api.health is not None else {}
    return HealthPublic(status="ok", version=api.version, time=utc_now(api.clock), details=details)
