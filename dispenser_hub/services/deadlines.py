"""The deadline timer: fires every due ``Deadline`` row exactly once, from one leader per database.

Rules (ARCHITECTURE.md, Time):

- **The database is the source of truth.** Every time-driven step (a dose window's end, an escalation step)
  is a ``Deadline`` row; nothing is kept only in memory, so a restart rebuilds nothing: the next tick finds
  what is due, including everything that fell due while the hub was down ("misfired"), and fires each once.
- **Exactly once.** A handler's effects and the row's ``fired_at`` commit in one transaction. A crash before
  the commit means the deadline is still pending and fires again at the next tick; after the commit it is
  never fired again. Handlers must therefore only write through the unit of work they are given (and
  queue notifications through an outbox, never send them directly).
- **One leader.** Only the holder of the ``deadline-timer`` lease fires (``LeaseRepository``; the lease is
  renewed at every tick and lapses ``lease_ttl`` after the last one, so a crashed leader is replaced).
  On PostgreSQL ``due`` also skips rows another transaction holds, so even two leaders for a moment do
  not fire the same row.
- **Batches.** Due deadlines fire in batches of ``batch``, one transaction each. A handler that fails
  rolls its batch back, and the batch is fired again one deadline per transaction, so only the failing
  one waits: it stays pending with ``attempts`` and ``last_error`` recorded and is retried after a
  backoff (``retry_delay``: 30 s doubling to 30 min); the failure is logged. A deadline kind without a
  handler is such a failure too. A database that cannot be used (``StorageUnavailableError``) stops
  the tick; the next one tries again. A tick starts no new batch after ``TICK_BUDGET_S`` of work, so a
  flood of due deadlines (10,000 doses of one time) leaves room between batches for ingest and the
  notification sender, which the hub runs right after a tick that fired something.
- **APScheduler** (``adapters.scheduler.PeriodicJobs``) calls ``tick`` every ``TICK_S`` seconds with
  ``coalesce=True`` (missed runs collapse into one: the rows say what is due, not the number of runs),
  ``max_instances=1`` and a misfire grace of one interval; it only drives the rhythm.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Protocol

from dispenser_hub.ports import StorageUnavailableError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from dispenser_hub.domain.model import Deadline
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory

_log = logging.getLogger(__name__)
LEASE = "deadline-timer"
TICK_S = 1.0
LEASE_TTL = timedelta(seconds=30)
BATCH = 200
MAX_ROUNDS = 100
"""Most batches per tick (a bound, not a limit met in practice: the next tick goes on)."""
TICK_BUDGET_S = 2.0
"""A tick starts no new batch after this much work (the next tick goes on)."""
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=30)


class DeadlineHandler(Protocol):
    """Carries out one due deadline inside the timer's transaction (see the module rules)."""

    def __call__(self, uow: UnitOfWork, deadline: Deadline, now: datetime, /) -> None:
        """Do what ``deadline`` stands for, writing only through ``uow``; raise to have it retried."""
        ...


def retry_delay(attempts: int) -> timedelta:
    """The wait before firing again after the ``attempts``-th failure."""
    factor: int = 2 ** max(0, attempts - 1)
    return min(MAX_RETRY, FIRST_RETRY * factor)


class DeadlineTimer:
    """Fires due deadlines through their kind's handler (see the module rules)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        handlers: Mapping[str, DeadlineHandler],
        *,
        holder: str,
        lease_ttl: timedelta = LEASE_TTL,
        batch: int = BATCH,
    ) -> None:
        """Fire with ``handlers`` (by deadline kind); ``holder`` names this process for the lease."""
        self._uow_factory = uow_factory
        self._clock = clock
        self._handlers = dict(handlers)
        self.holder = holder
        self._lease_ttl = lease_ttl
        self._batch = batch
        self.fired = 0
        self.failed = 0

    def tick(self) -> int:
        """Fire everything due now, if this process leads; returns how many fired."""
        now = self._clock.now().astimezone(UTC)
        with self._uow_factory() as uow:
            leading = uow.leases.acquire(LEASE, self.holder, now=now, ttl=self._lease_ttl)
            uow.commit()
        if not leading:
            return 0
        fired = 0
        started = time.monotonic()
        for _ in range(MAX_ROUNDS):  # until nothing is due: a deadline may schedule another, due at once
            count, batch_fired = self._batch_fire(now)
            fired += batch_fired
            if count == 0 or batch_fired == 0 or time.monotonic() - started >= TICK_BUDGET_S:
                break
        return fired

    def release(self) -> None:
        """Give the lease up (a clean shutdown), so another process can lead at once."""
        with self._uow_factory() as uow:
            uow.leases.release(LEASE, self.holder)
            uow.commit()

    def _batch_fire(self, now: datetime) -> tuple[int, int]:
        """Fire a batch in one transaction; if one deadline fails, each again in its own."""
        keys: list[str] = []
        try:
            with self._uow_factory() as uow:
                due = uow.deadlines.due(now, limit=self._batch)
                keys = [deadline.key for deadline in due]
                for listed in due:
                    deadline = uow.deadlines.get(listed.key)  # as an earlier handler may have left it
                    if deadline is not None and deadline.pending and deadline.due_at <= now:
                        self._carry_out(uow, deadline, now)
                uow.commit()
        except StorageUnavailableError:
            raise
        except Exception:  # noqa: BLE001 - a failing handler: fire one by one, so only it waits
            _log.warning("a deadline of a batch of %d failed; firing them one by one", len(keys))
            return len(keys), sum(self._fire_alone(key, now) for key in keys)
        self.fired += len(keys)
        return len(keys), len(keys)

    def _fire_alone(self, key: str, now: datetime) -> bool:
        """Fire one deadline in its own transaction; a failure is recorded in another.

        The handler's exception leaves the ``with`` block first, so the unit of work turns a database that
        cannot be used into ``StorageUnavailableError`` (re-raised: the next tick tries again, no backoff).
        """
        try:
            with self._uow_factory() as uow:
                deadline = uow.deadlines.get(key)
                if deadline is None or not deadline.pending or deadline.due_at > now:
                    return False
                self._carry_out(uow, deadline, now)
                uow.commit()
        except StorageUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the deadline, retried later
            _log.exception("deadline %s failed; retried later", key)
            self._record_failure(key, exc, now)
            return False
        self.fired += 1
        return True

    def _record_failure(self, key: str, exc: Exception, now: datetime) -> None:
        with self._uow_factory() as uow:
            deadline = uow.deadlines.get(key)
            if deadline is None or not deadline.pending:
                return
            attempts = deadline.attempts + 1
            uow.deadlines.update(
                dataclasses.replace(
                    deadline,
                    attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}"[:500],
                    due_at=now + retry_delay(attempts),
                )
            )
            uow.commit()
        self.failed += 1

    def _carry_out(self, uow: UnitOfWork, deadline: Deadline, now: datetime) -> None:
        handler = self._handlers.get(deadline.kind)
        if handler is None:
            msg = f"no handler for deadline kind {deadline.kind!r}"
            raise LookupError(msg)
        handler(uow, deadline, now)
        uow.deadlines.update(dataclasses.replace(deadline, fired_at=now))
