"""Binding a dispenser to a patient: one active patient per device, one active dispenser per patient.

Rules:

- A device can be bound only when it is not retired and has no active binding; a patient only when they
  have no active binding. Rebinding needs an explicit unbind first (with who and why), so a device never
  silently changes hands: everything the device reports is attributed to exactly one patient at a time,
  and the roll check (issue: roll-to-patient binding) compares rolls against that patient.
- Every bind and unbind records who, when and why; ended bindings stay as history.
- Retiring a device ends its active binding (reason "device retired").

Pure: the caller passes the current active bindings and ``now``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import Binding, DeviceStatus

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Device, Patient


class BindingError(ValueError):
    """A bind or unbind the rules do not allow; the message says what to do instead."""


def bind(
    device: Device,
    patient: Patient,
    *,
    device_binding: Binding | None,
    patient_binding: Binding | None,
    by: str,
    reason: str,
    now: datetime,
) -> Binding:
    """A new active binding of ``device`` to ``patient`` (``BindingError`` if the rules forbid it)."""
    if patient.id is None:
        msg = "the patient must be stored before binding"
        raise BindingError(msg)
    if device.status is DeviceStatus.RETIRED:
        msg = f"device {device.device_id} is retired and cannot be bound"
        raise BindingError(msg)
    if device_binding is not None and device_binding.active:
        msg = (
            f"device {device.device_id} is bound to patient {device_binding.patient_id}; "
            "unbind it first (with a reason)"
        )
        raise BindingError(msg)
    if patient_binding is not None and patient_binding.active:
        msg = (
            f"patient {patient.id} already has dispenser {patient_binding.device_id}; "
            "unbind that one first (with a reason)"
        )
        raise BindingError(msg)
    _require(by=by, reason=reason)
    return Binding(device.device_id, patient.id, bound_at=now, bound_by=by, reason=reason.strip())


def unbind(binding: Binding | None, *, by: str, reason: str, now: datetime) -> Binding:
    """End an active binding (``BindingError`` if there is none)."""
    if binding is None or not binding.active:
        msg = "there is no active binding to end"
        raise BindingError(msg)
    _require(by=by, reason=reason)
    return dataclasses.replace(binding, unbound_at=now, unbound_by=by, unbind_reason=reason.strip())


def _require(*, by: str, reason: str) -> None:
    if not by.strip():
        msg = "who does it must be given"
        raise BindingError(msg)
    if not reason.strip():
        msg = "a reason must be given (e.g. 'new dispenser installed', 'patient moved to a nursing home')"
        raise BindingError(msg)
