"""Repository contract, part 6: time-driven work (deadlines and named leases).

The same backends as part 1 (``test_repository_contract.py``): memory, SQLite, PostgreSQL. A deadline is
unique by its key: scheduling it again moves it while it is pending, and never brings back one that fired or
was cancelled. The timer's query (``due``) gives pending deadlines due at or before "now", earliest first;
on PostgreSQL two timers never get the same rows (``SKIP LOCKED``). A lease has one holder at a time: its
holder renews it, another takes it over once it has expired. Every time comes back as the same instant in
UTC, and nothing is kept without a commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.model import Deadline
from dispenser_hub.ports import ConflictError, NotFoundError
from tests.support.storage import BACKENDS, T0, Backend, migrated_sqlite_template, open_backend

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

MINUTE = timedelta(minutes=1)
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE = timezone(timedelta(hours=-5, minutes=-30))
LEADER = "deadline-timer"
PAYLOAD: dict[str, Any] = {
    "device_id": "RM3-000017",
    "slot": {"id": "s-20261123-0800", "at": [8, 0], "label": "Morgen, før frokost «søt» 💊"},
    "steps": [1, 2.5, None, True, {"who": "Åse Øverbø"}],
}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


@pytest.fixture(params=[p for p in BACKENDS if p.id == "postgresql"])
def postgresql(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


def _deadline(key: str, due_at: datetime = T0, *, kind: str = "dose.close", **changes: Any) -> Deadline:
    values: dict[str, Any] = {"created_at": T0 - timedelta(hours=1), "payload": {"key": key}}
    return Deadline(key=key, kind=kind, due_at=due_at, **(values | changes))


def _schedule(backend: Backend, *deadlines: Deadline) -> list[Deadline]:
    with backend.uow_factory() as uow:
        stored = [uow.deadlines.schedule(deadline) for deadline in deadlines]
        uow.commit()
    return stored


# -- deadlines -------------------------------------------------------------------------------------------


def test_a_deadline_round_trips_exactly(backend: Backend) -> None:
    record = _deadline(
        "dose:RM3-000017:s-20261123-0800:close",
        (T0 + timedelta(microseconds=7)).astimezone(PLUS_TWO),
        created_at=T0.astimezone(MINUS_FIVE),
        payload=PAYLOAD,
    )
    with backend.uow_factory() as uow:
        assert uow.deadlines.get(record.key) is None
        added = uow.deadlines.schedule(record)
        uow.commit()
    assert added.id is not None
    assert added == replace(record, id=added.id)
    assert added.pending
    assert added.attempts == 0
    assert added.last_error is None
    assert added.due_at.tzinfo is UTC
    assert added.created_at.tzinfo is UTC
    with backend.uow_factory() as uow:
        stored = uow.deadlines.get(record.key)
        assert uow.deadlines.get("dose:other") is None
    assert stored == added
    assert stored is not None
    assert stored.payload == PAYLOAD
    assert stored.due_at == T0 + timedelta(microseconds=7)
    assert stored.due_at.tzinfo is UTC
    assert stored.created_at == T0
    assert stored.created_at.tzinfo is UTC


def test_the_payload_is_a_copy(backend: Backend) -> None:
    payload: dict[str, Any] = {"nested": {"n": 1}}
    with backend.uow_factory() as uow:
        added = uow.deadlines.schedule(_deadline("k", payload=payload))
        payload["nested"]["n"] = 2
        uow.commit()
    assert added.payload == {"nested": {"n": 1}}
    with backend.uow_factory() as uow:
        assert uow.deadlines.get("k") == added
        with pytest.raises(ValueError, match="naive"):
            uow.deadlines.schedule(_deadline("naive", T0.replace(tzinfo=None)))
        with pytest.raises(ValueError, match="not a JSON object"):
            uow.deadlines.schedule(_deadline("not-json", payload={"at": T0}))


def test_scheduling_a_pending_key_again_moves_it(backend: Backend) -> None:
    (first,) = _schedule(backend, _deadline("escalation:7", T0, kind="escalation.step"))
    with backend.uow_factory() as uow:
        failed = uow.deadlines.update(replace(first, attempts=2, last_error="SMS gateway timeout"))
        uow.commit()
    moved_to = (T0 + 5 * MINUTE).astimezone(PLUS_TWO)
    again = _deadline(
        "escalation:7",
        moved_to,
        kind="escalation.retry",
        payload={"step": 2},
        created_at=T0 + MINUTE,
    )
    with backend.uow_factory() as uow:
        moved = uow.deadlines.schedule(again)
        uow.commit()
    # Same row: id, created_at, attempts and last_error kept; due_at, kind and payload replaced.
    assert moved == replace(failed, due_at=T0 + 5 * MINUTE, kind="escalation.retry", payload={"step": 2})
    assert moved.due_at.tzinfo is UTC
    with backend.uow_factory() as uow:
        assert uow.deadlines.get("escalation:7") == moved
        assert uow.deadlines.pending() == [moved]


def test_a_fired_or_cancelled_key_is_not_scheduled_again(backend: Backend) -> None:
    fired, cancelled = _schedule(backend, _deadline("fired", T0), _deadline("cancelled", T0))
    with backend.uow_factory() as uow:
        fired = uow.deadlines.update(replace(fired, fired_at=T0 + MINUTE))
        assert uow.deadlines.cancel("cancelled", T0 + MINUTE)
        uow.commit()
    with backend.uow_factory() as uow:
        cancelled_stored = uow.deadlines.get("cancelled")
        assert cancelled_stored == replace(cancelled, cancelled_at=T0 + MINUTE)
        again_fired = uow.deadlines.schedule(_deadline("fired", T0 + 9 * MINUTE, kind="other"))
        again_cancelled = uow.deadlines.schedule(_deadline("cancelled", T0 + 9 * MINUTE))
        uow.commit()
    assert again_fired == fired
    assert again_cancelled == cancelled_stored
    with backend.uow_factory() as uow:
        assert uow.deadlines.get("fired") == fired
        assert uow.deadlines.get("cancelled") == cancelled_stored
        assert uow.deadlines.pending() == []
        assert uow.deadlines.due(T0 + timedelta(days=1)) == []


def test_due_gives_pending_deadlines_at_or_before_now_earliest_first(backend: Backend) -> None:
    late, same_time_b, early, same_time_a, future, boundary = _schedule(
        backend,
        _deadline("late", T0 - MINUTE),
        _deadline("same-b", T0 - 2 * MINUTE),
        _deadline("early", T0 - 10 * MINUTE),
        _deadline("same-a", T0 - 2 * MINUTE),
        _deadline("future", T0 + timedelta(microseconds=1)),
        _deadline("boundary", T0),
    )
    with backend.uow_factory() as uow:
        fired = uow.deadlines.schedule(_deadline("fired", T0 - 20 * MINUTE))
        uow.deadlines.update(replace(fired, fired_at=T0))
        uow.deadlines.schedule(_deadline("cancelled", T0 - 20 * MINUTE))
        uow.deadlines.cancel("cancelled", T0)
        uow.commit()
    with backend.uow_factory() as uow:
        # Ties on due_at: by id (same-b was scheduled before same-a).
        expected = [early, same_time_b, same_time_a, late, boundary]
        assert uow.deadlines.due(T0) == expected
        assert uow.deadlines.due(T0.astimezone(MINUS_FIVE)) == expected
        assert uow.deadlines.due(T0, limit=2) == [early, same_time_b]
        assert uow.deadlines.due(T0, limit=0) == []
        assert uow.deadlines.due(T0 - timedelta(microseconds=1)) == [early, same_time_b, same_time_a, late]
        assert uow.deadlines.due(T0 - 11 * MINUTE) == []
        assert uow.deadlines.due(T0 + timedelta(microseconds=1)) == [*expected, future]
        with pytest.raises(ValueError, match="naive"):
            uow.deadlines.due(T0.replace(tzinfo=None))
        with pytest.raises(ValueError, match="must not be negative"):
            uow.deadlines.due(T0, limit=-1)


def test_cancel_cancels_only_a_pending_deadline(backend: Backend) -> None:
    pending, fired = _schedule(backend, _deadline("pending"), _deadline("fired"))
    with backend.uow_factory() as uow:
        uow.deadlines.update(replace(fired, fired_at=T0))
        uow.commit()
    at = (T0 + MINUTE).astimezone(PLUS_TWO)
    with backend.uow_factory() as uow:
        assert uow.deadlines.cancel("pending", at) is True
        assert uow.deadlines.cancel("pending", at + MINUTE) is False
        assert uow.deadlines.cancel("fired", at) is False
        assert uow.deadlines.cancel("unknown", at) is False
        with pytest.raises(ValueError, match="naive"):
            uow.deadlines.cancel("pending", T0.replace(tzinfo=None))
        uow.commit()
    with backend.uow_factory() as uow:
        cancelled = uow.deadlines.get("pending")
        assert cancelled == replace(pending, cancelled_at=T0 + MINUTE)
        assert cancelled is not None
        assert cancelled.cancelled_at is not None
        assert cancelled.cancelled_at.tzinfo is UTC
        assert not cancelled.pending
        stored_fired = uow.deadlines.get("fired")
        assert stored_fired is not None
        assert stored_fired.cancelled_at is None


def test_update_replaces_the_deadline_with_its_id(backend: Backend) -> None:
    first, second = _schedule(backend, _deadline("first"), _deadline("second", T0 + MINUTE))
    with backend.uow_factory() as uow:
        changed = replace(
            first,
            due_at=(T0 + 3 * MINUTE).astimezone(MINUS_FIVE),
            payload={"retry": [1, {"ø": None}]},
            attempts=3,
            last_error="handler raised: «KeyError»",
            fired_at=(T0 + 4 * MINUTE).astimezone(PLUS_TWO),
        )
        updated = uow.deadlines.update(changed)
        uow.commit()
    assert updated == replace(changed, due_at=T0 + 3 * MINUTE, fired_at=T0 + 4 * MINUTE)
    assert updated.due_at.tzinfo is UTC
    assert updated.fired_at is not None
    assert updated.fired_at.tzinfo is UTC
    with backend.uow_factory() as uow:
        assert uow.deadlines.get("first") == updated
        assert uow.deadlines.get("second") == second
        with pytest.raises(NotFoundError, match=r"^deadline 999 does not exist$"):
            uow.deadlines.update(replace(first, id=999))
        with pytest.raises(NotFoundError, match="no storage id"):
            uow.deadlines.update(_deadline("never-stored"))
        assert uow.deadlines.get("never-stored") is None


def test_update_to_a_key_already_taken_is_a_conflict(backend: Backend) -> None:
    first, _ = _schedule(backend, _deadline("first"), _deadline("second"))
    with backend.uow_factory() as uow:
        with pytest.raises(ConflictError, match=r"^a deadline with key second already exists$"):
            uow.deadlines.update(replace(first, key="second"))
        uow.rollback()
        renamed = uow.deadlines.update(replace(first, key="renamed"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.deadlines.get("first") is None
        assert uow.deadlines.get("renamed") == renamed
        assert uow.deadlines.schedule(_deadline("first", T0 + MINUTE)).id not in {None, first.id}


def test_pending_lists_pending_deadlines_earliest_first_by_kind(backend: Backend) -> None:
    close_late, step, close_early, fired = _schedule(
        backend,
        _deadline("close-late", T0 + 2 * MINUTE),
        _deadline("step", T0 + MINUTE, kind="escalation.step"),
        _deadline("close-early", T0 - timedelta(days=3)),
        _deadline("fired", T0 - timedelta(days=9)),
    )
    with backend.uow_factory() as uow:
        uow.deadlines.update(replace(fired, fired_at=T0))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.deadlines.pending() == [close_early, step, close_late]
        assert uow.deadlines.pending(limit=2) == [close_early, step]
        assert uow.deadlines.pending(kind="dose.close") == [close_early, close_late]
        assert uow.deadlines.pending(kind="escalation.step") == [step]
        assert uow.deadlines.pending(kind="unknown") == []


def test_nothing_is_kept_without_a_commit(backend: Backend) -> None:
    (kept,) = _schedule(backend, _deadline("kept"))
    with backend.uow_factory() as uow:
        uow.deadlines.schedule(_deadline("dropped"))
        uow.deadlines.schedule(_deadline("kept", T0 + MINUTE))
        assert uow.leases.acquire(LEADER, "hub-a", now=T0, ttl=MINUTE)
        assert uow.deadlines.get("dropped") is not None
    with backend.uow_factory() as uow:
        assert uow.deadlines.cancel("kept", T0)
        uow.deadlines.update(replace(kept, fired_at=T0))
        uow.rollback()
        assert uow.deadlines.get("dropped") is None
        assert uow.deadlines.get("kept") == kept
        assert uow.deadlines.pending() == [kept]
        # Nobody holds the lease: another holder takes it at once.
        assert uow.leases.acquire(LEADER, "hub-b", now=T0, ttl=MINUTE)


# -- leases ----------------------------------------------------------------------------------------------


def test_a_lease_has_one_holder_until_it_expires(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        assert uow.leases.acquire(LEADER, "hub-a", now=T0, ttl=MINUTE) is True
        uow.commit()
    with backend.uow_factory() as uow:
        # Another holder is refused while the lease runs; other names are independent.
        assert uow.leases.acquire(LEADER, "hub-b", now=T0 + 30 * timedelta(seconds=1), ttl=MINUTE) is False
        assert uow.leases.acquire("other", "hub-b", now=T0, ttl=MINUTE) is True
        # The holder renews it (until now + ttl).
        assert uow.leases.acquire(LEADER, "hub-a", now=T0 + 50 * timedelta(seconds=1), ttl=MINUTE) is True
        uow.commit()
    with backend.uow_factory() as uow:
        # Renewed until T0 + 110 s: still refused after the first expiry.
        just_before = (T0 + timedelta(seconds=110) - timedelta(microseconds=1)).astimezone(PLUS_TWO)
        assert uow.leases.acquire(LEADER, "hub-b", now=just_before, ttl=MINUTE) is False
        # At expiry (``expires_at <= now``), another holder takes it over; times in any offset.
        at_expiry = (T0 + timedelta(seconds=110)).astimezone(MINUS_FIVE)
        assert uow.leases.acquire(LEADER, "hub-b", now=at_expiry, ttl=MINUTE) is True
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.leases.acquire(LEADER, "hub-a", now=T0 + timedelta(seconds=111), ttl=MINUTE) is False
        # Long after expiry: taken over.
        assert uow.leases.acquire(LEADER, "hub-a", now=T0 + timedelta(hours=1), ttl=MINUTE) is True
        with pytest.raises(ValueError, match="naive"):
            uow.leases.acquire(LEADER, "hub-a", now=T0.replace(tzinfo=None), ttl=MINUTE)
        uow.commit()


def test_release_frees_the_lease_only_for_its_holder(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        assert uow.leases.acquire(LEADER, "hub-a", now=T0, ttl=MINUTE)
        uow.commit()
    with backend.uow_factory() as uow:
        uow.leases.release(LEADER, "hub-b")
        uow.leases.release("unknown", "hub-a")
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.leases.acquire(LEADER, "hub-b", now=T0, ttl=MINUTE) is False
        uow.leases.release(LEADER, "hub-a")
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.leases.acquire(LEADER, "hub-b", now=T0, ttl=MINUTE) is True
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.leases.acquire(LEADER, "hub-a", now=T0, ttl=MINUTE) is False


# -- PostgreSQL: two timers ------------------------------------------------------------------------------


def test_two_timers_never_get_the_same_due_deadlines(postgresql: Backend) -> None:
    stored = _schedule(postgresql, *(_deadline(f"d{number}", T0 - number * MINUTE) for number in range(5)))
    earliest_first = list(reversed(stored))
    with postgresql.uow_factory() as first, postgresql.uow_factory() as second:
        taken = first.deadlines.due(T0, limit=2)
        rest = second.deadlines.due(T0)
        assert taken == earliest_first[:2]
        assert rest == earliest_first[2:]
        # The first timer fires its rows; the second sees nothing more while it holds its own.
        for deadline in taken:
            first.deadlines.update(replace(deadline, fired_at=T0))
        first.commit()
        assert second.deadlines.due(T0) == rest
        second.rollback()
    with postgresql.uow_factory() as uow:
        assert uow.deadlines.due(T0) == earliest_first[2:]
