"""Supply: when a patient's roll or tray runs out, and the refill warnings (VKP 3.25) sent or to come.

The hub keeps the forecast from the rolls and trays loaded and the devices' almost-empty and empty
reports (``services.supply``); this route only reads it.
"""

from dispenser_hub.services.supply import SupplyService
from dispenser_hub.web.deps import Ctx
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import PatientIdPath, get_patient, operator_router, utc_now
from dispenser_hub.web.schemas.supply import SupplyPublic

router = operator_router("supply")

SUPPLY = SupplyService()
"""The hub's refill policy and quiet hours (the defaults: 72 h and 24 h ahead, 22:00-07:00 Oslo)."""


@router.get(
    "/patients/{patient_id}/supply",
    summary="Get a patient's supply forecast",
    response_description="The roll or tray in use, when it runs out, and the refill warnings.",
    description=(
        "When the patient's supply (the roll or dosett tray in use) runs out, the doses left as last known, "
        "and the refill warnings (refill needed, VKP 3.25): by default 72 h and 24 h before it runs out, "
        "never in quiet hours (22:00-07:00 Europe/Oslo), each sent once. `next_warning_at` is when the next "
        "warning not sent yet is due, null if none; `warnings_sent` lists the stages sent for this roll or "
        "tray (0 = first). When the hub knows nothing of the supply the answer is still 200, with `known` "
        "false and the other fields null."
    ),
    responses=error_responses(404, 422),
)
def get_supply(patient_id: PatientIdPath, api: Ctx) -> SupplyPublic:
    """The patient's supply forecast."""
    now = utc_now(api.clock)
    with api.uow_factory() as uow:
        get_patient(uow, patient_id)
        view = SUPPLY.view(uow, patient_id, now)
    stages = [] if view.record is None else SUPPLY.sent_stages(view.record)
    return SupplyPublic.of(patient_id, view, stages)
