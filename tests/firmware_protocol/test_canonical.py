"""Strict protocol JSON (``parse``) and RFC 8785 canonical form (``canonical_bytes``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol.canonical import (
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    MAX_SAFE_INT,
    JsonObject,
    JsonValue,
    canonical_bytes,
    parse,
)
from firmware_protocol.errors import ErrorCode, MalformedError, TooLargeError


def test_parse_accepts_protocol_json() -> None:
    payload = b' {"b": [1, -2, true, false, null, "x\\u00e9\\n"], "a": {"c_1": {}}, "Z9": ""}\n'
    assert parse(payload) == {"b": [1, -2, True, False, None, "x\u00e9\n"], "a": {"c_1": {}}, "Z9": ""}


def test_parse_accepts_raw_utf8_and_escapes() -> None:
    assert parse('{"t":"blå \U0001f48a \\ud83d\\udc8a"}'.encode()) == {"t": "blå \U0001f48a \U0001f48a"}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'{"a":"\xff"}', "not UTF-8"),
        (b'{"a":"\xc3"}', "not UTF-8"),
        (b'\xef\xbb\xbf{"a":1}', "byte-order mark"),
        (b'{"a":1.5}', "not an integer"),
        (b'{"a":1e3}', "not an integer"),
        (b'{"a":1E3}', "not an integer"),
        (b'{"a":-0.0}', "not an integer"),
        (b'{"a":0.0}', "not an integer"),
        (b'{"a":NaN}', "NaN"),
        (b'{"a":Infinity}', "Infinity"),
        (b'{"a":-Infinity}', "Infinity"),
        (b'{"a":1,"a":2}', "'a' appears twice"),
        (b'{"x":{"b":1,"c":2,"b":3}}', "'b' appears twice"),
        (b'{"x":[{"d":1,"d":1}]}', "'d' appears twice"),
        (b'{"":1}', "member name"),
        (b'{"a-b":1}', "member name"),
        (b'{"a b":1}', "member name"),
        (b'{"\xc3\xa6":1}', "member name"),
        (b'{"x":{"a.b":1}}', "member name"),
        ('{"' + "n" * 65 + '":1}', "member name"),
        (b"[]", "top level is list"),
        (b'"text"', "top level is str"),
        (b"1", "top level is int"),
        (b"null", "top level is NoneType"),
        (b"", "invalid JSON"),
        (b'{"a":1', "invalid JSON"),
        (b'{"a":1}{}', "invalid JSON"),
        (b"{'a':1}", "invalid JSON"),
        (b'{"a":"\x01"}', "invalid JSON"),
        (b'{"a":01}', "invalid JSON"),
        (b'{"a":+1}', "invalid JSON"),
        (b'{"a":1,}', "invalid JSON"),
        (b'{"a":' + str(MAX_SAFE_INT + 1).encode() + b"}", "safe range"),
        (b'{"a":' + str(-MAX_SAFE_INT - 1).encode() + b"}", "safe range"),
        (b'{"a":[[' + str(2**64).encode() + b"]]}", "safe range"),
    ],
)
def test_parse_rejects_with_a_helpful_message(payload: bytes | str, fragment: str) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    with pytest.raises(MalformedError, match=r"^E_MALFORMED") as info:
        parse(data)
    assert fragment in str(info.value)
    assert info.value.code is ErrorCode.MALFORMED


@pytest.mark.parametrize("value", [MAX_SAFE_INT, -MAX_SAFE_INT, 0])
def test_parse_accepts_the_safe_integer_bounds(value: int) -> None:
    assert parse(b'{"a":%d}' % value) == {"a": value}


@pytest.mark.parametrize("digits", [4301, 5000, 60_000])
def test_parse_rejects_integers_beyond_the_int_string_conversion_limit(digits: int) -> None:
    """CPython's int() refuses more than 4,300 digits with ``ValueError``: it must become ``E_MALFORMED``."""
    with pytest.raises(MalformedError, match="too many digits"):
        parse(b'{"a":' + b"9" * digits + b"}")
    with pytest.raises(MalformedError, match="too many digits"):
        parse(b'{"a":[-' + b"9" * digits + b"]}")


@pytest.mark.parametrize(
    "payload",
    [b'{"a":"\\ud800"}', b'{"a":"x\\uDFFFy"}', b'{"a":{"b":["\\udbff"]}}', b'{"a":"\\udc00\\ud800"}'],
)
def test_lone_surrogate_escape_is_refused(payload: bytes) -> None:
    with pytest.raises(MalformedError, match="lone UTF-16 surrogate"):
        parse(payload)


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    assert parse(b'{"a":"\\ud83d\\udc8a"}') == {"a": "\U0001f48a"}
    assert parse(b'{"a":"\\\\ud800"}') == {"a": "\\ud800"}  # an escaped backslash, then text


def test_canonical_bytes_refuses_lone_surrogates_in_python_values() -> None:
    with pytest.raises(MalformedError, match="surrogate"):
        canonical_bytes({"a": {"b": ["x\udfff"]}})


def _nested(depth: int, *, kind: str) -> bytes:
    """A top-level object nested ``depth`` levels deep (the top level counts as 1)."""
    if kind == "object":
        return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("kind", ["object", "array"])
def test_depth_limit(kind: str) -> None:
    parse(_nested(MAX_DEPTH, kind=kind))
    with pytest.raises(MalformedError, match=f"deeper than {MAX_DEPTH}"):
        parse(_nested(MAX_DEPTH + 1, kind=kind))


def test_payload_size_limit() -> None:
    prefix, suffix = b'{"a":"', b'"}'
    exact = prefix + b"x" * (MAX_PAYLOAD_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(exact) == MAX_PAYLOAD_BYTES
    assert parse(exact)["a"] == "x" * (MAX_PAYLOAD_BYTES - 8)
    with pytest.raises(TooLargeError, match=f"{MAX_PAYLOAD_BYTES + 1} bytes") as info:
        parse(exact[:-2] + b'x"}')
    assert info.value.code is ErrorCode.TOO_LARGE


def test_canonical_form_examples() -> None:
    value: JsonObject = {"b": 1, "a": [True, None, '\u20ac\n\x1f"\\/'], "A": {"z": -5, "_": ""}}
    assert canonical_bytes(value) == (
        b'{"A":{"_":"","z":-5},"a":[true,null,"\xe2\x82\xac\\n\\u001f\\"\\\\/"],"b":1}'
    )


# --- properties --------------------------------------------------------------------------------------------

NAMES = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=64
)
"""Member names the protocol allows."""
STRINGS = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
"""Any Unicode string without surrogates."""
SCALARS: st.SearchStrategy[JsonValue] = st.one_of(
    st.none(), st.booleans(), st.integers(-MAX_SAFE_INT, MAX_SAFE_INT), STRINGS
)


def _json(depth: int) -> st.SearchStrategy[JsonValue]:
    """Values that fit ``depth`` levels of nesting (a scalar fits 0)."""
    if depth == 0:
        return SCALARS
    inner = _json(depth - 1)
    return st.one_of(
        SCALARS,
        st.lists(inner, max_size=4),
        st.dictionaries(NAMES, inner, max_size=4),
    )


OBJECTS: st.SearchStrategy[dict[str, JsonValue]] = st.dictionaries(NAMES, _json(MAX_DEPTH - 1), max_size=6)
"""Top-level objects within every protocol rule."""


@given(OBJECTS)
def test_canonical_bytes_equals_rfc8785(value: dict[str, JsonValue]) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@given(OBJECTS)
def test_parse_of_canonical_bytes_round_trips(value: dict[str, JsonValue]) -> None:
    assert parse(canonical_bytes(value)) == value


@given(OBJECTS)
def test_parse_accepts_any_serialisation_and_canonicalises_identically(value: dict[str, JsonValue]) -> None:
    loose = json.dumps(value, indent=1, ensure_ascii=True).encode()
    assert canonical_bytes(parse(loose)) == canonical_bytes(value)


@given(OBJECTS, st.randoms(use_true_random=False))
def test_canonical_form_ignores_member_order(value: dict[str, JsonValue], rnd: Any) -> None:
    def shuffled(node: JsonValue) -> JsonValue:
        if isinstance(node, dict):
            items = list(node.items())
            rnd.shuffle(items)
            return {name: shuffled(child) for name, child in items}
        if isinstance(node, list):
            return [shuffled(child) for child in node]
        return node

    reordered = shuffled(value)
    assert isinstance(reordered, dict)
    assert canonical_bytes(reordered) == canonical_bytes(value)
