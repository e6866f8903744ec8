"""Repository contract, part 4: schedules (dose settings, pauses, device schedule state).

The same backends as part 1 (``test_repository_contract.py``): memory, SQLite, PostgreSQL. A patient's dose
settings and a device's schedule state are stored whole and replaced whole; pauses come back by start, then
id, and can be ended early. Every time comes back as the same instant in UTC; references to patients and
devices are checked (``NotFoundError``), and nothing is kept without a commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.model import DeviceSchedule, DoseSettings, PauseRecord
from dispenser_hub.domain.schedules import DoseWindow, Pause
from dispenser_hub.ports import NotFoundError
from tests.support.storage import (
    BACKENDS,
    T0,
    Backend,
    device,
    migrated_sqlite_template,
    open_backend,
    patient,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

DAY = timedelta(days=1)
OPERATOR = "operator:kari"
PLUS_TWO = timezone(timedelta(hours=2))
WINDOW = DoseWindow(
    early=timedelta(minutes=30),
    late=timedelta(hours=3, seconds=7),
    notice_before=timedelta(minutes=5),
    sound_after=timedelta(seconds=90),
    repeat_every=timedelta(minutes=2),
    repeat_max=20,
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


def _registry(backend: Backend) -> tuple[int, int]:
    """Dispensers RM3-000017 and RM3-000018, two patients (their ids)."""
    with backend.uow_factory() as uow:
        uow.devices.add(device(17))
        uow.devices.add(device(18))
        kari = uow.patients.add(patient(1)).id or 0
        ola = uow.patients.add(patient(2)).id or 0
        uow.commit()
    return kari, ola


def _pause(
    patient_id: int, start: datetime, end: datetime, *, reason: str = "hospital", **changes: Any
) -> PauseRecord:
    record = PauseRecord(
        patient_id=patient_id, pause=Pause(start, end, reason), created_at=T0, created_by=OPERATOR
    )
    return replace(record, **changes)


def _schedule(device_id: str = "RM3-000017", **changes: Any) -> DeviceSchedule:
    config: dict[str, object] = {
        "version": 7,
        "slots": [
            {
                "slot_id": "s-20261123-0800",
                "due": 1_795_417_200_000,
                "pouch_id": "R-1-P001",
                "label": "Morgen",
            },
            {"slot_id": "s-20261123-2000", "due": 1_795_460_400_000, "pouch_id": None, "pot": 3},
        ],
        "reminders": {"notice_before_s": 900, "sound_after_s": 300, "repeat_every_s": 600, "repeat_max": 6},
        "paused_until": None,
        "note": "Ærlig talt: ø, å, µg, 💊",
        "nested": [[1, 2.5, True], [], [{"deep": ["x"]}]],
    }
    values = DeviceSchedule(
        device_id=device_id,
        version=7,
        digest="sha256:0f1e2d",
        config=config,
        built_at=T0,
        command_msg_id="cmd-0001",
        slots=2,
        first_due=T0 + timedelta(hours=1),
        last_due=T0 + timedelta(hours=13),
    )
    return replace(values, **changes)


# -- dose settings ---------------------------------------------------------------------------------------


def test_settings_round_trip_and_are_replaced_whole(backend: Backend) -> None:
    kari, ola = _registry(backend)
    settings = DoseSettings(
        kari, WINDOW, updated_at=(T0 + timedelta(microseconds=5)).astimezone(PLUS_TWO), updated_by=OPERATOR
    )
    with backend.uow_factory() as uow:
        assert uow.schedules.settings(kari) is None
        returned = uow.schedules.put_settings(settings)
        uow.commit()
    assert returned == settings
    assert returned.updated_at.tzinfo is UTC
    with backend.uow_factory() as uow:
        stored = uow.schedules.settings(kari)
        assert uow.schedules.settings(ola) is None
    assert stored == settings
    assert stored is not None
    assert stored.window == WINDOW
    assert stored.updated_at.tzinfo is UTC

    defaults = DoseSettings(kari, DoseWindow(), updated_at=T0 + DAY, updated_by="operator:ola")
    with backend.uow_factory() as uow:
        assert uow.schedules.put_settings(defaults) == defaults
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.schedules.settings(kari) == defaults
        assert uow.schedules.settings(ola) is None


def test_settings_need_a_known_patient_and_aware_times(backend: Backend) -> None:
    kari, _ = _registry(backend)
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.schedules.put_settings(DoseSettings(999, WINDOW, updated_at=T0, updated_by=OPERATOR))
        with pytest.raises(ValueError, match="naive"):
            uow.schedules.put_settings(
                DoseSettings(kari, WINDOW, updated_at=T0.replace(tzinfo=None), updated_by=OPERATOR)
            )
        assert uow.schedules.settings(999) is None
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.schedules.settings(kari) is None


# -- pauses ----------------------------------------------------------------------------------------------


def test_a_pause_round_trips_and_can_be_ended_early(backend: Backend) -> None:
    kari, _ = _registry(backend)
    with backend.uow_factory() as uow:
        added = uow.schedules.add_pause(_pause(kari, T0 + DAY, T0 + 5 * DAY, reason="travel"))
        uow.commit()
    assert added.id is not None
    assert added == _pause(kari, T0 + DAY, T0 + 5 * DAY, reason="travel", id=added.id)
    with backend.uow_factory() as uow:
        assert uow.schedules.get_pause(added.id) == added
        assert uow.schedules.get_pause(added.id + 1000) is None

    ended = replace(added, ended_at=T0 + 2 * DAY, ended_by="operator:ola")
    with backend.uow_factory() as uow:
        assert uow.schedules.update_pause(ended) == ended
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.schedules.get_pause(added.id)
        assert uow.schedules.pauses(kari) == [ended]
    assert stored == ended
    assert stored is not None
    assert stored.effective() == Pause(T0 + DAY, T0 + 2 * DAY, "travel")


def test_pause_times_in_another_offset_come_back_as_the_same_instants_in_utc(backend: Backend) -> None:
    kari, _ = _registry(backend)
    start = (T0 + timedelta(hours=3, microseconds=250)).astimezone(PLUS_TWO)
    record = _pause(
        kari,
        start,
        start + 2 * DAY,
        created_at=T0.astimezone(PLUS_TWO),
        ended_at=(T0 + DAY).astimezone(PLUS_TWO),
        ended_by=OPERATOR,
    )
    with backend.uow_factory() as uow:
        added = uow.schedules.add_pause(record)
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.schedules.get_pause(added.id or 0)
    assert stored == added
    assert stored is not None
    assert stored.pause.start == start
    assert stored.pause.end == start + 2 * DAY
    assert stored.created_at == T0
    assert stored.ended_at == T0 + DAY
    times = [stored.pause.start, stored.pause.end, stored.created_at, stored.ended_at]
    assert all(time.tzinfo is UTC for time in times)


def test_pauses_come_by_start_then_id_and_filter_on_their_end(backend: Backend) -> None:
    kari, ola = _registry(backend)
    with backend.uow_factory() as uow:
        late = uow.schedules.add_pause(_pause(kari, T0 + 10 * DAY, T0 + 12 * DAY))
        first = uow.schedules.add_pause(_pause(kari, T0 + DAY, T0 + 3 * DAY, reason="travel"))
        second = uow.schedules.add_pause(_pause(kari, T0 + DAY, T0 + 2 * DAY))
        past = uow.schedules.add_pause(_pause(kari, T0 - 5 * DAY, T0 - 4 * DAY))
        other = uow.schedules.add_pause(_pause(ola, T0, T0 + DAY))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.schedules.pauses(kari) == [past, first, second, late]
        assert uow.schedules.pauses(ola) == [other]
        assert uow.schedules.pauses(999) == []
        assert uow.schedules.pauses(kari, ending_after=T0) == [first, second, late]
        # Strictly after: a pause ending exactly then is over.
        assert uow.schedules.pauses(kari, ending_after=T0 + 2 * DAY) == [first, late]
        assert uow.schedules.pauses(kari, ending_after=(T0 + 2 * DAY).astimezone(PLUS_TWO)) == [first, late]
        assert uow.schedules.pauses(kari, ending_after=T0 + 2 * DAY - timedelta(microseconds=1)) == [
            first,
            second,
            late,
        ]
        assert uow.schedules.pauses(kari, ending_after=T0 + 12 * DAY) == []
        with pytest.raises(ValueError, match="naive"):
            uow.schedules.pauses(kari, ending_after=T0.replace(tzinfo=None))


def test_pauses_need_a_known_patient_and_a_stored_pause_to_update(backend: Backend) -> None:
    kari, _ = _registry(backend)
    with backend.uow_factory() as uow:
        added = uow.schedules.add_pause(_pause(kari, T0, T0 + DAY))
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.schedules.add_pause(_pause(999, T0, T0 + DAY))
        with pytest.raises(NotFoundError, match=r"^pause 99999 does not exist$"):
            uow.schedules.update_pause(replace(added, id=99999))
        with pytest.raises(NotFoundError, match=r"^pause None does not exist$"):
            uow.schedules.update_pause(replace(added, id=None))
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.schedules.update_pause(replace(added, patient_id=999))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.schedules.pauses(kari) == [added]
        assert uow.schedules.pauses(999) == []


# -- device schedules ------------------------------------------------------------------------------------


def test_a_device_schedule_round_trips_with_its_config(backend: Backend) -> None:
    _registry(backend)
    schedule = _schedule(built_at=(T0 + timedelta(microseconds=9)).astimezone(PLUS_TWO))
    with backend.uow_factory() as uow:
        assert uow.schedules.device_schedule("RM3-000017") is None
        assert uow.schedules.put_device_schedule(schedule) == schedule
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.schedules.device_schedule("RM3-000017")
        assert uow.schedules.device_schedule("RM3-000018") is None
    assert stored == schedule
    assert stored is not None
    assert stored.config == _schedule().config
    assert stored.config["note"] == "Ærlig talt: ø, å, µg, 💊"
    assert stored.built_at.tzinfo is UTC
    assert stored.first_due is not None
    assert stored.first_due.tzinfo is UTC
    assert stored.applied_version is None
    assert stored.rejected_reason is None


def test_a_device_schedule_is_replaced_whole(backend: Backend) -> None:
    _registry(backend)
    with backend.uow_factory() as uow:
        uow.schedules.put_device_schedule(_schedule())
        uow.schedules.put_device_schedule(_schedule("RM3-000018", version=1))
        uow.commit()
    answered = _schedule(
        version=2**40,
        digest="sha256:a1b2c3",
        config={"version": 2**40, "slots": []},
        command_msg_id=None,
        slots=0,
        first_due=None,
        last_due=None,
        applied_version=2**40 - 1,
        applied_at=(T0 + timedelta(minutes=1)).astimezone(PLUS_TWO),
        rejected_version=2**40,
        rejected_reason="slot s-20261123-0800: pouch unknown",
    )
    with backend.uow_factory() as uow:
        assert uow.schedules.put_device_schedule(answered) == answered
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.schedules.device_schedule("RM3-000017")
        assert uow.schedules.device_schedule("RM3-000018") == _schedule("RM3-000018", version=1)
    assert stored == answered
    assert stored is not None
    assert stored.applied_at == T0 + timedelta(minutes=1)
    assert stored.applied_at.tzinfo is UTC


def test_a_device_schedule_needs_a_known_device(backend: Backend) -> None:
    _registry(backend)
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.schedules.put_device_schedule(_schedule("RM3-000099"))
        assert uow.schedules.device_schedule("RM3-000099") is None
        uow.commit()


# -- transactions ----------------------------------------------------------------------------------------


def test_nothing_is_kept_without_a_commit(backend: Backend) -> None:
    kari, _ = _registry(backend)
    with backend.uow_factory() as uow:
        uow.schedules.put_settings(DoseSettings(kari, WINDOW, updated_at=T0, updated_by=OPERATOR))
        added = uow.schedules.add_pause(_pause(kari, T0, T0 + DAY))
        uow.schedules.put_device_schedule(_schedule())
        assert uow.schedules.pauses(kari) == [added]
    with backend.uow_factory() as uow:
        assert uow.schedules.settings(kari) is None
        assert uow.schedules.pauses(kari) == []
        assert uow.schedules.get_pause(added.id or 0) is None
        assert uow.schedules.device_schedule("RM3-000017") is None

    with backend.uow_factory() as uow:
        uow.schedules.put_settings(DoseSettings(kari, WINDOW, updated_at=T0, updated_by=OPERATOR))
        uow.rollback()
        assert uow.schedules.settings(kari) is None
        uow.schedules.put_device_schedule(_schedule())
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.schedules.settings(kari) is None
        assert uow.schedules.device_schedule("RM3-000017") == _schedule()


# -- PauseRecord.effective (no storage) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ended_after", "expected_end"),
    [
        (None, 4 * DAY),
        (5 * DAY, 4 * DAY),
        (4 * DAY, 4 * DAY),
        (4 * DAY - timedelta(microseconds=1), 4 * DAY - timedelta(microseconds=1)),
        (2 * DAY, 2 * DAY),
        (DAY + timedelta(microseconds=1), DAY + timedelta(microseconds=1)),
        (DAY, None),
        (0 * DAY, None),
    ],
    ids=[
        "not-ended",
        "after-end",
        "at-end",
        "just-before-end",
        "midway",
        "just-after-start",
        "at-start",
        "before",
    ],
)
def test_an_ended_pause_is_cut_at_its_end_or_gone(
    ended_after: timedelta | None, expected_end: timedelta | None
) -> None:
    pause = Pause(T0 + DAY, T0 + 4 * DAY, "hospital")
    record = PauseRecord(
        patient_id=1,
        pause=pause,
        created_at=T0,
        created_by=OPERATOR,
        ended_at=None if ended_after is None else T0 + ended_after,
        ended_by=None if ended_after is None else OPERATOR,
    )
    effective = record.effective()
    if expected_end is None:
        assert effective is None
    else:
        assert effective == Pause(T0 + DAY, T0 + expected_end, "hospital")
    if ended_after is None or ended_after >= 4 * DAY:
        assert effective is pause
