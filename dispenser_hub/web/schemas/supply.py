"""Models of supply forecasts: a patient's roll or tray, when it runs out, and the refill warnings."""

from typing import Literal, Self

from pydantic import Field

from dispenser_hub.services.supply import SupplyView
from dispenser_hub.web.schemas.common import Public, Timestamp


class SupplyPublic(Public):
    """The patient's supply forecast and refill warnings; `known` false (and nulls) when there is none."""

    patient_id: int
    known: bool = Field(description="False when the hub knows nothing of the patient's supply (all null).")
    source: Literal["roll", "tray"] | None = Field(description="What the supply is: a roll or a dosett tray.")
    source_id: str | None = Field(description="The roll or tray in use.")
    runs_out_at: Timestamp | None = Field(
        description="Due time of the last dose the patient has; null if unknown (no warnings then)."
    )
    doses_left: int | None = Field(description="Doses left, as last known; null if unknown.")
    next_warning_at: Timestamp | None = Field(
        description="When the next refill warning not sent yet is due (quiet hours respected); null if none."
    )
    warnings_sent: list[int] = Field(
        description="Warning stages sent for this roll or tray, 0 = first (72 h ahead by default)."
    )
    updated_at: Timestamp | None = Field(description="When the forecast last changed; null if unknown.")

    @classmethod
    def of(cls, patient_id: int, view: SupplyView, stages: list[int]) -> Self:
        """From the service's view (and the stages sent, ``SupplyService.sent_stages``)."""
        record = view.record
        if record is None:
            return cls(
                patient_id=patient_id,
                known=False,
                source=None,
                source_id=None,
                runs_out_at=None,
                doses_left=None,
                next_warning_at=None,
                warnings_sent=[],
                updated_at=None,
            )
        supply = record.supply
        return cls(
            patient_id=patient_id,
            known=True,
            source=supply.source,
            source_id=supply.source_id,
            runs_out_at=supply.runs_out_at,
            doses_left=supply.doses_left,
            next_warning_at=view.next_warning_at,
            warnings_sent=stages,
            updated_at=record.updated_at,
        )
