"""The checks a device's certificate signing request must pass before the CA signs anything.

Rules, in order (the first that fails raises ``CsrRejectedError`` saying what is wrong):

1. At most ``MAX_CSR_PEM_CHARS`` characters (the limit of ``ProvisionRequest.csr``), ASCII, one readable
   PEM PKCS#10 request.
2. The key is Ed25519: the protocol signs envelopes with the same key the certificate is for, and
   envelope signatures are Ed25519 only.
3. The request's self-signature verifies: it proves possession of the private key, and that nobody
   changed the subject on the way.
4. The subject has exactly one common name, and it equals the device id the enrollment is for.
   ``device_sim``'s ``DeviceIdentity.csr_pem`` sends ``CN=<device id>`` and PROTOCOL.md says the subject
   CN is the device id, so a request without a CN is refused rather than silently completed: a firmware
   that omits it does not follow the protocol, and the installer should hear so at enrollment, not when
   the broker's ACL (which reads the certificate CN) later refuses the device.

Other subject attributes and any extensions the device asks for are allowed but never copied: the CA
alone decides what the certificate says (see ``CertificateAuthority.issue``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from dispenser_hub.adapters.pki.errors import CsrRejectedError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

MAX_CSR_PEM_CHARS = 4096
"""The longest CSR accepted, in characters: the same limit as ``ProvisionRequest.csr``."""
_SHOWN_CHARS = 40


def _shown(value: str | bytes) -> str:
    """A device-chosen value, quoted and shortened, safe to put in a message for people."""
    text = value if isinstance(value, str) else value.decode("ascii", "replace")
    quoted = repr(text)
    return quoted if len(quoted) <= _SHOWN_CHARS else quoted[: _SHOWN_CHARS - 4] + "...'"


def _key_kind(key: CertificatePublicKeyTypes) -> str:
    """'an RSA-2048', 'an EC secp256r1', ...: what a refused key is, for the message."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC {key.curve.name}"
    if isinstance(key, ed448.Ed448PublicKey):
        return "an Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"a DSA-{key.key_size}"
    return "another kind of"


def checked_csr_key(csr_pem: str, device_id: str) -> Ed25519PublicKey:
    """The Ed25519 key a CSR certifies, if the CSR passes every rule of this module."""
    if len(csr_pem) > MAX_CSR_PEM_CHARS:
        raise CsrRejectedError(f"the CSR is longer than {MAX_CSR_PEM_CHARS} characters")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CsrRejectedError("not a readable PEM certificate signing request (PKCS#10)") from None
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CsrRejectedError("the CSR's public key is unreadable or of an unsupported kind") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CsrRejectedError(f"the CSR is for {_key_kind(key)} key; the protocol requires an Ed25519 key")
    if not csr.is_signature_valid:
        raise CsrRejectedError(
            "the CSR's self-signature does not verify: it was altered or not signed with its own key"
        )
    try:
        common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        raise CsrRejectedError("the CSR's subject is not a readable X.509 name") from None
    if not common_names:
        raise CsrRejectedError(f"the CSR's subject has no common name (CN); it must be {device_id!r}")
    if len(common_names) > 1:
        count = len(common_names)
        raise CsrRejectedError(f"the CSR's subject has {count} common names; it must have one, {device_id!r}")
    common_name = common_names[0].value
    if common_name != device_id:
        raise CsrRejectedError(
            f"the CSR's subject CN is {_shown(common_name)}, but this enrollment is for device {device_id!r}"
        )
    return key
