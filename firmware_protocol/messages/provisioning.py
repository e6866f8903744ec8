"""Provisioning by claim: an enrollment code and a certificate signing request in, a certificate out.

Flow (modelled on AWS IoT fleet provisioning by claim): an operator registers the device's serial and
receives a one-time enrollment code with an expiry; the device, connected with the shared claim
credential that the broker ACL allows only on its own ``prov/*`` topics, generates an Ed25519 key pair,
and sends ``prov.request`` with the code and a CSR for that key. The request's envelope is signed with
the new key (proof of possession; its ``kid`` is that key's id). The hub answers ``prov.accepted`` with
the certificate and the hub's public key, or ``prov.rejected`` with a reason.

The device trusts the response because it arrives over TLS from a broker whose certificate chains to
the CA shipped with the device, and only the hub may publish on ``prov/response`` (broker ACL). It checks
the response's signature with the enclosed ``hub_key`` and, if a hub key id was pinned at the factory,
that ``hub_kid`` equals it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from firmware_protocol.messages.common import Body, Family, KeyId, Ref, Text
from firmware_protocol.topics import Channel

ENROLLMENT_CODE_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){2,3}$"
"""Enrollment codes: 3 or 4 groups of 4 Crockford base32 characters, e.g. ``K7QF-9M2D-XC4P``."""
_PEM_CSR = r"^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n?$"
_PEM_CERT = r"^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$"
_RAW_KEY_B64URL = r"^[A-Za-z0-9_-]{43}$"

_EXAMPLE_CSR = (
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIGUMEgCAQAwFTETMBEGA1UEAwwKUk0zLTAwMDAxNzAqMAUGAytlcAMhAGCVMUfM\n"
    "WPbCzScVkMS/jxS9cSmEQDx88TPxCemXyEGgoAAwBQYDK2VwA0EAjEUaISODVX85\n"
    "8MXZzAVKtyfKBjZAFce1jkRXtP8km1JKH8TD5cWWGsJF4OqkrPpkt9veUHpwnGA1\n"
    "tDI9n9zECw==\n"
    "-----END CERTIFICATE REQUEST-----\n"
)
"""A real CSR for the published test device key (``vectors/keys.json``), subject CN ``RM3-000017``."""
_EXAMPLE_CERT = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBMzCB5qADAgECAgIgATAFBgMrZXAwOjE4MDYGA1UEAwwvZGlzcGVuc2VyLWh1\n"
    "YiBURVNUIENBIC0gbmV2ZXIgdXNlIGluIHByb2R1Y3Rpb24wHhcNMjYxMTIzMDAw\n"
    "MDAwWhcNMzExMTIzMDAwMDAwWjAVMRMwEQYDVQQDDApSTTMtMDAwMDE3MCowBQYD\n"
    "K2VwAyEAYJUxR8xY9sLNJxWQxL+PFL1xKYRAPHzxM/EJ6ZfIQaCjNTAzMAwGA1Ud\n"
    "EwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMCMAUG\n"
    "AytlcANBAGiX2mIEwyKVaBLBYosLF+3C12KlsTa5LB1WqzY2K9ekQ1Ay9eoS1q7H\n"
    "QgeamytUyKX1V5iUnqqyeAKCV5A0QwI=\n"
    "-----END CERTIFICATE-----\n"
)
_EXAMPLE_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBSTCB/KADAgECAgIQATAFBgMrZXAwOjE4MDYGA1UEAwwvZGlzcGVuc2VyLWh1\n"
    "YiBURVNUIENBIC0gbmV2ZXIgdXNlIGluIHByb2R1Y3Rpb24wHhcNMjYwMTAxMDAw\n"
    "MDAwWhcNMzYwMTAxMDAwMDAwWjA6MTgwNgYDVQQDDC9kaXNwZW5zZXItaHViIFRF\n"
    "U1QgQ0EgLSBuZXZlciB1c2UgaW4gcHJvZHVjdGlvbjAqMAUGAytlcAMhALc3Hmzl\n"
    "DFqY7nxnwCJkZpmLwRAGDNEgESFyzE7rExo1oyYwJDASBgNVHRMBAf8ECDAGAQH/\n"
    "AgEAMA4GA1UdDwEB/wQEAwIBBjAFBgMrZXADQQByeKur5cos8zwspuMFoPUa0UNe\n"
    "0rSd51pi9ZlUvZouGyOx8UeA05i0Vo/ENChCfVrWygYRV+1kjE+rezvFtc0N\n"
    "-----END CERTIFICATE-----\n"
)


class ProvisionRequest(Body):
    """Enrollment code and CSR; the envelope is signed with the key the CSR certifies."""

    TYPE: ClassVar[str] = "prov.request"
    CHANNEL: ClassVar[Channel] = Channel.PROV_REQUEST
    enrollment_code: Annotated[str, StringConstraints(pattern=ENROLLMENT_CODE_PATTERN)] = Field(
        description="One-time code from the operator: 3 or 4 groups of 4 Crockford base32 characters."
    )
    csr: Annotated[str, StringConstraints(max_length=4096, pattern=_PEM_CSR)] = Field(
        description="PEM PKCS#10 request for an Ed25519 key; subject CN is the device id."
    )
    serial: Ref = Field(description="Manufacturer serial number, as registered by the operator.")
    family: Family = Field(description="Dispenser family: multidose roll or dose-pot carousel.")
    model: Text = Field(description="Product model name, for people (e.g. RollMate 3).")
    firmware: Text = Field(description="Firmware version, for people.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "enrollment_code": "K7QF-9M2D-XC4P",
        "csr": _EXAMPLE_CSR,
        "serial": "RM3-000017",
        "family": "multidose_roll",
        "model": "RollMate 3",
        "firmware": "3.2.1",
    }


class ProvisionAccepted(Body):
    """The device is enrolled: its certificate, the CA chain and the hub's signing key."""

    TYPE: ClassVar[str] = "prov.accepted"
    REQUIRES_CORR_ID: ClassVar[bool] = True
    CHANNEL: ClassVar[Channel] = Channel.PROV_RESPONSE
    certificate: Annotated[str, StringConstraints(max_length=8192, pattern=_PEM_CERT)] = Field(
        description="PEM X.509 certificate of the device key, for TLS client authentication."
    )
    ca_certificate: Annotated[str, StringConstraints(max_length=8192, pattern=_PEM_CERT)] = Field(
        description="PEM certificate of the CA that issued the device certificate."
    )
    device_kid: KeyId = Field(description="Key id of the enrolled device key (the CSR's key).")
    hub_key: Annotated[str, StringConstraints(pattern=_RAW_KEY_B64URL)] = Field(
        description="The hub's raw 32-byte Ed25519 public key, base64url without padding."
    )
    hub_kid: KeyId = Field(description="Key id of hub_key; equals sig.kid and the pinned hub key id, if any.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "certificate": _EXAMPLE_CERT,
        "ca_certificate": _EXAMPLE_CA,
        "device_kid": "a6f6002b0b3ff12f",
        "hub_key": "ruLFtbjMvGKWb6lfCksQMlA0ip6TKmGlwCJn3cKUDCM",
        "hub_kid": "9ba7568d9aa79d1f",
    }


class RejectionReason(StrEnum):
    """Why enrollment was refused."""

    CODE_UNKNOWN = "code_unknown"
    CODE_EXPIRED = "code_expired"
    CODE_USED = "code_used"
    CODE_MISMATCH = "code_mismatch"
    """The code was issued for another serial or device id."""
    CSR_INVALID = "csr_invalid"
    DEVICE_RETIRED = "device_retired"
    RATE_LIMITED = "rate_limited"


class ProvisionRejected(Body):
    """Enrollment refused; ``detail`` says what the installer should do."""

    TYPE: ClassVar[str] = "prov.rejected"
    REQUIRES_CORR_ID: ClassVar[bool] = True
    CHANNEL: ClassVar[Channel] = Channel.PROV_RESPONSE
    reason: RejectionReason = Field(description="Why enrollment was refused.")
    detail: Text = Field(description="What the installer should do, for people.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "reason": "code_expired",
        "detail": "The enrollment code expired at 2026-11-22 16:00. Ask the response centre for a new code.",
    }


PROVISIONING_BODIES: tuple[type[Body], ...] = (ProvisionRequest, ProvisionAccepted, ProvisionRejected)
