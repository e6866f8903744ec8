"""What both formats share: reading the bytes as text, and the rules of each field (ids, times, numbers).

Each ``read_*`` function takes the field's text and where it is, returns the value, or records a problem
(saying what to write instead) and returns ``None``. Times (see ``docs/roll-manifest-format.md``):
``YYYY-MM-DDTHH:MM[:SS[.fff]]`` (a space may replace the ``T``) followed by an offset (``Z``, ``+01:00``);
an intake time may leave the offset out and is then Europe/Oslo wall-clock time, refused when it falls in the
spring-forward gap or, without an offset, in the fall-back hour that happens twice. An intake time with an
offset must use UTC or the offset Europe/Oslo had at that moment (catching clocks that ignore daylight
saving, which would move every summer dose by an hour).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

from dispenser_hub.domain.national_id import LENGTH, InvalidNationalIdError, NationalId
from dispenser_hub.domain.pouches import MAX_DETAIL, REF_PATTERN
from dispenser_hub.services.manifests.problems import Where, shown

if TYPE_CHECKING:
    from dispenser_hub.services.manifests.problems import Problems

OSLO: Final = ZoneInfo("Europe/Oslo")
MAX_TEXT: Final = MAX_DETAIL
"""Names, strengths and the pharmacy: at most this many characters (what a device or console shows)."""
MAX_DRUG_LINES: Final = 100
"""Drug lines in one pouch, at most (a real pouch holds a handful; this bounds hostile input)."""
MAX_QUANTITY: Final = Decimal(9999)
QUANTITY_DECIMALS: Final = 3
YEARS: Final = range(2000, 2100)
"""Times outside these years are mistakes (and years near 1 or 9999 cannot move between time zones)."""
BOM: Final = "\ufeff"

DESCRIPTIONS: Final[dict[str, str]] = {
    "format": '"dispenser-hub/roll-manifest"',
    "version": "1",
    "manifests": "the list of roll manifests",
    "roll_id": "the roll id printed on the roll",
    "patient_national_id": "the patient's national identity number, 11 digits",
    "printed_patient_ref": "the patient reference printed on the roll and its pouches",
    "pharmacy": "the name of the pharmacy that packed the roll",
    "packed_at": "when the roll was packed, with its offset, like 2026-11-20T14:00+01:00",
    "pouches": "the roll's pouches, in roll order",
    "pouch_id": "the pouch id printed in the pouch's barcode",
    "intake_at": "the intake time, like 2026-11-23T08:00 on the Europe/Oslo clock",
    "drugs": "the pouch's drug lines",
    "name": "the drug's name",
    "drug_name": "the drug's name",
    "strength": "the drug's strength, like 500 mg",
    "quantity": "the number of units, like 1 or 0.5",
    "as_needed": "whether the drug is only taken when needed, true or false",
}
"""What each field holds, for "missing" messages (JSON member and CSV column names)."""

_REF = re.compile(REF_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_QUANTITY = re.compile(r"\d+(?:\.\d+)?")
_FALSE: Final = frozenset({"", "false", "no", "nei", "0"})
_TRUE: Final = frozenset({"true", "yes", "ja", "1"})
_DAY: Final = 24


def decode_text(data: bytes, problems: Problems, *, file_kind: str) -> str:
    """UTF-8 text without a BOM; stops with a problem naming the line if it is not UTF-8 or is empty."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start : error.start + 1].hex().upper()
        msg = (
            f"this is not UTF-8 text (byte 0x{byte}): save the file as UTF-8"
            + (' ("CSV UTF-8" in Excel)' if file_kind == "CSV" else "")
            + ("" if b"\0" not in data[:1024] else "; it looks like a binary file, not a manifest")
        )
        raise problems.stop(Where("", line=line), msg) from None
    text = text.removeprefix(BOM)
    if not text.strip():
        msg = f"the file is empty: a {file_kind} roll manifest is expected (see docs/roll-manifest-format.md)"
        raise problems.stop(Where(""), msg)
    return text


def too_many_drug_lines(pouch: str) -> str:
    """The message that stops reading at the ``MAX_DRUG_LINES + 1``-th drug line of a pouch."""
    return (
        f"more than {MAX_DRUG_LINES} drug lines in pouch {pouch}: check the file (a pouch holds a few drugs)"
    )


def read_ref(text: str, where: Where, problems: Problems, what: str) -> str | None:
    """A roll id, pouch id or printed reference: the protocol's ``Ref``."""
    if _REF.fullmatch(text):
        return text
    if not text.strip():
        problems.add(where, f"is empty: give {DESCRIPTIONS.get(where_name(where), 'the ' + what)}")
    else:
        problems.add(
            where,
            f"{shown(text)} is not a valid {what}: use 1-64 letters, digits and . _ : / - "
            "(starting with a letter or digit, no spaces)",
        )
    return None


def read_national_id(text: str, where: Where, problems: Problems) -> str | None:
    """11 digits (a space after the sixth allowed), valid check digits; the value is never shown."""
    if not text.strip():
        problems.add(where, "is empty: give the patient's national identity number (11 digits)")
        return None
    try:
        return NationalId.parse(text).value
    except InvalidNationalIdError as error:  # its message never contains the number
        hint = ""
        if error.reason == "length" and text.strip().isdigit() and len(text.strip()) == LENGTH - 1:
            hint = " (a spreadsheet drops a leading zero from a number: format the column as text)"
        problems.add(where, f"is not a valid national identity number: {error}{hint}")
        return None


def read_text(text: str, where: Where, problems: Problems) -> str | None:
    """Non-blank text of at most ``MAX_TEXT`` characters, without control characters (line breaks)."""
    if not text.strip():
        problems.add(where, f"is empty: give {DESCRIPTIONS.get(where_name(where), 'a value')}")
        return None
    if len(text) > MAX_TEXT:
        problems.add(where, f"is {len(text)} characters long: at most {MAX_TEXT} are allowed")
        return None
    if _CONTROL.search(text):
        problems.add(where, f"{shown(text)} holds a line break, tab or other control character: remove it")
        return None
    return unicodedata.normalize("NFC", text)


def read_time(text: str, where: Where, problems: Problems, *, local: bool) -> datetime | None:
    """An instant, as aware UTC; without an offset (``local`` only) a Europe/Oslo wall-clock time."""
    parsed = _wall_and_offset(text, where, problems, local=local)
    if parsed is None:
        return None
    wall, offset = parsed
    if offset is None:
        if local:
            return _from_oslo(text, wall, where, problems)
        problems.add(where, f"{shown(text)} has no offset: add it, e.g. +01:00 in winter, or Z for UTC")
        return None
    instant = wall.replace(tzinfo=timezone(offset)).astimezone(UTC)
    oslo_offset = instant.astimezone(OSLO).utcoffset()
    if local and offset and offset != oslo_offset:
        problems.add(
            where,
            f"{shown(text)}: {_format_offset(offset)} is not Europe/Oslo's offset at that moment "
            f"({_format_offset(oslo_offset)}): write {_format_offset(oslo_offset)}, Z for UTC, "
            "or the local time without an offset",
        )
        return None
    return instant


def _wall_and_offset(
    text: str, where: Where, problems: Problems, *, local: bool
) -> tuple[datetime, timedelta | None] | None:
    """The wall-clock fields (carried in a UTC datetime until the zone is known) and the offset given."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        example = (
            "2026-11-23T08:00 (Europe/Oslo) or 2026-11-23T08:00+01:00" if local else "2026-11-20T14:00+01:00"
        )
        if not text.strip():
            problems.add(where, f"is empty: give {DESCRIPTIONS.get(where_name(where), 'a time')}")
        else:
            problems.add(where, f"{shown(text)} is not a time: write it like {example} (year first)")
        return None
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups()[:6])
    if year not in YEARS:
        problems.add(where, f"{shown(text)}: the year must be {YEARS[0]}-{YEARS[-1]}; check the date")
        return None
    millis = int((match[7] or "0").ljust(3, "0"))
    try:
        wall = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
    except ValueError:
        problems.add(where, f"{shown(text)} is not a real date and time: check the numbers")
        return None
    offset_text = match["offset"]
    if offset_text is None:
        return wall, None
    offset = _offset(offset_text)
    if offset is None:
        problems.add(where, f"{shown(text)} has an impossible offset: write +01:00, +02:00 or Z")
        return None
    return wall, offset


def _from_oslo(text: str, wall: datetime, where: Where, problems: Problems) -> datetime | None:
    first = wall.replace(tzinfo=OSLO, fold=0)
    second = wall.replace(tzinfo=OSLO, fold=1)
    instant = first.astimezone(UTC)
    if instant.astimezone(OSLO).replace(tzinfo=UTC, fold=0) != wall:
        problems.add(
            where,
            f"{shown(text)} does not exist in Europe/Oslo: the clocks jump forward an hour that night "
            "(summer time starts); correct the time",
        )
        return None
    if first.utcoffset() != second.utcoffset():
        problems.add(
            where,
            f"{shown(text)} happens twice in Europe/Oslo (the clocks go back an hour that night): add the "
            f"offset, {_format_offset(first.utcoffset())} for the first time or "
            f"{_format_offset(second.utcoffset())} for the second",
        )
        return None
    return instant


def _offset(text: str) -> timedelta | None:
    if text in {"Z", "z"}:
        return timedelta(0)
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours >= _DAY or minutes >= 60:  # noqa: PLR2004 - minutes of an hour
        return None
    value = timedelta(hours=hours, minutes=minutes)
    return -value if text.startswith("-") else value


def _format_offset(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta(0)).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_text(instant: datetime) -> str:
    """``instant`` on the Europe/Oslo clock, with its offset (``2026-11-23T08:00:00+01:00``), for messages."""
    return instant.astimezone(OSLO).isoformat(timespec="seconds")


def read_quantity(text: str, where: Where, problems: Problems, *, decimal_comma: bool) -> Decimal | None:
    """A positive plain decimal (``1``, ``0.5``; with ``decimal_comma`` also ``0,5``), below 10000."""
    value = text.strip()
    comma_hint = ", or 0,5" if decimal_comma else ""
    if decimal_comma and value.count(",") == 1 and "." not in value:
        value = value.replace(",", ".")
    if not _QUANTITY.fullmatch(value):
        if value.startswith("-") and _QUANTITY.fullmatch(value[1:]):
            problems.add(where, f"{shown(text)} is negative: a quantity is more than 0")
        elif not decimal_comma and _QUANTITY.fullmatch(value.replace(",", ".", 1)):
            problems.add(
                where, f"{shown(text)}: write the decimal with a point ({value.replace(',', '.', 1)})"
            )
        elif not value:
            problems.add(where, f"is empty: give {DESCRIPTIONS['quantity']}")
        else:
            problems.add(
                where,
                f"{shown(text)} is not a number: write the number of units, like 1 or 0.5{comma_hint} "
                "(digits only, no units or exponents)",
            )
        return None
    number = Decimal(value)
    if number <= 0:
        problems.add(where, f"{shown(text)} is 0: a drug line gives more than 0 units (or leave it out)")
    elif number > MAX_QUANTITY:
        problems.add(where, f"{shown(text)} units in one pouch: at most {MAX_QUANTITY}; check the quantity")
    elif "." in value and len(value.split(".")[1].rstrip("0")) > QUANTITY_DECIMALS:
        problems.add(where, f"{shown(text)} has more than {QUANTITY_DECIMALS} decimals: round it")
    else:
        return number
    return None


def read_flag(text: str, where: Where, problems: Problems) -> bool | None:
    """CSV's yes/no: ``true``/``false``, ``yes``/``no``, ``ja``/``nei``, ``1``/``0``; empty is false."""
    value = text.strip().lower()
    if value in _FALSE:
        return False
    if value in _TRUE:
        return True
    problems.add(where, f"{shown(text)} is not yes or no: write true or false (or leave it empty for false)")
    return None


def where_name(where: Where) -> str:
    """The field's own name: the CSV column, or the last member name of a JSON path."""
    if where.path:
        names = [step[0] for step in where.path if not isinstance(step, int)]
        return names[-1] if names else ""
    return where.field
