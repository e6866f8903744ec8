"""The hub's PKI: the device certificate authority and the hub's downlink signing key (``cryptography``).

At enrollment (``prov.request``) the provisioning service hands the device's CSR to
``CertificateAuthority.issue``, which checks it (readable, Ed25519, valid self-signature, subject CN equal to
the device id the enrollment code was issued for) and issues a TLS client certificate; ``prov.accepted``
then carries the certificate, ``ca_certificate_pem``, ``hub_public_key_b64`` and ``hub_kid``, and is sealed
with ``hub_signer``. ``crl`` produces the revocation list Mosquitto reads when a device is retired.

The rules are stated where they live: file handling and permissions in ``ca`` and ``_keyfiles``, the CSR
checks in ``_csr``, the errors and what they mean in ``errors``.

Typical use::

    ca = CertificateAuthority.init(path, organisation="Example kommune", now=now)  # once: `pki init`
    ca = CertificateAuthority.load(path)  # at every start
    issued = ca.issue(request.csr, device_id="RM3-000017", now=now)
"""

from dispenser_hub.adapters.pki._certificates import BACKDATE
from dispenser_hub.adapters.pki._csr import MAX_CSR_PEM_CHARS
from dispenser_hub.adapters.pki.ca import (
    CA_CERTIFICATE_FILE,
    CA_FILES,
    CA_KEY_FILE,
    DEFAULT_CA_NAME,
    HUB_SIGNING_KEY_FILE,
    CertificateAuthority,
    IssuedCertificate,
)
from dispenser_hub.adapters.pki.errors import (
    CaExistsError,
    CaInvalidError,
    CaMissingError,
    CaPassphraseError,
    CsrRejectedError,
    KeyFilePermissionError,
    PkiError,
)

__all__ = [
    "BACKDATE",
    "CA_CERTIFICATE_FILE",
    "CA_FILES",
    "CA_KEY_FILE",
    "DEFAULT_CA_NAME",
    "HUB_SIGNING_KEY_FILE",
    "MAX_CSR_PEM_CHARS",
    "CaExistsError",
    "CaInvalidError",
    "CaMissingError",
    "CaPassphraseError",
    "CertificateAuthority",
    "CsrRejectedError",
    "IssuedCertificate",
    "KeyFilePermissionError",
    "PkiError",
]
