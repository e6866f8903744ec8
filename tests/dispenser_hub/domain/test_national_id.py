"""Norwegian national identity numbers: kinds, check digits (classic and 2032), birth dates, and privacy.

The literal numbers come from Skatteetaten's 2032 examples, NAV's and Skatteetaten's synthetic test data, and
from ``with_check_digits`` below, a generator written from the published rules independently of the module.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dispenser_hub.domain.national_id import (
    OID_DNR,
    OID_FNR,
    OID_HNR,
    CheckRule,
    IdKind,
    InvalidNationalIdError,
    NationalId,
)

_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

# (first year, last year, lowest individual number, highest) of folkeregisterforskriften § 2-2-1.
_CENTURY_RANGES = (
    (1854, 1899, 500, 749),
    (1900, 1999, 0, 499),
    (1940, 1999, 900, 999),
    (2000, 2039, 500, 999),
)


def with_check_digits(nine: str, remainder: int = 0) -> str | None:
    """Append both check digits; ``remainder`` 1-3 gives a number valid only under the 2032 rule.

    ``None`` when a check digit would be 10 (no such number exists).
    """
    k1 = (remainder - sum(w * int(c) for w, c in zip(_W1, nine, strict=True))) % 11
    if k1 == 10:
        return None
    ten = nine + str(k1)
    k2 = -sum(w * int(c) for w, c in zip(_W2, ten, strict=True)) % 11
    return None if k2 == 10 else ten + str(k2)


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, IdKind, date, CheckRule, bool]:
    """A valid number with what it encodes: (digits, kind, birth date, check rule, D-number day)."""
    first, last, lowest, highest = draw(st.sampled_from(_CENTURY_RANGES))
    born = draw(st.dates(date(first, 1, 1), date(last, 12, 31)))
    individual = draw(st.integers(lowest, highest))
    kind = draw(st.sampled_from(IdKind))
    d_day = kind is IdKind.DNR or (kind in {IdKind.HNR, IdKind.SYNTHETIC} and draw(st.booleans()))
    month = born.month + {IdKind.HNR: 40, IdKind.SYNTHETIC: 80}.get(kind, 0)
    day = born.day + (40 if d_day else 0)
    rule = draw(st.sampled_from(CheckRule))
    remainder = 0 if rule is CheckRule.CLASSIC else draw(st.integers(1, 3))
    number = with_check_digits(f"{day:02}{month:02}{born.year % 100:02}{individual:03}", remainder)
    assume(number is not None)
    assert number is not None
    return number, kind, born, rule, d_day


def _reason(text: str) -> str:
    with pytest.raises(InvalidNationalIdError) as caught:
        NationalId.parse(text)
    return caught.value.reason


# --- properties --------------------------------------------------------------------------------


@given(valid_numbers())
def test_generated_valid_numbers_round_trip(case: tuple[str, IdKind, date, CheckRule, bool]) -> None:
    number, kind, born, rule, d_day = case
    parsed = NationalId.parse(number)
    assert parsed.value == number
    assert NationalId.parse(f"{number[:6]} {number[6:]}") == parsed
    assert parsed.kind is kind
    assert parsed.check_rule is rule
    assert parsed.birth_date == (born if rule is CheckRule.CLASSIC else None)
    assert parsed.oid == (OID_HNR if kind is IdKind.HNR else OID_DNR if d_day else OID_FNR)
    shown = f"{parsed!s} {parsed!r}"
    assert number not in shown
    assert str(parsed) == f"{number[:6]}*****"


@given(valid_numbers(), st.integers(0, 10), st.integers(1, 9))
def test_any_single_digit_change_is_detected(
    case: tuple[str, IdKind, date, CheckRule, bool], position: int, shift: int
) -> None:
    number = case[0]
    digit = str((int(number[position]) + shift) % 10)
    with pytest.raises(InvalidNationalIdError):
        NationalId.parse(number[:position] + digit + number[position + 1 :])


def _error_message(text: str) -> str | None:
    try:
        NationalId.parse(text)
    except InvalidNationalIdError as error:
        return str(error)
    return None


@given(
    st.one_of(
        st.text(alphabet="0123456789", min_size=11, max_size=11),
        st.text(alphabet="0123456789 -x", min_size=7, max_size=14),
    )
)
def test_error_messages_never_contain_the_number(text: str) -> None:
    message = _error_message(text)
    digits = "".join(c for c in text if c.isdigit())
    assume(message is not None and len(digits) >= 5)
    assert message is not None
    assert digits not in message
    assert digits[-5:] not in message


# --- published and constructed examples ---------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "kind", "born", "rule"),
    [
        # Skatteetaten, "Nytt fødselsnummer fra 2032": the first number under each individual number has
        # remainder 0 (classic), the next ones 1-3 (2032 rule only).
        ("02013299997", IdKind.FNR, date(2032, 1, 2), CheckRule.CLASSIC),
        ("30108299920", IdKind.FNR, date(1982, 10, 30), CheckRule.CLASSIC),
        ("30108299939", IdKind.FNR, None, CheckRule.RULE_2032),
        # fnrinfo.no's worked example: individual 567 with year 99 is 1899.
        ("31129956715", IdKind.FNR, date(1899, 12, 31), CheckRule.CLASSIC),
        # Skatteetaten (Tenor) synthetic number: month + 80.
        ("23906799537", IdKind.SYNTHETIC, date(1967, 10, 23), CheckRule.CLASSIC),
        # NAV (Dolly) synthetic numbers add 40 to the month, like H-numbers; the second also raises the day.
        ("29422059278", IdKind.HNR, date(2020, 2, 29), CheckRule.CLASSIC),
        ("69422056629", IdKind.HNR, date(2020, 2, 29), CheckRule.CLASSIC),
        ("01019010046", IdKind.FNR, date(1990, 1, 1), CheckRule.CLASSIC),
        ("41019010110", IdKind.DNR, date(1990, 1, 1), CheckRule.CLASSIC),
        ("01419010029", IdKind.HNR, date(1990, 1, 1), CheckRule.CLASSIC),
        ("01819010001", IdKind.SYNTHETIC, date(1990, 1, 1), CheckRule.CLASSIC),
        ("41819010186", IdKind.SYNTHETIC, date(1990, 1, 1), CheckRule.CLASSIC),
    ],
)
def test_known_numbers(number: str, kind: IdKind, born: date | None, rule: CheckRule) -> None:
    parsed = NationalId.parse(number)
    assert (parsed.kind, parsed.birth_date, parsed.check_rule) == (kind, born, rule)


@pytest.mark.parametrize(
    ("number", "oid"),
    [
        ("01019010046", "2.16.578.1.12.4.1.4.1"),
        ("41019010110", "2.16.578.1.12.4.1.4.2"),
        ("01419010029", "2.16.578.1.12.4.1.4.3"),
        ("01819010001", "2.16.578.1.12.4.1.4.1"),  # synthetic stand-in for a fødselsnummer
        ("41819010186", "2.16.578.1.12.4.1.4.2"),  # synthetic stand-in for a D-number
    ],
)
def test_oid_follows_the_kind(number: str, oid: str) -> None:
    assert NationalId.parse(number).oid == oid


def test_leap_day_follows_the_century_of_the_individual_number() -> None:
    assert NationalId.parse("29020050088").birth_date == date(2000, 2, 29)  # 500-999, year 00: 2000, leap
    assert NationalId.parse("29029610086").birth_date == date(1996, 2, 29)
    with pytest.raises(InvalidNationalIdError, match="no day 29 of month 2 in 1900") as caught:
        NationalId.parse("29020010027")  # 000-499: 1900, not a leap year
    assert caught.value.reason == "date"
    assert _reason("69020010010") == "date"  # the same for a D-number
    with pytest.raises(InvalidNationalIdError, match="month 2 has no day 29"):
        NationalId.parse("29029710188")  # no century makes 97 a leap year


def test_century_unknown_when_the_number_cannot_tell() -> None:
    # Under the 2032 rule the individual number no longer gives the century: 29.02.00 may be 2000.
    assert NationalId.parse("29020010043").birth_date is None
    assert NationalId.parse("15057030027").check_rule is CheckRule.RULE_2032
    # 500-749 with year 40-53 fits no pre-2032 range; only numbers issued from 2032 can look like this.
    assert NationalId.parse("01014560013").birth_date is None


@pytest.mark.parametrize(
    ("text", "reason", "message"),
    [
        ("31049010039", "date", "month 4 has no day 31"),
        ("00019010046", "date", "digits 1-2"),
        ("72019010046", "date", "digits 1-2"),
        ("01139010046", "date", "digits 3-4"),
        ("01539010046", "date", "digits 3-4"),
        ("01939010046", "date", "digits 3-4"),
        ("81019010023", "unsupported", "FH-numbers"),
        ("0101901004a", "characters", "character 11 is 'a'"),
        ("010190-10046", "characters", "character 7 is '-'"),
        ("01 0190 10046", "characters", "character 3 is a space"),
        ("0101901004", "length", "11 digits, this has 10"),
        ("010190100466", "length", "this has 12"),
        ("", "length", "this has 0"),
        ("01019010086", "check_digit_1", "digit 10"),
        ("01019010047", "check_digit_2", "digit 11"),
    ],
)
def test_invalid_numbers_say_what_is_wrong(text: str, reason: str, message: str) -> None:
    with pytest.raises(InvalidNationalIdError, match=message) as caught:
        NationalId.parse(text)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)


def test_parse_accepts_one_space_after_the_date_and_surrounding_whitespace() -> None:
    expected = NationalId("01019010046")
    assert NationalId.parse("010190 10046") == expected
    assert NationalId.parse("  01019010046\n") == expected
    assert hash(NationalId.parse("010190 10046")) == hash(expected)
    assert _reason("010190  10046") == "characters"
    with pytest.raises(InvalidNationalIdError, match="character 7 is a space"):
        NationalId("010190 10046")  # the constructor takes the bare digits only


def test_display_forms_hide_the_personal_number() -> None:
    number = NationalId.parse("01019010046")
    assert number.masked == "010190*****"
    assert str(number) == "010190*****"
    assert f"{number}" == "010190*****"
    assert repr(number) == "NationalId(masked='010190*****', kind=FNR)"
    assert repr([number]) == "[NationalId(masked='010190*****', kind=FNR)]"
    assert number.value == "01019010046"


def test_national_id_is_immutable() -> None:
    number = NationalId.parse("01019010046")
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.value = "41019010110"  # type: ignore[misc]
