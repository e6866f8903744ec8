"""What the API needs from the rest of the hub, given to ``create_app`` by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dispenser_hub.services.dosett_admin import PatientDosett
from dispenser_hub.services.manifest_service import ManifestImporter
from dispenser_hub.services.schedule_admin import PatientSchedules
from dispenser_hub.web.tokens import TokenTable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from dispenser_hub.ports import Clock, UnitOfWorkFactory
    from dispenser_hub.services.registry import Registry


@dataclass(frozen=True, kw_only=True)
class ApiContext:
    """The API's collaborators.

    ``tokens`` maps each API token to its operator name (``operator_tokens`` builds it from the settings).
    ``health``, when given, returns what the health route shows next to the status (MQTT connected, outbox
    backlog...): never patient data, since that route is open. ``manifests`` imports roll manifests; by
    default one over ``uow_factory`` and ``clock``; so do ``schedules`` (dose settings, pauses) and
    ``dosett`` (dosett plans, tray fills). ``notice_secret`` checks the codes of SMS replies (the secret
    ``Escalations`` signs them with, ``services.ack.notice_secret``) and ``sms_gateway_token`` is what the
    SMS gateway sends in ``X-Gateway-Token`` with an inbound message; without either, SMS replies are
    refused (503).
    """

    uow_factory: UnitOfWorkFactory
    registry: Registry
    clock: Clock
    tokens: Mapping[str, str] = field(repr=False)
    version: str
    health: Callable[[], dict[str, object]] | None = None
    manifests: ManifestImporter | None = None
    schedules: PatientSchedules | None = None
    dosett: PatientDosett | None = None
    notice_secret: bytes | None = field(default=None, repr=False)
    sms_gateway_token: str | None = field(default=None, repr=False)
    token_table: TokenTable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Index the tokens for constant-time lookup; build the manifest importer unless given."""
        object.__setattr__(self, "token_table", TokenTable(self.tokens))
        if self.manifests is None:
            object.__setattr__(self, "manifests", ManifestImporter(self.uow_factory, self.clock))
        if self.schedules is None:
            object.__setattr__(self, "schedules", PatientSchedules(self.uow_factory, self.clock))
        if self.dosett is None:
            object.__setattr__(self, "dosett", PatientDosett(self.uow_factory, self.clock))

    @property
    def manifest_importer(self) -> ManifestImporter:
        """``manifests`` (always set after construction)."""
        if self.manifests is None:  # pragma: no cover - __post_init__ sets it
            raise TypeError("ApiContext.manifests is not set")
        return self.manifests

    @property
    def patient_schedules(self) -> PatientSchedules:
        """``schedules`` (always set after construction)."""
        if self.schedules is None:  # pragma: no cover - __post_init__ sets it
            raise TypeError("ApiContext.schedules is not set")
        return self.schedules

    @property
    def patient_dosett(self) -> PatientDosett:
        """``dosett`` (always set after construction)."""
        if self.dosett is None:  # pragma: no cover - __post_init__ sets it
            raise TypeError("ApiContext.dosett is not set")
        return self.dosett
