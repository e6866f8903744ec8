"""Ingest: every device message verified, stored exactly once and acted on, or dead-lettered with a reason.

One batch of messages is one transaction (``handle``); the MQTT adapter acknowledges the batch to the
broker only after ``handle`` returned, i.e. after the commit, so a crash in between means redelivery, and
redelivery is harmless because stored messages are recognised as duplicates.

Per message, in order (ARCHITECTURE.md, the data path):

1. ``firmware_protocol.decode``: JSON, schema, version, type, topic/envelope device id, clock skew.
2. Enrollment requests go to ``Provisioning`` (signed by the CSR's key); one for a device id nobody
   registered is dead-lettered unanswered (``E_UNKNOWN_DEVICE``): the hub does not talk to strangers.
3. The device must be registered, not retired, and enrolled (``E_UNKNOWN_DEVICE``, ``E_DEVICE_RETIRED``,
   ``E_NOT_ENROLLED``); the signature must verify with its registered key.
4. Same (device, msg_id) as a stored event: a duplicate, acknowledged and ignored.
5. Sequence: a jump forward within one boot (a lost message) asks the device to resend the range
   (``cmd.resync``), unless the message is a birth announcing a buffered replay, which fills the gap.
6. Stored as an event; presence updated; device alarms raised or cleared (``domain.presence``); acks and
   nacks finish their commands; a birth with an unsynchronised or skewed clock gets ``cmd.set_time``.

Refused messages become dead letters (reason code, detail, field, the first ``dead_letter_max_bytes``
bytes). A registered device with ``burst_threshold`` dead letters within ``burst_window`` raises a
security alarm (forged or broken messages in its name). A message that makes the service itself fail is
dead-lettered as ``E_INTERNAL`` on its own, so one bad message never blocks the rest of its batch. A
database that cannot be used (``StorageUnavailableError``) is not the message's fault: ``handle`` raises it,
nothing of the batch is acknowledged, and the broker delivers it again.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.alarms import Condition
from dispenser_hub.domain.model import DeadLetter, DeviceEvent, DeviceStatus, SubjectKind
from dispenser_hub.domain.pouches import from_ms
from dispenser_hub.domain.presence import alarm_facts, apply_message, is_stale_death
from dispenser_hub.ports import StorageUnavailableError
from dispenser_hub.services.alarm_records import end_alarm, raise_alarm
from dispenser_hub.services.downlink import answer, enqueue
from dispenser_hub.services.rolls import RollService
from dispenser_hub.services.schedules import ScheduleService
from dispenser_hub.services.trays import TrayService
from firmware_protocol import MAX_SKEW_MS, KeyRing, ProtocolError, decode, is_device_id, verify
from firmware_protocol.messages import (
    Birth,
    CommandAck,
    CommandNack,
    DosePredispensed,
    Heartbeat,
    PotOpened,
    PouchScanned,
    ProvisionRequest,
    Resync,
    RollAlmostEmpty,
    RollEmpty,
    RollLoaded,
    ScheduleApplied,
    ScheduleRejected,
    SetTime,
    State,
    TrayAlmostEmpty,
    TrayEmpty,
    TrayLoaded,
)
from firmware_protocol.messages.common import DoseRef
from firmware_protocol.receiver import SEQUENCE_EXEMPT
from firmware_protocol.signing import b64url_decode, public_key_from_raw

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dispenser_hub.domain.model import Device
    from dispenser_hub.domain.supply import SupplySource
    from dispenser_hub.ports import Inbound, UnitOfWork, UnitOfWorkFactory
    from dispenser_hub.services.provisioning import Provisioning
    from firmware_protocol import Envelope, Received
    from firmware_protocol.messages.common import Body

_log = logging.getLogger(__name__)
SYSTEM = "system"
SECURITY_KIND = "security.invalid_messages"
COMMAND_TTL = timedelta(hours=1)


class Verdict(enum.StrEnum):
    """What became of one message."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    """Dead-lettered."""


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Settings of the ingest rules."""

    dead_letter_max_bytes: int = 16_384
    burst_threshold: int = 10
    burst_window: timedelta = timedelta(minutes=5)


@dataclass(slots=True)
class IngestCounters:
    """Running totals since start (for logs, metrics and benchmarks)."""

    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


_RUN_ENDERS = (ProvisionRequest, TrayLoaded)
"""Messages processed on their own within a batch (see ``IngestService._batch``)."""


class _Refused(Exception):  # noqa: N818 - control flow inside one message, never escapes
    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.field = reason, detail, field


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _topic_device(topic: str) -> str | None:
    parts = topic.split("/")
    return parts[2] if len(parts) > 2 and is_device_id(parts[2]) else None  # noqa: PLR2004 - dsp/vN/id


class IngestService:
    """Turns delivered messages into stored facts (see the module docstring)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        provisioning: Provisioning,
        *,
        limits: IngestLimits | None = None,
        check_skew: bool = True,
        schedules: ScheduleService | None = None,
    ) -> None:
        """Store through ``uow_factory``; enrollment requests go to ``provisioning``."""
        self._uow_factory = uow_factory
        self._provisioning = provisioning
        self.limits = limits or IngestLimits()
        self._check_skew = check_skew
        self._keys: dict[str, tuple[str, KeyRing]] = {}
        self.counters = IngestCounters()
        self._schedules = schedules or ScheduleService()
        self._rolls = RollService(self._schedules)
        self._trays = TrayService(self._schedules)

    def handle(self, batch: Sequence[Inbound]) -> list[Verdict]:
        """Process ``batch`` in one transaction; returns one verdict per message, in order."""
        try:
            with self._uow_factory() as uow:
                verdicts = self._batch(uow, batch)
                uow.commit()
        except StorageUnavailableError:
            raise  # transient: the batch stays unacknowledged and is delivered again (never dead-lettered)
        except Exception:  # noqa: BLE001 - a bug must not stop ingest: the message is dead-lettered alone
            if len(batch) == 1:
                _log.exception("ingest failed on a message on %s; dead-lettered", batch[0].topic)
                verdicts = [self._internal_error(batch[0])]
            else:
                _log.warning("ingest batch of %d failed; retrying message by message", len(batch))
                return [verdict for message in batch for verdict in self.handle([message])]
        for verdict in verdicts:
            self._count(verdict)
        return verdicts

    def _count(self, verdict: Verdict) -> None:
        c = self.counters
        if verdict is Verdict.STORED:
            c.stored += 1
        elif verdict is Verdict.DUPLICATE:
            c.duplicates += 1
        else:
            c.refused += 1

    # -- one batch -----------------------------------------------------------------------------------------

    def _batch(self, uow: UnitOfWork, batch: Sequence[Inbound]) -> list[Verdict]:
        """The rules of the module docstring, message by message, with the storage work done per batch.

        Decoding needs no storage; the batch's devices are read in one query and kept current in
        ``devices`` as messages change them; events are stored in one statement per run of messages and the
        changed devices written back in one statement. An enrollment request ends a run (it changes its
        device in storage), and a ``tray.loaded`` is a run of its own (the tray checks read the latest one
        from the stored events, which must not include the messages after it), so every message sees exactly
        what message-by-message processing would show it.
        """
        checked = [self._decode(message) for message in batch]
        ids = {item.envelope.device for item in checked if not isinstance(item, _Refused)}
        devices = uow.devices.get_many(ids)
        verdicts: list[Verdict] = []
        run: list[tuple[Inbound, Received | _Refused]] = []
        for message, item in zip(batch, checked, strict=True):
            own_run = not isinstance(item, _Refused) and isinstance(item.envelope.body, _RUN_ENDERS)
            if not own_run:
                run.append((message, item))
                continue
            verdicts += self._run(uow, run, devices)
            run = []
            assert not isinstance(item, _Refused)  # noqa: S101 - own_run
            body = item.envelope.body
            if not isinstance(body, ProvisionRequest):  # a tray.loaded
                verdicts += self._run(uow, [(message, item)], devices)
                continue
            verdicts.append(self._enrollment(uow, message, item, body))
            found = uow.devices.get(item.envelope.device)
            if found is not None:
                devices[found.device_id] = found
        verdicts += self._run(uow, run, devices)
        return verdicts

    def _decode(self, message: Inbound) -> Received | _Refused:
        now = message.received_at.astimezone(UTC)
        try:
            return decode(message.payload, message.topic, now_ms=_ms(now) if self._check_skew else None)
        except ProtocolError as exc:
            return _Refused(exc.code.value, exc.detail, exc.field)

    def _enrollment(
        self, uow: UnitOfWork, message: Inbound, received: Received, body: ProvisionRequest
    ) -> Verdict:
        now = message.received_at.astimezone(UTC)
        device_id = received.envelope.device
        refused: _Refused | None = None
        try:
            verify(received, KeyRing())  # signed by the CSR's key
        except ProtocolError as exc:
            refused = _Refused(exc.code.value, exc.detail, exc.field)
        if refused is None and uow.devices.get(device_id) is None:  # no answer to ids nobody registered
            detail = f"device {device_id} is not registered; register it to get an enrollment code"
            refused = _Refused("E_UNKNOWN_DEVICE", detail, "device")
        if refused is not None:
            self._dead_letter(uow, message, refused, now)
            return Verdict.REFUSED
        if uow.events.add(self._event(received, now)) is None:
            return Verdict.DUPLICATE
        self._provisioning.handle(uow, received, body, now)
        return Verdict.STORED

    def _run(
        self, uow: UnitOfWork, run: list[tuple[Inbound, Received | _Refused]], devices: dict[str, Device]
    ) -> list[Verdict]:
        """A run without enrollment requests: refuse or store each, then act on the stored ones in order."""
        verdicts: list[Verdict | None] = []
        accepted: list[tuple[int, Received, datetime]] = []
        for message, item in run:
            now = message.received_at.astimezone(UTC)
            checked = item if isinstance(item, _Refused) else self._check_sender(item, devices)
            if isinstance(checked, _Refused):
                self._dead_letter(uow, message, checked, now)
                verdicts.append(Verdict.REFUSED)
                continue
            accepted.append((len(verdicts), checked, now))
            verdicts.append(None)
        stored = uow.events.add_many([self._event(received, now) for _, received, now in accepted])
        changed: dict[str, Device] = {}
        for (index, received, now), event in zip(accepted, stored, strict=True):
            if event is None:
                verdicts[index] = Verdict.DUPLICATE
                continue
            device_id = received.envelope.device
            devices[device_id] = changed[device_id] = self._act(
                uow, devices[device_id], received.envelope, now
            )
            verdicts[index] = Verdict.STORED
        uow.devices.update_many(list(changed.values()))
        return [verdict or Verdict.REFUSED for verdict in verdicts]

    def _check_sender(self, received: Received, devices: dict[str, Device]) -> Received | _Refused:
        """The message if its device may send and signed it, else why not."""
        device_id = received.envelope.device
        try:
            device = self._device(devices.get(device_id), device_id)
            verify(received, self._ring(device))
        except _Refused as refused:
            return refused
        except ProtocolError as exc:
            return _Refused(exc.code.value, exc.detail, exc.field)
        return received

    @staticmethod
    def _device(device: Device | None, device_id: str) -> Device:
        if device is None:
            raise _Refused("E_UNKNOWN_DEVICE", f"device {device_id} is not registered", "device")
        if device.status is DeviceStatus.RETIRED:
            raise _Refused("E_DEVICE_RETIRED", f"device {device_id} is retired; its key is revoked", "device")
        if device.public_key is None:
            raise _Refused("E_NOT_ENROLLED", f"device {device_id} has not enrolled yet", "device")
        return device

    def _ring(self, device: Device) -> KeyRing:
        assert device.public_key is not None  # noqa: S101 - _device checked it
        cached = self._keys.get(device.device_id)
        if cached is not None and cached[0] == device.public_key:
            return cached[1]
        ring = KeyRing()
        ring.add(device.device_id, public_key_from_raw(b64url_decode(device.public_key, field="key")))
        self._keys[device.device_id] = (device.public_key, ring)
        return ring

    @staticmethod
    def _event(received: Received, now: datetime) -> DeviceEvent:
        envelope = received.envelope
        return DeviceEvent(
            device_id=envelope.device,
            msg_id=envelope.msg_id,
            type=envelope.type,
            boot_id=envelope.boot_id,
            seq=envelope.seq,
            device_ts=datetime.fromtimestamp(envelope.ts / 1000, UTC),
            received_at=now,
            body=envelope.body.model_dump(mode="json", by_alias=True, exclude_none=True),
            corr_id=envelope.corr_id,
        )

    def _act(self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime) -> Device:
        """Act on a stored message; returns the device as the message left it (the caller writes it)."""
        body = envelope.body
        before = device.presence
        self._resync_gap(uow, device, envelope, now)
        status = device.status
        if status is DeviceStatus.ENROLLED and isinstance(body, Birth):
            status = DeviceStatus.ACTIVE
        presence = apply_message(before, envelope, now)
        firmware = body.firmware if isinstance(body, Birth) else device.firmware
        updated = dataclasses.replace(device, presence=presence, status=status, firmware=firmware)
        stale_death = is_stale_death(before, envelope)
        facts = alarm_facts(envelope, patient_id=None, stale_death=stale_death)
        if facts.raised:  # the patient only matters for raised alarms: no binding query for the rest
            binding = uow.bindings.active_for_device(device.device_id)
            if binding is not None:
                facts = alarm_facts(envelope, patient_id=binding.patient_id, stale_death=stale_death)
        for condition in facts.raised:
            raise_alarm(uow, condition, now)
        for kind in facts.cleared:
            key = f"{SubjectKind.DEVICE.value}:{device.device_id}:{kind}"
            end_alarm(uow, key, f"the device reported {body.TYPE}", now)
        if isinstance(body, CommandAck | CommandNack):
            result = "acknowledged" if isinstance(body, CommandAck) else f"{body.reason}: {body.detail or ''}"
            answer(uow, envelope.corr_id, acked=isinstance(body, CommandAck), result=result.strip(), now=now)
        if isinstance(body, Birth) and (not body.clock_synced or abs(envelope.ts - _ms(now)) > MAX_SKEW_MS):
            set_time = SetTime(expires=_ms(now + COMMAND_TTL), now=_ms(now))
            enqueue(uow, device.device_id, set_time, by=SYSTEM, now=now)
        held = body.schedule_version if isinstance(body, Birth | State | Heartbeat) else None
        if held is not None and held != before.schedule_version:  # once per change, not per heartbeat
            self._schedules.on_applied(uow, updated, held, now)
        self._dispense(uow, updated, envelope, now)
        return updated

    def _dispense(self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime) -> None:
        """Rolls and schedules: verdicts, pouch checks, and the schedule the device should hold."""
        body = envelope.body
        if isinstance(body, RollLoaded | RollEmpty):
            if isinstance(body, RollLoaded):
                self._rolls.on_roll_loaded(uow, device, envelope, now)
            else:
                self._rolls.on_roll_empty(uow, device, envelope, now)
                self._supply_report(uow, device, body, now)
            self._schedules.refresh(uow, device, now)
        elif isinstance(body, PouchScanned):
            self._rolls.on_pouch_scanned(uow, device, envelope, now)
        elif isinstance(body, TrayLoaded):
            self._trays.on_tray_loaded(uow, device, envelope, now)
        elif isinstance(body, PotOpened):
            self._trays.on_pot_opened(uow, device, envelope, now)
        elif isinstance(body, DoseRef):
            self._schedules.doses.on_event(uow, device, envelope, now)
        elif isinstance(body, DosePredispensed):
            self._schedules.doses.on_predispensed(uow, device, envelope, now)
        elif isinstance(body, RollAlmostEmpty | TrayAlmostEmpty | TrayEmpty):
            self._supply_report(uow, device, body, now)
        elif isinstance(body, ScheduleApplied):
            self._schedules.on_applied(uow, device, body.version, now)
        elif isinstance(body, ScheduleRejected):
            reason = f"{body.reason}: {body.detail or ''} ({body.field or 'whole config'})"
            self._schedules.on_rejected(uow, device, body.version, reason, now)

    def _supply_report(
        self,
        uow: UnitOfWork,
        device: Device,
        body: RollAlmostEmpty | TrayAlmostEmpty | RollEmpty | TrayEmpty,
        now: datetime,
    ) -> None:
        """The device's own word on what is left updates the bound patient's supply forecast."""
        binding = uow.bindings.active_for_device(device.device_id)
        if binding is None:
            return
        supply, patient_id = self._schedules.supply, binding.patient_id
        source: SupplySource = "tray" if isinstance(body, TrayAlmostEmpty | TrayEmpty) else "roll"
        source_id = body.tray_id if isinstance(body, TrayAlmostEmpty | TrayEmpty) else body.roll_id
        if isinstance(body, RollAlmostEmpty | TrayAlmostEmpty):
            until = from_ms(body.until)
            supply.almost_empty(
                uow,
                patient_id,
                source_id=source_id,
                doses_left=body.doses_left,
                until=until,
                now=now,
                source=source,
            )
        else:
            supply.empty(uow, patient_id, source_id=source_id, now=now, source=source)

    def _resync_gap(self, uow: UnitOfWork, device: Device, envelope: Envelope[Body], now: datetime) -> None:
        presence = device.presence
        body = envelope.body
        if presence.boot_id != envelope.boot_id or presence.last_seq is None or body.TYPE in SEQUENCE_EXEMPT:
            return  # a new boot starts from 0; wills and enrollment requests carry a number without using it
        if envelope.seq <= presence.last_seq + 1 or (isinstance(body, Birth) and body.buffered > 0):
            return
        resync = Resync(
            expires=_ms(now + COMMAND_TTL),
            boot_id=envelope.boot_id,
            from_seq=presence.last_seq + 1,
            to_seq=envelope.seq - 1,
        )
        enqueue(uow, device.device_id, resync, by=SYSTEM, now=now)

    # -- refusals ------------------------------------------------------------------------------------------

    def _dead_letter(self, uow: UnitOfWork, message: Inbound, refused: _Refused, now: datetime) -> None:
        device_id = _topic_device(message.topic)
        cap = self.limits.dead_letter_max_bytes
        uow.dead_letters.add(
            DeadLetter(
                received_at=now,
                topic=message.topic[:512],
                reason=refused.reason,
                detail=refused.detail[:1000],
                raw=message.payload[:cap],
                raw_size=len(message.payload),
                device_id=device_id,
                field=refused.field,
            )
        )
        self.counters.by_reason[refused.reason] = self.counters.by_reason.get(refused.reason, 0) + 1
        if device_id is None or uow.devices.get(device_id) is None:
            return
        recent = uow.dead_letters.count_since(device_id, now - self.limits.burst_window)
        if recent >= self.limits.burst_threshold:
            minutes = self.limits.burst_window.total_seconds() / 60
            raise_alarm(
                uow,
                Condition(
                    kind=SECURITY_KIND,
                    subject_kind=SubjectKind.DEVICE,
                    subject_id=device_id,
                    severity=2,
                    detail=f"{recent} refused messages in {minutes:g} minutes (last: {refused.reason})",
                    device_id=device_id,
                ),
                now,
            )

    def _internal_error(self, message: Inbound) -> Verdict:
        now = message.received_at.astimezone(UTC)
        refused = _Refused("E_INTERNAL", "the hub failed to process this message; see the hub log")
        with self._uow_factory() as uow:
            self._dead_letter(uow, message, refused, now)
            uow.commit()
        return Verdict.REFUSED
