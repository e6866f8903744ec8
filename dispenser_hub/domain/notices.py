"""What notifications say and how they are acknowledged: SMS and e-mail texts, tokens, reply codes, webhooks.

- **No patient data** (DOMAIN.md: SMS must not carry identifying patient data): the renderers take the alarm
  kind, its VKP code and severity, a device reference and the acknowledgement code, nothing else; there is
  no parameter for a name, national id or address. A device reference that holds 11 digits in a row (the
  shape of a national id number) is refused. The recipient looks the patient up in the operator console.
- **SMS** (``render_sms``): Norwegian bokmål (``nb``) or English (``en``), in the GSM 03.38 7-bit alphabet
  (which has æ, ø and å), at most 160 septets (one message; ``gsm7_length`` counts, an extension character
  such as ``€`` counts two). Ends with the reply that acknowledges ("OK 4KX9PQ").
- **Reply codes** (``reply_code``): six characters from ``ALPHABET`` (no 0/O/1/I), 30 bits of
  HMAC-SHA256 over (alarm id, step key): the same for every recipient of a step and every retry, so a
  resent SMS carries the same code. The service matches a reply against the open steps of the sender's
  number (``reply_matches``, constant time); ``parse_reply`` reads "ok 4kx9pq", "OK: 4KX 9PQ", "4kx9pq".
- **Tokens** (``issue_token``/``check_token``): a one-time link for e-mail, URL-safe
  ``<base64url payload>.<base64url HMAC-SHA256>`` over canonical JSON (alarm id, step key, recipient,
  expiry in whole Unix seconds rounded down, nonce). Checked in order: shape (``malformed``), signature
  (``bad_signature``, constant-time compare), expiry (``expired``: valid while ``now < expires_at``).
  One-time use is the service's job (``services.ack``): it marks the notification the token was issued
  for as used (``acknowledged_at``) and refuses it afterwards; the nonce makes every token distinct.
  ``new_nonce`` takes the random source as an argument (``secrets.token_bytes``).
- **Webhooks** (``sign_webhook``/``verify_webhook``): the header ``t=<unix seconds>,v1=<hex HMAC-SHA256 of
  "<t>." + body>`` as Stripe signs; several ``v1`` entries are accepted (secret rotation); the timestamp
  must be within ``tolerance`` of ``now`` either way (300 s default, the edge included).

Tokens and reply codes put a purpose label before the signed data, so one can never stand for the other nor
for a webhook signature. Secrets are at least 16 bytes. Pure: callers pass ``now`` and the random source.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

from firmware_protocol.codes import VKP_CODES

if TYPE_CHECKING:
    from collections.abc import Callable

Language = Literal["nb", "en"]
TokenReason = Literal["malformed", "bad_signature", "expired"]
WebhookReason = Literal["malformed", "bad_signature", "stale"]

SMS_LIMIT: Final = 160
"""Septets in one GSM-7 SMS."""
ALPHABET: Final = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""Reply-code characters: 32, without 0/O/1/I."""
CODE_LENGTH: Final = 6
MIN_SECRET: Final = 16
MAX_TOKEN: Final = 1024
WEBHOOK_TOLERANCE: Final = timedelta(seconds=300)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")
_DEVICE_REF: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,39}$")
_KIND: Final = re.compile(r"^[a-z][a-z0-9._]{0,39}$")
_KEY: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_NONCE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_B64: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_NATIONAL_ID_SHAPE: Final = re.compile(r"[0-9]{11}")
_REPLY_WORDS: Final = frozenset({"OK", "KVITTER", "KVITTERT", "ACK"})
_URL: Final = re.compile(
    r"^(https://[!-~]{1,2040}|http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?/[!-~]{0,2000})$"
)
"""An acknowledgement link: https, or plain http to this machine (development and the demo)."""
_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")
_TOKEN_PURPOSE: Final = b"dispenser-hub ack-token v1\x00"
_CODE_PURPOSE: Final = b"dispenser-hub reply-code v1\x00"

_SEVERITY: Final[dict[Language, tuple[str, ...]]] = {
    "nb": ("INFO", "GRØNN", "GUL", "RØD"),
    "en": ("INFO", "GREEN", "YELLOW", "RED"),
}
_VKP_NB: Final[dict[str, str]] = {
    "3.3": "dose ikke tatt",
    "3.4": "teknisk feil",
    "3.5": "feil rull",
    "3.6": "tom",
    "3.7": "tom, dose ikke gitt",
    "3.8": "ingen doseplan",
    "3.9": "ikke på strøm",
    "3.10": "ingen kontakt med dispenser",
    "3.11": "dispenser åpen",
    "3.12": "innbruddsforsøk",
    "3.13": "skuff for ikke tatte doser full",
    "3.14": "rull sitter fast",
    "3.15": "for få doser til reise",
    "3.16": "pose kan ikke leses",
    "3.17": "batteri tomt",
    "3.21": "rull byttet",
    "3.22": "plan endret av apotek",
    "3.23": "melding ikke kvittert",
    "3.24": "medisin venter",
    "3.25": "påfylling trengs",
    "3.26": "dispenser veltet",
    "3.27": "lavt batteri",
}
_PHRASES: Final[dict[Language, dict[str, str]]] = {"nb": _VKP_NB, "en": VKP_CODES}
_EMAIL: Final[dict[Language, tuple[str, ...]]] = {
    "nb": (
        "Varsel fra dispenser-hub.",
        "Hendelse",
        "Alvorlighet",
        "Dispenser",
        "Meldingen har ingen pasientopplysninger. Se operatørkonsollet for detaljer.",
        "Kvitter ved å svare på SMS-en med",
        ", eller åpne lenken (virker én gang): ",
    ),
    "en": (
        "Alert from dispenser-hub.",
        "Event",
        "Severity",
        "Dispenser",
        "This message holds no patient data. See the operator console for details.",
        "Acknowledge by replying to the SMS with",
        ", or open the link (works once): ",
    ),
}


class NoticeError(ValueError):
    """An argument that breaks a rule (a caller's mistake); ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TokenError(ValueError):
    """An acknowledgement token refused; ``reason`` is malformed, bad_signature or expired."""

    def __init__(self, reason: TokenReason) -> None:
        super().__init__(f"acknowledgement token refused: {reason}")
        self.reason: TokenReason = reason


class WebhookError(ValueError):
    """A webhook signature refused; ``reason`` is malformed, bad_signature or stale."""

    def __init__(self, reason: WebhookReason) -> None:
        super().__init__(f"webhook signature refused: {reason}")
        self.reason: WebhookReason = reason


def gsm7_length(text: str) -> int:
    """Septets ``text`` takes in the GSM-7 alphabet (extension characters two); ``NoticeError`` if outside."""
    length = 0
    for char in text:
        if char in _GSM7_BASIC:
            length += 1
        elif char in _GSM7_EXTENSION:
            length += 2
        else:
            raise NoticeError("text", f"{char!r} is not in the GSM-7 alphabet")
    return length


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET:
        raise NoticeError("secret", f"must be at least {MIN_SECRET} bytes")


def _check_aware(field: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise NoticeError(field, "must be timezone-aware")


def _parts(
    kind: str, vkp_code: str | None, severity: int, *, device_ref: str, ack_code: str, language: Language
) -> tuple[str, str, str]:
    """(severity label, "code phrase", device ref) after checking every argument."""
    if not _KIND.fullmatch(kind):
        raise NoticeError("kind", "must be an alarm kind: 1-40 of a-z, 0-9, '.', '_' (e.g. dose.not_taken)")
    if language not in _SEVERITY:
        raise NoticeError("language", f"must be 'nb' or 'en', not {language!r}")
    if isinstance(severity, bool) or not 0 <= severity < len(_SEVERITY[language]):
        raise NoticeError("severity", f"must be 0 to 3, not {severity!r}")
    if not _DEVICE_REF.fullmatch(device_ref):
        raise NoticeError("device_ref", "must be 1-40 letters, digits and ._:/- (starting alphanumeric)")
    if _NATIONAL_ID_SHAPE.search(device_ref):
        raise NoticeError("device_ref", "must not hold 11 digits in a row (the shape of a national id)")
    if len(ack_code) != CODE_LENGTH or any(char not in ALPHABET for char in ack_code):
        raise NoticeError("ack_code", f"must be {CODE_LENGTH} characters of {ALPHABET} (see reply_code)")
    phrase = _PHRASES[language].get(vkp_code or "")
    what = f"{vkp_code} {phrase}" if phrase is not None else kind
    return _SEVERITY[language][severity], what, device_ref


def render_sms(
    kind: str,
    vkp_code: str | None,
    severity: int,
    *,
    device_ref: str,
    ack_code: str,
    language: Language = "nb",
) -> str:
    """The SMS of an alarm: severity, VKP code and meaning (else the kind), device, how to acknowledge."""
    level, what, device = _parts(
        kind, vkp_code, severity, device_ref=device_ref, ack_code=ack_code, language=language
    )
    if language == "nb":
        text = f"{level} {what}. Dispenser {device}. Kvitter: svar OK {ack_code}"
    else:
        text = f"{level} {what}. Dispenser {device}. To acknowledge reply OK {ack_code}"
    if gsm7_length(text) > SMS_LIMIT:  # pragma: no cover - the argument limits keep every text shorter
        raise NoticeError("device_ref", f"makes the SMS longer than {SMS_LIMIT} characters")
    return text


def render_email(
    kind: str,
    vkp_code: str | None,
    severity: int,
    *,
    device_ref: str,
    ack_code: str,
    ack_url: str | None = None,
    language: Language = "nb",
) -> tuple[str, str]:
    """(subject, body) of an alarm e-mail; ``ack_url`` is a one-time acknowledgement link (https)."""
    level, what, device = _parts(
        kind, vkp_code, severity, device_ref=device_ref, ack_code=ack_code, language=language
    )
    if ack_url is not None and not link_allowed(ack_url):
        raise NoticeError(
            "ack_url",
            "must be an https:// URL (http only to localhost) without spaces, at most 2048 characters",
        )
    words = _EMAIL[language]
    how = f"{words[5]} OK {ack_code}" + (f"{words[6]}{ack_url}" if ack_url else ".")
    subject = f"[{level}] {what} - dispenser {device}"
    lines = [words[0], "", f"{words[1]}: {what} ({kind})", f"{words[2]}: {level}"]
    lines += [f"{words[3]}: {device}", "", how, "", words[4]]
    return subject, "\n".join(lines) + "\n"


def link_allowed(url: str) -> bool:
    """Whether ``url`` may be an acknowledgement link (``_URL``: https, or plain http to this machine)."""
    return _URL.fullmatch(url) is not None


def reply_code(secret: bytes, alarm_id: int, step_key: str) -> str:
    """The six-character code that acknowledges step ``step_key`` of alarm ``alarm_id``."""
    _check_secret(secret)
    data = _CODE_PURPOSE + json.dumps([alarm_id, step_key], separators=(",", ":")).encode()
    bits = int.from_bytes(hmac.new(secret, data, hashlib.sha256).digest()[:4], "big") >> 2
    return "".join(ALPHABET[(bits >> (5 * n)) & 31] for n in reversed(range(CODE_LENGTH)))


def parse_reply(text: str) -> str | None:
    """The code in an SMS reply ("ok 4kx9pq", "OK: 4KX 9PQ", "4KX9PQ"), upper case; ``None`` if none."""
    words = re.sub(r"[\s.,:;!-]+", " ", text.upper()[:64]).split()
    if words and words[0] in _REPLY_WORDS:
        words = words[1:]
    elif len(words) == 1 and words[0].startswith("OK") and len(words[0]) == CODE_LENGTH + 2:
        words = [words[0][2:]]
    code = "".join(words)
    if len(code) == CODE_LENGTH and all(char in ALPHABET for char in code):
        return code
    return None


def reply_matches(secret: bytes, alarm_id: int, step_key: str, text: str) -> bool:
    """Whether the reply ``text`` carries the code of this step (constant-time compare)."""
    code = parse_reply(text)
    expected = reply_code(secret, alarm_id, step_key)
    return code is not None and hmac.compare_digest(code, expected)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says: who may acknowledge which step, until when, and its one-time nonce."""

    alarm_id: int
    step_key: str
    recipient_ref: str
    expires_at: datetime
    nonce: str


def new_nonce(token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A fresh URL-safe nonce of 16 random bytes; ``token_bytes`` is the random source (inject in tests)."""
    return base64.urlsafe_b64encode(token_bytes(16)).rstrip(b"=").decode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    """Decode canonical unpadded base64url; anything else (stray bits, padding) is malformed."""
    if not _B64.fullmatch(text):
        raise TokenError("malformed")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed") from None
    if _b64encode(data) != text:
        raise TokenError("malformed")
    return data


def _token_mac(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, _TOKEN_PURPOSE + payload.encode(), hashlib.sha256).digest()


def issue_token(
    secret: bytes, *, alarm_id: int, step_key: str, recipient_ref: str, expires_at: datetime, nonce: str
) -> str:
    """A signed, URL-safe acknowledgement token (expiry rounded down to whole seconds)."""
    _check_secret(secret)
    if isinstance(alarm_id, bool) or alarm_id < 1:
        raise NoticeError("alarm_id", f"must be a positive integer, not {alarm_id!r}")
    for field, value in (("step_key", step_key), ("recipient_ref", recipient_ref)):
        if not _KEY.fullmatch(value):
            raise NoticeError(field, "must be 1-64 letters, digits and ._:/- (starting alphanumeric)")
    if not _NONCE.fullmatch(nonce):
        raise NoticeError("nonce", "must be 16-64 URL-safe characters (see new_nonce)")
    _check_aware("expires_at", expires_at)
    expires = (expires_at - EPOCH) // timedelta(seconds=1)
    claims = {"v": 1, "a": alarm_id, "s": step_key, "r": recipient_ref, "e": expires, "n": nonce}
    payload = _b64encode(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    return f"{payload}.{_b64encode(_token_mac(secret, payload))}"


def check_token(secret: bytes, token: str, *, now: datetime) -> TokenClaims:
    """The claims of a valid, unexpired token, else ``TokenError``. The caller checks the nonce is new."""
    _check_secret(secret)
    _check_aware("now", now)
    parts = token.split(".") if len(token) <= MAX_TOKEN else []
    if len(parts) != 2:  # noqa: PLR2004 - payload and signature
        raise TokenError("malformed")
    payload, signature = parts
    raw, mac = _b64decode(payload), _b64decode(signature)
    if not hmac.compare_digest(mac, _token_mac(secret, payload)):
        raise TokenError("bad_signature")
    try:
        claims = json.loads(raw)
    except ValueError:
        raise TokenError("malformed") from None
    if not isinstance(claims, dict) or set(claims) != {"v", "a", "s", "r", "e", "n"} or claims["v"] != 1:
        raise TokenError("malformed")
    alarm_id, step_key, recipient, expires, nonce = (claims[key] for key in "asren")
    if not (
        type(alarm_id) is int
        and type(expires) is int
        and all(isinstance(value, str) for value in (step_key, recipient, nonce))
    ):
        raise TokenError("malformed")
    expires_at = EPOCH + timedelta(seconds=expires)
    if now >= expires_at:
        raise TokenError("expired")
    return TokenClaims(alarm_id, step_key, recipient, expires_at, nonce)


def _webhook_mac(secret: bytes, body: bytes, timestamp: int) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_webhook(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header of a webhook ``body`` sent at ``timestamp`` (Unix seconds)."""
    _check_secret(secret)
    if isinstance(timestamp, bool) or timestamp < 0:
        raise NoticeError("timestamp", f"must be Unix seconds, not {timestamp!r}")
    return f"t={timestamp},v1={_webhook_mac(secret, body, timestamp)}"


def verify_webhook(
    secret: bytes, header: str, body: bytes, *, now: datetime, tolerance: timedelta = WEBHOOK_TOLERANCE
) -> None:
    """Accept a header made by ``sign_webhook`` within ``tolerance`` of ``now``, else ``WebhookError``."""
    _check_secret(secret)
    _check_aware("now", now)
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(",") if len(header) <= MAX_TOKEN else [""]:
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookError("malformed")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not re.fullmatch(r"[0-9]{1,11}", timestamps[0]) or not signatures:
        raise WebhookError("malformed")
    if not all(_HEX64.fullmatch(signature) for signature in signatures):
        raise WebhookError("malformed")
    timestamp = int(timestamps[0])
    expected = _webhook_mac(secret, body, timestamp)
    matches = [hmac.compare_digest(signature, expected) for signature in signatures]
    if not any(matches):
        raise WebhookError("bad_signature")
    if abs(now - (EPOCH + timedelta(seconds=timestamp))) > tolerance:
        raise WebhookError("stale")


def describe(kind: str, vkp_code: str | None, severity: int, *, language: Language = "nb") -> str:
    """The severity and the VKP code with its meaning (else the kind), for pages: no patient data."""
    if language not in _SEVERITY:
        raise NoticeError("language", f"must be 'nb' or 'en', not {language!r}")
    level = _SEVERITY[language][severity] if 0 <= severity < len(_SEVERITY[language]) else str(severity)
    phrase = _PHRASES[language].get(vkp_code or "")
    return f"{level} {vkp_code} {phrase}" if phrase is not None else f"{level} {kind}"
