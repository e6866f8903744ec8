"""The error hierarchy: one class per stable code, and the codes a device may send back."""

from __future__ import annotations

from typing import get_args

import pytest

from firmware_protocol.errors import ERROR_CLASSES, ErrorCode, MalformedError, ProtocolError, SchemaError
from firmware_protocol.messages import NackReason


def test_each_code_has_exactly_one_class() -> None:
    assert set(ERROR_CLASSES) == set(ErrorCode)
    for code, cls in ERROR_CLASSES.items():
        assert cls.code is code
        assert issubclass(cls, ProtocolError)
    assert len(set(ERROR_CLASSES.values())) == len(ErrorCode)
    subclasses = {
        cls for cls in ProtocolError.__subclasses__() if cls.__module__ == "firmware_protocol.errors"
    }
    assert subclasses == set(ERROR_CLASSES.values())


def test_codes_are_unique_and_stable_looking() -> None:
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    assert all(value.startswith("E_") and value.isupper() for value in values)


def test_nack_reasons_cover_every_error_code() -> None:
    reasons = set(get_args(NackReason))
    assert {code.value for code in ErrorCode} <= reasons
    assert reasons - {code.value for code in ErrorCode} == {"E_NOT_SUPPORTED", "E_INVALID_STATE"}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_as_dict_and_message(code: ErrorCode) -> None:
    error = ERROR_CLASSES[code]("what is wrong", field="body.slots.3.due")
    assert error.as_dict() == {"code": code.value, "field": "body.slots.3.due", "detail": "what is wrong"}
    assert str(error) == f"{code.value} at body.slots.3.due: what is wrong"
    whole = ERROR_CLASSES[code]("bad")
    assert whole.as_dict() == {"code": code.value, "field": None, "detail": "bad"}
    assert str(whole) == f"{code.value}: bad"


def test_base_class_defaults_to_malformed() -> None:
    assert ProtocolError("x").code is ErrorCode.MALFORMED
    assert isinstance(SchemaError("x"), ProtocolError)
    assert not isinstance(SchemaError("x"), MalformedError)
