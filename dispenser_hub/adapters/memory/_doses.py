"""In-memory repositories of doses and of the notification outbox.

Same rules, orders and errors as ``adapters.db._doses`` (the contract suite checks both):

* **A dose is one row per (device_id, slot_id)**: ``put`` inserts, or replaces the stored dose with the same
  key and keeps its id. The device and the patient must exist (``NotFoundError``, device checked first).
  Lists come by ``due``, then id; ``in_states`` takes ``DoseState`` members or their string values (an
  unknown value is a ``ValueError``).
* **A notification is one row per ``key``**: ``add`` stores nothing and returns ``None`` for a key already
  stored (never sent twice); ``update`` replaces by id. An ``alarm_id``, when given, must exist.
  ``claim`` takes pending notifications with ``next_attempt_at`` at or before ``now``, by
  ``next_attempt_at``, then id; ``record`` stores attempts' outcomes (``SendOutcome.applied_to``, where
  ``storage_rules.outcome_applies``); ``cancel`` and ``bring_forward`` change only the pending rows their
  rule allows; ``for_alarm`` gives the alarm's notifications oldest first (by
  ``created_at``, then id). There is nothing to lock: ``commit`` refuses a second writer (``store``).
* Every time is kept in UTC. The address is kept in plaintext: nothing here is "at rest".
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._registry import MemoryRepository
from dispenser_hub.adapters.memory._tables import stored_id
from dispenser_hub.domain.doses import DoseState
from dispenser_hub.domain.model import NotificationStatus
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence
    from datetime import datetime

    from dispenser_hub.domain.doses import Dose
    from dispenser_hub.domain.model import Notification, SendOutcome


def dose_states(states: Collection[str]) -> frozenset[DoseState]:
    """``states`` as ``DoseState`` members (given as members or values); ``ValueError`` for an unknown one."""
    return frozenset(DoseState(state) for state in states)


class MemoryDoseRepository(MemoryRepository):
    """Doses, one per (device_id, slot_id) (see the module docstring)."""

    def put(self, dose: Dose) -> Dose:
        """Insert, or replace the dose with the same (device_id, slot_id), keeping its id."""
        stored = rules.normalise(dose)
        self._require_device(stored.device_id)
        self._require_patient(stored.patient_id)
        key = (stored.device_id, stored.slot_id)
        tables = self._tx.write()
        dose_id = tables.dose_keys.rows.get(key)
        if dose_id is None:
            dose_id = tables.next_id("doses")
            tables.dose_keys.put(key, dose_id)
        stored = rules.with_id(stored, dose_id)
        tables.doses.put(dose_id, stored)
        return stored

    def get(self, device_id: str, slot_id: str) -> Dose | None:
        """The dose of this device's slot."""
        dose_id = self._tables.dose_keys.rows.get((device_id, slot_id))
        return None if dose_id is None else self._tables.doses.rows.get(dose_id)

    def for_device(self, device_id: str, *, since: datetime | None = None, limit: int = 500) -> list[Dose]:
        """The device's doses by due time, then id; due at or after ``since`` if given."""
        rules.check_page(0, limit)
        start = None if since is None else rules.aware_utc(since, "since")
        rows = (
            dose
            for dose in self._tables.doses.rows.values()
            if dose.device_id == device_id and (start is None or dose.due >= start)
        )
        return _by_due(rows)[:limit]

    def for_patient(
        self,
        patient_id: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[Dose]:
        """The patient's doses by due time, then id; due in ``[since, until)`` where given."""
        rules.check_page(0, limit)
        start = None if since is None else rules.aware_utc(since, "since")
        end = None if until is None else rules.aware_utc(until, "until")
        rows = (
            dose
            for dose in self._tables.doses.rows.values()
            if dose.patient_id == patient_id
            and (start is None or dose.due >= start)
            and (end is None or dose.due < end)
        )
        return _by_due(rows)[:limit]

    def in_states(self, patient_id: int, states: Collection[str]) -> list[Dose]:
        """The patient's doses in any of ``states``, by due time, then id."""
        wanted = dose_states(states)
        rows = (
            dose
            for dose in self._tables.doses.rows.values()
            if dose.patient_id == patient_id and dose.state in wanted
        )
        return _by_due(rows)


class MemoryNotificationRepository(MemoryRepository):
    """The notification outbox, one row per key (see the module docstring)."""

    def add(self, notification: Notification) -> Notification | None:
        """Store a new notification; ``None`` (nothing stored) if its key exists."""
        stored = rules.normalise(notification)
        self._require_alarm(stored.alarm_id)
        if stored.key in self._tables.notification_keys.rows:
            return None
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("notifications"))
        tables.notifications.put(stored_id(stored), stored)
        tables.notification_keys.put(stored.key, stored_id(stored))
        return stored

    def get(self, notification_id: int) -> Notification | None:
        """The notification with this id."""
        return self._tables.notifications.rows.get(notification_id)

    def by_key(self, key: str) -> Notification | None:
        """The notification with this key."""
        notification_id = self._tables.notification_keys.rows.get(key)
        return None if notification_id is None else self._tables.notifications.rows.get(notification_id)

    def update(self, notification: Notification) -> Notification:
        """Replace the stored notification with the same id (``NotFoundError`` if there is none)."""
        if notification.id is None:
            raise NotFoundError(rules.no_id("notification"))
        old = self._tables.notifications.rows.get(notification.id)
        if old is None:
            raise NotFoundError(rules.missing("notification", notification.id))
        stored = rules.normalise(notification)
        self._require_alarm(stored.alarm_id)
        owner = self._tables.notification_keys.rows.get(stored.key)
        if owner is not None and owner != stored.id:
            raise ConflictError(rules.notification_key_taken(stored.key))
        tables = self._tx.write()
        if old.key != stored.key:
            tables.notification_keys.pop(old.key)
            tables.notification_keys.put(stored.key, stored_id(stored))
        tables.notifications.put(stored_id(stored), stored)
        return stored

    def claim(self, now: datetime, *, until: datetime, limit: int = 100) -> list[Notification]:
        """Claim pending notifications due by ``now`` (by ``next_attempt_at``, id): move them to ``until``."""
        now = rules.aware_utc(now, "now")
        until = rules.aware_utc(until, "until")
        rules.check_page(0, limit)
        rows = [
            row
            for row in self._tables.notifications.rows.values()
            if row.status is NotificationStatus.PENDING and row.next_attempt_at <= now
        ]
        claimed = sorted(rows, key=lambda row: (row.next_attempt_at, stored_id(row)))[:limit]
        if claimed:
            tables = self._tx.write()
            for row in claimed:
                tables.notifications.put(stored_id(row), replace(row, next_attempt_at=until))
        return claimed

    def record(self, outcomes: Sequence[SendOutcome]) -> list[SendOutcome]:
        """Store the outcomes that apply (``storage_rules.outcome_applies``); returns them."""
        stored: list[SendOutcome] = []
        for outcome in outcomes:
            current = self._tables.notifications.rows.get(outcome.id)
            if current is None or not rules.outcome_applies(current.status, outcome):
                continue
            written = rules.normalise(outcome.applied_to(current))
            self._tx.write().notifications.put(stored_id(written), written)
            stored.append(outcome)
        return stored

    def next_due(self) -> datetime | None:
        """The earliest ``next_attempt_at`` of a pending notification."""
        pending = [
            row.next_attempt_at
            for row in self._tables.notifications.rows.values()
            if row.status is NotificationStatus.PENDING
        ]
        return min(pending, default=None)

    def cancel(self, ids: Collection[int], *, untried_only: bool = False) -> int:
        """Cancel those of ``ids`` still pending (and never tried, if ``untried_only``)."""
        return self._change(
            ids,
            lambda row: not untried_only or row.attempts == 0,
            lambda row: replace(row, status=NotificationStatus.CANCELLED),
        )

    def pending_of(self, ids: Collection[int]) -> list[int]:
        """Those of ``ids`` still pending, in id order."""
        rows = self._tables.notifications.rows
        return sorted(i for i in set(ids) if i in rows and rows[i].status is NotificationStatus.PENDING)

    def bring_forward(self, ids: Collection[int], *, due_at: datetime, to: datetime) -> int:
        """Make those of ``ids`` pending, never tried and due at ``due_at`` due at ``to``."""
        due_at = rules.aware_utc(due_at, "due_at")
        to = rules.aware_utc(to, "to")
        return self._change(
            ids,
            lambda row: row.attempts == 0 and row.next_attempt_at == due_at,
            lambda row: replace(row, next_attempt_at=to),
        )

    def _change(
        self,
        ids: Collection[int],
        applies: Callable[[Notification], bool],
        change: Callable[[Notification], Notification],
    ) -> int:
        """Apply ``change`` to each pending row of ``ids`` that ``applies``; how many."""
        rows = self._tables.notifications.rows
        chosen = [
            rows[row_id]
            for row_id in dict.fromkeys(ids)
            if row_id in rows and rows[row_id].status is NotificationStatus.PENDING and applies(rows[row_id])
        ]
        if chosen:
            tables = self._tx.write()
            for row in chosen:
                tables.notifications.put(stored_id(row), change(row))
        return len(chosen)

    def for_alarm(self, alarm_id: int) -> list[Notification]:
        """The alarm's notifications, oldest first (``created_at``, then id)."""
        rows = [row for row in self._tables.notifications.rows.values() if row.alarm_id == alarm_id]
        return sorted(rows, key=lambda row: (row.created_at, stored_id(row)))

    def _require_alarm(self, alarm_id: int | None) -> None:
        if alarm_id is not None and alarm_id not in self._tables.alarms.rows:
            raise NotFoundError(rules.missing("alarm", alarm_id))


def _by_due(doses: Iterable[Dose]) -> list[Dose]:
    return sorted(doses, key=lambda dose: (dose.due, stored_id(dose)))
