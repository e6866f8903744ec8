"""Settings: defaults, environment and settings-file parsing, refusal of development secrets, masking.

Every test starts from an environment without any hub setting (``clean_env``), so the machine's own
``DISPENSER_*`` variables never leak in.
"""

from __future__ import annotations

import base64
import secrets
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from dispenser_hub.adapters.crypto import generate_key
from dispenser_hub.settings import (
    DEV_API_TOKENS,
    DEV_ENCRYPTION_KEYS,
    DEV_LOOKUP_KEY,
    SETTINGS_FILE_ENV,
    Environment,
    InsecureSettingsError,
    Settings,
    SettingsError,
    env_name,
    settings_summary,
)

if TYPE_CHECKING:
    from pathlib import Path

SECRET_VARS = ("DISPENSER_ENCRYPTION_KEYS", "DISPENSER_LOOKUP_KEY", "DISPENSER_API_TOKENS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*(env_name(field) for field in Settings.model_fields), SETTINGS_FILE_ENV]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def real_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "DISPENSER_ENCRYPTION_KEYS": f"k2:{generate_key()},k1:{generate_key()}",
        "DISPENSER_LOOKUP_KEY": generate_key(),
        "DISPENSER_API_TOKENS": f"console:{secrets.token_urlsafe(32)},ops:{secrets.token_urlsafe(32)}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _load_error(settings_file: Path | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.load(settings_file)
    return str(caught.value)


# --- defaults and sources -------------------------------------------------------------------------


def test_defaults_run_the_development_demo() -> None:
    settings = Settings.load()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.database_url == "sqlite:///var/hub/hub.db"
    assert (settings.broker_address.host, settings.broker_address.port) == ("127.0.0.1", 1883)
    assert settings.mqtt_client_id == "dispenser-hub"
    assert str(settings.pki_dir) == "var/hub/pki"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8000)
    assert settings.no_contact_after_s == 3600
    assert settings.enrollment_code_ttl_s == 7 * 24 * 3600
    assert settings.dead_letter_max_bytes == 16384
    assert (settings.security_burst_threshold, settings.security_burst_window_s) == (10, 300)
    assert settings.zone.key == "Europe/Oslo"
    assert settings.log_level == "INFO"
    assert list(settings.api_tokens_by_name()) == ["dev"]


def test_development_keys_are_visibly_fake() -> None:
    key = DEV_ENCRYPTION_KEYS.partition(":")[2]
    assert base64.urlsafe_b64decode(key + "=").startswith(b"DEVELOPMENT-ONLY-")
    assert base64.urlsafe_b64decode(DEV_LOOKUP_KEY + "=").startswith(b"DEVELOPMENT-ONLY-")
    assert "not-a-secret" in DEV_API_TOKENS


def test_environment_variables_are_parsed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text("not checked here")
    for name, value in {
        "DISPENSER_MQTT_URL": "mqtts://hub:pw@broker.example:8883",
        "DISPENSER_MQTT_CAFILE": str(cafile),
        "dispenser_database_url": "postgresql+psycopg://hub@db/hub",
        "DISPENSER_HTTP_PORT": "8443",
        "DISPENSER_NO_CONTACT_AFTER_S": "600",
        "DISPENSER_TIMEZONE": "UTC",
        "DISPENSER_LOG_LEVEL": "debug",
        "DISPENSER_ENVIRONMENT": " Development ",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings.load()
    address = settings.broker_address
    assert (address.host, address.port, address.tls, address.username, address.password) == (
        "broker.example",
        8883,
        True,
        "hub",
        "pw",
    )
    assert address.cafile == str(cafile)
    assert settings.database_url == "postgresql+psycopg://hub@db/hub"
    assert (settings.http_port, settings.no_contact_after_s) == (8443, 600)
    assert (settings.zone.key, settings.log_level) == ("UTC", "DEBUG")


def test_settings_file_under_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings_file = tmp_path / "hub.env"
    settings_file.write_text(
        "# a shared .env: lines without the prefix belong to others\n"
        "POSTGRES_PASSWORD=for-the-database-container\n"
        "DISPENSER_HTTP_PORT=9000\n"
        "DISPENSER_MQTT_CLIENT_ID=hub-from-file\n"
    )
    monkeypatch.setenv("DISPENSER_HTTP_PORT", "9100")
    settings = Settings.load(settings_file)
    assert settings.mqtt_client_id == "hub-from-file"
    assert settings.http_port == 9100  # the environment wins
    monkeypatch.setenv(SETTINGS_FILE_ENV, str(settings_file))
    assert Settings.load().mqtt_client_id == "hub-from-file"


def test_settings_file_must_exist_and_hold_only_settings(tmp_path: Path) -> None:
    assert "does not exist" in _load_error(tmp_path / "missing.env")
    settings_file = tmp_path / "hub.env"
    settings_file.write_text("DISPENSER_MQTT_ULR=mqtt://broker\nDISPENSER_TIMEZONE=Europe/Olso\n")
    message = _load_error(settings_file)
    assert "DISPENSER_MQTT_ULR" in message
    assert "not a setting of the hub" in message
    assert "DISPENSER_TIMEZONE: unknown time zone 'Europe/Olso'" in message


# --- validation messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DISPENSER_MQTT_URL", "http://broker:1883", "must start with mqtt:// or mqtts://"),
        ("DISPENSER_MQTT_URL", "mqtt://:1883", "has no host"),
        ("DISPENSER_MQTT_URL", "mqtt://broker:http", "has an invalid port"),
        ("DISPENSER_TIMEZONE", "Europe/Olso", "unknown time zone 'Europe/Olso'; use an IANA name"),
        ("DISPENSER_TIMEZONE", "/etc/passwd", "unknown time zone"),
        ("DISPENSER_DATABASE_URL", "mysql://db/hub", "must be sqlite:///path or postgresql://"),
        ("DISPENSER_NO_CONTACT_AFTER_S", "59", "greater than or equal to 60"),
        ("DISPENSER_HTTP_PORT", "70000", "less than or equal to 65535"),
        ("DISPENSER_MQTT_CLIENT_ID", "hub #1", "must be 1-64 letters"),
        ("DISPENSER_ENVIRONMENT", "staging", "'development', 'test' or 'production'"),
        ("DISPENSER_MQTT_CAFILE", "/nonexistent/ca.pem", "file '/nonexistent/ca.pem' does not exist"),
        ("DISPENSER_API_TOKENS", "ops:a,ops:b", "token name 'ops' appears twice"),
        ("DISPENSER_API_TOKENS", "just-a-token", "entry 1 is not 'name:token'"),
        ("DISPENSER_ENCRYPTION_KEYS", "k1:tooshort", "has 6 bytes; AES-256 keys have exactly 32"),
        ("DISPENSER_LOOKUP_KEY", "!!!", "the lookup key is not base64"),
    ],
)
def test_invalid_values_fail_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    error = _load_error()
    assert message in error
    assert name in error


def test_tls_files_need_mqtts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text("")
    monkeypatch.setenv("DISPENSER_MQTT_CAFILE", str(cafile))
    assert "use mqtts:// for a TLS connection" in _load_error()
    monkeypatch.setenv("DISPENSER_MQTT_URL", "mqtts://broker")
    monkeypatch.setenv("DISPENSER_MQTT_KEYFILE", str(cafile))
    assert "DISPENSER_MQTT_KEYFILE is set without DISPENSER_MQTT_CERTFILE" in _load_error()


def test_url_passwords_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPENSER_MQTT_URL", "mqtt://hub:hunter2@broker:99999")
    message = _load_error()
    assert "invalid port" in message
    assert "hunter2" not in message
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "hunter2" not in str(caught.value)


def test_secret_values_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_key()
    monkeypatch.setenv("DISPENSER_ENCRYPTION_KEYS", f"{secret}:k1")  # written the wrong way round
    assert secret not in _load_error()
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert secret not in str(caught.value)


# --- secrets outside development ------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["production", "test"])
def test_development_secrets_are_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("DISPENSER_ENVIRONMENT", environment)
    message = _load_error()
    assert f"refusing to start with environment={environment}" in message
    for name in SECRET_VARS:
        assert name in message
    assert message.count("dispenser-hub secrets generate") == 3
    with pytest.raises(ValidationError, match="DISPENSER_LOOKUP_KEY"):
        Settings()


def test_real_secrets_start_production(monkeypatch: pytest.MonkeyPatch, real_secrets: dict[str, str]) -> None:
    monkeypatch.setenv("DISPENSER_ENVIRONMENT", "production")
    settings = Settings.load()
    settings.check_secrets()
    assert settings.secret_problems() == []
    tokens = settings.api_tokens_by_name()
    assert sorted(tokens) == ["console", "ops"]
    assert f"ops:{tokens['ops'].get_secret_value()}" in real_secrets["DISPENSER_API_TOKENS"]


def test_each_weak_secret_is_named(monkeypatch: pytest.MonkeyPatch, real_secrets: dict[str, str]) -> None:
    monkeypatch.setenv("DISPENSER_ENVIRONMENT", "production")
    # A real current key with the development key kept as an old one: data may still be under a public key.
    monkeypatch.setenv(
        "DISPENSER_ENCRYPTION_KEYS", f"{real_secrets['DISPENSER_ENCRYPTION_KEYS']},{DEV_ENCRYPTION_KEYS}"
    )
    monkeypatch.setenv("DISPENSER_API_TOKENS", "ops:only-twenty-characters,console:" + "x" * 32)
    message = _load_error()
    assert "DISPENSER_ENCRYPTION_KEYS holds the public development key" in message
    assert "DISPENSER_API_TOKENS: token 'ops' has fewer than 32 characters" in message
    assert "'console'" not in message
    assert "DISPENSER_LOOKUP_KEY" not in message
    assert "only-twenty-characters" not in message


def test_check_secrets_can_be_asked_in_development() -> None:
    settings = Settings.load()
    assert len(settings.secret_problems()) == 3
    with pytest.raises(InsecureSettingsError, match="environment=development"):
        settings.check_secrets()


# --- masking --------------------------------------------------------------------------------------


def test_summary_and_repr_mask_secrets_and_passwords(
    monkeypatch: pytest.MonkeyPatch, real_secrets: dict[str, str]
) -> None:
    monkeypatch.setenv("DISPENSER_MQTT_URL", "mqtt://hub:hunter2@broker:1883")
    monkeypatch.setenv("DISPENSER_DATABASE_URL", "postgresql://hub:s3cret@db:5432/hub")
    settings = Settings.load()
    summary = settings_summary(settings)
    assert set(summary) == set(Settings.model_fields)
    assert summary["mqtt_url"] == "mqtt://hub:********@broker:1883"
    assert summary["database_url"] == "postgresql://hub:********@db:5432/hub"
    assert summary["encryption_keys"] == "2 key(s), current 'k2' (ids: k2, k1); material ********"
    assert summary["lookup_key"] == "********"
    assert summary["api_tokens"] == "2 token(s): console, ops; values ********"
    assert summary["mqtt_cafile"] == "-"
    assert summary["http_port"] == "8000"
    shown = " ".join(summary.values()) + repr(settings) + str(settings)
    for secret in ["hunter2", "s3cret", *real_secrets.values()]:
        assert secret not in shown
    for value in real_secrets.values():
        for part in value.replace(",", ":").split(":"):
            assert len(part) < 20 or part not in shown


def test_summary_marks_development_defaults() -> None:
    summary = settings_summary(Settings.load())
    for name in ("encryption_keys", "lookup_key", "api_tokens"):
        assert summary[name].endswith("[development default]")
    assert DEV_LOOKUP_KEY not in " ".join(summary.values())


# --- acknowledgement links --------------------------------------------------------------------------


def test_links_point_at_the_public_url_or_at_a_local_api_or_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().link_base == "http://127.0.0.1:8000"
    assert Settings(http_host="0.0.0.0").link_base is None  # noqa: S104 - people cannot open 0.0.0.0
    assert Settings(http_host="0.0.0.0", public_url="https://hub.kommune.no/").link_base == (  # noqa: S104
        "https://hub.kommune.no"
    )
    monkeypatch.setenv("DISPENSER_PUBLIC_URL", "http://hub.lan")
    assert "DISPENSER_PUBLIC_URL" in _load_error()
    assert "plain http only to localhost" in _load_error()


def test_the_response_centre_webhook_needs_the_webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPENSER_RESPONSE_CENTRE_WEBHOOK_URL", "https://alarms.example.no/in")
    assert "DISPENSER_RESPONSE_CENTRE_WEBHOOK_URL is set without DISPENSER_WEBHOOK_SECRET" in _load_error()
