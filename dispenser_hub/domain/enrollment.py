"""Enrollment: one-time codes an operator hands an installer, and the decision on a device's request.

Rules:

- A code is 16 random Crockford base32 characters in four groups (``K7QF-9M2D-XC4P-8WRT``: 80 bits, enough
  that guessing within a code's lifetime is hopeless), typed into the device by the installer. Input is
  normalised the Crockford way (case-insensitive; ``O`` reads as ``0``, ``I``/``L`` as ``1``; spaces and
  hyphens ignored) before hashing, so a code read aloud over the phone still works.
- Only a keyed hash of the code is stored; the operator sees the code once, when it is made.
- A code belongs to one device (its id and serial) and expires (``enrollment_code_ttl_s``, a week by
  default). It is used at most once. Making a new code for a device does not cancel older unused codes
  unless the operator revokes them; each expires on its own.
- A request is refused, with the protocol's ``RejectionReason``, when the code is unknown, expired or used,
  names another device or serial, or the device is retired. A device that is already enrolled may enroll
  again with a fresh code (a factory reset, a replaced board): the new key replaces the old one.

Pure: the caller looks up the code by hash and the device, and passes ``now``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import DeviceStatus
from firmware_protocol.messages import RejectionReason

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Device, EnrollmentCode

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
GROUPS = 4
GROUP_SIZE = 4
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    """A fresh random code, e.g. ``K7QF-9M2D-XC4P-8WRT``."""
    chars = "".join(secrets.choice(CROCKFORD) for _ in range(GROUPS * GROUP_SIZE))
    return "-".join(chars[i : i + GROUP_SIZE] for i in range(0, len(chars), GROUP_SIZE))


def normalise_code(text: str) -> str:
    """The canonical form of a typed code (see the module rules); the form that is hashed."""
    return "".join(text.upper().translate(_READ_AS).split()).replace("-", "")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an enrollment request is refused: the protocol reason and what the installer should do."""

    reason: RejectionReason
    detail: str


def check_request(
    code: EnrollmentCode | None, device: Device | None, *, device_id: str, serial: str, now: datetime
) -> Refusal | None:
    """Decide an enrollment request for ``device_id``/``serial`` with the stored code and device.

    Returns ``None`` when the device may enroll (the caller then issues the certificate, stores the key
    and marks the code used), else the refusal to send back.
    """
    ask = "Ask the response centre for a new enrollment code."
    if code is None:
        return Refusal(RejectionReason.CODE_UNKNOWN, f"The enrollment code is not known. Check it. {ask}")
    if device is None or code.device_id != device_id or device.serial != serial:
        return Refusal(
            RejectionReason.CODE_MISMATCH,
            f"The enrollment code was issued for another device. Check the serial and id. {ask}",
        )
    if device.status is DeviceStatus.RETIRED:
        return Refusal(
            RejectionReason.DEVICE_RETIRED,
            "This device is retired and cannot be enrolled. Contact the response centre.",
        )
    if code.used_at is not None:
        return Refusal(RejectionReason.CODE_USED, f"The enrollment code has already been used. {ask}")
    if now >= code.expires_at:
        return Refusal(RejectionReason.CODE_EXPIRED, f"The enrollment code has expired. {ask}")
    return None
