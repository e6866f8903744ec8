"""A hub's services over the in-memory store with a real CA, and a device that speaks to it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from device_sim.device.identity import DeviceIdentity
from dispenser_hub.adapters.clock import ManualClock
from dispenser_hub.adapters.crypto.fields import FieldCipher, generate_key
from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.adapters.pki import CertificateAuthority
from dispenser_hub.ports import Inbound
from dispenser_hub.services.downlink import CommandSender, HubSender
from dispenser_hub.services.ingest import IngestLimits, IngestService
from dispenser_hub.services.presence import PresenceMonitor
from dispenser_hub.services.provisioning import Provisioning
from dispenser_hub.services.registry import Registry
from firmware_protocol import Envelope, new_ulid, seal
from firmware_protocol.messages import Birth, Family, ProvisionRequest

if TYPE_CHECKING:
    from pathlib import Path

    from dispenser_hub.services.ingest import Verdict
    from firmware_protocol.messages.common import Body

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@dataclass
class Published:
    """Everything the hub published (a ``DevicePublisher``)."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    connected: bool = True

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if not self.connected:
            msg = "not connected"
            raise ConnectionError(msg)
        self.messages.append((topic, payload, retain))


class HubUnderTest:
    """Registry, ingest, outbox and presence services over one memory store."""

    def __init__(self, tmp_path: Path, *, limits: IngestLimits | None = None) -> None:
        self.clock = ManualClock(T0)
        self.store = MemoryStore()
        self.cipher = FieldCipher.from_settings(f"k1:{generate_key()}", generate_key())
        self.ca = CertificateAuthority.init(tmp_path / "pki", organisation="test", now=T0 - timedelta(days=1))
        self.registry = Registry(self.store, self.cipher, self.clock)
        self.ingest = IngestService(
            self.store, Provisioning(self.ca, self.ca.hub_signer, self.cipher), limits=limits
        )
        self.published = Published()
        self.sender = HubSender(self.ca.hub_signer)
        self.commands = CommandSender(self.store, self.sender, self.published, self.clock)
        self.presence = PresenceMonitor(self.store, self.clock, allowed_silence=timedelta(hours=1))

    def deliver(self, *messages: tuple[str, bytes]) -> list[Verdict]:
        return self.ingest.handle([Inbound(topic, payload, self.clock.now()) for topic, payload in messages])


@dataclass
class Device:
    """A device's side: identity, boot and sequence numbers, and sealed messages."""

    identity: DeviceIdentity
    boot_id: str = field(default_factory=new_ulid)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def create(cls, device_id: str = "RM3-000017", family: Family = Family.MULTIDOSE_ROLL) -> Device:
        return cls(DeviceIdentity.create(device_id, family, seed=1))

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    def message(
        self,
        body_type: type[Body],
        at: datetime,
        *,
        seq: int | None = None,
        corr_id: str | None = None,
        **fields: Any,
    ) -> tuple[str, bytes]:
        body = body_type.model_validate({**body_type.EXAMPLE, **fields})
        number = next(self._seq) if seq is None else seq
        envelope: Envelope[Body] = Envelope(
            body,
            device=self.device_id,
            boot_id=self.boot_id,
            seq=number,
            ts=int(at.timestamp() * 1000),
            corr_id=corr_id,
        )
        return envelope.topic, seal(envelope, self.identity.signer)

    def enrollment(self, code: str, at: datetime, **fields: Any) -> tuple[str, bytes]:
        values = {
            "enrollment_code": code,
            "csr": self.identity.csr_pem(),
            "serial": self.identity.serial,
            "family": self.identity.family.value,
            "model": self.identity.model,
            "firmware": self.identity.firmware,
            **fields,
        }
        return self.message(ProvisionRequest, at, **values)

    def birth(self, at: datetime, **fields: Any) -> tuple[str, bytes]:
        return self.message(Birth, at, family=self.identity.family.value, **fields)


def enrolled(hub: HubUnderTest, device: Device) -> None:
    """Register and enroll ``device`` (and send its first birth)."""
    _, code = hub.registry.register_device(
        device.device_id,
        serial=device.identity.serial,
        family=device.identity.family,
        model="RollMate 3",
        by="op",
    )
    hub.deliver(device.enrollment(code.code, hub.clock.now()))
    hub.deliver(device.birth(hub.clock.now()))
