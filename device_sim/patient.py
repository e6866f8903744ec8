"""Patient behaviour models: pure, seeded answers to "a dose is on offer, what does the patient do?".

Every model implements ``ports.PatientModel``. ``respond`` draws only from the ``random.Random`` it is
handed, so the same generator state gives the same answer; the models hold no mutable state.

Common rules of every model:

- A take is never before ``opens_ms`` (the dose is locked until then): a drawn time before it is moved to it.
- A take at or after ``closes_ms`` is no take: the answer is ``IGNORE`` and the dose will be missed.
- ``PRESS_ONLY`` (confused patients) opens or presses without taking. The dose stays on offer, so the
  device calls ``respond`` again with ``opens_ms`` set to just after the press; each call draws anew, which
  makes the number of presses geometric.
- Time-of-day bands (for ``forgetful`` and scripted misses) use the due time on the Europe/Oslo wall clock:
  night 00:00-04:59, morning 05:00-10:59, midday 11:00-15:59, evening 16:00-21:59, night again 22:00-23:59.

Overlays (``with_overlays``) add absences (travel, hospital: nobody takes anything, ``away`` is true) and
scripted misses (e.g. evening doses from day 3 to day 5) to any model; scenarios build them from their
timeline. The pydantic ``*Spec`` classes are the scenario file's ``behaviour:`` entries; ``patient_from_spec``
turns one into a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_sim.ports import PatientAction, PatientModel, PatientResponse

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

OSLO = ZoneInfo("Europe/Oslo")
_MINUTE = 60_000


class DayBand(StrEnum):
    """A part of the day, by the Europe/Oslo wall-clock hour of a dose's due time."""

    MORNING = "morning"
    """05:00-10:59."""
    MIDDAY = "midday"
    """11:00-15:59."""
    EVENING = "evening"
    """16:00-21:59."""
    NIGHT = "night"
    """22:00-04:59."""


def band_of(ms: int) -> DayBand:
    """The time-of-day band of the instant ``ms`` on the Europe/Oslo wall clock."""
    hour = datetime.fromtimestamp(ms / 1000, UTC).astimezone(OSLO).hour
    if 5 <= hour < 11:  # noqa: PLR2004 - band limits are documented on DayBand
        return DayBand.MORNING
    if 11 <= hour < 16:  # noqa: PLR2004
        return DayBand.MIDDAY
    if 16 <= hour < 22:  # noqa: PLR2004
        return DayBand.EVENING
    return DayBand.NIGHT


def _check_range(where: str, value: float, low: float, high: float | None = None) -> None:
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ValueError(f"{where} must be {bound}, not {value!r}")


def _positive(where: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where} must be positive, not {value!r}")


def _finish(at_ms: float, *, opens_ms: int, closes_ms: int) -> PatientResponse:
    at = max(opens_ms, round(at_ms))
    if at >= closes_ms:
        return PatientResponse(PatientAction.IGNORE)
    return PatientResponse(PatientAction.TAKE, at)


def _prompt_delay(rng: random.Random, mean_min: float, spread_min: float) -> float:
    """A small non-negative delay in ms: |N(mean, spread)| minutes."""
    return abs(rng.gauss(mean_min, spread_min)) * _MINUTE


@dataclass(slots=True)
class Adherent:
    """Takes each dose a few minutes after it is due: delay ``|N(mean_delay_min, spread_min)|`` minutes.

    ``miss_probability`` (default 0) is the chance of ignoring a dose altogether.
    """

    mean_delay_min: float = 3.0
    spread_min: float = 2.0
    miss_probability: float = 0.0
    name: str = field(default="adherent", init=False)

    def __post_init__(self) -> None:
        _check_range("adherent.mean_delay_min", self.mean_delay_min, 0)
        _check_range("adherent.spread_min", self.spread_min, 0)
        _check_range("adherent.miss_probability", self.miss_probability, 0, 1)

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:
        """Take at due plus a small delay, or (rarely) ignore."""
        miss = rng.random() < self.miss_probability
        delay = _prompt_delay(rng, self.mean_delay_min, self.spread_min)
        if miss:
            return PatientResponse(PatientAction.IGNORE)
        return _finish(max(opens_ms, due_ms) + delay, opens_ms=opens_ms, closes_ms=closes_ms)

    def away(self, at_ms: int) -> bool:  # noqa: ARG002 - the protocol's signature
        """Never away (absences come from ``with_overlays``)."""
        return False


@dataclass(slots=True)
class Late:
    """Takes doses late: delay after due is lognormal with median ``median_min`` and shape ``sigma``.

    A delay reaching the window's close means the dose is missed (``IGNORE``). With the defaults (median
    45 min, sigma 0.6) and a window closing 120 min after due, about 5 % of doses are missed.
    """

    median_min: float = 45.0
    sigma: float = 0.6
    name: str = field(default="late", init=False)

    def __post_init__(self) -> None:
        _positive("late.median_min", self.median_min)
        _check_range("late.sigma", self.sigma, 0, 5)

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:
        """Take at due plus a lognormal delay, or ignore when that is past the close."""
        delay = self.median_min * _MINUTE * math.exp(self.sigma * rng.gauss(0.0, 1.0))
        return _finish(max(opens_ms, due_ms) + delay, opens_ms=opens_ms, closes_ms=closes_ms)

    def away(self, at_ms: int) -> bool:  # noqa: ARG002
        """Never away (absences come from ``with_overlays``)."""
        return False


_DEFAULT_BAND_MISS: Mapping[DayBand, float] = {
    DayBand.MORNING: 0.05,
    DayBand.MIDDAY: 0.15,
    DayBand.EVENING: 0.10,
    DayBand.NIGHT: 0.20,
}


@dataclass(slots=True)
class Forgetful:
    """Forgets doses with a probability per time-of-day band; otherwise behaves like ``Adherent``.

    Defaults: morning 5 %, midday 15 %, evening 10 %, night 20 % (midday and night doses are the ones
    people forget most). Bands not named in ``miss_probability`` keep their default.
    """

    miss_probability: Mapping[DayBand, float] = field(default_factory=lambda: dict(_DEFAULT_BAND_MISS))
    mean_delay_min: float = 5.0
    spread_min: float = 5.0
    name: str = field(default="forgetful", init=False)

    def __post_init__(self) -> None:
        merged = dict(_DEFAULT_BAND_MISS)
        for band, probability in self.miss_probability.items():
            merged[DayBand(band)] = probability
            _check_range(f"forgetful.miss_probability.{DayBand(band).value}", probability, 0, 1)
        self.miss_probability = merged
        _check_range("forgetful.mean_delay_min", self.mean_delay_min, 0)
        _check_range("forgetful.spread_min", self.spread_min, 0)

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:
        """Forget with the band's probability, else take shortly after due."""
        miss = rng.random() < self.miss_probability[band_of(due_ms)]
        delay = _prompt_delay(rng, self.mean_delay_min, self.spread_min)
        if miss:
            return PatientResponse(PatientAction.IGNORE)
        return _finish(max(opens_ms, due_ms) + delay, opens_ms=opens_ms, closes_ms=closes_ms)

    def away(self, at_ms: int) -> bool:  # noqa: ARG002
        """Never away (absences come from ``with_overlays``)."""
        return False


@dataclass(slots=True)
class Early:
    """Takes doses during early access: uniformly ``min_before_min``..``max_before_min`` minutes before due.

    A draw before the dose opens is moved to the opening (the patient waits at the dispenser); with no
    early access (``opens == due``) that is the due time itself.
    """

    min_before_min: float = 5.0
    max_before_min: float = 45.0
    name: str = field(default="early", init=False)

    def __post_init__(self) -> None:
        _check_range("early.min_before_min", self.min_before_min, 0)
        _check_range("early.max_before_min", self.max_before_min, 0)
        if self.max_before_min < self.min_before_min:
            raise ValueError("early.max_before_min must not be less than early.min_before_min")

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:
        """Take some minutes before due, but not before the dose opens."""
        before = rng.uniform(self.min_before_min, self.max_before_min) * _MINUTE
        return _finish(due_ms - before, opens_ms=opens_ms, closes_ms=closes_ms)

    def away(self, at_ms: int) -> bool:  # noqa: ARG002
        """Never away (absences come from ``with_overlays``)."""
        return False


@dataclass(slots=True)
class Confused:
    """Presses or opens without taking with ``press_probability`` per offer; otherwise takes (or forgets).

    Each ``respond`` is one offer: ``PRESS_ONLY`` after ``|N(mean_delay_min, spread_min)|`` minutes (from
    due, or from ``opens_ms`` when that is later: a re-offer after an earlier press), else ``IGNORE`` with
    ``miss_probability``, else ``TAKE`` after a similar delay. Presses per dose are therefore geometric with
    mean ``p / (1 - p)``.
    """

    press_probability: float = 0.3
    miss_probability: float = 0.1
    mean_delay_min: float = 10.0
    spread_min: float = 10.0
    name: str = field(default="confused", init=False)

    def __post_init__(self) -> None:
        _check_range("confused.press_probability", self.press_probability, 0, 0.95)
        _check_range("confused.miss_probability", self.miss_probability, 0, 1)
        _check_range("confused.mean_delay_min", self.mean_delay_min, 0)
        _check_range("confused.spread_min", self.spread_min, 0)

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:
        """Press without taking, forget, or take."""
        roll = rng.random()
        at = max(opens_ms, due_ms) + _prompt_delay(rng, self.mean_delay_min, self.spread_min)
        if roll < self.press_probability:
            pressed = _finish(at, opens_ms=opens_ms, closes_ms=closes_ms)
            if pressed.action is PatientAction.IGNORE:
                return pressed
            return PatientResponse(PatientAction.PRESS_ONLY, pressed.at_ms)
        if roll < self.press_probability + (1 - self.press_probability) * self.miss_probability:
            return PatientResponse(PatientAction.IGNORE)
        return _finish(at, opens_ms=opens_ms, closes_ms=closes_ms)

    def away(self, at_ms: int) -> bool:  # noqa: ARG002
        """Never away (absences come from ``with_overlays``)."""
        return False


class AbsenceReason(StrEnum):
    """Why a patient is not at home."""

    TRAVEL = "travel"
    HOSPITAL = "hospital"


@dataclass(frozen=True, slots=True)
class Absence:
    """The patient is away in ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    reason: AbsenceReason = AbsenceReason.TRAVEL

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError("an absence must end after it starts")


@dataclass(frozen=True, slots=True)
class ScriptedMiss:
    """Every dose due in ``[start_ms, end_ms)`` whose band is in ``bands`` is missed (``IGNORE``)."""

    start_ms: int
    end_ms: int
    bands: frozenset[DayBand] = frozenset(DayBand)

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError("a scripted miss period must end after it starts")
        if not self.bands:
            raise ValueError("a scripted miss needs at least one band")

    def covers(self, due_ms: int) -> bool:
        """Whether the dose due at ``due_ms`` is to be missed."""
        return self.start_ms <= due_ms < self.end_ms and band_of(due_ms) in self.bands


@dataclass(slots=True)
class Overlaid:
    """A model with absences and scripted misses laid over it (see ``with_overlays``)."""

    inner: PatientModel
    absences: tuple[Absence, ...] = ()
    misses: tuple[ScriptedMiss, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name

    def away(self, at_ms: int) -> bool:
        """Whether an absence covers ``at_ms`` (or the inner model says so)."""
        return any(a.start_ms <= at_ms < a.end_ms for a in self.absences) or self.inner.away(at_ms)

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:
        """The inner model's answer, unless scripted to miss or away at the time it would act.

        The inner model is always consulted first, so overlays do not shift the random stream of other doses.
        """
        answer = self.inner.respond(opens_ms=opens_ms, due_ms=due_ms, closes_ms=closes_ms, rng=rng)
        if any(m.covers(due_ms) for m in self.misses):
            return PatientResponse(PatientAction.IGNORE)
        if answer.at_ms is not None and self.away(answer.at_ms):
            return PatientResponse(PatientAction.IGNORE)
        return answer


def with_overlays(
    model: PatientModel, *, absences: tuple[Absence, ...] = (), misses: tuple[ScriptedMiss, ...] = ()
) -> PatientModel:
    """``model`` with absences and scripted misses; ``model`` itself when there are none."""
    if not absences and not misses:
        return model
    return Overlaid(model, absences, misses)


# --- scenario specs -------------------------------------------------------------------------------

Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Minutes = Annotated[float, Field(ge=0, le=24 * 60, allow_inf_nan=False)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdherentSpec(_Spec):
    """``behaviour: {model: adherent, mean_delay_min, spread_min, miss_probability}``."""

    model: Literal["adherent"]
    mean_delay_min: Minutes = 3.0
    spread_min: Minutes = 2.0
    miss_probability: Probability = 0.0


class LateSpec(_Spec):
    """``behaviour: {model: late, median_min, sigma}``."""

    model: Literal["late"]
    median_min: Annotated[float, Field(gt=0, le=24 * 60, allow_inf_nan=False)] = 45.0
    sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 0.6


class BandProbabilities(_Spec):
    """Miss probability per time-of-day band; unnamed bands keep ``Forgetful``'s defaults."""

    morning: Probability | None = None
    midday: Probability | None = None
    evening: Probability | None = None
    night: Probability | None = None


class ForgetfulSpec(_Spec):
    """``behaviour: {model: forgetful, miss_probability: {morning, midday, evening, night}, ...}``."""

    model: Literal["forgetful"]
    miss_probability: BandProbabilities = BandProbabilities()
    mean_delay_min: Minutes = 5.0
    spread_min: Minutes = 5.0


class EarlySpec(_Spec):
    """``behaviour: {model: early, min_before_min, max_before_min}``."""

    model: Literal["early"]
    min_before_min: Minutes = 5.0
    max_before_min: Minutes = 45.0

    @model_validator(mode="after")
    def _order(self) -> EarlySpec:
        if self.max_before_min < self.min_before_min:
            raise ValueError("max_before_min must not be less than min_before_min")
        return self


class ConfusedSpec(_Spec):
    """``behaviour: {model: confused, press_probability, miss_probability, mean_delay_min, spread_min}``."""

    model: Literal["confused"]
    press_probability: Annotated[float, Field(ge=0, le=0.95, allow_inf_nan=False)] = 0.3
    miss_probability: Probability = 0.1
    mean_delay_min: Minutes = 10.0
    spread_min: Minutes = 10.0


BehaviourSpec = Annotated[
    AdherentSpec | LateSpec | ForgetfulSpec | EarlySpec | ConfusedSpec, Field(discriminator="model")
]
"""One ``behaviour:`` entry of a scenario, chosen by its ``model`` key."""


def patient_from_spec(spec: BehaviourSpec) -> PatientModel:
    """The patient model a parsed ``behaviour:`` entry describes (``ValueError`` for inconsistent values)."""
    match spec:
        case AdherentSpec():
            return Adherent(spec.mean_delay_min, spec.spread_min, spec.miss_probability)
        case LateSpec():
            return Late(spec.median_min, spec.sigma)
        case ForgetfulSpec():
            bands = {DayBand(k): v for k, v in spec.miss_probability.model_dump().items() if v is not None}
            return Forgetful(bands, spec.mean_delay_min, spec.spread_min)
        case EarlySpec():
            return Early(spec.min_before_min, spec.max_before_min)
        case ConfusedSpec():
            return Confused(
                spec.press_probability, spec.miss_probability, spec.mean_delay_min, spec.spread_min
            )
