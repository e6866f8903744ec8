"""Private key files: written once with owner-only permissions, read back only if they still have them.

Rules:

* A new file is created exclusively (``O_EXCL``): an existing file is never overwritten, and two
  ``pki init`` runs racing each other cannot both succeed. Its mode is set explicitly (0600 for keys,
  0644 for certificates), whatever the process umask.
* Keys are PEM PKCS#8, encrypted with the best encryption ``cryptography`` offers when a passphrase is
  given (PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC).
* On POSIX, a key file that its group or others may read, write or execute is refused before it is read,
  as ssh refuses such an identity file: the key may already be known to others, and silently tightening
  the mode would hide that. Windows has no such mode bits, so the check is skipped there.
* A passphrase is required exactly when the file is encrypted: a passphrase given for an unencrypted key is
  refused too, so that nobody believes a key is protected when it is not.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dispenser_hub.adapters.pki.errors import CaInvalidError, CaPassphraseError, KeyFilePermissionError

if TYPE_CHECKING:
    from pathlib import Path

KEY_FILE_MODE = 0o600
CERTIFICATE_FILE_MODE = 0o644
_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def key_pem(key: Ed25519PrivateKey, passphrase: bytes | None) -> bytes:
    """The PEM PKCS#8 form of ``key``, encrypted with ``passphrase`` if given."""
    if passphrase is not None and not passphrase:
        raise ValueError("the passphrase must not be empty; give None for an unencrypted key")
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase is not None:
        encryption = serialization.BestAvailableEncryption(passphrase)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data`` and exactly ``mode``; ``FileExistsError`` if it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    path.chmod(mode)


def check_owner_only(path: Path) -> None:
    """Refuse a key file that others than its owner may access (POSIX only)."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFilePermissionError(
            f"permissions {mode:04o} for '{path}' are too open: a private key must be accessible by its "
            f"owner only. Check who may have read it, then run: chmod 600 '{path}'"
        )


def load_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    """Read an Ed25519 private key written by ``write_new_file(key_pem(...))``, after the permission check."""
    check_owner_only(path)
    data = path.read_bytes()
    encrypted = data.lstrip().startswith(_ENCRYPTED_PEM)
    if encrypted and passphrase is None:
        raise CaPassphraseError(f"'{path}' is encrypted: give its passphrase")
    if not encrypted and passphrase is not None:
        raise CaPassphraseError(f"'{path}' is not encrypted, but a passphrase was given")
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except ValueError:
        if encrypted:
            raise CaPassphraseError(f"wrong passphrase for '{path}' (or the file is damaged)") from None
        raise CaInvalidError(f"'{path}' is not a readable PEM private key") from None
    except UnsupportedAlgorithm:
        raise CaInvalidError(f"'{path}' holds a key of an unsupported kind") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CaInvalidError(f"'{path}' holds a {type(key).__name__}, not an Ed25519 private key")
    return key
