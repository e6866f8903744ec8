"""Patient behaviour models: statistical properties with fixed seeds, determinism, validation, overlays."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime

import pytest

from device_sim.patient import (
    Absence,
    Adherent,
    Confused,
    DayBand,
    Early,
    Forgetful,
    Late,
    ScriptedMiss,
    band_of,
    patient_from_spec,
    with_overlays,
)
from device_sim.ports import PatientAction, PatientModel, PatientResponse

MIN = 60_000
# Monday 2026-11-23 (CET, UTC+1): 08:00 Oslo is 07:00 UTC.
MORNING = int(datetime(2026, 11, 23, 7, 0, tzinfo=UTC).timestamp() * 1000)
MIDDAY = MORNING + 5 * 60 * MIN
EVENING = MORNING + 12 * 60 * MIN
NIGHT = MORNING + 15 * 60 * MIN


def offer(
    model: PatientModel, due: int, rng: random.Random, *, early: int = 60, late: int = 120
) -> PatientResponse:
    return model.respond(opens_ms=due - early * MIN, due_ms=due, closes_ms=due + late * MIN, rng=rng)


def answers(model: PatientModel, due: int = MORNING, n: int = 5_000, seed: int = 1) -> list[PatientResponse]:
    rng = random.Random(seed)
    return [offer(model, due, rng) for _ in range(n)]


def test_bands_follow_the_oslo_wall_clock() -> None:
    assert band_of(MORNING) is DayBand.MORNING
    assert band_of(MIDDAY) is DayBand.MIDDAY
    assert band_of(EVENING) is DayBand.EVENING
    assert band_of(NIGHT) is DayBand.NIGHT
    # 04:59 Oslo is still night, 05:00 morning
    assert band_of(MORNING - 3 * 60 * MIN - 1 * MIN) is DayBand.NIGHT
    assert band_of(MORNING - 3 * 60 * MIN) is DayBand.MORNING


def test_adherent_takes_nearly_all_within_minutes() -> None:
    result = answers(Adherent())
    takes = [r.at_ms for r in result if r.action is PatientAction.TAKE and r.at_ms is not None]
    assert len(takes) == len(result)
    delays = [(t - MORNING) / MIN for t in takes]
    assert min(delays) >= 0
    assert 2.0 < statistics.mean(delays) < 4.5
    assert max(delays) < 15


@pytest.mark.parametrize(
    ("due", "band", "expected"),
    [(MORNING, "morning", 0.1), (MIDDAY, "midday", 0.3), (EVENING, "evening", 0.5), (NIGHT, "night", 0.05)],
)
def test_forgetful_misses_by_band(due: int, band: str, expected: float) -> None:
    model = Forgetful({DayBand.MORNING: 0.1, DayBand.MIDDAY: 0.3, DayBand.EVENING: 0.5, DayBand.NIGHT: 0.05})
    result = answers(model, due)
    missed = sum(r.action is PatientAction.IGNORE for r in result) / len(result)
    assert missed == pytest.approx(expected, abs=0.025), band


def test_forgetful_keeps_default_bands_not_named() -> None:
    model = Forgetful({DayBand.EVENING: 0.4})
    assert model.miss_probability[DayBand.EVENING] == 0.4
    assert model.miss_probability[DayBand.MORNING] == 0.05


def test_late_delay_median_and_window_misses() -> None:
    result = answers(Late(median_min=30, sigma=0.5))
    delays = sorted((r.at_ms - MORNING) / MIN for r in result if r.at_ms is not None)
    # the median of the takes sits a little under 30: the few beyond the window are missing from the top
    assert 27 < statistics.median(delays) < 31
    missed = sum(r.action is PatientAction.IGNORE for r in result) / len(result)
    assert missed < 0.01
    very_late = answers(Late(median_min=120, sigma=0.5))
    assert sum(r.action is PatientAction.IGNORE for r in very_late) / len(very_late) == pytest.approx(
        0.5, abs=0.03
    )


def test_early_takes_before_due_but_not_before_open() -> None:
    result = answers(Early(min_before_min=10, max_before_min=90))
    times = [r.at_ms for r in result if r.at_ms is not None]
    assert len(times) == len(result)
    assert all(MORNING - 60 * MIN <= t <= MORNING - 10 * MIN for t in times)
    assert sum(t == MORNING - 60 * MIN for t in times) > 0.2 * len(times)  # clamped to the opening
    no_early_access = Early().respond(
        opens_ms=MORNING, due_ms=MORNING, closes_ms=MORNING + MIN, rng=random.Random(3)
    )
    assert no_early_access == PatientResponse(PatientAction.TAKE, MORNING)


def test_confused_presses_repeatedly_and_then_takes() -> None:
    model = Confused(press_probability=0.4, miss_probability=0.0)
    rng = random.Random(5)
    presses_per_dose = []
    for _ in range(2_000):
        opens, presses = MORNING - 60 * MIN, 0
        while True:
            answer = model.respond(opens_ms=opens, due_ms=MORNING, closes_ms=MORNING + 120 * MIN, rng=rng)
            if answer.action is not PatientAction.PRESS_ONLY:
                break
            assert answer.at_ms is not None
            assert answer.at_ms >= opens
            presses, opens = presses + 1, answer.at_ms + 1
        presses_per_dose.append(presses)
    assert statistics.mean(presses_per_dose) == pytest.approx(0.4 / 0.6, abs=0.1)
    assert max(presses_per_dose) >= 3


def test_same_seed_same_answers() -> None:
    for model in (Adherent(), Late(), Forgetful(), Early(), Confused()):
        assert answers(model, n=200, seed=9) == answers(model, n=200, seed=9)
        assert answers(model, n=200, seed=9) != answers(model, n=200, seed=10)


def test_away_means_nothing_is_taken() -> None:
    absence = Absence(MORNING - 60 * MIN, MORNING + 24 * 60 * MIN)
    model = with_overlays(Adherent(), absences=(absence,))
    assert model.away(MORNING)
    assert not model.away(MORNING + 25 * 60 * MIN)
    assert all(r.action is PatientAction.IGNORE for r in answers(model, n=100))
    assert all(r.action is PatientAction.TAKE for r in answers(model, MORNING + 48 * 60 * MIN, n=100))


def test_scripted_misses_only_in_their_bands_and_period() -> None:
    miss = ScriptedMiss(MORNING, MORNING + 24 * 60 * MIN, frozenset({DayBand.EVENING}))
    model = with_overlays(Adherent(), misses=(miss,))
    assert all(r.action is PatientAction.IGNORE for r in answers(model, EVENING, n=50))
    assert all(r.action is PatientAction.TAKE for r in answers(model, MIDDAY, n=50))
    assert all(r.action is PatientAction.TAKE for r in answers(model, EVENING + 24 * 60 * MIN, n=50))


def test_overlays_do_not_shift_the_random_stream() -> None:
    plain = answers(Adherent(), MIDDAY, n=50)
    miss = ScriptedMiss(EVENING, EVENING + MIN)
    assert answers(with_overlays(Adherent(), misses=(miss,)), MIDDAY, n=50) == plain


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Adherent(miss_probability=1.5), "adherent.miss_probability must be between 0 and 1"),
        (lambda: Late(median_min=0), "late.median_min must be positive"),
        (lambda: Forgetful({DayBand.EVENING: -0.1}), "forgetful.miss_probability.evening"),
        (lambda: Early(min_before_min=30, max_before_min=10), "max_before_min must not be less"),
        (lambda: Confused(press_probability=1.0), "confused.press_probability must be between 0 and 0.95"),
        (lambda: Absence(10, 10), "must end after it starts"),
    ],
)
def test_parameters_are_validated(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=message):
        build()


def test_patient_from_spec_builds_each_model() -> None:
    from pydantic import TypeAdapter  # noqa: PLC0415

    from device_sim.patient import BehaviourSpec  # noqa: PLC0415

    adapter: TypeAdapter[BehaviourSpec] = TypeAdapter(BehaviourSpec)
    for name in ("adherent", "late", "forgetful", "early", "confused"):
        assert patient_from_spec(adapter.validate_python({"model": name})).name == name
    model = patient_from_spec(
        adapter.validate_python({"model": "forgetful", "miss_probability": {"night": 0.9}})
    )
    assert isinstance(model, Forgetful)
    assert model.miss_probability[DayBand.NIGHT] == 0.9
