"""Pure domain rules: schedules, dose windows, binding checks, dose lifecycle and escalation.

No I/O and no clock reads live here; callers pass ``now`` and carry out the returned effects.
"""
