"""SQL repositories of device traffic: accepted events, dead letters, the downlink command outbox.

Rules: an event is stored once per (device_id, msg_id): ``INSERT ... ON CONFLICT DO NOTHING`` finds a
duplicate, stored earlier or by a racing transaction, in the same statement (``None``, the transaction
unharmed; no SELECT before the insert).
"Newest first" is by storage id, except dead letters (by ``received_at``, ties by id), as in
``adapters.memory``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, func, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository, stored_id
from dispenser_hub.adapters.db.tables import (
    CommandRow,
    DeadLetterRow,
    DeviceEventRow,
    metadata,
)
from dispenser_hub.domain.model import (
    Command,
    CommandStatus,
    DeadLetter,
    DeviceEvent,
)
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

_DUE_STATUSES = (CommandStatus.PENDING.value, CommandStatus.SENT.value)
_EVENT_COLUMNS = (
    "device_id",
    "msg_id",
    "type",
    "boot_id",
    "seq",
    "device_ts",
    "received_at",
    "body",
    "corr_id",
)


@cache
def _insert_event(dialect_name: str) -> Any:  # noqa: ANN401 - a dialect's Insert; built once, run per event
    """``INSERT ... ON CONFLICT (device_id, msg_id) DO NOTHING RETURNING id, device_id, msg_id``."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = metadata.tables[DeviceEventRow.__tablename__]
    return (
        dialect.insert(table)
        .values({name: sa.bindparam(name, type_=table.c[name].type) for name in _EVENT_COLUMNS})
        .on_conflict_do_nothing(index_elements=["device_id", "msg_id"])
        .returning(table.c.id, table.c.device_id, table.c.msg_id)
    )


class SqlEventRepository(SqlRepository):
    """Accepted device messages, once per (device_id, msg_id)."""

    def add(self, event: DeviceEvent) -> DeviceEvent | None:
        """Store an event of an existing device; ``None`` if it is a duplicate."""
        (stored,) = self.add_many([event])
        return stored

    def add_many(self, events: Sequence[DeviceEvent]) -> list[DeviceEvent | None]:
        """The insert of ``add`` run as one executemany (SQLAlchemy's "insertmanyvalues" batches it).

        The inserted rows come back with their keys (in no promised order), and each key's id goes to its
        first occurrence in ``events``: a later one with the same key is the in-batch duplicate that
        ``DO NOTHING`` skipped.
        """
        if not events:
            return []
        events = [rules.normalise(event) for event in events]
        rows = self._device_rows([event.device_id for event in events])
        for event in events:
            if event.device_id not in rows:
                raise NotFoundError(rules.missing("device", event.device_id))
        statement = _insert_event(self._session.get_bind().dialect.name)
        params = [{name: getattr(event, name) for name in _EVENT_COLUMNS} for event in events]
        inserted = self._session.connection().execute(statement, params)
        ids = {(device_id, msg_id): new_id for new_id, device_id, msg_id in inserted}
        results: list[DeviceEvent | None] = []
        for event in events:
            new_id = ids.pop((event.device_id, event.msg_id), None)
            results.append(None if new_id is None else rules.with_id(event, new_id))
        return results

    def exists(self, device_id: str, msg_id: str) -> bool:
        """Whether (device_id, msg_id) is stored."""
        statement = select(col(DeviceEventRow.id)).where(
            col(DeviceEventRow.device_id) == device_id, col(DeviceEventRow.msg_id) == msg_id
        )
        return self._session.exec(statement).first() is not None

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
        statement = select(DeviceEventRow).order_by(col(DeviceEventRow.id).desc()).offset(offset).limit(limit)
        if device_id is not None:
            statement = statement.where(col(DeviceEventRow.device_id) == device_id)
        if types:
            statement = statement.where(col(DeviceEventRow.type).in_(list(types)))
        return [_event(row) for row in self._session.exec(statement)]

    def count(self, *, device_id: str | None = None) -> int:
        """Number of events, optionally of one device."""
        statement = select(func.count()).select_from(DeviceEventRow)
        if device_id is not None:
            statement = statement.where(col(DeviceEventRow.device_id) == device_id)
        return self._session.exec(statement).one()


class SqlDeadLetterRepository(SqlRepository):
    """Refused messages."""

    def add(self, letter: DeadLetter) -> DeadLetter:
        """Store a refused message (its device need not exist)."""
        letter = rules.normalise(letter)
        row = DeadLetterRow(
            received_at=letter.received_at,
            topic=letter.topic,
            reason=letter.reason,
            detail=letter.detail,
            raw=letter.raw,
            raw_size=letter.raw_size,
            device_id=letter.device_id,
            field=letter.field,
        )
        self._session.add(row)
        self._flush({})
        return rules.with_id(letter, stored_id(row.id))

    def select(self, *, device_id: str | None = None, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Newest first by ``received_at``, then id."""
        rules.check_page(offset, limit)
        statement = (
            select(DeadLetterRow)
            .order_by(col(DeadLetterRow.received_at).desc(), col(DeadLetterRow.id).desc())
            .offset(offset)
            .limit(limit)
        )
        if device_id is not None:
            statement = statement.where(col(DeadLetterRow.device_id) == device_id)
        return [_dead_letter(row) for row in self._session.exec(statement)]

    def count_since(self, device_id: str, since: datetime) -> int:
        """Dead letters naming the device received at or after ``since``."""
        since = rules.aware_utc(since, "since")
        statement = (
            select(func.count())
            .select_from(DeadLetterRow)
            .where(col(DeadLetterRow.device_id) == device_id, col(DeadLetterRow.received_at) >= since)
        )
        return self._session.exec(statement).one()


class SqlCommandRepository(SqlRepository):
    """The downlink outbox; message ids are unique."""

    def add(self, command: Command) -> Command:
        """Store a new command for an existing device."""
        command = rules.normalise(command)
        if not self._device_exists(command.device_id):
            raise NotFoundError(rules.missing("device", command.device_id))
        if self._row(command.msg_id) is not None:
            raise ConflictError(rules.command_taken(command.msg_id))
        row = CommandRow(**_command_values(command))
        self._session.add(row)
        self._flush({"uq_command_msg_id": rules.command_taken(command.msg_id)})
        return rules.with_id(command, stored_id(row.id))

    def get(self, msg_id: str) -> Command | None:
        """The command with this message id."""
        row = self._row(msg_id)
        return None if row is None else _command(row)

    def update(self, command: Command) -> Command:
        """Replace the stored command with the same message id."""
        command = rules.normalise(command)
        row = self._row(command.msg_id)
        if row is None:
            raise NotFoundError(rules.missing("command", command.msg_id))
        if not self._device_exists(command.device_id):
            raise NotFoundError(rules.missing("device", command.device_id))
        row.sqlmodel_update(_command_values(command))
        self._flush({})
        return rules.with_id(command, stored_id(row.id))

    def due(self, now: datetime, *, limit: int = 100) -> list[Command]:
        """Pending or sent commands with ``next_attempt_at`` at or before ``now``, earliest first."""
        rules.check_page(0, limit)
        now = rules.aware_utc(now, "now")
        statement = (
            select(CommandRow)
            .where(col(CommandRow.status).in_(_DUE_STATUSES), col(CommandRow.next_attempt_at) <= now)
            .order_by(col(CommandRow.next_attempt_at), col(CommandRow.id))
            .limit(limit)
        )
        return [_command(row) for row in self._session.exec(statement)]

    def select(self, *, device_id: str | None = None, offset: int = 0, limit: int = 100) -> list[Command]:
        """Newest first (by id), optionally of one device."""
        rules.check_page(offset, limit)
        statement = select(CommandRow).order_by(col(CommandRow.id).desc()).offset(offset).limit(limit)
        if device_id is not None:
            statement = statement.where(col(CommandRow.device_id) == device_id)
        return [_command(row) for row in self._session.exec(statement)]

    def _row(self, msg_id: str) -> CommandRow | None:
        return self._session.exec(select(CommandRow).where(col(CommandRow.msg_id) == msg_id)).first()


def _event(row: DeviceEventRow) -> DeviceEvent:
    return DeviceEvent(
        device_id=row.device_id,
        msg_id=row.msg_id,
        type=row.type,
        boot_id=row.boot_id,
        seq=row.seq,
        device_ts=row.device_ts,
        received_at=row.received_at,
        body=row.body,
        corr_id=row.corr_id,
        id=row.id,
    )


def _dead_letter(row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(
        received_at=row.received_at,
        topic=row.topic,
        reason=row.reason,
        detail=row.detail,
        raw=row.raw,
        raw_size=row.raw_size,
        device_id=row.device_id,
        field=row.field,
        id=row.id,
    )


def _command_values(command: Command) -> dict[str, Any]:
    return {
        "msg_id": command.msg_id,
        "device_id": command.device_id,
        "type": command.type,
        "body": command.body,
        "created_at": command.created_at,
        "expires_at": command.expires_at,
        "created_by": command.created_by,
        "status": command.status.value,
        "corr_id": command.corr_id,
        "attempts": command.attempts,
        "next_attempt_at": command.next_attempt_at,
        "sent_at": command.sent_at,
        "finished_at": command.finished_at,
        "result": command.result,
    }


def _command(row: CommandRow) -> Command:
    return Command(
        msg_id=row.msg_id,
        device_id=row.device_id,
        type=row.type,
        body=row.body,
        created_at=row.created_at,
        expires_at=row.expires_at,
        created_by=row.created_by,
        status=CommandStatus(row.status),
        corr_id=row.corr_id,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        finished_at=row.finished_at,
        result=row.result,
        id=row.id,
    )
