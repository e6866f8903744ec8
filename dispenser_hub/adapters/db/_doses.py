"""SQL repositories of doses and of the notification outbox.

Same rules, orders and errors as ``adapters.memory._doses`` (the contract suite checks both; the tables are
described in ``_dose_tables``). Every time is stored and returned in UTC.

* **Doses**: the device and the patient are checked first (``NotFoundError``, device first). ``put`` is an
  ``INSERT ... ON CONFLICT (device_id, slot_id) DO UPDATE ... RETURNING id``: race-safe, and a replaced
  dose keeps its row and id. Because that statement bypasses the ORM, every read re-reads its rows
  (``populate_existing``), so a row this session loaded earlier never comes back stale.
* **Notifications**: ``add`` is an ``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id`` (like events):
  a key already stored, also by a racing transaction, gives ``None``. An ``alarm_id``, when given, must
  exist. The address is written only as a ``FieldProtector`` token (context ``notification.address``).
* ``claim`` selects ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: notifications another sender is working on are
  skipped, so two senders never claim the same one. ``record``, ``cancel`` and ``bring_forward`` are
  conditional ``UPDATE ... RETURNING id`` statements: the rule and the write are one statement, so a
  concurrent change is either seen or waited for, never overwritten. All of these run as Core statements
  (a round of hundreds of rows, no ORM objects). SQLite needs no lock: its unit of work holds the
  database's write lock from its first statement (``engine``).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlmodel import col, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository
from dispenser_hub.adapters.db.tables import AlarmRow, DoseRow, NotificationRow
from dispenser_hub.domain.doses import Dose, DoseState
from dispenser_hub.domain.model import Notification, NotificationStatus, SendOutcome
from dispenser_hub.ports import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from sqlmodel.sql.expression import SelectOfScalar

    from dispenser_hub.ports import FieldProtector

ADDRESS_CONTEXT = "notification.address"
"""The ``FieldProtector`` context of ``notification.address_enc``."""
_DOSE_KEY = ("device_id", "slot_id")
IN_CHUNK = 500
"""Most ids in one ``IN (...)`` list."""
R = TypeVar("R", DoseRow, NotificationRow)


class SqlDoseRepository(SqlRepository):
    """Doses, one per (device_id, slot_id) (see the module docstring)."""

    def put(self, dose: Dose) -> Dose:
        """Insert, or replace the dose with the same (device_id, slot_id), keeping its id."""
        stored = rules.normalise(dose)
        if not self._device_exists(stored.device_id):
            raise NotFoundError(rules.missing("device", stored.device_id))
        if not self._patient_exists(stored.patient_id):
            raise NotFoundError(rules.missing("patient", stored.patient_id))
        statement = _dose_upsert(postgresql=self._postgresql)
        dose_id: int = self._session.exec(statement, params=_dose_values(stored)).scalar_one()
        return rules.with_id(stored, dose_id)

    def get(self, device_id: str, slot_id: str) -> Dose | None:
        """The dose of this device's slot."""
        statement = select(DoseRow).where(
            col(DoseRow.device_id) == device_id, col(DoseRow.slot_id) == slot_id
        )
        row = self._session.exec(_fresh(statement)).first()
        return None if row is None else _dose(row)

    def for_device(self, device_id: str, *, since: datetime | None = None, limit: int = 500) -> list[Dose]:
        """The device's doses by due time, then id; due at or after ``since`` if given."""
        rules.check_page(0, limit)
        statement = select(DoseRow).where(col(DoseRow.device_id) == device_id)
        if since is not None:
            statement = statement.where(col(DoseRow.due) >= rules.aware_utc(since, "since"))
        return self._doses(statement.limit(limit))

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
        statement = select(DoseRow).where(col(DoseRow.patient_id) == patient_id)
        if since is not None:
            statement = statement.where(col(DoseRow.due) >= rules.aware_utc(since, "since"))
        if until is not None:
            statement = statement.where(col(DoseRow.due) < rules.aware_utc(until, "until"))
        return self._doses(statement.limit(limit))

    def in_states(self, patient_id: int, states: Collection[str]) -> list[Dose]:
        """The patient's doses in any of ``states`` (members or values of ``DoseState``), by due time."""
        wanted = sorted(DoseState(state).value for state in states)
        if not wanted:
            return []
        statement = select(DoseRow).where(
            col(DoseRow.patient_id) == patient_id, col(DoseRow.state).in_(wanted)
        )
        return self._doses(statement)

    def _doses(self, statement: SelectOfScalar[DoseRow]) -> list[Dose]:
        ordered = statement.order_by(col(DoseRow.due), col(DoseRow.id))
        return [_dose(row) for row in self._session.exec(_fresh(ordered))]


class SqlNotificationRepository(SqlRepository):
    """The notification outbox, one row per key (see the module docstring)."""

    def add(self, notification: Notification) -> Notification | None:
        """Store a new notification; ``None`` (nothing stored) if its key exists."""
        stored = rules.normalise(notification)
        self._require_alarm(stored.alarm_id)
        table = _notifications()
        statement = (
            self._insert(table)
            .values(_notification_values(stored, self._protector))
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(table.c.id)
        )
        new_id = self._session.exec(statement).scalar_one_or_none()
        return None if new_id is None else rules.with_id(stored, new_id)

    def get(self, notification_id: int) -> Notification | None:
        """The notification with this id."""
        statement = select(NotificationRow).where(col(NotificationRow.id) == notification_id)
        row = self._session.exec(_fresh(statement)).first()
        return None if row is None else _notification(row, self._protector)

    def by_key(self, key: str) -> Notification | None:
        """The notification with this key."""
        statement = select(NotificationRow).where(col(NotificationRow.key) == key)
        row = self._session.exec(_fresh(statement)).first()
        return None if row is None else _notification(row, self._protector)

    def update(self, notification: Notification) -> Notification:
        """Replace the stored notification with the same id (``NotFoundError`` if there is none)."""
        if notification.id is None:
            raise NotFoundError(rules.no_id("notification"))
        row = self._session.get(NotificationRow, notification.id, populate_existing=True)
        if row is None:
            raise NotFoundError(rules.missing("notification", notification.id))
        stored = rules.normalise(notification)
        self._require_alarm(stored.alarm_id)
        row.sqlmodel_update(_notification_values(stored, self._protector))
        self._flush({"uq_notification_key": rules.notification_key_taken(stored.key)})
        return _notification(row, self._protector)

    def claim(self, now: datetime, *, until: datetime, limit: int = 100) -> list[Notification]:
        """Claim the pending notifications due by ``now``: one SELECT (locked, see above), one UPDATE."""
        now = rules.aware_utc(now, "now")
        until = rules.aware_utc(until, "until")
        rules.check_page(0, limit)
        table = _notifications()
        statement = (
            sa.select(table)
            .where(table.c.status == NotificationStatus.PENDING.value, table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at, table.c.id)
            .limit(limit)
        )
        if self._postgresql:
            statement = statement.with_for_update(skip_locked=True)
        connection = self._session.connection()
        claimed = [_notification(row, self._protector) for row in connection.execute(statement)]
        if claimed:  # at most ``limit`` ids: one IN list
            ids = [notification.id for notification in claimed]
            connection.execute(_claim_update(), {"ids": ids, "until": until})
        return claimed

    def record(self, outcomes: Sequence[SendOutcome]) -> list[SendOutcome]:
        """Store the outcomes that apply (``storage_rules.outcome_applies``), one UPDATE per kind of outcome.

        Outcomes with the same columns (a round's successes share theirs) are one ``UPDATE ... WHERE id IN
        (...)``, which holds the rule itself (``AND status = 'pending'`` unless the outcome is ``SENT``) and
        returns the ids it changed. So the decision and the write are one statement: on PostgreSQL an
        acknowledgement cancelling a row meanwhile either commits first (and the row is left alone) or
        waits for this transaction.
        """
        connection = self._session.connection()
        groups: dict[tuple[object, ...], list[int]] = {}
        for outcome in outcomes:
            groups.setdefault(_outcome_columns(outcome), []).append(outcome.id)
        changed: set[int] = set()
        for columns, ids in groups.items():
            values = {
                f"new_{name}": value for name, value in zip(rules.OUTCOME_COLUMNS, columns, strict=True)
            }
            statement = _record_update(sent=values["new_status"] == NotificationStatus.SENT.value)
            for start in range(0, len(ids), IN_CHUNK):
                result = connection.execute(statement, {**values, "ids": ids[start : start + IN_CHUNK]})
                changed.update(result.scalars())
        return [outcome for outcome in outcomes if outcome.id in changed]

    def next_due(self) -> datetime | None:
        """The earliest ``next_attempt_at`` of a pending notification (the status index answers it)."""
        table = _notifications()
        statement = sa.select(sa.func.min(table.c.next_attempt_at)).where(
            table.c.status == NotificationStatus.PENDING.value
        )
        earliest: datetime | None = self._session.connection().execute(statement).scalar_one_or_none()
        return earliest

    def cancel(self, ids: Collection[int], *, untried_only: bool = False) -> int:
        """Cancel those of ``ids`` still pending (and never tried): one conditional UPDATE."""
        table = _notifications()
        conditions = [table.c.status == NotificationStatus.PENDING.value]
        if untried_only:
            conditions.append(table.c.attempts == 0)
        return self._change(ids, conditions, {"status": NotificationStatus.CANCELLED.value})

    def pending_of(self, ids: Collection[int]) -> list[int]:
        """Those of ``ids`` still pending, in id order (one SELECT per ``IN_CHUNK`` ids)."""
        table = _notifications()
        unique = sorted(set(ids))
        found: list[int] = []
        for start in range(0, len(unique), IN_CHUNK):
            statement = sa.select(table.c.id).where(
                table.c.id.in_(unique[start : start + IN_CHUNK]),
                table.c.status == NotificationStatus.PENDING.value,
            )
            found += self._session.connection().execute(statement).scalars()
        return sorted(found)

    def bring_forward(self, ids: Collection[int], *, due_at: datetime, to: datetime) -> int:
        """Make those of ``ids`` pending, never tried and due at ``due_at`` due at ``to`` (one UPDATE)."""
        due_at = rules.aware_utc(due_at, "due_at")
        to = rules.aware_utc(to, "to")
        table = _notifications()
        conditions = [
            table.c.status == NotificationStatus.PENDING.value,
            table.c.attempts == 0,
            table.c.next_attempt_at == due_at,
        ]
        return self._change(ids, conditions, {"next_attempt_at": to})

    def _change(self, ids: Collection[int], conditions: list[Any], values: dict[str, Any]) -> int:
        """``UPDATE notification SET values WHERE id IN ids AND conditions``, in chunks; rows changed."""
        table = _notifications()
        unique = list(dict.fromkeys(ids))
        changed = 0
        for start in range(0, len(unique), IN_CHUNK):
            statement = (
                sa.update(table)
                .where(table.c.id.in_(unique[start : start + IN_CHUNK]), *conditions)
                .values(values)
                .returning(table.c.id)
            )
            changed += len(self._session.connection().execute(statement).all())
        return changed

    def for_alarm(self, alarm_id: int) -> list[Notification]:
        """The alarm's notifications, oldest first (``created_at``, then id)."""
        statement = (
            select(NotificationRow)
            .where(col(NotificationRow.alarm_id) == alarm_id)
            .order_by(col(NotificationRow.created_at), col(NotificationRow.id))
        )
        return [_notification(row, self._protector) for row in self._session.exec(_fresh(statement))]

    def _require_alarm(self, alarm_id: int | None) -> None:
        if alarm_id is not None and self._session.get(AlarmRow, alarm_id) is None:
            raise NotFoundError(rules.missing("alarm", alarm_id))


def _notifications() -> Any:  # noqa: ANN401 - SQLModel sets the table on table models
    return NotificationRow.__table__  # type: ignore[attr-defined]


@cache
def _claim_update() -> Any:  # noqa: ANN401 - an SQLAlchemy statement
    """``UPDATE notification SET next_attempt_at = :until WHERE id IN :ids``, built once."""
    table = _notifications()
    return (
        sa.update(table)
        .where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
        .values(next_attempt_at=sa.bindparam("until", type_=table.c.next_attempt_at.type))
    )


@cache
def _record_update(*, sent: bool) -> Any:  # noqa: ANN401 - an SQLAlchemy statement
    """``UPDATE notification SET <outcome columns> WHERE id IN :ids [AND status = 'pending'] RETURNING id``.

    Built once per kind (a ``SENT`` outcome is stored over any row, others over pending rows only); the new
    values are the parameters ``new_<column>``.
    """
    table = _notifications()
    statement = sa.update(table).where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
    if not sent:
        statement = statement.where(table.c.status == NotificationStatus.PENDING.value)
    values = {name: sa.bindparam(f"new_{name}", type_=table.c[name].type) for name in rules.OUTCOME_COLUMNS}
    return statement.values(values).returning(table.c.id)


def _outcome_columns(outcome: SendOutcome) -> tuple[object, ...]:
    """An outcome's values of ``storage_rules.OUTCOME_COLUMNS`` (``UtcDateTime`` checks the times)."""
    return tuple(
        outcome.status.value if name == "status" else getattr(outcome, name) for name in rules.OUTCOME_COLUMNS
    )


def _fresh(statement: SelectOfScalar[R]) -> SelectOfScalar[R]:
    """``statement`` re-reading rows this session loaded earlier (see the module docstring)."""
    return statement.execution_options(populate_existing=True)


@cache
def _dose_upsert(*, postgresql: bool) -> Any:  # noqa: ANN401 - a dialect-specific SQLAlchemy statement
    """``INSERT ... ON CONFLICT (device_id, slot_id) DO UPDATE ... RETURNING id``, built once per dialect.

    Its values are bind parameters named as the columns (``_dose_values``' keys).
    """
    table: Any = DoseRow.__table__  # type: ignore[attr-defined] # SQLModel sets it on table models
    insert = (postgresql_dialect if postgresql else sqlite_dialect).insert(table)
    insert = insert.values({name: sa.bindparam(name, type_=table.c[name].type) for name in _DOSE_COLUMNS})
    changed = {name: insert.excluded[name] for name in _DOSE_COLUMNS if name not in _DOSE_KEY}
    return insert.on_conflict_do_update(index_elements=list(_DOSE_KEY), set_=changed).returning(table.c.id)


_DOSE_COLUMNS = (
    "device_id",
    "patient_id",
    "slot_id",
    "due",
    "opens",
    "closes",
    "pouch_id",
    "pot",
    "state",
    "taken_at",
    "outcome_at",
    "reason",
    "reminders",
    "corrected_at",
    "skipped_by",
)


def _dose_values(dose: Dose) -> dict[str, Any]:
    return {
        "device_id": dose.device_id,
        "patient_id": dose.patient_id,
        "slot_id": dose.slot_id,
        "due": dose.due,
        "opens": dose.opens,
        "closes": dose.closes,
        "pouch_id": dose.pouch_id,
        "pot": dose.pot,
        "state": dose.state.value,
        "taken_at": dose.taken_at,
        "outcome_at": dose.outcome_at,
        "reason": dose.reason,
        "reminders": dose.reminders,
        "corrected_at": dose.corrected_at,
        "skipped_by": dose.skipped_by,
    }


def _dose(row: DoseRow) -> Dose:
    return Dose(
        device_id=row.device_id,
        patient_id=row.patient_id,
        slot_id=row.slot_id,
        due=row.due,
        opens=row.opens,
        closes=row.closes,
        pouch_id=row.pouch_id,
        pot=row.pot,
        state=DoseState(row.state),
        taken_at=row.taken_at,
        outcome_at=row.outcome_at,
        reason=row.reason,
        reminders=row.reminders,
        corrected_at=row.corrected_at,
        skipped_by=row.skipped_by,
        id=row.id,
    )


def _notification_values(notification: Notification, protector: FieldProtector) -> dict[str, Any]:
    return {
        "key": notification.key,
        "channel": notification.channel,
        "address_enc": protector.encrypt(notification.address, context=ADDRESS_CONTEXT),
        "recipient": notification.recipient,
        "subject": notification.subject,
        "text": notification.text,
        "created_at": notification.created_at,
        "next_attempt_at": notification.next_attempt_at,
        "alarm_id": notification.alarm_id,
        "step_key": notification.step_key,
        "status": notification.status.value,
        "attempts": notification.attempts,
        "sent_at": notification.sent_at,
        "last_error": notification.last_error,
        "acknowledged_at": notification.acknowledged_at,
    }


def _notification(row: NotificationRow | sa.Row[Any], protector: FieldProtector) -> Notification:
    return Notification(
        key=row.key,
        channel=row.channel,
        address=protector.decrypt(row.address_enc, context=ADDRESS_CONTEXT),
        recipient=row.recipient,
        subject=row.subject,
        text=row.text,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        alarm_id=row.alarm_id,
        step_key=row.step_key,
        status=NotificationStatus(row.status),
        attempts=row.attempts,
        sent_at=row.sent_at,
        last_error=row.last_error,
        acknowledged_at=row.acknowledged_at,
        id=row.id,
    )
