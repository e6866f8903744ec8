"""Downlink through the outbox: commands are stored first, then signed, published and retried until acked.

Rules:

- A command is a row before it is a message (``enqueue`` in the caller's transaction), so a crash after
  the commit means a retry, never a lost command; nothing reaches a device unsigned (``HubSender.seal``
  signs every payload with the hub key).
- ``send_due`` publishes every pending command whose time has come, and re-publishes sent ones that were
  not acknowledged, with the same ``msg_id`` each time (the device acts once and acknowledges again).
  Retries back off: 30 s, 1 min, 2 min, ... at most 10 min apart. A command not acknowledged by its
  ``expires`` time is marked expired (the device would refuse it anyway).
- Provisioning answers (``prov.accepted``/``prov.rejected``) expect no ack: they are finished once handed
  to a connected client (QoS 1), and a device that missed one asks again. Nothing is marked sent while
  the broker is out of reach (``DevicePublisher.publish`` raises ``ConnectionError``).
- ``cmd.ack``/``cmd.nack`` from the device finish the command they answer (``corr_id``).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import Command, CommandStatus
from firmware_protocol import Envelope, new_ulid, seal
from firmware_protocol.messages import MESSAGE_TYPES

if TYPE_CHECKING:
    from dispenser_hub.ports import Clock, DevicePublisher, UnitOfWork, UnitOfWorkFactory
    from firmware_protocol import Signer
    from firmware_protocol.messages.common import Body

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=10)
DEFAULT_TTL = timedelta(hours=1)
UNACKED_TYPES = frozenset({"prov.accepted", "prov.rejected"})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A signed downlink message ready for the broker."""

    topic: str
    payload: bytes
    retain: bool


class HubSender:
    """Signs downlink envelopes with the hub key: one ``boot_id`` per process, ``seq`` counting up."""

    def __init__(self, signer: Signer) -> None:
        """Sign with ``signer`` (the hub key devices pinned at enrollment)."""
        self.signer = signer
        self.boot_id = new_ulid()
        self._seq = 0
        self._lock = threading.Lock()

    def seal(
        self, device_id: str, body: Body, *, msg_id: str, now: datetime, corr_id: str | None = None
    ) -> Outgoing:
        """The signed message for ``device_id``."""
        with self._lock:
            seq, self._seq = self._seq, self._seq + 1
        envelope: Envelope[Body] = Envelope(
            body, device=device_id, boot_id=self.boot_id, seq=seq, ts=_ms(now), msg_id=msg_id, corr_id=corr_id
        )
        return Outgoing(envelope.topic, seal(envelope, self.signer), body.CHANNEL.retain)


def enqueue(
    uow: UnitOfWork,
    device_id: str,
    body: Body,
    *,
    by: str,
    now: datetime,
    corr_id: str | None = None,
    expires_at: datetime | None = None,
) -> Command:
    """Store a command for ``device_id`` in the caller's transaction; ``send_due`` publishes it."""
    data = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    command = Command(
        msg_id=new_ulid(_ms(now)),
        device_id=device_id,
        type=body.TYPE,
        body=data,
        created_at=now,
        expires_at=expires_at or now + DEFAULT_TTL,
        created_by=by,
        corr_id=corr_id,
        next_attempt_at=now,
    )
    return uow.commands.add(command)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th publication (see the module rules)."""
    factor: int = 2 ** max(0, attempts - 1)
    return min(MAX_RETRY, FIRST_RETRY * factor)


def answer(
    uow: UnitOfWork, corr_id: str | None, *, acked: bool, result: str, now: datetime
) -> Command | None:
    """Finish the command a ``cmd.ack``/``cmd.nack`` answers; ``None`` if there is no such open command."""
    command = uow.commands.get(corr_id) if corr_id else None
    if command is None or command.status not in {CommandStatus.PENDING, CommandStatus.SENT}:
        return None
    status = CommandStatus.ACKED if acked else CommandStatus.NACKED
    return uow.commands.update(
        dataclasses.replace(command, status=status, finished_at=now, result=result, next_attempt_at=None)
    )


class CommandSender:
    """Publishes due commands from the outbox (call ``send_due`` from a timer)."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, sender: HubSender, publisher: DevicePublisher, clock: Clock
    ) -> None:
        """Send through ``publisher``, signing with ``sender``."""
        self._uow_factory = uow_factory
        self._sender = sender
        self._publisher = publisher
        self._clock = clock
        self._lock = threading.Lock()

    def send_due(self, *, limit: int = 500) -> int:
        """Publish (or expire) every command that is due; returns how many were published.

        One call at a time (the timer and the ingest thread both call it): a second caller waits, then
        finds nothing left to send.
        """
        with self._lock:
            return self._send_due(limit)

    def _send_due(self, limit: int) -> int:
        now = self._clock.now().astimezone(UTC)
        published = 0
        with self._uow_factory() as uow:
            for command in uow.commands.due(now, limit=limit):
                if now >= command.expires_at:
                    uow.commands.update(
                        dataclasses.replace(
                            command,
                            status=CommandStatus.EXPIRED,
                            finished_at=now,
                            next_attempt_at=None,
                            result="not acknowledged before it expired",
                        )
                    )
                    continue
                try:
                    self._publish(command, now)
                except ConnectionError:
                    break  # the broker is out of reach: everything stays due for the next round
                published += 1
                attempts = command.attempts + 1
                finished = command.type in UNACKED_TYPES
                uow.commands.update(
                    dataclasses.replace(
                        command,
                        status=CommandStatus.ACKED if finished else CommandStatus.SENT,
                        attempts=attempts,
                        sent_at=command.sent_at or now,
                        finished_at=now if finished else None,
                        result="published" if finished else command.result,
                        next_attempt_at=None if finished else now + retry_delay(attempts),
                    )
                )
            uow.commit()
        return published

    def _publish(self, command: Command, now: datetime) -> None:
        body = MESSAGE_TYPES[command.type].model_validate(command.body)
        out = self._sender.seal(
            command.device_id, body, msg_id=command.msg_id, now=now, corr_id=command.corr_id
        )
        self._publisher.publish(out.topic, out.payload, retain=out.retain)
