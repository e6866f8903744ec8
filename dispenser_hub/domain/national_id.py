"""Norwegian national identity numbers: fødselsnummer, D-, H- and synthetic test numbers.

A ``NationalId`` is an 11-digit number ``DDMMYY III KK``: the birth date, a three-digit individual number
``III`` and two check digits ``KK``. Rules (folkeregisterforskriften § 2-2-1, Skatteetaten's "Nytt
fødselsnummer fra 2032", NHN's identifier OIDs), and how this module applies them:

Kinds (the ``kind`` property; the FHIR identifier system, ``oid``, depends on it):

* ``FNR`` fødselsnummer: day 01-31, month 01-12. OID 2.16.578.1.12.4.1.4.1.
* ``DNR`` D-number (temporary residents): 4 added to the first digit, so day 41-71. OID 2.16.578.1.12.4.1.4.2.
* ``HNR`` H-number (help number a health institution gives someone without a known number): 40 added to the
  month, so month 41-52. OID 2.16.578.1.12.4.1.4.3 (the "hjelpenummer" system in NHN's code list).
  NAV's older synthetic test numbers (Dolly) also add 40 to the month and therefore read as H-numbers.
* ``SYNTHETIC`` Skatteetaten's synthetic test numbers (Tenor test data, "syntetiske fødselsnumre"): 80 added
  to the month, so month 81-92. They never belong to a real person; they carry the OID of the real kind they
  stand in for (D-number when the day is also raised by 40, fødselsnummer otherwise). Whether they are
  acceptable at all (never in production) is the caller's policy, not this module's.
* An H- or synthetic number may also raise the day by 40 (a D-number in a test environment); the month
  decides the kind. Numbers starting with 8 or 9 (felles hjelpenummer, FH) carry no date and are refused as
  unsupported.

Check digits, over the digits as written (offsets included). With weights ``w1 = 3 7 6 1 8 9 4 5 2 1`` and
``w2 = 5 4 3 2 7 6 5 4 3 2 1`` over the first 10 and all 11 digits:

* ``sum(w1 * digits[:10]) % 11`` must be 0 (classic rule, ``CheckRule.CLASSIC``) or, for numbers issued from
  1 January 2032, 1, 2 or 3 (``CheckRule.RULE_2032``). The 2032 change relaxes the *first* check digit only,
  so that four numbers fit where one did. This module has no clock and accepts both rules at any time, as
  Skatteetaten asks systems to do; ``check_rule`` tells which one a number satisfies.
* ``sum(w2 * digits) % 11`` must be 0, before and after 2032. All weights of ``w2`` are non-zero modulo 11,
  so any single mistyped digit is always caught.

Birth date and century, from the individual number (pre-2032 rules):
000-499 -> 1900-1999; 500-749 with year 54-99 -> 1854-1899; 500-999 with year 00-39 -> 2000-2039;
900-999 with year 40-99 -> 1940-1999. From 2032 the individual number no longer tells the century (and no
number tells gender), so ``birth_date`` is ``None`` for a number that only passes the 2032 rule, or whose
individual number fits no range above (possible for numbers issued from 2032). For every other number it is
the date the number encodes under the old rules; the register, not the number, is authoritative. The day must
exist in its month in that year (29 February 1900 does not); with the century unknown, 29 February needs a
year divisible by 4.

Privacy: ``str()`` and ``repr()`` show only the masked form (``010190*****``); error messages never contain
the number. ``value`` is the full number, for storage (encrypted) and for the systems that need it.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal, NamedTuple

LENGTH = 11
_DATE_LENGTH = 6
_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
_MODULUS = 11
_VALID_REMAINDERS_1 = frozenset({0, 1, 2, 3})  # 0: classic rule; 1-3: from 2032
_D_DAY_OFFSET = 40
_H_MONTH_OFFSET = 40
_SYNTHETIC_MONTH_OFFSET = 80
_FH_FIRST_DIGITS = frozenset("89")
_MONTHS = 12

OID_FNR = "2.16.578.1.12.4.1.4.1"
OID_DNR = "2.16.578.1.12.4.1.4.2"
OID_HNR = "2.16.578.1.12.4.1.4.3"

InvalidReason = Literal["characters", "length", "date", "check_digit_1", "check_digit_2", "unsupported"]


class IdKind(StrEnum):
    """Which kind of number it is; the FHIR identifier system (OID) follows from it."""

    FNR = "FNR"
    DNR = "DNR"
    HNR = "HNR"
    SYNTHETIC = "SYNTHETIC"


class CheckRule(StrEnum):
    """Which first-check-digit rule a number satisfies (the second check digit never changed)."""

    CLASSIC = "classic"
    RULE_2032 = "2032"


class InvalidNationalIdError(ValueError):
    """Text that is not a valid national identity number; the message says what is wrong, never the number.

    ``reason`` is a stable code for programs: ``characters``, ``length``, ``date``, ``check_digit_1``,
    ``check_digit_2`` or ``unsupported``.
    """

    def __init__(self, reason: InvalidReason, message: str) -> None:
        super().__init__(message)
        self.reason: InvalidReason = reason


class _Fields(NamedTuple):
    kind: IdKind
    d_number_day: bool
    rule: CheckRule
    birth_date: date | None


@dataclass(frozen=True, slots=True, repr=False)
class NationalId:
    """A valid Norwegian national identity number; construct it with ``NationalId.parse(text)``.

    ``NationalId(value)`` also validates, but takes exactly 11 digits (no space). Equality and hashing use the
    full number.
    """

    value: str

    def __post_init__(self) -> None:
        _decode(self.value)

    @classmethod
    def parse(cls, text: str) -> NationalId:
        """Parse 11 digits, optionally written ``DDMMYY NNNNN`` (one space after the date).

        Leading and trailing whitespace is ignored. Raises ``InvalidNationalIdError``.
        """
        stripped = text.strip()
        if len(stripped) == LENGTH + 1 and stripped[_DATE_LENGTH] == " ":
            stripped = stripped[:_DATE_LENGTH] + stripped[_DATE_LENGTH + 1 :]
        return cls(stripped)

    @property
    def kind(self) -> IdKind:
        """Fødselsnummer, D-number, H-number or synthetic test number."""
        return _decode(self.value).kind

    @property
    def oid(self) -> str:
        """The FHIR identifier system OID (without ``urn:oid:``) for this kind of number."""
        fields = _decode(self.value)
        if fields.kind is IdKind.HNR:
            return OID_HNR
        return OID_DNR if fields.d_number_day else OID_FNR

    @property
    def check_rule(self) -> CheckRule:
        """``RULE_2032`` when the first check digit is only valid under the rule for numbers from 2032."""
        return _decode(self.value).rule

    @property
    def birth_date(self) -> date | None:
        """The birth date the number encodes (pre-2032 century rules), or ``None`` when it cannot tell."""
        return _decode(self.value).birth_date

    @property
    def masked(self) -> str:
        """The number for display: the six date digits, the personal number hidden (``010190*****``)."""
        return self.value[:_DATE_LENGTH] + "*" * (LENGTH - _DATE_LENGTH)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"NationalId(masked={self.masked!r}, kind={self.kind.value})"


def _decode(value: str) -> _Fields:
    """Check ``value`` (exactly 11 digits) in the order of the module docstring; return what it encodes."""
    digits = _digits(value)
    kind, d_number_day, day, month = _kind_day_month(value, digits)
    year_in_century = digits[4] * 10 + digits[5]
    if not any(day <= calendar.monthrange(year, month)[1] for year in _candidate_years(year_in_century)):
        raise InvalidNationalIdError(
            "date", f"impossible birth date: month {month} has no day {day} (digits 1-4 of the number)"
        )
    remainder_1 = sum(w * d for w, d in zip(_W1, digits, strict=False)) % _MODULUS
    if remainder_1 not in _VALID_REMAINDERS_1:
        raise InvalidNationalIdError(
            "check_digit_1", "first check digit (digit 10) is wrong: the number is mistyped or made up"
        )
    if sum(w * d for w, d in zip(_W2, digits, strict=True)) % _MODULUS != 0:
        raise InvalidNationalIdError(
            "check_digit_2", "second check digit (digit 11) is wrong: the number is mistyped or made up"
        )
    rule = CheckRule.CLASSIC if remainder_1 == 0 else CheckRule.RULE_2032
    individual = digits[6] * 100 + digits[7] * 10 + digits[8]
    birth_date = None
    century = _century(individual, year_in_century) if rule is CheckRule.CLASSIC else None
    if century is not None:
        year = century + year_in_century
        if day > calendar.monthrange(year, month)[1]:
            msg = (
                f"impossible birth date: there is no day {day} of month {month} in {year} "
                f"(the individual number, digits 7-9, places the birth in {century}-{century + 99})"
            )
            raise InvalidNationalIdError("date", msg)
        birth_date = date(year, month, day)
    return _Fields(kind, d_number_day, rule, birth_date)


def _digits(value: str) -> tuple[int, ...]:
    for position, char in enumerate(value, start=1):
        if not ("0" <= char <= "9"):
            shown = "a space" if char.isspace() else repr(char)
            msg = (
                f"a national identity number has only digits (one space after the 6th is allowed); "
                f"character {position} is {shown}"
            )
            raise InvalidNationalIdError("characters", msg)
    if len(value) != LENGTH:
        msg = f"a national identity number has 11 digits, this has {len(value)}"
        raise InvalidNationalIdError("length", msg)
    return tuple(ord(char) - ord("0") for char in value)


def _kind_day_month(value: str, digits: tuple[int, ...]) -> tuple[IdKind, bool, int, int]:
    if value[0] in _FH_FIRST_DIGITS:
        msg = "numbers starting with 8 or 9 are FH-numbers (felles hjelpenummer), which are not supported"
        raise InvalidNationalIdError("unsupported", msg)
    raw_day = digits[0] * 10 + digits[1]
    raw_month = digits[2] * 10 + digits[3]
    d_number_day = raw_day > _D_DAY_OFFSET
    day = raw_day - _D_DAY_OFFSET if d_number_day else raw_day
    if not 1 <= day <= 31:  # noqa: PLR2004 - the longest month has 31 days
        msg = "impossible birth date: digits 1-2 are neither a day (01-31) nor a D-number day (41-71)"
        raise InvalidNationalIdError("date", msg)
    for offset, kind in (
        (_SYNTHETIC_MONTH_OFFSET, IdKind.SYNTHETIC),
        (_H_MONTH_OFFSET, IdKind.HNR),
        (0, None),
    ):
        month = raw_month - offset
        if 1 <= month <= _MONTHS:
            resolved = kind or (IdKind.DNR if d_number_day else IdKind.FNR)
            return resolved, d_number_day, day, month
    msg = (
        "impossible birth date: digits 3-4 are neither a month (01-12), an H-number month (41-52) "
        "nor a synthetic-number month (81-92)"
    )
    raise InvalidNationalIdError("date", msg)


def _candidate_years(year_in_century: int) -> tuple[int, ...]:
    """The years a two-digit year may stand for when the century is not yet known."""
    return tuple(century + year_in_century for century in (1800, 1900, 2000))


def _century(individual: int, year_in_century: int) -> int | None:
    """The century the pre-2032 rules give an individual number born in ``year_in_century``, or ``None``."""
    # The ranges of folkeregisterforskriften § 2-2-1, checked in the order they are listed there.
    if individual <= 499:  # noqa: PLR2004 - the rule's own numbers read best as written
        return 1900
    if individual <= 749 and year_in_century >= 54:  # noqa: PLR2004 - 500-749, years 54-99: 1854-1899
        return 1800
    if year_in_century <= 39:  # noqa: PLR2004 - 500-999, years 00-39: 2000-2039
        return 2000
    if individual >= 900:  # noqa: PLR2004 - 900-999, years 40-99: 1940-1999
        return 1900
    return None
