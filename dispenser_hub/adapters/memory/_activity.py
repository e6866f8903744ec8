"""In-memory repositories of what happens: device events, dead letters, commands, alarms, the audit log.

Same rules, orders and errors as ``adapters.db`` (the contract suite checks both). "Newest first" is by
storage id, except dead letters (by ``received_at``) and alarms (by ``last_raised_at``), ties broken by id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.memory._registry import MemoryRepository
from dispenser_hub.adapters.memory._tables import stored_id
from dispenser_hub.domain.model import AlarmStatus, CommandStatus
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from dispenser_hub.domain.model import (
        Alarm,
        AlarmLogEntry,
        AuditEntry,
        Command,
        DeadLetter,
        DeviceEvent,
    )

_DUE_STATUSES = frozenset({CommandStatus.PENDING, CommandStatus.SENT})


class MemoryEventRepository(MemoryRepository):
    """Accepted device messages, once per (device_id, msg_id)."""

    def add(self, event: DeviceEvent) -> DeviceEvent | None:
        """Store an event of an existing device; ``None`` if it is a duplicate."""
        stored = rules.normalise(event)
        self._require_device(stored.device_id)
        key = (stored.device_id, stored.msg_id)
        if key in self._tables.event_keys.rows:
            return None
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("events"))
        tables.events.put(stored_id(stored), stored)
        tables.event_keys.put(key, stored_id(stored))
        return stored

    def add_many(self, events: Sequence[DeviceEvent]) -> list[DeviceEvent | None]:
        """``add`` each in order; nothing stored if a device does not exist."""
        for event in events:
            self._require_device(event.device_id)
        return [self.add(event) for event in events]

    def exists(self, device_id: str, msg_id: str) -> bool:
        """Whether (device_id, msg_id) is stored."""
        return (device_id, msg_id) in self._tables.event_keys.rows

    def select(
        self,
        *,
        device_id: str | None = None,
        types: Sequence[str] = (),
        offset: int = 0,
        limit: int = 100,
    ) -> list[DeviceEvent]:
        """Events newest first, optionally of one device and some types."""
        rules.check_page(offset, limit)
        wanted = frozenset(types)
        rows = [
            event
            for event in self._tables.events.newest_first()
            if (device_id is None or event.device_id == device_id) and (not wanted or event.type in wanted)
        ]
        return rows[offset : offset + limit]

    def count(self, *, device_id: str | None = None) -> int:
        """Number of events, optionally of one device."""
        rows = self._tables.events.rows.values()
        return sum(1 for event in rows if device_id is None or event.device_id == device_id)


class MemoryDeadLetterRepository(MemoryRepository):
    """Refused messages."""

    def add(self, letter: DeadLetter) -> DeadLetter:
        """Store a refused message (its device need not exist)."""
        tables = self._tx.write()
        stored = rules.with_id(rules.normalise(letter), tables.next_id("dead_letters"))
        tables.dead_letters.put(stored_id(stored), stored)
        return stored

    def select(self, *, device_id: str | None = None, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Newest first by ``received_at``, then id."""
        rules.check_page(offset, limit)
        rows = [
            d
            for d in self._tables.dead_letters.rows.values()
            if device_id is None or d.device_id == device_id
        ]
        rows.sort(key=lambda letter: (letter.received_at, stored_id(letter)), reverse=True)
        return rows[offset : offset + limit]

    def count_since(self, device_id: str, since: datetime) -> int:
        """Dead letters naming the device received at or after ``since``."""
        since = rules.aware_utc(since, "since")
        rows = self._tables.dead_letters.rows.values()
        return sum(1 for d in rows if d.device_id == device_id and d.received_at >= since)


class MemoryCommandRepository(MemoryRepository):
    """The downlink outbox; message ids are unique."""

    def add(self, command: Command) -> Command:
        """Store a new command for an existing device."""
        stored = rules.normalise(command)
        self._require_device(stored.device_id)
        if self.get(stored.msg_id) is not None:
            raise ConflictError(rules.command_taken(stored.msg_id))
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("commands"))
        tables.commands.put(stored_id(stored), stored)
        return stored

    def get(self, msg_id: str) -> Command | None:
        """The command with this message id."""
        return next((c for c in self._tables.commands.rows.values() if c.msg_id == msg_id), None)

    def update(self, command: Command) -> Command:
        """Replace the stored command with the same message id."""
        current = self.get(command.msg_id)
        if current is None:
            raise NotFoundError(rules.missing("command", command.msg_id))
        stored = rules.with_id(rules.normalise(command), stored_id(current))
        self._require_device(stored.device_id)
        self._tx.write().commands.put(stored_id(stored), stored)
        return stored

    def due(self, now: datetime, *, limit: int = 100) -> list[Command]:
        """Pending or sent commands with ``next_attempt_at`` at or before ``now``, earliest first."""
        rules.check_page(0, limit)
        now = rules.aware_utc(now, "now")
        rows = [
            c
            for c in self._tables.commands.rows.values()
            if c.status in _DUE_STATUSES and c.next_attempt_at is not None and c.next_attempt_at <= now
        ]
        rows.sort(key=lambda command: (command.next_attempt_at or now, stored_id(command)))
        return rows[:limit]

    def select(self, *, device_id: str | None = None, offset: int = 0, limit: int = 100) -> list[Command]:
        """Newest first (by id), optionally of one device."""
        rules.check_page(offset, limit)
        rows = [
            c for c in self._tables.commands.newest_first() if device_id is None or c.device_id == device_id
        ]
        return rows[offset : offset + limit]


class MemoryAlarmRepository(MemoryRepository):
    """Alarms, one open per dedup key, and their append-only log."""

    def add(self, alarm: Alarm) -> Alarm:
        """Store a new alarm."""
        stored = rules.normalise(alarm)
        self._check_open_key(stored, own_id=None)
        tables = self._tx.write()
        stored = rules.with_id(stored, tables.next_id("alarms"))
        tables.alarms.put(stored_id(stored), stored)
        self._index(stored)
        return stored

    def get(self, alarm_id: int) -> Alarm | None:
        """The alarm with this id."""
        return self._tables.alarms.rows.get(alarm_id)

    def open_by_key(self, dedup_key: str) -> Alarm | None:
        """The open alarm with this dedup key."""
        alarm_id = self._tables.open_alarms.rows.get(dedup_key)
        return None if alarm_id is None else self._tables.alarms.rows[alarm_id]

    def update(self, alarm: Alarm) -> Alarm:
        """Replace the stored alarm with the same id."""
        if alarm.id is None:
            raise NotFoundError(rules.no_id("alarm"))
        previous = self.get(alarm.id)
        if previous is None:
            raise NotFoundError(rules.missing("alarm", alarm.id))
        stored = rules.normalise(alarm)
        self._check_open_key(stored, own_id=alarm.id)
        tables = self._tx.write()
        if previous.open and tables.open_alarms.rows.get(previous.dedup_key) == alarm.id:
            tables.open_alarms.pop(previous.dedup_key)
        tables.alarms.put(alarm.id, stored)
        self._index(stored)
        return stored

    def select(
        self,
        *,
        status: AlarmStatus | None = None,
        open_only: bool = False,
        device_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Alarm]:
        """Newest first by ``last_raised_at``, then id."""
        rules.check_page(offset, limit)
        rows = [
            a
            for a in self._tables.alarms.rows.values()
            if (status is None or a.status is status)
            and (not open_only or a.status is not AlarmStatus.RESOLVED)
            and (device_id is None or a.device_id == device_id)
        ]
        rows.sort(key=lambda alarm: (alarm.last_raised_at, stored_id(alarm)), reverse=True)
        return rows[offset : offset + limit]

    def log(self, entry: AlarmLogEntry) -> AlarmLogEntry:
        """Append to the log of an existing alarm."""
        if entry.alarm_id not in self._tables.alarms.rows:
            raise NotFoundError(rules.missing("alarm", entry.alarm_id))
        tables = self._tx.write()
        stored = rules.with_id(rules.normalise(entry), tables.next_id("alarm_log"))
        tables.alarm_log.put(stored_id(stored), stored)
        return stored

    def history(self, alarm_id: int) -> list[AlarmLogEntry]:
        """The alarm's log, in the order it was written."""
        return [entry for entry in self._tables.alarm_log.rows.values() if entry.alarm_id == alarm_id]

    def _check_open_key(self, alarm: Alarm, *, own_id: int | None) -> None:
        key = rules.alarm_open_key(alarm)
        holder = None if key is None else self._tables.open_alarms.rows.get(key)
        if key is not None and holder is not None and holder != own_id:
            raise ConflictError(rules.alarm_already_open(key))

    def _index(self, alarm: Alarm) -> None:
        key = rules.alarm_open_key(alarm)
        if key is not None:
            self._tx.write().open_alarms.put(key, stored_id(alarm))


class MemoryAuditRepository(MemoryRepository):
    """The audit log, append-only."""

    def add(self, entry: AuditEntry) -> AuditEntry:
        """Append an entry."""
        tables = self._tx.write()
        stored = rules.with_id(rules.normalise(entry), tables.next_id("audit"))
        tables.audit.put(stored_id(stored), stored)
        return stored

    def select(self, *, subject: str | None = None, offset: int = 0, limit: int = 100) -> list[AuditEntry]:
        """Newest first (by id), optionally about one subject."""
        rules.check_page(offset, limit)
        rows = [e for e in self._tables.audit.newest_first() if subject is None or e.subject == subject]
        return rows[offset : offset + limit]
