"""Random faults of one device: a Poisson process per fault kind, with durations where they apply.

``RandomFaults`` implements ``ports.FaultModel``. Each kind has a rate per device per day; the kinds are
independent Poisson processes, so their superposition is one Poisson process with the summed rate, and the
kind of each event is drawn in proportion to the rates. ``next_fault`` is memoryless and stateless: the next
fault after any instant is an exponential wait away, drawn from the ``rng`` handed in (same state, same
fault).

Durations are lognormal (``DurationDist``: median and shape ``sigma``), capped at ``max_ms``. Kinds without a
duration (``pouch_unreadable``, ``break_in``, ``reboot``) are instantaneous (``duration_ms == 0``);
``clock_drift`` has no duration but an ``amount_ms``, normal with mean 0 and ``clock_drift_sd_ms``.

Default rates (``DEFAULT_RATES_PER_DAY``) are realistic but rare. Field pilots report about 1.4 alarms per 100
pouches, dominated by technical and accidental alarms; at 3 pouches a day that is about 0.04 alarms per
device-day, of which missed doses are a good share. The alarm-raising defaults below add up
to about 0.02 per device-day (about 0.65 per 100 pouches at 3 a day); network blips (``0.05``) are short
enough that a hub should not alarm on them. ``scaled(factor)`` multiplies every rate, for demos that want to
see faults in a few simulated days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_sim.ports import FaultEvent, FaultKind, FaultModel
from device_sim.timespec import DurationMs

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

_SECOND = 1_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
DAY_MS = 24 * _HOUR


@dataclass(frozen=True, slots=True)
class DurationDist:
    """A lognormal duration: ``median_ms * exp(sigma * N(0, 1))``, at least 1 ms and at most ``max_ms``."""

    median_ms: int
    sigma: float = 0.8
    max_ms: int = 7 * DAY_MS

    def __post_init__(self) -> None:
        if self.median_ms <= 0:
            raise ValueError(f"a duration's median must be positive, not {self.median_ms} ms")
        if not math.isfinite(self.sigma) or not 0 <= self.sigma <= 5:  # noqa: PLR2004
            raise ValueError(f"a duration's sigma must be between 0 and 5, not {self.sigma!r}")
        if self.max_ms < self.median_ms:
            raise ValueError("a duration's max_ms must not be less than its median")

    def draw(self, rng: random.Random) -> int:
        """One duration in ms."""
        value = self.median_ms * math.exp(self.sigma * rng.gauss(0.0, 1.0))
        return max(1, min(self.max_ms, round(value)))


DEFAULT_RATES_PER_DAY: Mapping[FaultKind, float] = {
    FaultKind.JAM: 0.002,
    FaultKind.POUCH_UNREADABLE: 0.002,
    FaultKind.LID_OPEN: 0.006,
    FaultKind.TILT: 0.002,
    FaultKind.BREAK_IN: 0.0002,
    FaultKind.MAINS_LOSS: 0.004,
    FaultKind.NETWORK_BLIP: 0.05,
    FaultKind.NETWORK_OUTAGE: 0.003,
    FaultKind.CLOCK_DRIFT: 0.002,
    FaultKind.REBOOT: 0.003,
}
"""Faults per device per day when nothing else is said (see the module docstring for the reasoning)."""

DEFAULT_DURATIONS: Mapping[FaultKind, DurationDist] = {
    FaultKind.JAM: DurationDist(4 * _HOUR, 0.7, 3 * DAY_MS),  # until home care clears it
    FaultKind.LID_OPEN: DurationDist(3 * _MINUTE, 0.8, 2 * _HOUR),
    FaultKind.TILT: DurationDist(2 * _MINUTE, 0.8, 2 * _HOUR),
    FaultKind.MAINS_LOSS: DurationDist(2 * _HOUR, 1.0, 2 * DAY_MS),  # on battery meanwhile
    FaultKind.NETWORK_BLIP: DurationDist(20 * _SECOND, 0.8, 5 * _MINUTE),
    FaultKind.NETWORK_OUTAGE: DurationDist(3 * _HOUR, 0.9, 2 * DAY_MS),
}
"""Duration distributions; kinds not named here are instantaneous."""

DEFAULT_CLOCK_DRIFT_SD_MS = 2 * _MINUTE


@dataclass(frozen=True, slots=True)
class RandomFaults:
    """Independent Poisson faults per kind: ``rates_per_day[kind]`` events per device per day.

    Kinds missing from ``rates_per_day`` never happen; ``durations`` (default ``DEFAULT_DURATIONS``) gives
    each kind with a duration its distribution; ``clock_drift_sd_ms`` is the standard deviation of clock
    jumps.
    """

    rates_per_day: Mapping[FaultKind, float] = field(default_factory=lambda: dict(DEFAULT_RATES_PER_DAY))
    durations: Mapping[FaultKind, DurationDist] = field(default_factory=lambda: dict(DEFAULT_DURATIONS))
    clock_drift_sd_ms: int = DEFAULT_CLOCK_DRIFT_SD_MS

    def __post_init__(self) -> None:
        for kind, rate in self.rates_per_day.items():
            FaultKind(kind)
            if not math.isfinite(rate) or not 0 <= rate <= 1_000:  # noqa: PLR2004
                raise ValueError(
                    f"the rate of {kind} faults must be between 0 and 1000 per day, not {rate!r}"
                )
        for kind in self.durations:
            FaultKind(kind)
        if self.clock_drift_sd_ms < 0:
            raise ValueError(f"clock_drift_sd_ms must not be negative, not {self.clock_drift_sd_ms}")

    @property
    def total_rate_per_day(self) -> float:
        """All kinds together, per device per day."""
        return sum(self.rates_per_day.values())

    def scaled(self, factor: float) -> RandomFaults:
        """The same model with every rate multiplied by ``factor``."""
        if not math.isfinite(factor) or factor < 0:
            raise ValueError(f"a rate factor must be a non-negative number, not {factor!r}")
        rates = {kind: rate * factor for kind, rate in self.rates_per_day.items()}
        return RandomFaults(rates, self.durations, self.clock_drift_sd_ms)

    def next_fault(self, after_ms: int, rng: random.Random) -> FaultEvent | None:
        """The first fault strictly after ``after_ms``; ``None`` if every rate is 0."""
        kinds = [(kind, rate) for kind, rate in self.rates_per_day.items() if rate > 0]
        total = sum(rate for _, rate in kinds)
        if total <= 0:
            return None
        wait = rng.expovariate(total / DAY_MS)
        at = after_ms + max(1, math.ceil(wait))
        kind = rng.choices([k for k, _ in kinds], weights=[r for _, r in kinds])[0]
        if kind is FaultKind.CLOCK_DRIFT:
            amount = round(rng.gauss(0.0, self.clock_drift_sd_ms)) or 1
            return FaultEvent(kind, at, 0, amount)
        dist = self.durations.get(kind)
        return FaultEvent(kind, at, dist.draw(rng) if dist is not None else 0)


@dataclass(frozen=True, slots=True)
class NoFaults:
    """A device without random faults (scripted ones still come from the scenario timeline)."""

    def next_fault(self, after_ms: int, rng: random.Random) -> FaultEvent | None:  # noqa: ARG002
        """Never a fault."""
        return None


def no_faults() -> NoFaults:
    """A fault model that never produces a fault."""
    return NoFaults()


def default_faults() -> RandomFaults:
    """The realistic, rare defaults."""
    return RandomFaults()


# --- scenario specs -------------------------------------------------------------------------------

_DURATION_KINDS = frozenset(DEFAULT_DURATIONS)


class DurationSpec(BaseModel):
    """``{median: 5m, sigma: 0.8, max: 2h}``: a lognormal duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    median: DurationMs = Field(gt=0)
    sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 0.8
    max: DurationMs | None = Field(None, gt=0)


class FaultsSpec(BaseModel):
    """A population's ``faults:`` entry.

    ``defaults`` (true) starts from ``DEFAULT_RATES_PER_DAY`` (false: only the kinds named in
    ``rates_per_day``), ``rates_per_day`` overrides single kinds, ``scale`` multiplies every rate (e.g. 30 for
    a short demo), ``durations`` overrides duration distributions of kinds that have one, ``clock_drift_sd``
    the size of clock jumps.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    defaults: bool = True
    scale: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 1.0
    rates_per_day: dict[FaultKind, Annotated[float, Field(ge=0, le=1_000, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    durations: dict[FaultKind, DurationSpec] = Field(default_factory=dict)
    clock_drift_sd: DurationMs | None = None

    @model_validator(mode="after")
    def _durations(self) -> FaultsSpec:
        for kind, dist in self.durations.items():
            if kind not in _DURATION_KINDS:
                names = ", ".join(sorted(_DURATION_KINDS))
                raise ValueError(f"{kind.value} faults are instantaneous; durations apply to {names}")
            if dist.max is not None and dist.max < dist.median:
                raise ValueError(f"durations.{kind.value}.max must not be less than its median")
        return self


def faults_from_spec(spec: FaultsSpec) -> FaultModel:
    """The fault model a parsed ``faults:`` entry describes (``NoFaults`` when every rate is 0)."""
    rates: dict[FaultKind, float] = dict(DEFAULT_RATES_PER_DAY) if spec.defaults else {}
    rates.update(spec.rates_per_day)
    rates = {kind: rate * spec.scale for kind, rate in rates.items() if rate * spec.scale > 0}
    if not rates:
        return no_faults()
    durations = dict(DEFAULT_DURATIONS)
    for kind, dist in spec.durations.items():
        cap = dist.max if dist.max is not None else max(dist.median, DEFAULT_DURATIONS[kind].max_ms)
        durations[kind] = DurationDist(dist.median, dist.sigma, cap)
    sd = spec.clock_drift_sd if spec.clock_drift_sd is not None else DEFAULT_CLOCK_DRIFT_SD_MS
    return RandomFaults(rates, durations, sd)
