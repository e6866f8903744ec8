"""Pharmacy roll manifests from files: JSON or CSV in, ``RollManifest``s out, or every problem with its place.

The formats are documented in ``docs/roll-manifest-format.md`` (with examples in ``docs/examples/``); the
implementation is in ``dispenser_hub.services.manifests``. This module is the entry point:

- ``parse_manifests(data, filename=..., content_type=...)`` chooses the format by content type (a specific
  one: ``application/json``, ``text/csv`` ...), then by the file name's extension (``.json``, ``.csv``),
  then by the content (a ``{`` first means JSON, a header line naming the columns means CSV);
- ``parse_json_manifests`` and ``parse_csv_manifests`` read one format.

Each returns the file's manifests, in file order, or raises ``ManifestImportError`` holding every
``Problem`` found (up to ``MAX_PROBLEMS``), each with its line (CSV: and column name; JSON: column and path)
and what to fix; ``format()`` gives one line per problem, ``manifest.csv:12: quantity: "abc" is not a
number ...``. Nothing else is raised, whatever the bytes. Messages never contain a full national id number
(any 11-digit number in a message is masked). Hostile input is bounded: files over ``MAX_BYTES``, with
more than ``MAX_POUCHES`` pouches, or with more than ``MAX_DRUG_LINES`` drug lines in a pouch are refused.

Parsing only: whether a roll is already stored (the same manifest again, or a conflicting one) is the
caller's question, answered with ``RollManifest.content_digest``.

Time decision: an intake time is either an instant with an offset (``2026-11-23T08:00+01:00``, ``...Z``),
whose offset must be UTC or Europe/Oslo's at that instant, or Europe/Oslo wall-clock time without an offset
(``2026-11-23T08:00``), which is what a pharmacy's schedule says; a wall-clock time in the spring-forward gap
is refused, and one in the fall-back hour (which happens twice) is refused unless an offset says which.
``packed_at`` always carries an offset.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Final

from dispenser_hub.services.manifests.csv_format import header_delimiter, read_csv
from dispenser_hub.services.manifests.fields import MAX_DRUG_LINES
from dispenser_hub.services.manifests.json_format import read_json
from dispenser_hub.services.manifests.problems import (
    MAX_PROBLEMS,
    ManifestImportError,
    Problem,
    Problems,
    StopReadingError,
    Where,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from dispenser_hub.domain.pouches import RollManifest

__all__ = [
    "MAX_BYTES",
    "MAX_DRUG_LINES",
    "MAX_POUCHES",
    "MAX_PROBLEMS",
    "ManifestFormat",
    "ManifestImportError",
    "Problem",
    "detect_format",
    "parse_csv_manifests",
    "parse_json_manifests",
    "parse_manifests",
]

MAX_BYTES: Final = 5 * 1024 * 1024
"""Larger files are refused unread (5 MiB: a year of four daily pouches is well under 1 MiB)."""
MAX_POUCHES: Final = 10_000
"""Files with more pouches are refused (all rolls of the file together)."""


class ManifestFormat(StrEnum):
    """The two manifest file formats."""

    JSON = "json"
    CSV = "csv"


_JSON_TYPES: Final = frozenset({"application/json", "text/json"})
_CSV_TYPES: Final = frozenset(
    {"text/csv", "application/csv", "text/comma-separated-values", "text/x-csv", "application/x-csv"}
)
_GENERIC_TYPES: Final = frozenset(
    # application/vnd.ms-excel: what browsers on Windows send for a .csv file (when Excel is installed)
    {"", "application/octet-stream", "binary/octet-stream", "text/plain", "application/vnd.ms-excel"}
)
_EXTENSIONS: Final = {"json": ManifestFormat.JSON, "csv": ManifestFormat.CSV}
_BOM: Final = b"\xef\xbb\xbf"
_NOT_MANIFESTS: Final = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip file"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls) or another Office file"),
    (b"%PDF", "a PDF document"),
)
_UTF16: Final = (b"\xff\xfe", b"\xfe\xff")
_SNIFF_BYTES: Final = 4096


def parse_manifests(data: bytes, *, filename: str, content_type: str | None = None) -> list[RollManifest]:
    """The manifests in ``data`` (JSON or CSV, see the module docstring); ``ManifestImportError`` if not.

    ``filename`` names the file in problems and, with ``content_type`` (an HTTP ``Content-Type``, parameters
    allowed), tells the format.
    """
    kind = detect_format(data, filename=filename, content_type=content_type)
    return (
        parse_json_manifests(data, filename=filename)
        if kind is ManifestFormat.JSON
        else (parse_csv_manifests(data, filename=filename))
    )


def parse_json_manifests(data: bytes, *, filename: str = "manifest.json") -> list[RollManifest]:
    """The manifests of a JSON manifest document; ``ManifestImportError`` with every problem if invalid."""
    return _read(data, filename, read_json)


def parse_csv_manifests(data: bytes, *, filename: str = "manifest.csv") -> list[RollManifest]:
    """The manifests of a CSV manifest file; ``ManifestImportError`` with every problem if invalid."""
    return _read(data, filename, read_csv)


def detect_format(data: bytes, *, filename: str, content_type: str | None = None) -> ManifestFormat:
    """Which format ``data`` is in, by content type, then extension, then content; or a clear refusal.

    Files too large, empty, or recognisably something else (a workbook, a PDF, UTF-16 text) are refused
    here, whatever their name says.
    """
    problems = Problems()
    try:
        _check_bytes(data, problems)
    except StopReadingError:
        raise ManifestImportError(filename, problems.items) from None
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in _JSON_TYPES or media_type.endswith("+json"):
        return ManifestFormat.JSON
    if media_type in _CSV_TYPES:
        return ManifestFormat.CSV
    if media_type not in _GENERIC_TYPES:
        msg = (
            f"the content type {media_type[:60]!r} is not a roll manifest: send JSON (application/json) "
            "or CSV (text/csv)"
        )
        raise ManifestImportError(filename, [Problem(None, None, "", msg)])
    extension = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rpartition(".")[2].lower()
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    start = data[:_SNIFF_BYTES].removeprefix(_BOM).lstrip()
    if start.startswith(b"{"):
        return ManifestFormat.JSON
    first_line = start.partition(b"\n")[0].decode("utf-8", "replace")
    if header_delimiter(first_line) is not None:
        return ManifestFormat.CSV
    msg = (
        "cannot tell whether this is a JSON or a CSV manifest: name the file .json or .csv (or send the "
        "content type application/json or text/csv); a JSON manifest starts with {, a CSV manifest with its "
        "header line (roll_id;patient_national_id;...)"
    )
    raise ManifestImportError(filename, [Problem(None, None, "", msg)])


def _read(data: bytes, filename: str, reader: Callable[..., list[RollManifest]]) -> list[RollManifest]:
    problems = Problems()
    manifests: list[RollManifest] = []
    try:
        _check_bytes(data, problems)
        manifests = reader(data, problems, max_pouches=MAX_POUCHES)
    except StopReadingError:
        pass
    if problems.items:
        raise ManifestImportError(filename, problems.items, truncated=problems.truncated)
    return manifests


def _check_bytes(data: bytes, problems: Problems) -> None:
    """Refuse files that are too large, empty, or recognisably not text manifests."""
    if len(data) > MAX_BYTES:
        msg = (
            f"the file is {len(data):,} bytes: at most {MAX_BYTES:,} bytes (5 MiB) are read; "
            "split the manifests over several files"
        )
        raise problems.stop(Where(""), msg)
    if not data.removeprefix(_BOM).strip():
        raise problems.stop(Where(""), "the file is empty: it should hold a roll manifest (JSON or CSV)")
    for magic, what in _NOT_MANIFESTS:
        if data.startswith(magic):
            msg = f'this is {what}, not a manifest: save the sheet as "CSV UTF-8", or export JSON'
            raise problems.stop(Where(""), msg)
    if data.startswith(_UTF16):
        msg = 'this is UTF-16 text: save the file as UTF-8 ("CSV UTF-8" in Excel)'
        raise problems.stop(Where(""), msg)
