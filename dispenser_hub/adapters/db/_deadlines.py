"""SQL repositories of time-driven work: deadlines and named leases.

Same rules, orders and errors as ``adapters.memory._deadlines`` (the contract suite checks both; the tables
are described in ``_deadline_tables``). Every time is stored and returned in UTC.

* **Scheduling is race-safe**: ``INSERT ... ON CONFLICT (key) DO NOTHING``; if the key exists, its row is
  selected (``FOR UPDATE`` on PostgreSQL, which waits for a racing writer and re-reads its committed row) and
  moved if it is still pending, else returned unchanged. ``cancel`` locks the same way, so a cancel racing
  a firing either cancels a pending row or finds it fired.
* ``due`` selects ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: rows another transaction is firing are skipped,
  so two timers never fire the same deadline. SQLite needs no lock: its unit of work holds the database's
  write lock from its first statement (``engine``), which serialises timers.
* Locking selects re-read the rows (``populate_existing``): a row this session loaded earlier is not
  returned with stale values.
* **Leases**: ``INSERT ... ON CONFLICT (name) DO NOTHING``, then ``UPDATE ... WHERE name = :name AND
  (holder = :holder OR expires_at <= :now)``; the lease is ours if either wrote a row. On PostgreSQL a racing
  insert or update waits for the other transaction and re-checks the condition against its committed row, so
  at most one holder wins. ``release`` deletes the row only if ``holder`` has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository
from dispenser_hub.adapters.db.tables import DeadlineRow, LeaseRow
from dispenser_hub.domain.model import Deadline
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlmodel.sql.expression import SelectOfScalar


class SqlDeadlineRepository(SqlRepository):
    """Deadlines, unique per key (see the module docstring)."""

    def schedule(self, deadline: Deadline) -> Deadline:
        """Store a deadline, or move the pending one with the same key; a fired or cancelled key stays."""
        stored = rules.normalise(deadline)
        values = _values(stored)
        table: Any = DeadlineRow.__table__  # type: ignore[attr-defined] # SQLModel sets it on table models
        statement = (
            self._insert(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(table.c.id)
        )
        new_id = self._session.exec(statement).scalar_one_or_none()
        if new_id is not None:
            return rules.with_id(stored, new_id)
        row = self._session.exec(self._locked(_by_key(stored.key))).one()
        if not _pending(row):
            return _deadline(row)
        row.sqlmodel_update({"kind": stored.kind, "due_at": stored.due_at, "payload": stored.payload})
        self._flush({})
        return _deadline(row)

    def get(self, key: str) -> Deadline | None:
        """The deadline with this key."""
        row = self._session.exec(_by_key(key)).first()
        return None if row is None else _deadline(row)

    def cancel(self, key: str, at: datetime) -> bool:
        """Cancel the pending deadline with this key; ``False`` if there is none pending."""
        at = rules.aware_utc(at, "at")
        row = self._session.exec(self._locked(_pending_only(_by_key(key)))).first()
        if row is None:
            return False
        row.cancelled_at = at
        self._flush({})
        return True

    def due(self, now: datetime, *, limit: int = 100) -> list[Deadline]:
        """Pending deadlines due at or before ``now``, by ``due_at``, then id (locked: module docstring)."""
        now = rules.aware_utc(now, "now")
        rules.check_page(0, limit)
        statement = (
            _pending_only(select(DeadlineRow))
            .where(col(DeadlineRow.due_at) <= now)
            .order_by(col(DeadlineRow.due_at), col(DeadlineRow.id))
            .limit(limit)
        )
        if self._postgresql:
            statement = statement.with_for_update(skip_locked=True)
        statement = statement.execution_options(populate_existing=True)
        return [_deadline(row) for row in self._session.exec(statement)]

    def update(self, deadline: Deadline) -> Deadline:
        """Replace the stored deadline with the same id (``NotFoundError`` if there is none)."""
        if deadline.id is None:
            raise NotFoundError(rules.no_id("deadline"))
        row = self._session.get(DeadlineRow, deadline.id)
        if row is None:
            raise NotFoundError(rules.missing("deadline", deadline.id))
        stored = rules.normalise(deadline)
        row.sqlmodel_update(_values(stored))
        self._flush({"uq_deadline_key": rules.deadline_key_taken(stored.key)})
        return _deadline(row)

    def pending(self, *, kind: str | None = None, limit: int = 100) -> list[Deadline]:
        """Pending deadlines (of ``kind``, if given), by ``due_at``, then id."""
        rules.check_page(0, limit)
        statement = _pending_only(select(DeadlineRow))
        if kind is not None:
            statement = statement.where(col(DeadlineRow.kind) == kind)
        statement = statement.order_by(col(DeadlineRow.due_at), col(DeadlineRow.id)).limit(limit)
        return [_deadline(row) for row in self._session.exec(statement)]

    def _locked(self, statement: SelectOfScalar[DeadlineRow]) -> SelectOfScalar[DeadlineRow]:
        """``statement`` locking its rows on PostgreSQL (waiting for other writers), re-reading them."""
        if self._postgresql:
            statement = statement.with_for_update()
        return statement.execution_options(populate_existing=True)


class SqlLeaseRepository(SqlRepository):
    """Named leases: one holder at a time (see the module docstring)."""

    def acquire(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease until ``now + ttl``; ``False`` while another holder's lease runs."""
        now = rules.aware_utc(now, "now")
        expires_at = now + ttl
        table: Any = LeaseRow.__table__  # type: ignore[attr-defined] # SQLModel sets it on table models
        inserted = self._session.exec(
            self._insert(table)
            .values({"name": name, "holder": holder, "expires_at": expires_at})
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(table.c.name)
        ).scalar_one_or_none()
        if inserted is not None:
            return True
        updated = self._session.exec(
            sa.update(table)
            .where(table.c.name == name)
            .where(sa.or_(table.c.holder == holder, table.c.expires_at <= now))
            .values(holder=holder, expires_at=expires_at)
        )
        return bool(updated.rowcount == 1)

    def release(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` has it."""
        table: Any = LeaseRow.__table__  # type: ignore[attr-defined] # SQLModel sets it on table models
        self._session.exec(sa.delete(table).where(table.c.name == name).where(table.c.holder == holder))


def _by_key(key: str) -> SelectOfScalar[DeadlineRow]:
    return select(DeadlineRow).where(col(DeadlineRow.key) == key)


def _pending_only(statement: SelectOfScalar[DeadlineRow]) -> SelectOfScalar[DeadlineRow]:
    return statement.where(col(DeadlineRow.fired_at).is_(None)).where(col(DeadlineRow.cancelled_at).is_(None))


def _pending(row: DeadlineRow) -> bool:
    return row.fired_at is None and row.cancelled_at is None


def _values(deadline: Deadline) -> dict[str, Any]:
    return {
        "key": deadline.key,
        "kind": deadline.kind,
        "due_at": deadline.due_at,
        "payload": deadline.payload,
        "created_at": deadline.created_at,
        "fired_at": deadline.fired_at,
        "cancelled_at": deadline.cancelled_at,
        "attempts": deadline.attempts,
        "last_error": deadline.last_error,
    }


def _deadline(row: DeadlineRow) -> Deadline:
    return Deadline(
        key=row.key,
        kind=row.kind,
        due_at=row.due_at,
        created_at=row.created_at,
        payload=dict(row.payload),
        fired_at=row.fired_at,
        cancelled_at=row.cancelled_at,
        attempts=row.attempts,
        last_error=row.last_error,
        id=row.id,
    )
