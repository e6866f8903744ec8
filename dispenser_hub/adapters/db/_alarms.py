"""SQL repositories of alarms (one open per dedup key) with their append-only log, and the audit log.

Rules: "one open alarm per dedup key" is the unique ``alarm.open_key`` (see ``tables``), kept in step with the
status here. Alarms come newest first by ``last_raised_at`` (ties by id), audit entries by id, as in
``adapters.memory``.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from dispenser_hub.adapters import storage_rules as rules
from dispenser_hub.adapters.db._base import SqlRepository, stored_id
from dispenser_hub.adapters.db.tables import AlarmLogRow, AlarmRow, AuditLogRow
from dispenser_hub.domain.model import Alarm, AlarmAction, AlarmLogEntry, AlarmStatus, AuditEntry, SubjectKind
from dispenser_hub.ports import ConflictError, NotFoundError


class SqlAlarmRepository(SqlRepository):
    """Alarms, one open per dedup key, and their append-only log."""

    def add(self, alarm: Alarm) -> Alarm:
        """Store a new alarm."""
        alarm = rules.normalise(alarm)
        self._check_open_key(alarm, own_id=None)
        row = AlarmRow(**_alarm_values(alarm))
        self._session.add(row)
        self._flush({"uq_alarm_open_key": rules.alarm_already_open(alarm.dedup_key)})
        return rules.with_id(alarm, stored_id(row.id))

    def get(self, alarm_id: int) -> Alarm | None:
        """The alarm with this id."""
        row = self._session.get(AlarmRow, alarm_id)
        return None if row is None else _alarm(row)

    def open_by_key(self, dedup_key: str) -> Alarm | None:
        """The open alarm with this dedup key."""
        row = self._session.exec(select(AlarmRow).where(col(AlarmRow.open_key) == dedup_key)).first()
        return None if row is None else _alarm(row)

    def update(self, alarm: Alarm) -> Alarm:
        """Replace the stored alarm with the same id."""
        if alarm.id is None:
            raise NotFoundError(rules.no_id("alarm"))
        row = self._session.get(AlarmRow, alarm.id)
        if row is None:
            raise NotFoundError(rules.missing("alarm", alarm.id))
        alarm = rules.normalise(alarm)
        self._check_open_key(alarm, own_id=alarm.id)
        row.sqlmodel_update(_alarm_values(alarm))
        self._flush({"uq_alarm_open_key": rules.alarm_already_open(alarm.dedup_key)})
        return alarm

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
        statement = (
            select(AlarmRow)
            .order_by(col(AlarmRow.last_raised_at).desc(), col(AlarmRow.id).desc())
            .offset(offset)
            .limit(limit)
        )
        if status is not None:
            statement = statement.where(col(AlarmRow.status) == status.value)
        if open_only:
            statement = statement.where(col(AlarmRow.status) != AlarmStatus.RESOLVED.value)
        if device_id is not None:
            statement = statement.where(col(AlarmRow.device_id) == device_id)
        return [_alarm(row) for row in self._session.exec(statement)]

    def log(self, entry: AlarmLogEntry) -> AlarmLogEntry:
        """Append to the log of an existing alarm."""
        entry = rules.normalise(entry)
        if self._session.get(AlarmRow, entry.alarm_id) is None:
            raise NotFoundError(rules.missing("alarm", entry.alarm_id))
        row = AlarmLogRow(
            alarm_id=entry.alarm_id,
            at=entry.at,
            action=entry.action.value,
            actor=entry.actor,
            detail=entry.detail,
        )
        self._session.add(row)
        self._flush({})
        return rules.with_id(entry, stored_id(row.id))

    def history(self, alarm_id: int) -> list[AlarmLogEntry]:
        """The alarm's log, in the order it was written."""
        statement = (
            select(AlarmLogRow).where(col(AlarmLogRow.alarm_id) == alarm_id).order_by(col(AlarmLogRow.id))
        )
        return [
            AlarmLogEntry(
                alarm_id=row.alarm_id,
                at=row.at,
                action=AlarmAction(row.action),
                actor=row.actor,
                detail=row.detail,
                id=row.id,
            )
            for row in self._session.exec(statement)
        ]

    def _check_open_key(self, alarm: Alarm, *, own_id: int | None) -> None:
        key = rules.alarm_open_key(alarm)
        if key is None:
            return
        holder = self._session.exec(select(col(AlarmRow.id)).where(col(AlarmRow.open_key) == key)).first()
        if holder is not None and holder != own_id:
            raise ConflictError(rules.alarm_already_open(key))


class SqlAuditRepository(SqlRepository):
    """The audit log, append-only."""

    def add(self, entry: AuditEntry) -> AuditEntry:
        """Append an entry."""
        entry = rules.normalise(entry)
        row = AuditLogRow(
            at=entry.at, actor=entry.actor, action=entry.action, subject=entry.subject, detail=entry.detail
        )
        self._session.add(row)
        self._flush({})
        return rules.with_id(entry, stored_id(row.id))

    def select(self, *, subject: str | None = None, offset: int = 0, limit: int = 100) -> list[AuditEntry]:
        """Newest first (by id), optionally about one subject."""
        rules.check_page(offset, limit)
        statement = select(AuditLogRow).order_by(col(AuditLogRow.id).desc()).offset(offset).limit(limit)
        if subject is not None:
            statement = statement.where(col(AuditLogRow.subject) == subject)
        return [
            AuditEntry(at=r.at, actor=r.actor, action=r.action, subject=r.subject, detail=r.detail, id=r.id)
            for r in self._session.exec(statement)
        ]


def _alarm_values(alarm: Alarm) -> dict[str, Any]:
    return {
        "kind": alarm.kind,
        "subject_kind": alarm.subject_kind.value,
        "subject_id": alarm.subject_id,
        "dedup_key": alarm.dedup_key,
        "open_key": rules.alarm_open_key(alarm),
        "vkp_code": alarm.vkp_code,
        "severity": alarm.severity,
        "status": alarm.status.value,
        "count": alarm.count,
        "raised_at": alarm.raised_at,
        "last_raised_at": alarm.last_raised_at,
        "detail": alarm.detail,
        "device_id": alarm.device_id,
        "patient_id": alarm.patient_id,
        "acknowledged_at": alarm.acknowledged_at,
        "acknowledged_by": alarm.acknowledged_by,
        "resolved_at": alarm.resolved_at,
        "resolved_by": alarm.resolved_by,
        "resolution": alarm.resolution,
    }


def _alarm(row: AlarmRow) -> Alarm:
    return Alarm(
        kind=row.kind,
        subject_kind=SubjectKind(row.subject_kind),
        subject_id=row.subject_id,
        vkp_code=row.vkp_code,
        severity=row.severity,
        raised_at=row.raised_at,
        last_raised_at=row.last_raised_at,
        detail=row.detail,
        status=AlarmStatus(row.status),
        count=row.count,
        device_id=row.device_id,
        patient_id=row.patient_id,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        resolution=row.resolution,
        id=row.id,
    )
