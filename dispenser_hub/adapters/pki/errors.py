"""What can go wrong with the device CA, as exceptions whose messages tell an operator what to do.

Every error is a ``PkiError``. ``CsrRejectedError`` is the one a device causes (a bad certificate signing
request); the others are about the CA's own files and are the operator's to fix.
"""

from __future__ import annotations

from typing import ClassVar

from firmware_protocol.messages import RejectionReason


class PkiError(Exception):
    """Base class of the PKI adapter's errors."""


class CaExistsError(PkiError):
    """``init`` found CA files already there; it never overwrites them (rotating a CA needs a plan)."""


class CaMissingError(PkiError):
    """``load`` found no CA, or only part of one."""


class CaPassphraseError(PkiError):
    """A key file is encrypted and no or the wrong passphrase was given, or the reverse."""


class KeyFilePermissionError(PkiError):
    """A private key file is readable or writable by others than its owner; refused, as ssh does."""


class CaInvalidError(PkiError):
    """The CA's files are unreadable, do not belong together, or the CA is not valid at ``now``."""


class CsrRejectedError(PkiError, ValueError):
    """A device's certificate signing request was refused.

    ``reason`` says what is wrong, in at most 200 characters, so that it fits ``ProvisionRejected.detail``;
    the wire reason for such a refusal is ``rejection_reason`` (``csr_invalid``).
    """

    rejection_reason: ClassVar[RejectionReason] = RejectionReason.CSR_INVALID

    def __init__(self, reason: str) -> None:
        """Refuse a CSR because of ``reason`` (for people; becomes the message)."""
        super().__init__(reason)
        self.reason = reason
