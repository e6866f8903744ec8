"""Protocol inspection: what one MQTT message on the broker is, and everything wrong with it.

Pure: the caller passes the topic, payload and receive time. The inspector applies every check a hub
applies (stateless checks of ``firmware_protocol.codec``, then duplicates and sequence numbers per device)
but, unlike the hub, it never refuses anything: it reports.

Keys: the inspector verifies signatures with the keys it is given, and learns keys trust-on-first-use
from what it sees: a valid ``prov.request`` teaches it the device key in the CSR, a ``prov.accepted``
teaches it the hub key. A message signed with a key it does not know is flagged ``E_UNKNOWN_KEY``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from firmware_protocol import (
    DuplicateFilter,
    KeyRing,
    ProtocolError,
    Received,
    SequenceTracker,
    decode,
    verify,
)
from firmware_protocol.codec import csr_public_key
from firmware_protocol.messages import ProvisionAccepted, ProvisionRequest
from firmware_protocol.signing import b64url_decode, kid_of, public_key_from_raw
from firmware_protocol.topics import Direction

if TYPE_CHECKING:
    from collections.abc import Callable

    from firmware_protocol.receiver import SeqResult


@dataclass(frozen=True, slots=True)
class Inspection:
    """The verdict on one message. ``error`` is ``None`` when every check passed."""

    received_ms: int
    topic: str
    size: int
    retained: bool
    received: Received | None = None
    error: ProtocolError | None = None
    duplicate: bool = False
    sequence: SeqResult | None = None
    learned_key: str | None = None
    """Set when this message taught the inspector a key (trust on first use)."""
    payload_preview: str = ""

    @property
    def ok(self) -> bool:
        """True when the message passed every check."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON-lines output."""
        envelope = self.received.envelope if self.received else None
        return {
            "received_ms": self.received_ms,
            "topic": self.topic,
            "size": self.size,
            "retained": self.retained,
            "ok": self.ok,
            "error": self.error.as_dict() if self.error else None,
            "type": envelope.type if envelope else None,
            "device": envelope.device if envelope else None,
            "msg_id": envelope.msg_id if envelope else None,
            "boot_id": envelope.boot_id if envelope else None,
            "seq": envelope.seq if envelope else None,
            "ts": envelope.ts if envelope else None,
            "corr_id": envelope.corr_id if envelope else None,
            "duplicate": self.duplicate,
            "seq_status": self.sequence.status.value if self.sequence else None,
            "missing": [list(r) for r in self.sequence.missing] if self.sequence else [],
            "ignored_fields": list(self.received.ignored_fields) if self.received else [],
            "learned_key": self.learned_key,
            "body": envelope.body.model_dump(mode="json", by_alias=True, exclude_none=True)
            if envelope
            else None,
            "payload_preview": None if self.ok else self.payload_preview,
        }


@dataclass
class Inspector:
    """Stateful inspector: keys, duplicate memory and sequence trackers per device."""

    keys: KeyRing = field(default_factory=KeyRing)
    check_skew: bool = True
    clock: Callable[[], int] | None = None
    """The clock timestamps are checked against (``None``: the receive time), e.g. a simulator's clock."""
    device_clocks: dict[str, Callable[[], int]] = field(default_factory=dict)
    """Devices on a clock of their own (simulated ones on accelerated time next to real ones): their
    messages, up and down, are checked against that clock."""
    duplicates: DuplicateFilter = field(default_factory=DuplicateFilter)
    _sequences: dict[str, SequenceTracker] = field(default_factory=dict)

    def _skew_reference(self, topic: str, received_ms: int, retained: bool) -> int | None:  # noqa: FBT001
        if not self.check_skew or retained:
            return None  # retained messages may be old by design (state, config): skew would only add noise
        if self.device_clocks:
            parts = topic.split("/")
            clock = self.device_clocks.get(parts[2]) if len(parts) > 2 else None  # noqa: PLR2004 - dsp/vN/id
            if clock is not None:
                return clock()
        return self.clock() if self.clock is not None else received_ms

    def inspect(self, topic: str, payload: bytes, *, received_ms: int, retained: bool = False) -> Inspection:
        """Check one message; never raises for anything in ``topic`` or ``payload``."""
        base = partial(Inspection, received_ms, topic, len(payload), retained)
        preview = payload[:240].decode("utf-8", errors="backslashreplace")
        try:
            received = decode(payload, topic, now_ms=self._skew_reference(topic, received_ms, retained))
        except ProtocolError as exc:
            return base(error=exc, payload_preview=preview)
        learned = self._learn_hub_key(received)
        try:
            verify(received, self.keys)
        except ProtocolError as exc:
            if learned:
                self.keys.remove(None, received.kid)
            return base(received=received, error=exc, payload_preview=preview)
        learned = learned or self._learn_device_key(received)
        envelope = received.envelope
        if self.duplicates.seen(envelope.device, envelope.msg_id):
            return base(received=received, duplicate=True, learned_key=learned)
        sequence: SeqResult | None = None
        if received.direction is Direction.UPLINK and envelope.type != "prov.request":
            tracker = self._sequences.setdefault(envelope.device, SequenceTracker())
            try:
                sequence = tracker.observe(envelope.boot_id, envelope.seq, envelope.type)
            except ProtocolError as exc:
                return base(received=received, error=exc, payload_preview=preview)
        self.duplicates.remember(envelope.device, envelope.msg_id)
        return base(received=received, sequence=sequence, learned_key=learned)

    def _learn_device_key(self, received: Received) -> str | None:
        """A verified ``prov.request`` proves possession of the CSR's key: remember it for that device."""
        envelope = received.envelope
        if not isinstance(envelope.body, ProvisionRequest) or self.keys.resolve(
            envelope.device, received.kid
        ):
            return None
        self.keys.add(envelope.device, csr_public_key(envelope.body.csr))
        return f"device {envelope.device} key {received.kid}"

    def _learn_hub_key(self, received: Received) -> str | None:
        """A ``prov.accepted`` carries the hub key; trust it on first use if it signed the message."""
        body = received.envelope.body
        if not isinstance(body, ProvisionAccepted) or body.hub_kid != received.kid:
            return None
        if self.keys.resolve(None, received.kid) is not None:
            return None
        try:
            key = public_key_from_raw(b64url_decode(body.hub_key, field="body.hub_key"))
        except (ProtocolError, ValueError):
            return None  # verify() then reports the unknown key
        if self.keys.add(None, key) != received.kid:
            self.keys.remove(None, kid_of(key))
            return None
        return f"hub key {received.kid}"
