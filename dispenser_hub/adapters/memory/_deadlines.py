"""In-memory repositories of time-driven work: deadlines and named leases.

Same rules, orders and errors as ``adapters.db._deadlines`` (the contract suite checks both): a deadline's
``key`` is unique (``schedule`` moves a pending one, leaves a fired or cancelled one as it is); ``due`` and
``pending`` come by ``due_at``, then id; a lease is taken when absent, renewed by its holder, and taken over
once it has expired (``expires_at <= now``). Every time is kept in ``UTC`` itself (as the database returns
it). There is nothing to lock: a unit of work works on its own snapshot, and ``commit`` refuses a second
writer (``store``), so two timers never both commit the firing of one deadline.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._registry import MemoryRepository
from dispenser_hub.adapters.memory._tables import StoredLease, stored_id
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from dispenser_hub.domain.model import Deadline


class MemoryDeadlineRepository(MemoryRepository):
    """Deadlines, unique per key (see the module docstring)."""

    def schedule(self, deadline: Deadline) -> Deadline:
        """Store a deadline, or move the pending one with the same key; a fired or cancelled key stays."""
        stored = rules.normalise(deadline)
        existing = self.get(stored.key)
        if existing is not None:
            if not existing.pending:
                return existing
            moved = replace(existing, kind=stored.kind, due_at=stored.due_at, payload=stored.payload)
            self._tx.write().deadlines.put(stored_id(moved), moved)
            return moved
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("deadlines"))
        tables.deadlines.put(stored_id(stored), stored)
        tables.deadline_keys.put(stored.key, stored_id(stored))
        return stored

    def get(self, key: str) -> Deadline | None:
        """The deadline with this key."""
        deadline_id = self._tables.deadline_keys.rows.get(key)
        return None if deadline_id is None else self._tables.deadlines.rows.get(deadline_id)

    def cancel(self, key: str, at: datetime) -> bool:
        """Cancel the pending deadline with this key; ``False`` if there is none pending."""
        at = rules.aware_utc(at, "at")
        existing = self.get(key)
        if existing is None or not existing.pending:
            return False
        self._tx.write().deadlines.put(stored_id(existing), replace(existing, cancelled_at=at))
        return True

    def due(self, now: datetime, *, limit: int = 100) -> list[Deadline]:
        """Pending deadlines with ``due_at`` at or before ``now``, by ``due_at``, then id."""
        now = rules.aware_utc(now, "now")
        rules.check_page(0, limit)
        rows = [row for row in self._tables.deadlines.rows.values() if row.pending and row.due_at <= now]
        return sorted(rows, key=_order)[:limit]

    def update(self, deadline: Deadline) -> Deadline:
        """Replace the stored deadline with the same id (``NotFoundError`` if there is none)."""
        if deadline.id is None:
            raise NotFoundError(rules.no_id("deadline"))
        old = self._tables.deadlines.rows.get(deadline.id)
        if old is None:
            raise NotFoundError(rules.missing("deadline", deadline.id))
        stored = rules.normalise(deadline)
        owner = self._tables.deadline_keys.rows.get(stored.key)
        if owner is not None and owner != stored.id:
            raise ConflictError(rules.deadline_key_taken(stored.key))
        tables = self._tx.write()
        if old.key != stored.key:
            tables.deadline_keys.pop(old.key)
            tables.deadline_keys.put(stored.key, stored_id(stored))
        tables.deadlines.put(stored_id(stored), stored)
        return stored

    def pending(self, *, kind: str | None = None, limit: int = 100) -> list[Deadline]:
        """Pending deadlines (of ``kind``, if given), by ``due_at``, then id."""
        rules.check_page(0, limit)
        rows = [
            row
            for row in self._tables.deadlines.rows.values()
            if row.pending and (kind is None or row.kind == kind)
        ]
        return sorted(rows, key=_order)[:limit]


class MemoryLeaseRepository(MemoryRepository):
    """Named leases: one holder at a time (see the module docstring)."""

    def acquire(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease until ``now + ttl``; ``False`` while another holder's lease runs."""
        now = rules.aware_utc(now, "now")
        lease = self._tables.leases.rows.get(name)
        if lease is not None and lease.holder != holder and lease.expires_at > now:
            return False
        self._tx.write().leases.put(name, StoredLease(holder=holder, expires_at=now + ttl))
        return True

    def release(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` has it."""
        lease = self._tables.leases.rows.get(name)
        if lease is not None and lease.holder == holder:
            self._tx.write().leases.pop(name)


def _order(deadline: Deadline) -> tuple[datetime, int]:
    return deadline.due_at, stored_id(deadline)
