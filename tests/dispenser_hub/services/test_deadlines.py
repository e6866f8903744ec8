"""The deadline timer over the memory store: exactly once, failures retried alone, one leader, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.clock import ManualClock
from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.domain.model import AuditEntry, Deadline
from dispenser_hub.ports import StorageUnavailableError
from dispenser_hub.services import deadlines
from dispenser_hub.services.deadlines import LEASE_TTL, DeadlineTimer, retry_delay

if TYPE_CHECKING:
    from dispenser_hub.ports import UnitOfWork

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Recorder:
    """A handler that writes an audit entry per deadline (an effect in the same transaction)."""

    def __init__(self, *, failing: set[str] | None = None) -> None:
        self.failing = failing or set()
        self.calls: list[str] = []

    def __call__(self, uow: UnitOfWork, deadline: Deadline, now: datetime) -> None:
        self.calls.append(deadline.key)
        uow.audit.add(AuditEntry(now, "system", "test.fired", deadline.key))
        if deadline.key in self.failing:
            msg = f"cannot do {deadline.key}"
            raise RuntimeError(msg)


def _schedule(store: MemoryStore, *deadlines: tuple[str, datetime]) -> None:
    with store() as uow:
        for key, due in deadlines:
            uow.deadlines.schedule(Deadline(key=key, kind="test", due_at=due, created_at=T0))
        uow.commit()


def _effects(store: MemoryStore) -> list[str]:
    with store() as uow:
        return sorted(entry.subject for entry in uow.audit.select(limit=1000) if entry.action == "test.fired")


def _timer(store: MemoryStore, clock: ManualClock, handler: Recorder, holder: str = "hub-1") -> DeadlineTimer:
    return DeadlineTimer(store, clock, {"test": handler}, holder=holder, batch=3)


def test_due_deadlines_fire_once_and_later_ones_wait() -> None:
    store, clock, handler = MemoryStore(), ManualClock(T0), Recorder()
    _schedule(store, *((f"d{n}", T0 - n * MINUTE) for n in range(7)), ("later", T0 + MINUTE))
    timer = _timer(store, clock, handler)
    assert timer.tick() == 7  # in batches of 3, 3 and 1
    assert timer.tick() == 0
    assert _effects(store) == [f"d{n}" for n in range(7)]
    clock.advance(MINUTE)
    assert timer.tick() == 1
    with store() as uow:
        fired = uow.deadlines.get("later")
    assert fired is not None
    assert fired.fired_at == T0 + MINUTE


def test_a_failing_deadline_waits_alone_and_is_retried_with_backoff() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    handler = Recorder(failing={"bad"})
    _schedule(store, ("a", T0), ("bad", T0), ("c", T0), ("unknown", T0))
    with store() as uow:
        unknown = uow.deadlines.get("unknown")
        assert unknown is not None
        uow.deadlines.update(Deadline(key="unknown", kind="nobody", due_at=T0, created_at=T0, id=unknown.id))
        uow.commit()
    timer = _timer(store, clock, handler)
    assert timer.tick() == 2
    assert _effects(store) == ["a", "c"]  # the failing handler's own write was rolled back
    with store() as uow:
        bad, nobody = uow.deadlines.get("bad"), uow.deadlines.get("unknown")
    assert bad is not None
    assert nobody is not None
    assert (bad.pending, bad.attempts, bad.due_at) == (True, 1, T0 + retry_delay(1))
    assert bad.last_error == "RuntimeError: cannot do bad"
    assert nobody.last_error is not None
    assert "no handler" in nobody.last_error
    handler.failing.clear()
    clock.advance(retry_delay(1))
    assert timer.tick() == 1
    assert _effects(store) == ["a", "bad", "c"]


def test_one_leader_fires_and_another_takes_over_when_its_lease_lapses() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    first, second = Recorder(), Recorder()
    leader, standby = _timer(store, clock, first, "hub-1"), _timer(store, clock, second, "hub-2")
    _schedule(store, ("a", T0))
    assert leader.tick() == 1
    _schedule(store, ("b", T0))
    assert standby.tick() == 0  # the lease is hub-1's
    clock.advance(LEASE_TTL)  # hub-1 stopped ticking: its lease lapses
    assert standby.tick() == 1
    assert (first.calls, second.calls) == (["a"], ["b"])
    standby.release()
    assert leader.tick() == 0  # nothing due, but hub-1 leads again at once


def test_after_a_restart_everything_overdue_fires_once() -> None:
    store, clock, handler = MemoryStore(), ManualClock(T0), Recorder()
    _schedule(store, *((f"d{n}", T0 + n * MINUTE) for n in range(5)))
    clock.advance(10 * MINUTE)  # the hub was down for ten minutes
    assert _timer(store, clock, handler, "hub-after-restart").tick() == 5
    assert _timer(store, clock, handler, "hub-after-restart").tick() == 0
    assert handler.calls == [f"d{n}" for n in range(5)]


def test_a_database_that_fails_mid_batch_leaves_the_deadlines_pending() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    _schedule(store, ("a", T0))

    def down(_uow: UnitOfWork, _deadline: Deadline, _now: datetime) -> None:
        msg = "database unreachable"
        raise StorageUnavailableError(msg)

    with pytest.raises(StorageUnavailableError):
        DeadlineTimer(store, clock, {"test": down}, holder="hub-1").tick()
    handler = Recorder()
    assert _timer(store, clock, handler).tick() == 1
    assert handler.calls == ["a"]


def test_a_flood_is_fired_over_several_ticks_each_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines, "TICK_BUDGET_S", 0.0)  # every tick stops after its first batch
    store, clock, handler = MemoryStore(), ManualClock(T0), Recorder()
    _schedule(store, *((f"d{n}", T0) for n in range(7)))
    timer = _timer(store, clock, handler)
    assert [timer.tick() for _ in range(4)] == [3, 3, 1, 0]
    assert _effects(store) == [f"d{n}" for n in range(7)]
