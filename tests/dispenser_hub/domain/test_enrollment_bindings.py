"""Enrollment codes and their checks; binding one device to one patient with history."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from dispenser_hub.domain.bindings import BindingError, bind, unbind
from dispenser_hub.domain.enrollment import check_request, new_code, normalise_code
from dispenser_hub.domain.model import (
    Device,
    DeviceStatus,
    EnrollmentCode,
    Patient,
    Responsibility,
)
from firmware_protocol.messages import Family, RejectionReason
from firmware_protocol.messages.provisioning import ENROLLMENT_CODE_PATTERN

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DEVICE = Device("RM3-000017", "SN-17", Family.MULTIDOSE_ROLL, "RollMate 3")
CODE = EnrollmentCode("RM3-000017", "hash", expires_at=T0 + timedelta(days=7), created_at=T0, created_by="op")


def test_new_codes_match_the_protocol_pattern_and_differ() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(re.fullmatch(ENROLLMENT_CODE_PATTERN, code) for code in codes)


def test_codes_read_aloud_normalise_to_the_same_form() -> None:
    assert normalise_code("k7qf-9m2d xc4p-8wrt") == normalise_code("K7QF9M2DXC4P8WRT") == "K7QF9M2DXC4P8WRT"
    assert normalise_code("O1IL") == normalise_code("0111")


def test_a_valid_code_for_the_right_device_is_accepted() -> None:
    assert check_request(CODE, DEVICE, device_id="RM3-000017", serial="SN-17", now=T0) is None
    enrolled = dataclasses.replace(DEVICE, status=DeviceStatus.ACTIVE)  # re-enrollment after a reset
    assert check_request(CODE, enrolled, device_id="RM3-000017", serial="SN-17", now=T0) is None


@pytest.mark.parametrize(
    ("code", "device", "device_id", "serial", "now", "reason"),
    [
        (None, DEVICE, "RM3-000017", "SN-17", T0, RejectionReason.CODE_UNKNOWN),
        (CODE, DEVICE, "RM3-000018", "SN-17", T0, RejectionReason.CODE_MISMATCH),
        (CODE, DEVICE, "RM3-000017", "SN-99", T0, RejectionReason.CODE_MISMATCH),
        (CODE, None, "RM3-000017", "SN-17", T0, RejectionReason.CODE_MISMATCH),
        (CODE, DEVICE, "RM3-000017", "SN-17", T0 + timedelta(days=7), RejectionReason.CODE_EXPIRED),
        (dataclasses.replace(CODE, used_at=T0), DEVICE, "RM3-000017", "SN-17", T0, RejectionReason.CODE_USED),
        (
            CODE,
            dataclasses.replace(DEVICE, status=DeviceStatus.RETIRED),
            "RM3-000017",
            "SN-17",
            T0,
            RejectionReason.DEVICE_RETIRED,
        ),
    ],
)
def test_refusals_name_the_reason_and_what_to_do(  # noqa: PLR0917 - one parametrized case per row
    code: EnrollmentCode | None,
    device: Device | None,
    device_id: str,
    serial: str,
    now: datetime,
    reason: RejectionReason,
) -> None:
    refusal = check_request(code, device, device_id=device_id, serial=serial, now=now)
    assert refusal is not None
    assert refusal.reason is reason
    assert "response centre" in refusal.detail


PATIENT = Patient("Kari", "01019012345", Responsibility.HOME_CARE, id=4)


def test_bind_records_who_when_why_and_unbind_keeps_the_history() -> None:
    binding = bind(
        DEVICE, PATIENT, device_binding=None, patient_binding=None, by="op", reason=" installed ", now=T0
    )
    assert (binding.device_id, binding.patient_id, binding.reason, binding.active) == (
        "RM3-000017",
        4,
        "installed",
        True,
    )
    ended = unbind(binding, by="op2", reason="moved", now=T0 + timedelta(days=1))
    assert not ended.active
    assert (ended.unbound_by, ended.unbind_reason, ended.bound_at) == ("op2", "moved", T0)
    with pytest.raises(BindingError, match="no active binding"):
        unbind(ended, by="op", reason="again", now=T0)


def test_rebinding_needs_an_unbind_first_on_either_side() -> None:
    active = bind(DEVICE, PATIENT, device_binding=None, patient_binding=None, by="op", reason="r", now=T0)
    other_patient = dataclasses.replace(PATIENT, id=5)
    with pytest.raises(BindingError, match="bound to patient 4; unbind it first"):
        bind(DEVICE, other_patient, device_binding=active, patient_binding=None, by="op", reason="r", now=T0)
    other_device = dataclasses.replace(DEVICE, device_id="RM3-000018")
    with pytest.raises(BindingError, match="already has dispenser RM3-000017"):
        bind(other_device, PATIENT, device_binding=None, patient_binding=active, by="op", reason="r", now=T0)


@pytest.mark.parametrize(
    ("device", "patient", "by", "reason", "complaint"),
    [
        (dataclasses.replace(DEVICE, status=DeviceStatus.RETIRED), PATIENT, "op", "r", "retired"),
        (DEVICE, dataclasses.replace(PATIENT, id=None), "op", "r", "stored"),
        (DEVICE, PATIENT, "", "r", "who"),
        (DEVICE, PATIENT, "op", "  ", "reason"),
    ],
)
def test_bind_refuses_with_a_message(
    device: Device, patient: Patient, by: str, reason: str, complaint: str
) -> None:
    with pytest.raises(BindingError, match=complaint):
        bind(device, patient, device_binding=None, patient_binding=None, by=by, reason=reason, now=T0)


def test_patient_repr_leaks_no_identifiers() -> None:
    text = repr(PATIENT)
    assert "01019012345" not in text
    assert "Kari" not in text
