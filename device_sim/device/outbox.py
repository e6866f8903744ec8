"""Sequencing, signing and buffering of a device's uplink, as PROTOCOL.md asks of a firmware.

Rules carried out here:

- every uplink message of a boot gets the next ``seq`` from 0, across all channels; ``death`` (the
  Last Will) and ``prov.request`` carry the current number without consuming it;
- while offline, messages are buffered in order (non-volatile on a real device: they survive a reboot)
  and sent after the next birth with their original ``ts``, ``boot_id`` and ``seq``; the buffer is
  bounded, and what falls out of it is counted as lost;
- the most recent messages are kept for ``cmd.resync``, which asks for a range of one boot again.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device_sim.ports import Output, Publish
from firmware_protocol import Envelope, new_ulid, seal
from firmware_protocol.receiver import SEQUENCE_EXEMPT

if TYPE_CHECKING:
    from firmware_protocol import Signer
    from firmware_protocol.messages import Body

BUFFER_LIMIT = 2_000
"""Messages a device keeps while offline (about a week of events and hourly heartbeats)."""
RESEND_LIMIT = 512
"""Recent messages kept for ``cmd.resync``."""


@dataclass
class Outbox:
    """One device's uplink: numbering, signing, the offline buffer and the resend memory."""

    device_id: str
    signer: Signer
    boot_id: str = field(default_factory=new_ulid)
    seq: int = 0
    online: bool = False
    lost: int = 0
    """Messages dropped because the offline buffer was full."""
    _buffer: deque[Publish] = field(default_factory=deque)
    _sent: OrderedDict[tuple[str, int], Publish] = field(default_factory=OrderedDict)

    def new_boot(self, boot_id: str) -> None:
        """Start numbering a new boot from 0 (the buffer survives: it is non-volatile)."""
        self.boot_id = boot_id
        self.seq = 0

    def envelope(self, body: Body, ts: int, *, corr_id: str | None = None) -> Envelope[Body]:
        """The next envelope of this boot for ``body`` at device time ``ts``."""
        exempt = body.TYPE in SEQUENCE_EXEMPT
        envelope: Envelope[Body] = Envelope(
            body, device=self.device_id, boot_id=self.boot_id, seq=self.seq, ts=ts, corr_id=corr_id
        )
        if not exempt:
            self.seq += 1
        return envelope

    def sign(self, envelope: Envelope[Body], *, signer: Signer | None = None) -> Publish:
        """Seal an envelope into a publish on its channel's topic (retained where the channel says so)."""
        return Publish(envelope.topic, seal(envelope, signer or self.signer), envelope.body.CHANNEL.retain)

    def send(self, body: Body, ts: int, *, corr_id: str | None = None) -> list[Output]:
        """Number, sign and send ``body`` now, or buffer it while offline."""
        envelope = self.envelope(body, ts, corr_id=corr_id)
        message = self.sign(envelope)
        self._sent[envelope.boot_id, envelope.seq] = message
        if len(self._sent) > RESEND_LIMIT:
            self._sent.popitem(last=False)
        if self.online:
            return [message]
        self._buffer.append(message)
        if len(self._buffer) > BUFFER_LIMIT:
            self._buffer.popleft()
            self.lost += 1
        return []

    def send_now(self, body: Body, ts: int, *, corr_id: str | None = None) -> Publish:
        """Number and sign ``body`` for sending on the current connection, never buffered (birth, state)."""
        envelope = self.envelope(body, ts, corr_id=corr_id)
        message = self.sign(envelope)
        self._sent[envelope.boot_id, envelope.seq] = message
        return message

    def last_sent(self) -> Publish | None:
        """The most recent numbered message (for replaying it)."""
        return next(reversed(self._sent.values()), None)

    @property
    def buffered(self) -> int:
        """Messages waiting for the link."""
        return len(self._buffer)

    def flush(self) -> list[Publish]:
        """Everything buffered, oldest first; the buffer is empty afterwards."""
        messages = list(self._buffer)
        self._buffer.clear()
        return messages

    def resend(self, boot_id: str, from_seq: int, to_seq: int) -> tuple[list[Publish], list[int]]:
        """The kept messages of ``boot_id`` in ``from_seq..to_seq``, and the numbers no longer kept."""
        found: list[Publish] = []
        gone: list[int] = []
        for number in range(from_seq, min(to_seq, from_seq + RESEND_LIMIT - 1) + 1):
            message = self._sent.get((boot_id, number))
            if message is None:
                gone.append(number)
            else:
                found.append(message)
        return found, gone
