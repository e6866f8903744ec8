"""Notification texts without patient data, one-time ack tokens, reply codes, webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.notices import (
    ALPHABET,
    SMS_LIMIT,
    NoticeError,
    TokenClaims,
    TokenError,
    WebhookError,
    check_token,
    gsm7_length,
    issue_token,
    new_nonce,
    parse_reply,
    render_email,
    render_sms,
    reply_code,
    reply_matches,
    sign_webhook,
    verify_webhook,
)
from firmware_protocol.codes import EVENT_MAPPINGS, HUB_CONDITIONS, VKP_CODES

SECRET = b"0123456789abcdef-test-secret"
OTHER = b"fedcba9876543210-other-secret"
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
NONCE = "nonce-AAAAAAAAAAAAAAAA"
LONGEST_REF = "D" + "x" * 39
KINDS = sorted(
    [(kind, m.vkp, int(m.severity)) for kind, m in EVENT_MAPPINGS.items()]
    + [(kind, m.vkp, int(m.severity)) for kind, m in HUB_CONDITIONS.items()]
    + [("custom.condition_with_a_long_name_xyz", None, 3), ("fault.unknown", "9.99", 2)]
)


def _sms(kind: str = "dose.not_taken", vkp: str | None = "3.3", severity: int = 2, **kwargs: str) -> str:
    values = {"device_ref": "DSP-0042", "ack_code": "4KX9PQ", "language": "nb"} | kwargs
    return render_sms(kind, vkp, severity, **values)  # type: ignore[arg-type]


# SMS and e-mail texts


def test_sms_in_bokmal_and_english() -> None:
    assert _sms() == "GUL 3.3 dose ikke tatt. Dispenser DSP-0042. Kvitter: svar OK 4KX9PQ"
    assert _sms(language="en") == (
        "YELLOW 3.3 no confirmation (dose not taken). Dispenser DSP-0042. To acknowledge reply OK 4KX9PQ"
    )


def test_sms_without_a_known_vkp_code_names_the_kind() -> None:
    assert (
        _sms("no_contact_custom", None, 3)
        == "RØD no_contact_custom. Dispenser DSP-0042. Kvitter: svar OK 4KX9PQ"
    )
    assert _sms("fault.unknown", "9.99", 0, language="en").startswith("INFO fault.unknown. ")


@pytest.mark.parametrize("language", ["nb", "en"])
@pytest.mark.parametrize(("kind", "vkp", "severity"), KINDS)
def test_every_sms_is_one_gsm7_message_even_with_the_longest_device_ref(
    kind: str, vkp: str | None, severity: int, language: str
) -> None:
    for level in {severity, 0, 1, 2, 3}:
        text = _sms(kind, vkp, level, device_ref=LONGEST_REF, language=language)
        assert gsm7_length(text) <= SMS_LIMIT
        assert LONGEST_REF in text
        assert text.endswith(" OK 4KX9PQ")


@pytest.mark.parametrize("language", ["nb", "en"])
def test_every_vkp_code_has_a_phrase_in_both_languages(language: str) -> None:
    for code in VKP_CODES:
        text = _sms("x", code, 1, language=language)
        assert f" {code} " in text
        assert ". Dispenser" in text
        assert " x." not in text


def test_gsm7_counts_extension_characters_twice_and_refuses_others() -> None:
    assert gsm7_length("æøå ÆØÅ") == 7
    assert gsm7_length("€[]") == 6
    with pytest.raises(NoticeError):
        gsm7_length("ok ✓")
    with pytest.raises(NoticeError):
        gsm7_length("á")  # not in GSM-7 (é is)


def test_texts_carry_no_patient_data_there_is_nowhere_to_put_it() -> None:
    patient = {"name": "Ola Nordmann", "national_id": "01017012345", "address": "Strandgaten 1, Bergen"}
    allowed = {"kind", "vkp_code", "severity", "device_ref", "ack_code", "language"}
    assert set(inspect.signature(render_sms).parameters) == allowed
    assert set(inspect.signature(render_email).parameters) == allowed | {"ack_url"}
    texts = [_sms(language=lang) for lang in ("nb", "en")]
    for lang in ("nb", "en"):
        texts.extend(
            render_email("dose.not_taken", "3.3", 2, device_ref="DSP-1", ack_code="4KX9PQ", language=lang)
        )
    for text in texts:
        assert not re.search(r"\d{6,}", text)
        for value in patient.values():
            assert value not in text


@pytest.mark.parametrize("device_ref", ["01017012345", "pat-01017012345", "DSP 1", "", "Ø-1", "x" * 41])
def test_device_refs_that_could_carry_a_national_id_or_break_the_text_are_refused(device_ref: str) -> None:
    with pytest.raises(NoticeError) as caught:
        _sms(device_ref=device_ref)
    assert caught.value.field == "device_ref"


BAD_SMS = [("ack_code", "4KX9P0"), ("ack_code", "4kx9pq"), ("ack_code", "4KX9PQQ"), ("language", "sv")]


@pytest.mark.parametrize(("field", "value"), BAD_SMS)
def test_sms_arguments_are_checked(field: str, value: str) -> None:
    with pytest.raises(NoticeError) as caught:
        _sms(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field
    for kind, severity in (("Dose Not Taken", 2), ("dose.not_taken", 4), ("dose.not_taken", -1)):
        with pytest.raises(NoticeError):
            _sms(kind, "3.3", severity)


def test_email_has_subject_body_reply_code_and_one_time_link() -> None:
    url = "https://hub.example/ack?t=abc.def"
    subject, body = render_email(
        "fault.jam", "3.14", 3, device_ref="DSP-7", ack_code="ABC234", ack_url=url, language="en"
    )
    assert subject == "[RED] 3.14 roll stuck - dispenser DSP-7"
    assert "OK ABC234" in body
    assert url in body
    assert "(fault.jam)" in body
    subject, body = render_email("fault.jam", "3.14", 3, device_ref="DSP-7", ack_code="ABC234")
    assert subject == "[RØD] 3.14 rull sitter fast - dispenser DSP-7"
    assert "https://" not in body
    assert "OK ABC234" in body


@pytest.mark.parametrize(
    "url", ["http://hub.example/ack", "https://hub.example/a b", "https://x\n", "javascript:x"]
)
def test_email_refuses_links_that_are_not_plain_https(url: str) -> None:
    with pytest.raises(NoticeError) as caught:
        render_email("fault.jam", "3.14", 3, device_ref="DSP-7", ack_code="ABC234", ack_url=url)
    assert caught.value.field == "ack_url"


def test_reply_codes_are_stable_six_characters_of_the_alphabet_and_differ_by_step() -> None:
    code = reply_code(SECRET, 17, "step-1")
    assert code == reply_code(SECRET, 17, "step-1")
    assert len(code) == 6
    assert set(code) <= set(ALPHABET)
    assert not set("0O1I") & set(ALPHABET)
    assert len(ALPHABET) == 32
    others = {
        reply_code(SECRET, 17, "step-2"),
        reply_code(SECRET, 18, "step-1"),
        reply_code(OTHER, 17, "step-1"),
    }
    assert code not in others
    assert {char for n in range(300) for char in reply_code(SECRET, n, "s")} == set(ALPHABET)


def test_reply_code_known_value() -> None:
    digest = hmac.new(SECRET, b'dispenser-hub reply-code v1\x00[17,"step-1"]', hashlib.sha256).digest()
    bits = int.from_bytes(digest[:4], "big") >> 2
    assert reply_code(SECRET, 17, "step-1") == "".join(
        ALPHABET[(bits >> (5 * n)) & 31] for n in range(5, -1, -1)
    )


@pytest.mark.parametrize(
    "text",
    ["4KX9PQ", "4kx9pq", "ok 4KX9PQ", "OK4KX9PQ", " Ok: 4kx 9pq! ", "kvitter 4KX9PQ", "OK-4KX-9PQ\n"],
)
def test_parse_reply_variants(text: str) -> None:
    assert parse_reply(text) == "4KX9PQ"


@pytest.mark.parametrize("text", ["", "ok", "4KX9P", "4KX9PQR", "4KX9P0", "OK 4KX9PI", "nei 4KX9PQ", "ok ok"])
def test_parse_reply_refuses_what_is_not_a_code(text: str) -> None:
    assert parse_reply(text) is None


def test_reply_matches_only_its_own_step() -> None:
    code = reply_code(SECRET, 5, "s1")
    assert reply_matches(SECRET, 5, "s1", f"ok {code.lower()}")
    assert not reply_matches(SECRET, 5, "s2", f"ok {code}")
    assert not reply_matches(SECRET, 5, "s1", "ok")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(NoticeError) as caught:
        reply_code(b"short", 1, "s")
    assert caught.value.field == "secret"


def _token(secret: bytes = SECRET, expires_at: datetime = NOW + timedelta(hours=1)) -> str:
    return issue_token(
        secret,
        alarm_id=17,
        step_key="step-1",
        recipient_ref="contact:kari",
        expires_at=expires_at,
        nonce=NONCE,
    )


def test_token_round_trip_is_url_safe() -> None:
    token = _token()
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    claims = check_token(SECRET, token, now=NOW)
    assert claims == TokenClaims(17, "step-1", "contact:kari", NOW + timedelta(hours=1), NONCE)
    assert _token() == token  # deterministic given the nonce


def test_token_expiry_boundary_and_rounding_down() -> None:
    expires = NOW + timedelta(minutes=30)
    token = _token(expires_at=expires)
    assert check_token(SECRET, token, now=expires - timedelta(microseconds=1)).expires_at == expires
    for late in (expires, expires + timedelta(seconds=1)):
        with pytest.raises(TokenError) as caught:
            check_token(SECRET, token, now=late)
        assert caught.value.reason == "expired"
    rounded = _token(expires_at=expires + timedelta(milliseconds=999))
    assert check_token(SECRET, rounded, now=NOW).expires_at == expires


def test_wrong_secret_is_a_bad_signature_even_when_expired() -> None:
    for now in (NOW, NOW + timedelta(days=1)):
        with pytest.raises(TokenError) as caught:
            check_token(OTHER, _token(), now=now)
        assert caught.value.reason == "bad_signature"


def test_tampering_with_any_character_fails() -> None:
    token = _token()
    for index, char in enumerate(token):
        for replacement in {"A", "B", "Q", "g", "_", "."} - {char}:
            tampered = token[:index] + replacement + token[index + 1 :]
            with pytest.raises(TokenError) as caught:
                check_token(SECRET, tampered, now=NOW)
            assert caught.value.reason in {"malformed", "bad_signature"}


def test_a_token_has_one_spelling_stray_base64_bits_are_refused() -> None:
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = _token()
    last = b64[b64.index(token[-1]) ^ 1]  # the 32-byte MAC leaves the low 2 bits of its last character unused
    with pytest.raises(TokenError) as caught:
        check_token(SECRET, token[:-1] + last, now=NOW)
    assert caught.value.reason == "malformed"


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, 200), flip=st.integers(1, 255))
def test_tampering_with_any_byte_fails(index: int, flip: int) -> None:
    raw = bytearray(_token().encode())
    raw[index % len(raw)] ^= flip
    with pytest.raises(TokenError):
        check_token(SECRET, raw.decode("latin-1"), now=NOW)


@pytest.mark.parametrize("token", ["", ".", "abc", "a.b.c", "a==.b", "a b.c", "é.é", "A" * 2000 + ".A"])
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(TokenError) as caught:
        check_token(SECRET, token, now=NOW)
    assert caught.value.reason == "malformed"


def test_a_signed_but_odd_payload_is_malformed() -> None:
    def forge(payload: bytes) -> str:
        text = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        mac = hmac.new(SECRET, b"dispenser-hub ack-token v1\x00" + text.encode(), hashlib.sha256).digest()
        return f"{text}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    assert (
        check_token(SECRET, forge(b'{"a":1,"e":9999999999,"n":"n","r":"r","s":"s","v":1}'), now=NOW).alarm_id
        == 1
    )
    for payload in (
        b"[]",
        b"not json",
        b'{"a":1,"e":9999999999,"n":"n","r":"r","s":"s","v":2}',
        b'{"a":"1"}',
    ):
        with pytest.raises(TokenError) as caught:
            check_token(SECRET, forge(payload), now=NOW)
        assert caught.value.reason == "malformed"


NAIVE = datetime(2026, 1, 1)  # noqa: DTZ001 - the naive time under test
BAD_CLAIMS = [
    ("alarm_id", 0),
    ("step_key", "a b"),
    ("recipient_ref", ""),
    ("nonce", "short"),
    ("expires_at", NAIVE),
]


@pytest.mark.parametrize(("field", "value"), BAD_CLAIMS)
def test_issue_token_checks_its_arguments(field: str, value: object) -> None:
    values = {"alarm_id": 1, "step_key": "s", "recipient_ref": "r", "expires_at": NOW, "nonce": NONCE}
    values[field] = value
    with pytest.raises(NoticeError) as caught:
        issue_token(SECRET, **values)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_new_nonce_uses_the_injected_random_source() -> None:
    assert new_nonce(lambda n: bytes(range(n))) == "AAECAwQFBgcICQoLDA0ODw"
    assert len(new_nonce()) == 22
    assert new_nonce() != new_nonce()


# Webhooks

BODY = b'{"alarm_id":17,"kind":"dose.not_taken"}'
TS = int(NOW.timestamp())


def test_webhook_signature_is_stripe_style() -> None:
    header = sign_webhook(SECRET, BODY, TS)
    expected = hmac.new(SECRET, f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={TS},v1={expected}"
    verify_webhook(SECRET, header, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 300, 0, 299])
def test_webhook_tolerance_edges_are_accepted(offset: int) -> None:
    verify_webhook(SECRET, sign_webhook(SECRET, BODY, TS + offset), BODY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86400])
def test_webhook_outside_tolerance_is_stale(offset: int) -> None:
    with pytest.raises(WebhookError) as caught:
        verify_webhook(SECRET, sign_webhook(SECRET, BODY, TS + offset), BODY, now=NOW)
    assert caught.value.reason == "stale"
    verify_webhook(
        SECRET, sign_webhook(SECRET, BODY, TS + offset), BODY, now=NOW, tolerance=timedelta(days=2)
    )


@pytest.mark.parametrize("body", [BODY + b" ", BODY[:-1], BODY.replace(b"17", b"18"), b""])
def test_webhook_with_a_tampered_body_or_wrong_secret_fails(body: bytes) -> None:
    with pytest.raises(WebhookError) as caught:
        verify_webhook(SECRET, sign_webhook(SECRET, BODY, TS), body, now=NOW)
    assert caught.value.reason == "bad_signature"
    with pytest.raises(WebhookError) as caught:
        verify_webhook(OTHER, sign_webhook(SECRET, body, TS), body, now=NOW)
    assert caught.value.reason == "bad_signature"


def test_webhook_timestamp_is_signed_and_rotation_accepts_any_v1() -> None:
    header = sign_webhook(SECRET, BODY, TS)
    with pytest.raises(WebhookError) as caught:
        verify_webhook(SECRET, header.replace(f"t={TS}", f"t={TS + 1}"), BODY, now=NOW)
    assert caught.value.reason == "bad_signature"
    old = sign_webhook(OTHER, BODY, TS).split(",")[1]
    verify_webhook(SECRET, f"{header},{old}", BODY, now=NOW)
    verify_webhook(SECRET, f"{old}, {header}, v0=ignored", BODY, now=NOW)


H64 = "a" * 64
MALFORMED_HEADERS = ["", "t=1", f"v1={H64}", f"t={TS},v1=xyz", f"t={TS},t={TS},v1={H64}", f"t=-{TS},v1={H64}"]
MALFORMED_HEADERS += [f"t={TS}.5,v1={H64}", f"t={TS},v1={H64.upper()}", f"t={TS};v1={H64}", "x" * 2000]


@pytest.mark.parametrize("header", MALFORMED_HEADERS)
def test_malformed_webhook_headers(header: str) -> None:
    with pytest.raises(WebhookError) as caught:
        verify_webhook(SECRET, header, BODY, now=NOW)
    assert caught.value.reason == "malformed"


def test_webhook_arguments_are_checked() -> None:
    with pytest.raises(NoticeError):
        sign_webhook(SECRET, BODY, -1)
    with pytest.raises(NoticeError):
        verify_webhook(SECRET, sign_webhook(SECRET, BODY, TS), BODY, now=datetime(2026, 1, 1))  # noqa: DTZ001
