r"""Strict JSON parsing and RFC 8785 (JCS) canonical serialisation.

The protocol uses a subset of JSON (I-JSON, RFC 7493, tightened) so that canonicalisation is trivial to
implement on a microcontroller and byte-identical everywhere:

- UTF-8 without a byte-order mark; no lone surrogates.
- The top level is an object; nesting at most ``MAX_DEPTH`` levels.
- Member names are ASCII ``[A-Za-z0-9_]``, 1 to 64 characters, unique within their object.
- Numbers are integers in the safe range ``-(2**53 - 1) .. 2**53 - 1``; no fractions, exponents,
  ``NaN`` or ``Infinity``. (Quantities that need a fraction use smaller units: milliseconds, tenths.)

Under those rules RFC 8785 reduces to: members sorted by name (ASCII order), no insignificant whitespace,
integers in plain decimal, strings escaped as ``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other
characters below U+0020 as ``\\u00xx`` (lowercase hex), every other character as raw UTF-8.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeAlias

from firmware_protocol.errors import MalformedError, TooLargeError

MAX_PAYLOAD_BYTES = 65_536
"""Largest accepted MQTT payload in bytes, uplink and downlink."""
MAX_DEPTH = 10
"""Deepest accepted nesting of objects and arrays (the top-level object is depth 1)."""
MAX_SAFE_INT = 2**53 - 1
"""Largest integer magnitude on the wire (exactly representable as an IEEE 754 double)."""

MEMBER_NAME_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
"""Every object member name on the wire."""
_NAME = re.compile(MEMBER_NAME_PATTERN)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

JsonValue: TypeAlias = "bool | int | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = dict[str, JsonValue]


def _reject_float(text: str) -> None:
    raise MalformedError(f"number {text[:32]!r} is not an integer; the protocol carries integers only")


def _reject_constant(text: str) -> None:
    raise MalformedError(f"{text} is not valid JSON")


_checked_names: set[str] = set()
"""Member names already found valid (bounded, so hostile input cannot grow it without limit)."""


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(name for name, _ in pairs if name in seen or seen.add(name))  # type: ignore[func-returns-value]
        raise MalformedError(f"member name {duplicate!r} appears twice in one object")
    if not _checked_names.issuperset(obj):
        for name in obj:
            if not _NAME.match(name):
                raise MalformedError(f"member name {name[:70]!r} must be 1-64 characters of [A-Za-z0-9_]")
            if len(_checked_names) < 4096:  # noqa: PLR2004 - a cache bound, not a protocol limit
                _checked_names.add(name)
    return obj


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_pairs, parse_float=_reject_float, parse_constant=_reject_constant
)


def _check_tree(root: dict[str, Any], *, check_strings: bool) -> None:
    """Check depth, integer range and (when escapes suggest one) lone surrogates over the whole tree.

    Iterative, so hostile input cannot exhaust the stack.
    """
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list:
                if depth == MAX_DEPTH:
                    raise MalformedError(f"nesting deeper than {MAX_DEPTH} levels")
                stack.append((value, depth + 1))
            elif kind is int and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                raise MalformedError(f"integer {str(value)[:24]} is outside the safe range +-(2**53 - 1)")
            elif kind is str and check_strings:
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise MalformedError("a string contains a lone UTF-16 surrogate escape") from None


def parse(payload: bytes) -> JsonObject:
    """Parse a payload under the protocol's JSON rules, raising ``MalformedError`` or ``TooLargeError``."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise TooLargeError(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    if payload[:3] == b"\xef\xbb\xbf":
        raise MalformedError("payload starts with a UTF-8 byte-order mark; send plain UTF-8")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"payload is not UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise MalformedError(f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # int() refuses numbers of more than 4300 digits (CPython's conversion limit)
        raise MalformedError("a number has too many digits; integers are at most 16 digits") from None
    if not isinstance(value, dict):
        raise MalformedError(f"top level is {type(value).__name__}, not a JSON object")
    _check_tree(value, check_strings=_SURROGATE_ESCAPE.search(text) is not None)
    return value


def canonical_bytes(value: JsonObject) -> bytes:
    """Serialise a parsed (or protocol-built) object as RFC 8785 canonical JSON in UTF-8.

    Valid only for values that obey the protocol's JSON rules (see the module docstring), which
    ``parse`` guarantees; a lone surrogate in a string raises ``MalformedError``.
    """
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedError("a string contains a lone UTF-16 surrogate escape") from None
