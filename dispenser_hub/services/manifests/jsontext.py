"""Strict JSON (RFC 8259) read at C speed, with the line and column of any value found on demand.

``load`` parses with the standard library's C decoder, keeping what a strict reader needs: an object is
``Members`` (its members in document order, duplicates kept), a number is ``Number`` (its literal text, so
``0.1`` becomes an exact ``Decimal``, never a float), and ``NaN``/``Infinity`` (which Python accepts but JSON
does not) become ``Constant``, which no reader accepts as a value. Syntax errors come with the offset the
decoder reports and a message saying what to fix.

Positions are only needed for problems, so they are found afterwards: ``Locator`` walks the (valid) text
along a path of member names and list indexes, reading one container's members or items at a time with
``json.JSONDecoder.raw_decode`` (which returns where each value ends) and remembering what it read, so each
container is walked once however many problems it holds.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

Step = int | tuple[str, int]
"""A list index, or a member name with its occurrence (0: the first member of that name, 1: a duplicate)."""
Path = tuple[Step, ...]


class Members(list[tuple[str, object]]):
    """A JSON object: its ``(name, value)`` members in document order, duplicate names kept."""


class Number(str):
    """A JSON number, as its literal text (``1``, ``0.5``, ``2e3``)."""

    __slots__ = ()


class Constant(str):
    """``NaN``, ``Infinity`` or ``-Infinity``: accepted by Python's decoder, not JSON, refused by readers."""

    __slots__ = ()


class JsonSyntaxError(ValueError):
    """Not JSON: ``message`` says what is wrong at character ``offset`` (``None``: nowhere in particular)."""

    def __init__(self, offset: int | None, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


_DECODER = json.JSONDecoder(
    object_pairs_hook=Members, parse_float=Number, parse_int=Number, parse_constant=Constant, strict=True
)
_SKIPPER = json.JSONDecoder(strict=True)
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def load(text: str) -> object:
    """The JSON value ``text`` holds (see the module docstring for its types); ``JsonSyntaxError`` if none."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as error:
        pos = error.pos
        if pos > 0 and text[pos : pos + 1].isdigit() and text[pos - 1] == "0":  # 0123: point at the number
            pos -= 1
            while pos > 0 and text[pos - 1] in "-.0123456789":
                pos -= 1
            msg = "a number cannot start with 0: write ids and codes (such as national ids) in quotes"
            raise JsonSyntaxError(pos, msg) from None
        raise JsonSyntaxError(pos, _syntax_message(error.msg, text, pos)) from None
    except RecursionError:
        raise JsonSyntaxError(
            None, "nested too deeply (lists in lists ...): this is not a roll manifest"
        ) from None


def display(path: Path) -> str:
    """``manifests[0].pouches[3].intake_at`` (a duplicate member is named like the first)."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step[0]}" if text else step[0]
    return text


def describe(value: object) -> str:
    """What a loaded value is, for messages: ``a string``, ``a number``, ``true``, ``null``, ``a list`` ..."""
    if isinstance(value, Constant):
        return f"{value} (not JSON)"
    if isinstance(value, Number):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    return "an object" if isinstance(value, Members) else "a list"


class Locator:
    """The offsets of the values and member names at paths of a valid JSON text, walked on demand."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._values: dict[Path, int] = {(): self._skip(0)}
        self._names: dict[Path, int] = {}
        self._walked: set[Path] = set()

    def value(self, path: Sequence[Step]) -> int:
        """Where the value at ``path`` starts (for a path that does not exist: its nearest container)."""
        key = tuple(path)
        if key in self._values:
            return self._values[key]
        parent = key[:-1]
        start = self.value(parent)
        if parent not in self._walked:
            self._walked.add(parent)
            self._walk(parent, start)
        return self._values.get(key, start)

    def name(self, path: Sequence[Step]) -> int:
        """Where the member name of ``path`` starts (its value's container if it is not a member)."""
        self.value(path)
        return self._names.get(tuple(path), self.value(path[:-1]))

    def _walk(self, path: Path, start: int) -> None:
        """Record where every member or item of the container at ``start`` begins."""
        # A value nested nearly as deep as ``load`` allows, read here from deeper down the stack, may be too
        # deep: the members after it are then placed at their container.
        with contextlib.suppress(RecursionError):
            self._walk_items(path, start)

    def _walk_items(self, path: Path, start: int) -> None:
        text = self.text
        opening = text[start : start + 1]
        if opening not in {"{", "["}:
            return
        pos = self._skip(start + 1)
        index = 0
        seen: dict[str, int] = {}
        while text[pos : pos + 1] not in {"}", "]", ""}:
            if opening == "{":
                name, end = _SKIPPER.raw_decode(text, pos)
                occurrence = seen.get(name, 0)
                seen[name] = occurrence + 1
                step: Step = (name, occurrence)
                self._names[(*path, step)] = pos
                pos = self._skip(self._skip(end) + 1)  # past the colon
            else:
                step = index
                index += 1
            self._values[(*path, step)] = pos
            pos = self._skip(_SKIPPER.raw_decode(text, pos)[1])
            if text.startswith(",", pos):
                pos = self._skip(pos + 1)

    def _skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        return match.end() if match else pos


_DECODER_MESSAGES: Final = (
    ("Extra data", "more text after the end of the document: a file holds one JSON document"),
    ("Unterminated string", 'a string that is never closed: a missing "?'),
    (
        "Invalid control character",
        "a line break, tab or other control character in a string: write \\n or \\t",
    ),
    ("Invalid \\", 'an invalid escape in a string: write a backslash as \\\\ and a quote as \\"'),
    (
        "Expecting ',' delimiter",
        'expected "," between members or list items, or a closing } or ]: a missing comma?',
    ),
    ("Expecting ':' delimiter", 'expected ":" after the member name'),
)
_CHARACTER_HINTS: Final = {
    "": "the file ends too early: a missing value, ] or }?",
    "'": "strings and member names are written in double quotes, not single quotes",
    "/": "JSON has no comments: remove them",
}


def _syntax_message(message: str, text: str, pos: int) -> str:
    """What the decoder's ``message`` at ``pos`` means for someone fixing the file."""
    char = text[pos : pos + 1]
    if char in _CHARACTER_HINTS:
        return _CHARACTER_HINTS[char]
    if char in {"}", "]"} and text[:pos].rstrip().endswith(","):
        return f'a comma before "{char}": remove the last comma'
    for start, meaning in _DECODER_MESSAGES:
        if message.startswith(start):
            return meaning
    if char.isalpha():
        return "text is written in double quotes (and true, false and null in lowercase)"
    if message.startswith("Expecting property name"):
        return 'expected a member name in double quotes ("name": value)'
    return f"unexpected {json.dumps(char)}: expected a value"
