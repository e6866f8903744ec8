"""Shared pieces of the API's models: the input and output bases, times, pages, bounded ids and texts.

Rules, and why:

* **Inputs refuse unknown members** (``extra="forbid"``): a misspelt field is a 422 naming it, not a value
  silently ignored. Text is stripped of surrounding whitespace before its length is checked.
* **Outputs are separate models** (``...Public``), built explicitly from the domain records, so a field added
  to a record never leaks into the API by accident (the national id number, say).
* **Times** go out as ISO 8601 with an explicit UTC offset (``2026-11-23T07:00:00+00:00``).
* **Ids and pages are bounded**, so no input can overflow a database integer or ask for a million rows.
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema

MAX_ID = 2**63 - 1
"""The largest storage id (a signed 64-bit database integer)."""
MAX_OFFSET = 1_000_000
MAX_LIMIT = 500
DEFAULT_LIMIT = 50


def iso_utc(value: datetime) -> str:
    """``value`` as ISO 8601 in UTC with its offset: ``2026-11-23T07:00:00+00:00``."""
    return value.astimezone(UTC).isoformat()


Timestamp = Annotated[
    datetime,
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 in UTC with its offset.",
            "examples": ["2026-11-23T07:00:00+00:00"],
        }
    ),
]
"""An aware time, written in UTC with its offset."""

RecordId = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A storage id (patients, teams, alarms...)."""
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
"""Why an operator does something; kept in the record and the audit trail (no patient data, please)."""
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 ()-]*$"),
]
"""A phone number: digits, optionally a leading ``+``, spaces, hyphens and brackets."""
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


class Input(BaseModel):
    """Base of every request body: unknown members are refused, text is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Public(BaseModel):
    """Base of every response body."""

    model_config = ConfigDict(frozen=True)


class Page(Public):
    """One page of a list: ``items`` from ``offset``; ``next_offset`` is null on the last page."""

    offset: int = Field(description="Position of the first item in the whole list.")
    limit: int = Field(description="The most items a page holds.")
    next_offset: int | None = Field(
        description="Pass as ``offset`` for the next page; null on the last page."
    )


def stored(record_id: int | None) -> int:
    """The storage id of a record read from storage (always set there)."""
    if record_id is None:  # pragma: no cover - repositories return records with their ids
        raise ValueError("a record read from storage has no id")
    return record_id
