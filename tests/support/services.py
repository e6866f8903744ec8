"""Tests that need a real external service, and the rule that CI never silently skips them.

Locally, a test whose service (Mosquitto, PostgreSQL, Chromium, ...) is missing is skipped with a reason.
Under ``CI=true`` the same situation is a failure: a green CI run must mean every such test really ran.

Two mechanisms enforce this:

* ``require_service(name, available=..., reason=...)`` / ``service_unavailable(name, reason=...)``: call them
  in fixtures or tests; they skip locally and fail in CI.
* the ``requires_service(name)`` marker: ``tests/conftest.py`` turns *any* skip of a marked test into a
  failure under CI, whatever raised the skip. Tests using a service fixture get the marker automatically.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

SERVICE_MARKER = "requires_service"
_TRUTHY = frozenset({"1", "true", "yes", "on"})


def is_ci() -> bool:
    """Whether we run in CI (``CI`` set to a truthy value, as GitHub Actions, GitLab and ``.ci/run`` do)."""
    return os.environ.get("CI", "").strip().lower() in _TRUTHY


def require_service(name: str, *, available: bool, reason: str) -> None:
    """Skip the current test when ``name`` is not available, or fail it when running in CI.

    Args:
        name: the service, e.g. ``"mosquitto"``.
        available: whether it can be used.
        reason: why it is unavailable and how to get it (shown in the skip/failure message).
    """
    if not available:
        service_unavailable(name, reason=reason)


def service_unavailable(name: str, *, reason: str) -> NoReturn:
    """Skip the current test because ``name`` is unavailable, or fail it when running in CI."""
    message = f"service {name!r} unavailable: {reason}"
    if is_ci():
        pytest.fail(f"{message} (CI=true: tests needing a real service must run, not skip)", pytrace=False)
    pytest.skip(message)


def ci_skip_failure_message(item: pytest.Item, skip_reason: str) -> str | None:
    """The failure message for a skip of ``item`` that CI must not accept, or None if the skip is fine."""
    marker = item.get_closest_marker(SERVICE_MARKER)
    if marker is None or not is_ci():
        return None
    services = ", ".join(map(str, marker.args)) or "?"
    return (
        f"{item.nodeid} needs a real service ({services}) and was skipped under CI=true: {skip_reason}. "
        "Install the service in .ci/run instead of skipping."
    )
