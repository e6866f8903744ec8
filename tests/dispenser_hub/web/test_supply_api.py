"""Supply forecasts through the API: known and unknown supply, the warnings sent and to come, 404."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dispenser_hub.services.supply import SupplyService, SupplySweep
from tests.dispenser_hub.web.support import T0

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub

END = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
"""03:00 Oslo: the 72 h stage moves to 07:00 Oslo on the 24th, the 24 h stage to 07:00 on the 26th."""


def _roll(hub: Hub, patient_id: int, runs_out_at: datetime | None = END) -> None:
    with hub.uow() as uow:
        SupplyService().set_source(
            uow,
            patient_id,
            source="roll",
            source_id="R-1",
            runs_out_at=runs_out_at,
            doses_left=14,
            now=hub.clock.now(),
        )
        uow.commit()


def test_an_unknown_supply_is_200_with_nulls(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    assert hub.ok("GET", f"/patients/{patient_id}/supply") == {
        "patient_id": patient_id,
        "known": False,
        "source": None,
        "source_id": None,
        "runs_out_at": None,
        "doses_left": None,
        "next_warning_at": None,
        "warnings_sent": [],
        "updated_at": None,
    }


def test_a_known_supply_shows_the_next_warning_and_the_stages_sent(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    _roll(hub, patient_id)
    path = f"/patients/{patient_id}/supply"
    first = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    assert hub.ok("GET", path) == {
        "patient_id": patient_id,
        "known": True,
        "source": "roll",
        "source_id": "R-1",
        "runs_out_at": END.isoformat(),
        "doses_left": 14,
        "next_warning_at": first.isoformat(),
        "warnings_sent": [],
        "updated_at": T0.isoformat(),
    }
    hub.clock.advance(first - T0)
    assert SupplySweep(hub.store, hub.clock, SupplyService()).sweep() == 1
    body = hub.ok("GET", path)
    assert body["warnings_sent"] == [0]
    assert body["next_warning_at"] == datetime(2026, 11, 26, 6, 0, tzinfo=UTC).isoformat()
    assert "Kari" not in str(body)


def test_a_supply_without_an_end_has_no_next_warning(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    _roll(hub, patient_id, None)
    body = hub.ok("GET", f"/patients/{patient_id}/supply")
    assert (body["known"], body["runs_out_at"], body["next_warning_at"]) == (True, None, None)


def test_an_unknown_patient_is_404(hub: Hub) -> None:
    hub.fails("GET", "/patients/999/supply", 404, "patient_id")
    hub.fails("GET", "/patients/0/supply", 422, "patient_id")


def test_the_route_needs_a_token(hub: Hub) -> None:
    patient_id = hub.patient()["id"]
    hub.fails("GET", f"/patients/{patient_id}/supply", 401, headers={"Authorization": ""})
