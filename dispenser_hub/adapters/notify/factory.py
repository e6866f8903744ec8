"""The notification channels the settings configure, by name, for ``notifications.NotificationSender``.

Only configured channels are built: ``sms`` when ``sms_gateway_url`` is set, ``email`` when ``smtp_host`` is
set, ``webhook`` when ``webhook_secret`` is set. The ``console`` channel (stored for the operator console)
needs nothing and is always there. A notification for a channel that is not configured fails at once
("channel <name> is not configured") instead of waiting for a channel that will never come.

The HTTP channels hold a connection pool each; the caller closes them (``close``) at shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispenser_hub.adapters.notify.console import ConsoleChannel
from dispenser_hub.adapters.notify.email import SmtpMailer
from dispenser_hub.adapters.notify.sms import HttpSmsGateway
from dispenser_hub.adapters.notify.webhook import WebhookSender

if TYPE_CHECKING:
    from dispenser_hub.ports import Clock, NotificationChannel
    from dispenser_hub.settings import Settings


def channels_from_settings(
    settings: Settings, *, clock: Clock | None = None
) -> dict[str, NotificationChannel]:
    """The configured channels plus the console, by ``name`` (``clock``: the webhook signatures' time)."""
    channels: list[NotificationChannel] = [ConsoleChannel()]
    if settings.sms_gateway_url is not None:
        token = settings.sms_gateway_token
        channels.append(
            HttpSmsGateway(
                settings.sms_gateway_url,
                token=None if token is None else token.get_secret_value(),
                sender=settings.sms_sender,
            )
        )
    if settings.smtp_host is not None:
        if settings.smtp_sender is None:  # the settings refuse this; checked again for a hand-built one
            msg = "smtp_host is set without smtp_sender"
            raise ValueError(msg)
        password = settings.smtp_password
        channels.append(
            SmtpMailer(
                settings.smtp_host,
                settings.smtp_port,
                sender=settings.smtp_sender,
                username=settings.smtp_username,
                password=None if password is None else password.get_secret_value(),
                starttls=settings.smtp_starttls,
            )
        )
    if settings.webhook_secret is not None:
        channels.append(WebhookSender(settings.webhook_secret.get_secret_value().encode(), clock=clock))
    return {channel.name: channel for channel in channels}
