"""The hub's settings: ``DISPENSER_*`` environment variables over an optional ``.env``-style file.

Rules, and why:

* **Sources**, strongest first: environment variables (``DISPENSER_MQTT_URL``...), then the settings file
  named by ``Settings.load(path)`` (the CLI's ``--settings FILE``) or by ``DISPENSER_SETTINGS_FILE``, then
  defaults.
  A settings file that does not exist, or a ``DISPENSER_*`` line in it that is no setting, is an error: a typo
  must not silently fall back to a default. Other lines are ignored, so one ``.env`` can serve a compose file.
* **Everything is checked at start**: broker URL and TLS files with ``firmware_protocol.broker.BrokerAddress``
  (so a bad URL fails with the message every MQTT client in the project gives), the database URL scheme, the
  time zone (an IANA name), key formats. ``Settings.load`` reports every problem by environment variable name.
* **Secrets** (``encryption_keys``, ``lookup_key``, ``api_tokens``) are ``SecretStr`` and have development
  defaults that are obviously fake (the keys decode to ``DEVELOPMENT-ONLY-...``), so the two-command demo runs
  without set-up. Outside ``environment=development``, ``check_secrets`` refuses to start while any secret is
  at its development default or an API token is shorter than 32 characters, naming every offending variable.
* **Notification channels are optional**: an SMS gateway (``sms_gateway_url``, ``sms_gateway_token``), SMTP
  (``smtp_host``... with ``smtp_sender``) and signed webhooks (``webhook_secret``) are used only when set
  (``adapters.notify.factory.channels_from_settings``); the console channel always exists. Their shape is
  checked at start: an http(s) gateway URL, an SMTP sender, SMTP login only in pairs and only with STARTTLS,
  a webhook secret of at least 16 bytes. They have no defaults, so there is no development value to refuse.
* **Nothing secret is shown**: validation errors hide input values, ``repr`` hides secrets and the URLs (which
  may carry passwords), and ``settings_summary`` gives a masked view for the startup log.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispenser_hub.adapters.crypto.fields import (
    FieldCipher,
    FieldCipherConfigError,
    parse_key_ring,
    parse_lookup_key,
)
from dispenser_hub.adapters.notify.email import ADDRESS as MAIL_ADDRESS
from dispenser_hub.domain.notices import MIN_SECRET, link_allowed
from firmware_protocol.broker import BrokerAddress, BrokerUrlError

ENV_PREFIX = "DISPENSER_"
SETTINGS_FILE_ENV = "DISPENSER_SETTINGS_FILE"
GENERATE_HINT = "generate a value with `dispenser-hub secrets generate`"
MIN_API_TOKEN_CHARS = 32

# Development defaults: public, so never safe. The keys decode to 32 readable bytes saying what they are.
DEV_ENCRYPTION_KEYS = (
    "dev-insecure:REVWRUxPUE1FTlQtT05MWS1OT1QtQS1TRUNSRVQhISE"  # DEVELOPMENT-ONLY-NOT-A-SECRET!!!
)
DEV_LOOKUP_KEY = "REVWRUxPUE1FTlQtT05MWS1MT09LVVAtS0VZISEhISE"  # DEVELOPMENT-ONLY-LOOKUP-KEY!!!!!
DEV_API_TOKENS = "dev:development-only-api-token-not-a-secret"

_API_TOKEN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DATABASE_SCHEMES = re.compile(r"(sqlite|postgresql)(\+[a-z0-9_]+)?")
_MASK = "********"


class Environment(StrEnum):
    """Where the hub runs; anything but development must have real secrets."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """Settings that cannot be used; the message lists every problem by environment variable name."""


class InsecureSettingsError(ValueError):
    """Development or weak secrets outside development; the message names each variable and the fix."""


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``mqtt_url`` -> ``DISPENSER_MQTT_URL``."""
    return f"{ENV_PREFIX}{field.upper()}"


def _linkable(base: str) -> bool:
    """Whether links under ``base`` are acknowledgement links people can use (``notices.link_allowed``)."""
    return link_allowed(f"{base}/ack/")


class Settings(BaseSettings):
    """Every setting of the hub; build with ``Settings.load()`` (see the module docstring for the rules)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=None,
        extra="ignore",  # unknown DISPENSER_* lines of a settings file are reported by ``load``
        frozen=True,
        validate_default=True,
        hide_input_in_errors=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = Field("sqlite:///var/hub/hub.db", repr=False)
    mqtt_url: str = Field("mqtt://127.0.0.1:1883", repr=False)
    mqtt_client_id: str = "dispenser-hub"
    mqtt_cafile: Path | None = None
    mqtt_certfile: Path | None = None
    mqtt_keyfile: Path | None = None
    pki_dir: Path = Path("var/hub/pki")
    encryption_keys: SecretStr = SecretStr(DEV_ENCRYPTION_KEYS)
    lookup_key: SecretStr = SecretStr(DEV_LOOKUP_KEY)
    api_tokens: SecretStr = SecretStr(DEV_API_TOKENS)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)
    no_contact_after_s: int = Field(3600, ge=60)
    enrollment_code_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    dead_letter_max_bytes: int = Field(16384, ge=256)
    security_burst_threshold: int = Field(10, ge=1)
    security_burst_window_s: int = Field(300, ge=1)
    timezone: str = "Europe/Oslo"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    sms_gateway_url: str | None = Field(
        None, repr=False, description="The HTTP SMS gateway's send endpoint; unset: no SMS channel."
    )
    sms_gateway_token: SecretStr | None = Field(
        None, description="Bearer token for the SMS gateway; unset: no Authorization header."
    )
    sms_sender: str = Field("Responssenter", description="The sender name or number the SMS shows.")
    smtp_host: str | None = Field(None, description="The SMTP submission server; unset: no e-mail channel.")
    smtp_port: int = Field(587, ge=1, le=65535, description="The SMTP server's port (587: submission).")
    smtp_username: str | None = Field(
        None, description="SMTP login name (with smtp_password); unset: no login."
    )
    smtp_password: SecretStr | None = Field(None, description="SMTP login password (with smtp_username).")
    smtp_sender: str | None = Field(
        None, description="The From address, name@domain (needed with smtp_host)."
    )
    smtp_starttls: bool = Field(default=True, description="Upgrade SMTP to TLS first (needed for a login).")
    webhook_secret: SecretStr | None = Field(
        None,
        description=f"The webhooks' HMAC secret (at least {MIN_SECRET} bytes); unset: no webhooks.",
    )
    response_centre_webhook_url: str | None = Field(
        None,
        description="The response centre's alarm system: escalation steps to the centre are also posted "
        "there as signed webhooks (needs the webhook secret); unset: the console only.",
    )
    public_url: str | None = Field(
        None,
        description="The hub's address as people reach it (https://hub.kommune.no): acknowledgement links "
        "in e-mails and webhooks start with it; unset: http://<http host>:<http port>.",
    )

    @classmethod
    def load(cls, settings_file: str | Path | None = None) -> Self:
        """Read the environment over ``settings_file`` (default: ``$DISPENSER_SETTINGS_FILE``, if set).

        Raises ``SettingsError`` listing every problem by environment variable name.
        """
        chosen = settings_file if settings_file is not None else os.environ.get(SETTINGS_FILE_ENV) or None
        if chosen is not None and not Path(chosen).is_file():
            msg = f"settings file {str(chosen)!r} does not exist (given by --settings or {SETTINGS_FILE_ENV})"
            raise SettingsError(msg)
        problems = [] if chosen is None else _unknown_file_settings(Path(chosen))
        try:
            settings = cls(_env_file=chosen, _env_file_encoding="utf-8")
        except ValidationError as error:
            raise SettingsError(_problem_list(problems + _validation_problems(error))) from None
        if problems:
            raise SettingsError(_problem_list(problems))
        return settings

    @field_validator("environment", "log_level", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_validator("mqtt_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        try:
            BrokerAddress.parse(value)
        except BrokerUrlError as error:
            raise ValueError(_hide_password(str(error), value)) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not _DATABASE_SCHEMES.fullmatch(urlsplit(value).scheme) or "://" not in value:
            msg = "must be sqlite:///path or postgresql://user@host/database (e.g. sqlite:///var/hub/hub.db)"
            raise ValueError(msg)
        return value

    @field_validator("mqtt_client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not _CLIENT_ID.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("mqtt_cafile", "mqtt_certfile", "mqtt_keyfile")
    @classmethod
    def _existing_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            msg = f"unknown time zone {value!r}; use an IANA name such as Europe/Oslo"
            raise ValueError(msg) from None
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _key_ring(cls, value: SecretStr) -> SecretStr:
        try:
            parse_key_ring(value.get_secret_value())
        except FieldCipherConfigError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("lookup_key")
    @classmethod
    def _lookup_key(cls, value: SecretStr) -> SecretStr:
        try:
            parse_lookup_key(value.get_secret_value())
        except FieldCipherConfigError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("sms_gateway_url")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s)://host/... URL")
        return value

    @field_validator("response_centre_webhook_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s)://host/... URL without ? or #")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not _linkable(value):
            raise ValueError("must be https://... (plain http only to localhost or 127.0.0.1)")
        return value

    @property
    def link_base(self) -> str | None:
        """Where acknowledgement links point (``None``: e-mails and webhooks go without a link).

        ``public_url``, else the API's own address if people can use it (https, or http on this machine).
        """
        if self.public_url is not None:
            return self.public_url
        own = f"http://{self.http_host}:{self.http_port}"
        return own if _linkable(own) else None

    @field_validator("sms_sender")
    @classmethod
    def _sms_sender(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("smtp_sender")
    @classmethod
    def _smtp_sender(cls, value: str | None) -> str | None:
        if value is not None and not MAIL_ADDRESS.fullmatch(value):
            raise ValueError("must be a plain name@domain address")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET:
            raise ValueError(f"must be at least {MIN_SECRET} bytes; {GENERATE_HINT}")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _api_tokens(cls, value: SecretStr) -> SecretStr:
        _parse_api_tokens(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _whole(self) -> Self:
        try:
            BrokerAddress.parse(self.mqtt_url, **self._tls_files())
        except BrokerUrlError as error:
            raise ValueError(f"{env_name('mqtt_url')}: {_hide_password(str(error), self.mqtt_url)}") from None
        if self.mqtt_keyfile is not None and self.mqtt_certfile is None:
            msg = f"{env_name('mqtt_keyfile')} is set without {env_name('mqtt_certfile')}"
            raise ValueError(msg)
        try:
            FieldCipher.from_settings(
                self.encryption_keys.get_secret_value(), self.lookup_key.get_secret_value()
            )
        except FieldCipherConfigError as error:
            raise ValueError(f"{env_name('encryption_keys')} / {env_name('lookup_key')}: {error}") from None
        self._check_smtp()
        if self.environment is not Environment.DEVELOPMENT:
            self.check_secrets()
        return self

    def _check_smtp(self) -> None:
        if (self.smtp_username is None) != (self.smtp_password is None):
            msg = f"set both {env_name('smtp_username')} and {env_name('smtp_password')}, or neither"
            raise ValueError(msg)
        if self.smtp_username is not None and not self.smtp_starttls:
            msg = f"{env_name('smtp_username')} needs {env_name('smtp_starttls')}=true (no login in clear)"
            raise ValueError(msg)
        if self.smtp_host is not None and self.smtp_sender is None:
            raise ValueError(f"{env_name('smtp_host')} is set without {env_name('smtp_sender')}")
        if self.response_centre_webhook_url is not None and self.webhook_secret is None:
            msg = f"{env_name('response_centre_webhook_url')} is set without {env_name('webhook_secret')}"
            raise ValueError(msg)

    @property
    def broker_address(self) -> BrokerAddress:
        """Where the hub's MQTT client connects, with the TLS files."""
        return BrokerAddress.parse(self.mqtt_url, **self._tls_files())

    @property
    def zone(self) -> ZoneInfo:
        """The local time zone of schedules and displays."""
        return ZoneInfo(self.timezone)

    def api_tokens_by_name(self) -> dict[str, SecretStr]:
        """The operator API bearer tokens, by name."""
        return {
            name: SecretStr(token) for name, token in _parse_api_tokens(self.api_tokens.get_secret_value())
        }

    def secret_problems(self) -> list[str]:
        """One line per secret that is at its development default or too weak (empty when all are fine)."""
        problems = []
        dev_key = parse_key_ring(DEV_ENCRYPTION_KEYS)["dev-insecure"]
        ring = parse_key_ring(self.encryption_keys.get_secret_value())
        if dev_key in ring.values():
            problems.append(
                f"{env_name('encryption_keys')} holds the public development key; {GENERATE_HINT} "
                "(and re-encrypt anything the development key encrypted)"
            )
        if parse_lookup_key(self.lookup_key.get_secret_value()) == parse_lookup_key(DEV_LOOKUP_KEY):
            problems.append(f"{env_name('lookup_key')} is the public development key; {GENERATE_HINT}")
        dev_token = DEV_API_TOKENS.partition(":")[2]
        for name, token in _parse_api_tokens(self.api_tokens.get_secret_value()):
            if token == dev_token:
                problems.append(
                    f"{env_name('api_tokens')}: token {name!r} is the development token; {GENERATE_HINT}"
                )
            elif len(token) < MIN_API_TOKEN_CHARS:
                problems.append(
                    f"{env_name('api_tokens')}: token {name!r} has fewer than {MIN_API_TOKEN_CHARS} "
                    f"characters; {GENERATE_HINT}"
                )
        return problems

    def check_secrets(self) -> None:
        """Raise ``InsecureSettingsError`` naming each unsafe secret (validation calls this)."""
        problems = self.secret_problems()
        if problems:
            lines = "\n".join(f"  - {problem}" for problem in problems)
            msg = f"refusing to start with environment={self.environment.value} and unsafe secrets:\n{lines}"
            raise InsecureSettingsError(msg)

    def _tls_files(self) -> dict[str, str | None]:
        files = {"cafile": self.mqtt_cafile, "certfile": self.mqtt_certfile, "keyfile": self.mqtt_keyfile}
        return {name: None if path is None else str(path) for name, path in files.items()}


def settings_summary(settings: Settings) -> dict[str, str]:
    """Every setting as display text for the startup log: secrets masked, URL passwords hidden."""
    summary: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name == "encryption_keys":
            ring = list(parse_key_ring(value.get_secret_value()))
            text = f"{len(ring)} key(s), current {ring[0]!r} (ids: {', '.join(ring)}); material {_MASK}"
        elif name == "api_tokens":
            names = [token_name for token_name, _ in _parse_api_tokens(value.get_secret_value())]
            text = f"{len(names)} token(s): {', '.join(names) or '-'}; values {_MASK}"
        elif isinstance(value, SecretStr):
            text = _MASK
        elif name in {"database_url", "mqtt_url", "sms_gateway_url"} and value is not None:
            text = _url_without_password(value)
        elif value is None:
            text = "-"
        else:
            text = str(value)
        if name in {"encryption_keys", "lookup_key", "api_tokens"} and _is_dev_default(settings, name):
            text += " [development default]"
        summary[name] = text
    return summary


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each starting with the environment variable it concerns; no input values."""
    return _problem_list(_validation_problems(error))


def _validation_problems(error: ValidationError) -> list[str]:
    problems = []
    for problem in error.errors(include_input=False, include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        location = problem["loc"]
        problems.append(f"{env_name(str(location[0]))}: {message}" if location else message)
    return problems


def _problem_list(problems: list[str]) -> str:
    return "invalid settings:\n" + "\n".join(
        f"  - {line.replace(chr(10), chr(10) + '  ')}" for line in problems
    )


def _unknown_file_settings(path: Path) -> list[str]:
    known = {env_name(name) for name in Settings.model_fields}
    names = {name.upper() for name in dotenv_values(path, encoding="utf-8")}
    return [
        f"{name} (in {str(path)!r}): not a setting of the hub (misspelt?)"
        for name in sorted(names)
        if name.startswith(ENV_PREFIX) and name not in known
    ]


def _parse_api_tokens(text: str) -> list[tuple[str, str]]:
    """``"name:token,name2:token2"`` -> pairs; empty text means no tokens. Messages never show a token."""
    pairs: list[tuple[str, str]] = []
    if not text.strip():
        return pairs
    for number, entry in enumerate(text.split(","), start=1):
        name, colon, token = (part.strip() for part in entry.partition(":"))
        if not colon or not _API_TOKEN_NAME.fullmatch(name) or not token or any(c.isspace() for c in token):
            msg = f"entry {number} is not 'name:token' (name: letters, digits, '_.-'; token: no spaces)"
            raise ValueError(msg)
        if any(name == seen for seen, _ in pairs):
            raise ValueError(f"token name {name!r} appears twice")
        if any(token == seen for _, seen in pairs):
            raise ValueError(f"token {name!r} is the same as another token")
        pairs.append((name, token))
    return pairs


def _is_dev_default(settings: Settings, name: str) -> bool:
    defaults = {
        "encryption_keys": DEV_ENCRYPTION_KEYS,
        "lookup_key": DEV_LOOKUP_KEY,
        "api_tokens": DEV_API_TOKENS,
    }
    value: SecretStr = getattr(settings, name)
    return value.get_secret_value() == defaults[name]


def _url_without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:{_MASK}@{host}").geturl()


def _hide_password(message: str, url: str) -> str:
    return message.replace(url, _url_without_password(url))
