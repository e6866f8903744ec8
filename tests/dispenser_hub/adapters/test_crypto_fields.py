"""Field encryption at rest: round trips, fresh nonces, tampering, context binding, rotation, lookup hashes.

Throughout, an error message must never contain the plaintext, the token or key material.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispenser_hub.adapters.crypto import FieldCipher, FieldCipherConfigError, FieldDecryptError, generate_key

if TYPE_CHECKING:
    from collections.abc import Callable

NATIONAL_ID = "01019010046"
CONTEXT = "patient.national_id"
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(100, 132))
LOOKUP = b"L" * 32
TOKEN = re.compile(r"v1\.(?P<kid>[A-Za-z0-9_-]+)\.(?P<data>[A-Za-z0-9_-]+)")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _cipher(
    current: str = "k1", *, keys: dict[str, bytes] | None = None, lookup: bytes = LOOKUP
) -> FieldCipher:
    return FieldCipher(keys or {"k1": KEY_1, "k2": KEY_2}, current, lookup_key=lookup)


def _decrypt_error(cipher: FieldCipher, token: str, context: str = CONTEXT) -> str:
    with pytest.raises(FieldDecryptError) as caught:
        cipher.decrypt(token, context=context)
    return str(caught.value)


# --- encrypt / decrypt ----------------------------------------------------------------------------


@given(st.text())
def test_round_trip(plaintext: str) -> None:
    cipher = _cipher()
    token = cipher.encrypt(plaintext, context=CONTEXT)
    assert cipher.decrypt(token, context=CONTEXT) == plaintext


def test_token_is_compact_ascii_naming_its_key() -> None:
    token = _cipher("k2").encrypt(NATIONAL_ID, context=CONTEXT)
    match = TOKEN.fullmatch(token)
    assert match is not None
    assert match["kid"] == "k2"
    assert token.isascii()
    assert "=" not in token
    raw = base64.urlsafe_b64decode(match["data"] + "=" * (-len(match["data"]) % 4))
    assert len(raw) == 12 + len(NATIONAL_ID) + 16  # nonce, ciphertext as long as the text, tag
    assert NATIONAL_ID not in token


def test_every_encryption_uses_a_fresh_nonce() -> None:
    cipher = _cipher()
    tokens = [cipher.encrypt(NATIONAL_ID, context=CONTEXT) for _ in range(2000)]
    nonces = {base64.urlsafe_b64decode(t.split(".")[2] + "==")[:12] for t in tokens}
    assert len(set(tokens)) == len(nonces) == 2000


def test_any_altered_byte_is_refused() -> None:
    cipher = _cipher()
    token = cipher.encrypt(NATIONAL_ID, context=CONTEXT)
    data = token.split(".")[2]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    for position in range(len(raw)):
        altered = bytearray(raw)
        altered[position] ^= 0x01
        forged = "v1.k1." + _b64(bytes(altered)).rstrip("=")
        message = _decrypt_error(cipher, forged)
        assert "altered" in message
        assert NATIONAL_ID not in message


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda t: t.replace("v1.k1.", "v1.k2.", 1), "does not decrypt with key 'k2'"),
        (lambda t: t.replace("v1.", "v2.", 1), "unsupported token version"),
        (lambda t: t[:20], "too short"),
        (lambda t: t + "!", "not base64url"),
        (lambda t: t + ".x", "not an encrypted field token"),
        (lambda t: t.replace("v1.k1.", "v1.gone.", 1), "key id is not in the key ring (k1, k2)"),
        (lambda _: NATIONAL_ID, "not an encrypted field token"),
        (lambda _: "", "not an encrypted field token"),
    ],
)
def test_malformed_tokens_are_refused_without_echoing_them(
    mangle: Callable[[str], str], message: str
) -> None:
    cipher = _cipher()
    token = cipher.encrypt(NATIONAL_ID, context=CONTEXT)
    bad = mangle(token)
    error = _decrypt_error(cipher, bad)
    assert message in error
    assert NATIONAL_ID not in error
    assert token.split(".")[2][:12] not in error


def test_ciphertext_cannot_move_to_another_column() -> None:
    cipher = _cipher()
    token = cipher.encrypt(NATIONAL_ID, context=CONTEXT)
    message = _decrypt_error(cipher, token, context="contact.phone")
    assert "another context" in message
    assert "'contact.phone'" in message
    assert NATIONAL_ID not in message


@pytest.mark.parametrize("context", ["", "patient national id", "pasient.fødselsnummer", "x" * 101])
def test_context_must_be_a_short_ascii_name(context: str) -> None:
    cipher = _cipher()
    with pytest.raises(ValueError, match="context must be"):
        cipher.encrypt(NATIONAL_ID, context=context)
    with pytest.raises(ValueError, match="context must be"):
        cipher.lookup_hash(NATIONAL_ID, context=context)


# --- rotation -------------------------------------------------------------------------------------


def test_rotation_reads_old_tokens_and_writes_with_the_current_key() -> None:
    before = _cipher("k1", keys={"k1": KEY_1})
    old_token = before.encrypt(NATIONAL_ID, context=CONTEXT)
    after = _cipher("k2", keys={"k2": KEY_2, "k1": KEY_1})
    assert after.key_ids == ("k2", "k1")
    assert after.decrypt(old_token, context=CONTEXT) == NATIONAL_ID
    assert after.needs_rotation(old_token)
    new_token = after.reencrypt(old_token, context=CONTEXT)
    assert new_token.startswith("v1.k2.")
    assert not after.needs_rotation(new_token)
    assert after.reencrypt(new_token, context=CONTEXT) == new_token
    retired = _cipher("k2", keys={"k2": KEY_2})
    assert retired.decrypt(new_token, context=CONTEXT) == NATIONAL_ID
    assert "was its key removed" in _decrypt_error(retired, old_token)


def test_needs_rotation_refuses_non_tokens() -> None:
    with pytest.raises(FieldDecryptError, match="not an encrypted field token"):
        _cipher().needs_rotation(NATIONAL_ID)


# --- lookup hashes --------------------------------------------------------------------------------


def test_lookup_hash_is_stable_across_encryption_key_rotation() -> None:
    before = _cipher("k1", keys={"k1": KEY_1}).lookup_hash(NATIONAL_ID, context=CONTEXT)
    after = _cipher("k2", keys={"k2": KEY_2}).lookup_hash(NATIONAL_ID, context=CONTEXT)
    assert before == after
    assert re.fullmatch(r"[0-9a-f]{64}", before)
    assert NATIONAL_ID not in before


def test_lookup_hash_depends_on_value_context_and_lookup_key() -> None:
    cipher = _cipher()
    reference = cipher.lookup_hash(NATIONAL_ID, context=CONTEXT)
    assert cipher.lookup_hash("41019010110", context=CONTEXT) != reference
    assert cipher.lookup_hash(NATIONAL_ID, context="contact.phone") != reference
    assert _cipher(lookup=b"M" * 32).lookup_hash(NATIONAL_ID, context=CONTEXT) != reference


def test_lookup_hash_normalises_unicode_only() -> None:
    cipher = _cipher()
    composed = cipher.lookup_hash("Bjørn Åsane", context="patient.name")
    assert cipher.lookup_hash("Bjørn A\u030asane", context="patient.name") == composed
    assert cipher.lookup_hash("bjørn åsane", context="patient.name") != composed  # case is the caller's job


# --- keys and settings ----------------------------------------------------------------------------


def test_generate_key_gives_32_random_bytes_as_base64url() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)
        assert len(base64.urlsafe_b64decode(key + "=")) == 32


def test_from_settings_first_key_is_current_and_any_base64_works() -> None:
    standard = base64.b64encode(KEY_2).decode()  # with '+', '/' and padding
    cipher = FieldCipher.from_settings(f" k2:{standard} , k1:{_b64(KEY_1).rstrip('=')}", _b64(LOOKUP))
    assert cipher.current_key_id == "k2"
    assert cipher.key_ids == ("k2", "k1")
    token = _cipher("k1").encrypt(NATIONAL_ID, context=CONTEXT)
    assert cipher.decrypt(token, context=CONTEXT) == NATIONAL_ID


@pytest.mark.parametrize(
    ("keys", "lookup", "message"),
    [
        ("", _b64(LOOKUP), "no encryption keys"),
        (_b64(KEY_1), _b64(LOOKUP), "entry 1 is not 'kid:base64key'"),
        (f"{_b64(KEY_1)}:k1", _b64(LOOKUP), "entry 1 is not 'kid:base64key'"),  # the wrong way round
        (f"k1:{_b64(KEY_1)},k1:{_b64(KEY_2)}", _b64(LOOKUP), "'k1' appears twice"),
        (f"k1:{_b64(KEY_1)},k2:not base64!", _b64(LOOKUP), "'k2' (entry 2) is not base64"),
        (f"k1:{_b64(KEY_1)[:-4]}", _b64(LOOKUP), "'k1' has 30 bytes; AES-256 keys have exactly 32"),
        (f"k1:{_b64(KEY_1)[:-3]}", _b64(LOOKUP), "'k1' (entry 1) is not valid base64 (wrong length)"),
        (f"k1:{_b64(KEY_1)}", _b64(b"short"), "lookup key has 5 bytes"),
        (f"k1:{_b64(KEY_1)}", _b64(KEY_1), "lookup key must differ"),
        (f"k1:{_b64(KEY_1)}", "", "lookup key is not base64"),
    ],
)
def test_from_settings_errors_name_the_entry_never_the_key(keys: str, lookup: str, message: str) -> None:
    with pytest.raises(FieldCipherConfigError) as caught:
        FieldCipher.from_settings(keys, lookup)
    assert message in str(caught.value)
    for secret in (_b64(KEY_1), _b64(KEY_2), _b64(LOOKUP)):
        assert secret.rstrip("=")[:16] not in str(caught.value)


def test_constructor_checks_the_ring() -> None:
    with pytest.raises(FieldCipherConfigError, match="key ring is empty"):
        FieldCipher({}, "k1", lookup_key=LOOKUP)
    with pytest.raises(FieldCipherConfigError, match="current key id 'k3' is not in the key ring"):
        FieldCipher({"k1": KEY_1}, "k3", lookup_key=LOOKUP)
    with pytest.raises(FieldCipherConfigError, match="key id number 1 must be"):
        FieldCipher({"k.1": KEY_1}, "k.1", lookup_key=LOOKUP)


def test_repr_shows_key_ids_only() -> None:
    text = repr(_cipher("k2"))
    assert text == "FieldCipher(current='k2', key_ids=['k2', 'k1'])"
