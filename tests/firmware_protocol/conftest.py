"""Hypothesis settings for the protocol tests: no per-example deadline, a moderate number of examples.

Set ``HYPOTHESIS_PROFILE=protocol-thorough`` for a longer run (ten times the examples).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "protocol",
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "protocol-thorough",
    deadline=None,
    max_examples=1500,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "protocol"))
