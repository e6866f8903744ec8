"""Operator API tokens: lookup in constant time, and the table built from the settings.

A token is compared with every configured token (SHA-256 digests compared with ``hmac.compare_digest``, no
early exit), so neither the answer time nor a partial match tells anything about a token. Tokens never
appear in logs, answers or ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import SecretStr


class TokenTable:
    """Configured tokens as digests (see the module docstring)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        """``tokens`` maps token -> operator name; empty tokens are ignored."""
        self._digests = [(_digest(token), name) for token, name in tokens.items() if token]

    def operator(self, offered: str) -> str | None:
        """The operator whose token is ``offered``, or ``None``."""
        digest = _digest(offered)
        found: str | None = None
        for known, name in self._digests:
            if hmac.compare_digest(known, digest):
                found = name
        return found

    def __repr__(self) -> str:
        return f"TokenTable({len(self._digests)} tokens)"


def operator_tokens(by_name: Mapping[str, SecretStr]) -> dict[str, str]:
    """Token -> operator name from ``Settings.api_tokens_by_name()`` (name -> token)."""
    return {token.get_secret_value(): name for name, token in by_name.items()}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
