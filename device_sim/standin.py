"""A minimal hub stand-in, so simulated dispensers can run without dispenser-hub ("standalone mode").

It does only what a device needs from the other end of the protocol, with the same signed messages the
real hub sends: enrolls devices by enrollment code and CSR (issuing certificates from its own throw-away
CA), publishes each device's retained, signed, versioned ``config`` (dose slots for the coming days from
the patient's wall-clock dose times in Europe/Oslo), accepts a loaded roll only if its printed patient
reference is the bound patient's, and sets a device's clock when its birth shows it is wrong. It makes no
other decisions: no alarms, no escalation, no persistence. dispenser-hub replaces it.

Sans-I/O like the devices: ``on_message`` and ``tick`` return the publishes to make.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from device_sim.ports import Publish
from device_sim.timespec import local_date, local_ms
from firmware_protocol import (
    MAX_SKEW_MS,
    Envelope,
    KeyRing,
    ProtocolError,
    Signer,
    decode,
    new_ulid,
    seal,
    verify,
)
from firmware_protocol.codec import csr_public_key
from firmware_protocol.messages import (
    Birth,
    Body,
    Config,
    ProvisionAccepted,
    ProvisionRejected,
    ProvisionRequest,
    RejectionReason,
    Reminders,
    RollLoaded,
    RollVerdict,
    SetTime,
    Slot,
    VerdictReason,
)
from firmware_protocol.signing import b64url, raw_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DAY_MS = 86_400_000
HORIZON_DAYS = 3
"""Days of slots in each config; a new version is published every day."""
COMMAND_TTL_MS = 600_000


@dataclass(frozen=True, slots=True)
class DosePlan:
    """When a patient takes medication: wall-clock times in Europe/Oslo, and the window around each."""

    times: tuple[dt.time, ...]
    early_min: int = 60
    window_min: int = 120
    reminders: Reminders = field(
        default_factory=lambda: Reminders(
            notice_before_s=900, sound_after_s=300, repeat_every_s=600, repeat_max=6
        )
    )

    def slots(self, from_ms: int, days: int) -> list[Slot]:
        """Slots whose window has not closed at ``from_ms``, for ``days`` local days from that date.

        Wall-clock times become instants by ``timespec.local_ms`` (a time skipped by the spring-forward
        hour moves past it; a time that happens twice in autumn is taken once), so no dose is skipped
        or doubled by daylight saving.
        """
        start = local_date(from_ms)
        slots = []
        for offset in range(days + 1):
            day = start + dt.timedelta(days=offset)
            for at in self.times:
                due = local_ms(day, at, strict=False)
                closes = due + self.window_min * 60_000
                if closes > from_ms:
                    slot_id = f"s-{day:%Y%m%d}-{at:%H%M}"
                    slots.append(
                        Slot(slot_id=slot_id, due=due, opens=due - self.early_min * 60_000, closes=closes)
                    )
        return sorted(slots, key=lambda s: s.due)


@dataclass
class Binding:
    """A device known to the stand-in: its patient's printed reference and dose plan."""

    device_id: str
    patient_ref: str
    plan: DosePlan
    enrollment_code: str | None = None
    config_version: int = 0
    enrolled: bool = False


@dataclass
class StandIn:
    """The stand-in hub: its key, CA, the devices it serves."""

    signer: Signer = field(default_factory=Signer.generate)
    ca_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    devices: dict[str, Binding] = field(default_factory=dict)
    keys: KeyRing = field(default_factory=KeyRing)
    boot_id: str = field(default_factory=new_ulid)
    seq: int = 0
    next_config_ms: int = 0

    def bind(self, binding: Binding, device_key: Ed25519PublicKey | None = None) -> None:
        """Serve a device: pre-enrolled with ``device_key``, or enrolling later with its code."""
        self.devices[binding.device_id] = binding
        if device_key is not None:
            self.keys.add(binding.device_id, device_key)
            binding.enrolled = True

    def _send(self, device_id: str, body: Body, now_ms: int, *, corr_id: str | None = None) -> Publish:
        envelope: Envelope[Body] = Envelope(
            body, device=device_id, boot_id=self.boot_id, seq=self.seq, ts=now_ms, corr_id=corr_id
        )
        self.seq += 1
        return Publish(envelope.topic, seal(envelope, self.signer), envelope.body.CHANNEL.retain)

    def config_for(self, binding: Binding, now_ms: int) -> Publish:
        """A new version of the device's retained config, with slots for the coming days."""
        binding.config_version += 1
        config = Config(
            version=binding.config_version,
            timezone="Europe/Oslo",
            locale="nb-NO",
            volume=6,
            heartbeat_s=300,
            almost_empty_doses=6,
            reminders=binding.plan.reminders,
            slots=binding.plan.slots(now_ms, HORIZON_DAYS),
        )
        return self._send(binding.device_id, config, now_ms)

    def tick(self, now_ms: int) -> list[Publish]:
        """Publish the configs that are due: all at the start, then a fresh day's horizon every day."""
        if now_ms < self.next_config_ms:
            return []
        self.next_config_ms = now_ms + DAY_MS
        return [self.config_for(b, now_ms) for b in self.devices.values() if b.enrolled]

    def on_message(self, topic: str, payload: bytes, now_ms: int) -> list[Publish]:
        """Handle one uplink message; anything invalid is ignored (the stand-in is not an inspector)."""
        try:
            received = decode(payload, topic)
            verify(received, self.keys)
        except ProtocolError:
            return []
        envelope = received.envelope
        binding = self.devices.get(envelope.device)
        if binding is None:
            return []
        body = envelope.body
        if isinstance(body, ProvisionRequest):
            return [self._enroll(binding, body, envelope.msg_id, now_ms)]
        if isinstance(body, Birth):
            out = []
            if not body.clock_synced or abs(envelope.ts - now_ms) > MAX_SKEW_MS:
                out.append(
                    self._send(
                        binding.device_id, SetTime(expires=now_ms + COMMAND_TTL_MS, now=now_ms), now_ms
                    )
                )
            if binding.config_version == 0:  # later versions reach it as the retained config
                out.append(self.config_for(binding, now_ms))
            return out
        if isinstance(body, RollLoaded):
            accept = body.printed_patient_ref == binding.patient_ref
            verdict = RollVerdict(
                expires=now_ms + COMMAND_TTL_MS,
                roll_id=body.roll_id,
                accept=accept,
                reason=None if accept else VerdictReason.WRONG_PATIENT,
                detail=None if accept else "Roll belongs to another patient. Remove it.",
            )
            return [self._send(binding.device_id, verdict, now_ms)]
        return []

    def _enroll(self, binding: Binding, request: ProvisionRequest, msg_id: str, now_ms: int) -> Publish:
        if binding.enrolled or request.enrollment_code != binding.enrollment_code:
            reason = RejectionReason.CODE_USED if binding.enrolled else RejectionReason.CODE_UNKNOWN
            rejected = ProvisionRejected(
                reason=reason, detail="Ask the response centre for a new enrollment code."
            )
            return self._send(binding.device_id, rejected, now_ms, corr_id=msg_id)
        device_key = csr_public_key(request.csr)
        kid = self.keys.add(binding.device_id, device_key)
        binding.enrolled = True
        accepted = ProvisionAccepted(
            certificate=self._certificate(binding.device_id, device_key, now_ms),
            ca_certificate=self._ca_certificate(now_ms),
            device_kid=kid,
            hub_key=b64url(raw_public_key(self.signer.public_key)),
            hub_kid=self.signer.kid,
        )
        return self._send(binding.device_id, accepted, now_ms, corr_id=msg_id)

    def _name(self, common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def _ca_certificate(self, now_ms: int) -> str:
        moment = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
        name = self._name("device-sim stand-in CA (simulation only)")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(1)
            .not_valid_before(moment - dt.timedelta(days=1))
            .not_valid_after(moment + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.ca_key, None)
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def _certificate(self, device_id: str, key: Ed25519PublicKey, now_ms: int) -> str:
        moment = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(self._name(device_id))
            .issuer_name(self._name("device-sim stand-in CA (simulation only)"))
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(moment - dt.timedelta(minutes=5))
            .not_valid_after(moment + dt.timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.ca_key, None)
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
