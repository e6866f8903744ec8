"""Random fault models: Poisson rates, durations, determinism and validation."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from device_sim.faults import (
    DAY_MS,
    DEFAULT_RATES_PER_DAY,
    DurationDist,
    FaultsSpec,
    RandomFaults,
    faults_from_spec,
    no_faults,
)
from device_sim.ports import FaultEvent, FaultKind


def run(model: RandomFaults, days: float, seed: int = 1) -> list[FaultEvent]:
    rng, now, events = random.Random(seed), 0, []
    while (event := model.next_fault(now, rng)) is not None and event.at_ms < days * DAY_MS:
        events.append(event)
        now = event.at_ms
    return events


def test_rates_per_kind_within_tolerance() -> None:
    model = RandomFaults({FaultKind.LID_OPEN: 2.0, FaultKind.NETWORK_BLIP: 5.0, FaultKind.REBOOT: 0.5})
    counts = Counter(e.kind for e in run(model, 2_000))
    assert counts[FaultKind.LID_OPEN] / 2_000 == pytest.approx(2.0, rel=0.05)
    assert counts[FaultKind.NETWORK_BLIP] / 2_000 == pytest.approx(5.0, rel=0.05)
    assert counts[FaultKind.REBOOT] / 2_000 == pytest.approx(0.5, rel=0.1)
    assert set(counts) == {FaultKind.LID_OPEN, FaultKind.NETWORK_BLIP, FaultKind.REBOOT}


def test_durations_follow_their_distributions() -> None:
    model = RandomFaults({FaultKind.LID_OPEN: 10.0, FaultKind.REBOOT: 10.0, FaultKind.CLOCK_DRIFT: 10.0})
    events = run(model, 300)
    lid = sorted(e.duration_ms for e in events if e.kind is FaultKind.LID_OPEN)
    assert lid[len(lid) // 2] == pytest.approx(3 * 60_000, rel=0.1)
    assert max(lid) <= 2 * 3_600_000
    assert all(e.duration_ms == 0 for e in events if e.kind is FaultKind.REBOOT)
    drifts = [e.amount_ms for e in events if e.kind is FaultKind.CLOCK_DRIFT]
    assert all(d != 0 for d in drifts)
    assert any(d > 0 for d in drifts)
    assert any(d < 0 for d in drifts)


def test_faults_are_strictly_after_and_deterministic() -> None:
    model = RandomFaults()
    assert run(model, 5_000, seed=3) == run(model, 5_000, seed=3)
    assert run(model, 5_000, seed=3) != run(model, 5_000, seed=4)
    rng = random.Random(0)
    assert all((e := model.next_fault(1_000, rng)) is not None and e.at_ms > 1_000 for _ in range(100))


def test_defaults_are_rare() -> None:
    total = sum(DEFAULT_RATES_PER_DAY.values())
    assert 0.03 < total < 0.2
    alarming = total - DEFAULT_RATES_PER_DAY[FaultKind.NETWORK_BLIP]
    # at 3 pouches a day, well under the 1.4 alarms per 100 pouches seen in pilots (patients add the rest)
    assert alarming / 3 * 100 < 1.4


def test_no_faults_and_zero_rates() -> None:
    assert no_faults().next_fault(0, random.Random(1)) is None
    assert RandomFaults({}).next_fault(0, random.Random(1)) is None
    assert RandomFaults().scaled(0).next_fault(0, random.Random(1)) is None


def test_scaled_multiplies_rates() -> None:
    model = RandomFaults().scaled(10)
    assert model.total_rate_per_day == pytest.approx(10 * RandomFaults().total_rate_per_day)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RandomFaults({FaultKind.TILT: -1.0}), "rate of tilt faults must be between 0 and 1000"),
        (lambda: RandomFaults({FaultKind.TILT: float("nan")}), "rate of tilt faults"),
        (lambda: RandomFaults(clock_drift_sd_ms=-5), "clock_drift_sd_ms must not be negative"),
        (lambda: DurationDist(0), "median must be positive"),
        (lambda: DurationDist(1_000, sigma=9), "sigma must be between 0 and 5"),
        (lambda: DurationDist(1_000, max_ms=10), "max_ms must not be less"),
        (lambda: RandomFaults().scaled(-1), "non-negative"),
    ],
)
def test_parameters_are_validated(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=message):
        build()


def test_faults_from_spec() -> None:
    assert faults_from_spec(FaultsSpec(defaults=False)).next_fault(0, random.Random(1)) is None
    spec = FaultsSpec.model_validate(
        {
            "defaults": False,
            "rates_per_day": {"tilt": 3},
            "scale": 2,
            "durations": {"tilt": {"median": "10m"}},
        }
    )
    model = faults_from_spec(spec)
    assert isinstance(model, RandomFaults)
    assert dict(model.rates_per_day) == {FaultKind.TILT: 6}
    assert model.durations[FaultKind.TILT].median_ms == 600_000
    with pytest.raises(ValueError, match="reboot faults are instantaneous"):
        FaultsSpec.model_validate({"durations": {"reboot": {"median": "1m"}}})
