"""channels_from_settings: only the configured channels, the console always."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from dispenser_hub.adapters.notify import HttpSmsGateway, SmtpMailer, WebhookSender
from dispenser_hub.adapters.notify.console import ConsoleChannel
from dispenser_hub.adapters.notify.factory import channels_from_settings
from dispenser_hub.settings import Settings


def test_only_the_console_without_channel_settings() -> None:
    channels = channels_from_settings(Settings())
    assert list(channels) == ["console"]
    assert isinstance(channels["console"], ConsoleChannel)


def test_each_configured_channel_is_built() -> None:
    settings = Settings(
        sms_gateway_url="https://sms.example/send",
        sms_gateway_token=SecretStr("gateway-token"),
        smtp_host="smtp.example",
        smtp_sender="alarm@kommune.example",
        smtp_username="hub",
        smtp_password=SecretStr("mail-password"),
        webhook_secret=SecretStr("a-webhook-secret-of-32-characters"),
    )
    channels = channels_from_settings(settings)
    assert sorted(channels) == ["console", "email", "sms", "webhook"]
    assert isinstance(channels["sms"], HttpSmsGateway)
    assert isinstance(channels["email"], SmtpMailer)
    assert isinstance(channels["webhook"], WebhookSender)
    for name, channel in channels.items():
        assert channel.name == name
    shown = repr(channels) + repr(settings)
    for secret in ("gateway-token", "mail-password", "a-webhook-secret"):
        assert secret not in shown


def test_sms_alone() -> None:
    channels = channels_from_settings(Settings(sms_gateway_url="http://127.0.0.1:9/send"))
    assert sorted(channels) == ["console", "sms"]


@pytest.mark.parametrize(
    "settings",
    [
        {"sms_gateway_url": "ftp://sms.example/send"},
        {"sms_sender": " "},
        {"smtp_host": "smtp.example"},  # no sender
        {"smtp_host": "smtp.example", "smtp_sender": "not an address"},
        {"smtp_host": "smtp.example", "smtp_sender": "a@b.example", "smtp_username": "hub"},
        {
            "smtp_host": "smtp.example",
            "smtp_sender": "a@b.example",
            "smtp_username": "hub",
            "smtp_password": "pw",
            "smtp_starttls": False,
        },
        {"webhook_secret": "short"},
    ],
)
def test_unusable_channel_settings_fail_at_start(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate(settings)
