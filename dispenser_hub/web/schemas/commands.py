"""Models of downlink commands: the small safe set an operator may send, and the outbox rows.

Only commands that cannot harm a patient by themselves are offered here: identify (beep and blink),
resync (send birth and state again), lock and unlock. Dose-changing commands (release, pause, predispense)
belong to workflows with their own checks, not to a generic endpoint.
"""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints

from dispenser_hub.domain.model import Command, CommandStatus
from dispenser_hub.web.schemas.common import Input, Page, Public, Timestamp, stored
from firmware_protocol.messages import Identify, Lock, Resync, Unlock
from firmware_protocol.messages.common import Body

DEFAULT_TTL_S = 3600


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class _CommandRequest(Input):
    expires_in_s: int = Field(
        DEFAULT_TTL_S,
        ge=60,
        le=86_400,
        description="The device acts on the command only within this many seconds; then it expires.",
    )

    def expires_at(self, now: datetime) -> datetime:
        """When the command expires, sent at ``now``."""
        return now + timedelta(seconds=self.expires_in_s)

    def body(self, expires_at: datetime) -> Body:
        """The protocol body to send."""
        raise NotImplementedError


class IdentifyRequest(_CommandRequest):
    """Beep and blink so a visitor finds the right device."""

    type: Literal["cmd.identify"]
    seconds: int = Field(30, ge=1, le=300, description="How long to beep and blink.")

    def body(self, expires_at: datetime) -> Body:
        """``cmd.identify``."""
        return Identify(expires=_ms(expires_at), seconds=self.seconds)


class ResyncRequest(_CommandRequest):
    """Ask the device to send a fresh birth and state."""

    type: Literal["cmd.resync"]

    def body(self, expires_at: datetime) -> Body:
        """``cmd.resync`` without a range."""
        return Resync(expires=_ms(expires_at))


class LockRequest(_CommandRequest):
    """Lock the dispenser: no dose is presented until unlocked."""

    type: Literal["cmd.lock"]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="Why, shown on the device (no patient data).", examples=["roll under investigation"]
    )

    def body(self, expires_at: datetime) -> Body:
        """``cmd.lock`` with the reason."""
        return Lock(expires=_ms(expires_at), reason=self.reason)


class UnlockRequest(_CommandRequest):
    """Unlock the dispenser."""

    type: Literal["cmd.unlock"]

    def body(self, expires_at: datetime) -> Body:
        """``cmd.unlock``."""
        return Unlock(expires=_ms(expires_at))


CommandRequest = Annotated[
    IdentifyRequest | ResyncRequest | LockRequest | UnlockRequest, Field(discriminator="type")
]
"""One of the commands an operator may send, chosen by ``type``."""


class CommandPublic(Public):
    """A command in the outbox, with its delivery status."""

    msg_id: str = Field(description="The message id; the device's cmd.ack/cmd.nack answers it.")
    device_id: str
    type: str
    status: CommandStatus = Field(
        description="pending (to send), sent (awaiting ack), acked, nacked (see result) or expired."
    )
    body: dict[str, Any]
    created_at: Timestamp
    created_by: str
    expires_at: Timestamp
    attempts: int
    next_attempt_at: Timestamp | None
    sent_at: Timestamp | None
    finished_at: Timestamp | None
    result: str | None
    corr_id: str | None

    @classmethod
    def of(cls, command: Command) -> Self:
        """From the record."""
        stored(command.id)
        return cls(
            msg_id=command.msg_id,
            device_id=command.device_id,
            type=command.type,
            status=command.status,
            body=command.body,
            created_at=command.created_at,
            created_by=command.created_by,
            expires_at=command.expires_at,
            attempts=command.attempts,
            next_attempt_at=command.next_attempt_at,
            sent_at=command.sent_at,
            finished_at=command.finished_at,
            result=command.result,
            corr_id=command.corr_id,
        )


class CommandPage(Page):
    """A page of a device's commands, newest first."""

    items: list[CommandPublic]
