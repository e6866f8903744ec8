"""Models of notifications, the console's event stream and the SMS gateway's inbound replies.

A notification's ``address`` (a phone number, an e-mail address, a webhook URL) is never shown: the
channel and the recipient (``contact:7``, ``team:2``, ``response-centre``) say who it went to.
"""

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints

from dispenser_hub.domain.model import Notification, NotificationStatus
from dispenser_hub.web.schemas.common import Input, Public, Timestamp, stored
from dispenser_hub.web.schemas.records import AlarmPublic

E164 = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+[1-9][0-9]{6,14}$")]
"""A phone number in E.164: ``+`` and 7 to 15 digits."""


class NotificationPublic(Public):
    """One message to one recipient about an alarm (never the address it went to)."""

    id: int
    alarm_id: int | None
    channel: str = Field(description="sms, email, webhook or console.")
    recipient: str = Field(description="Who it is for: contact:<id>, team:<id>, response-centre...")
    subject: str
    text: str = Field(description="The text as sent; it never holds patient-identifying data.")
    status: NotificationStatus
    attempts: int
    sent_at: Timestamp | None
    last_error: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, notification: Notification) -> Self:
        """From the record, leaving the address out."""
        return cls(
            id=stored(notification.id),
            alarm_id=notification.alarm_id,
            channel=notification.channel,
            recipient=notification.recipient,
            subject=notification.subject,
            text=notification.text,
            status=notification.status,
            attempts=notification.attempts,
            sent_at=notification.sent_at,
            last_error=notification.last_error,
            created_at=notification.created_at,
        )


class NotificationList(Public):
    """An alarm's notifications, oldest first."""

    items: list[NotificationPublic]


class StreamEventPublic(Public):
    """One server-sent event of ``GET /stream`` (``event:``, ``id:`` and ``data:`` lines)."""

    event: Literal["alarm", "notification"] = Field(description="What the event's data is.")
    id: str = Field(description="Send it back as `Last-Event-ID` to resume after this event.")
    data: AlarmPublic | NotificationPublic = Field(description="The alarm or the notification, as JSON.")


class SmsReplyCreate(Input):
    """An SMS the gateway received: who sent it and what it says."""

    from_: E164 = Field(alias="from", description="The sender's number in E.164.", examples=["+4791234567"])
    text: Annotated[str, StringConstraints(max_length=1600)] = Field(
        description="The message as received.", examples=["OK 4KX9PQ"]
    )


class SmsReplyPublic(Public):
    """Whether the reply acknowledged an alarm."""

    acknowledged: bool = Field(description="True when the reply acknowledged (or had acknowledged) an alarm.")
    alarm_id: int | None = Field(None, description="The alarm acknowledged; null when nothing matched.")
