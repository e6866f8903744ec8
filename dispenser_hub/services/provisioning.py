"""Enrollment: a device's ``prov.request`` (code + CSR) answered with a certificate or a refusal.

Rules (the code rules are in ``domain.enrollment``):

- The request is signed by the key in its CSR (proof of possession); the stateless checks of
  ``firmware_protocol`` run first, so a forged or malformed request is dead-lettered like any message.
- Accepted: the CA certifies the CSR's key for the device id, the key becomes the device's registered key
  (replacing an earlier one: a re-enrolled device's old key is refused from now on), the device is
  ``enrolled`` until its first birth, the code is used up, and ``prov.accepted`` goes out through the
  outbox with the hub key the device pins.
- A device that asks again with the same key after its code was used (it missed the answer) gets the same
  certificate again instead of a refusal: enrollment is idempotent for the key that enrolled.
- Refused: ``prov.rejected`` with the reason and what the installer should do. Every decision is audited.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dispenser_hub.domain.enrollment import Refusal, check_request, normalise_code
from dispenser_hub.domain.model import AuditEntry, DeviceStatus
from dispenser_hub.services.downlink import enqueue
from firmware_protocol.messages import ProvisionAccepted, ProvisionRejected, RejectionReason
from firmware_protocol.signing import b64url, kid_of, raw_public_key

if TYPE_CHECKING:
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from dispenser_hub.domain.model import Device, EnrollmentCode
    from dispenser_hub.ports import CertificateIssuer, FieldProtector, UnitOfWork
    from firmware_protocol import Received, Signer
    from firmware_protocol.messages import ProvisionRequest

CODE_CONTEXT = "enrollment.code"
"""The ``FieldProtector`` context enrollment codes are hashed under."""
SYSTEM = "system"


def code_hash(protector: FieldProtector, code: str) -> str:
    """The stored form of an enrollment code (a keyed hash of its normalised form)."""
    return protector.lookup_hash(normalise_code(code), context=CODE_CONTEXT)


class Provisioning:
    """Answers enrollment requests inside the ingest transaction."""

    def __init__(self, issuer: CertificateIssuer, hub_signer: Signer, protector: FieldProtector) -> None:
        """Issue certificates with ``issuer``; tell devices to pin ``hub_signer``'s key."""
        self._issuer = issuer
        self._hub_key = b64url(raw_public_key(hub_signer.public_key))
        self._hub_kid = hub_signer.kid
        self._protector = protector

    def handle(self, uow: UnitOfWork, received: Received, request: ProvisionRequest, now: datetime) -> bool:
        """Decide a verified request; returns True when the device was (or already is) enrolled."""
        envelope = received.envelope
        device_id = envelope.device
        key = received.enrollment_key
        assert key is not None  # noqa: S101 - decode() sets it for every prov.request
        key_b64 = b64url(raw_public_key(key))
        code = uow.enrollment_codes.find(code_hash(self._protector, request.enrollment_code))
        device = uow.devices.get(device_id)
        refusal = check_request(code, device, device_id=device_id, serial=request.serial, now=now)
        if self._already_enrolled(device, refusal, key_b64):
            assert device is not None  # noqa: S101 - _already_enrolled checked it
            self._accept(uow, device, envelope.msg_id, now)  # the device missed our answer
            return True
        if refusal is None and device is not None and code is not None:
            refusal = self._enroll(uow, device, code, request, key, now)
            if refusal is None:
                self._accept(uow, uow.devices.get(device_id) or device, envelope.msg_id, now)
                return True
        assert refusal is not None  # noqa: S101 - check_request refuses when device or code is missing
        if device is not None:
            audit = AuditEntry(
                now, SYSTEM, "device.enroll_refused", f"device:{device_id}", refusal.reason.value
            )
            uow.audit.add(audit)
        rejected = ProvisionRejected(reason=refusal.reason, detail=refusal.detail)
        enqueue(uow, device_id, rejected, by=SYSTEM, now=now, corr_id=envelope.msg_id)
        return False

    def _enroll(  # noqa: PLR0917 - the facts of one decision
        self,
        uow: UnitOfWork,
        device: Device,
        code: EnrollmentCode,
        request: ProvisionRequest,
        key: Ed25519PublicKey,
        now: datetime,
    ) -> Refusal | None:
        """Certify the key and register it (``None``), or say why not."""
        if request.family is not device.family:
            return Refusal(
                RejectionReason.CODE_MISMATCH,
                f"This code is for a {device.family.value} dispenser, not {request.family.value}. "
                "Check the device. Ask the response centre for a new enrollment code.",
            )
        try:
            issued = self._issuer.issue(request.csr, device_id=device.device_id, now=now)
        except ValueError as exc:
            return Refusal(RejectionReason.CSR_INVALID, f"The certificate request was refused: {exc}")
        uow.devices.update(
            dataclasses.replace(
                device,
                status=DeviceStatus.ENROLLED,
                public_key=b64url(raw_public_key(key)),
                kid=kid_of(key),
                certificate_pem=issued.pem,
                certificate_serial=issued.serial,
                enrolled_at=now,
                firmware=request.firmware,
                model=request.model or device.model,
            )
        )
        uow.enrollment_codes.update(dataclasses.replace(code, used_at=now))
        uow.audit.add(
            AuditEntry(now, SYSTEM, "device.enroll", f"device:{device.device_id}", f"kid {kid_of(key)}")
        )
        return None

    @staticmethod
    def _already_enrolled(device: Device | None, refusal: Refusal | None, key_b64: str) -> bool:
        """A used code, asked again with the key that used it: the device missed ``prov.accepted``."""
        return (
            device is not None
            and refusal is not None
            and refusal.reason is RejectionReason.CODE_USED
            and device.public_key == key_b64
            and device.certificate_pem is not None
        )

    def _accept(self, uow: UnitOfWork, device: Device, request_id: str, now: datetime) -> None:
        assert device.certificate_pem is not None  # noqa: S101 - set before accepting
        assert device.kid is not None  # noqa: S101 - set with the certificate
        accepted = ProvisionAccepted(
            certificate=device.certificate_pem,
            ca_certificate=self._issuer.ca_certificate_pem,
            device_kid=device.kid,
            hub_key=self._hub_key,
            hub_kid=self._hub_kid,
        )
        enqueue(uow, device.device_id, accepted, by=SYSTEM, now=now, corr_id=request_id)
