"""What every SQL repository shares: the session, the field protector, and the mapping of integrity errors.

Rule: each repository checks uniqueness and references itself, inside the transaction, before it writes, so a
conflict raises ``ConflictError``/``NotFoundError`` with a precise message and leaves the unit of work usable
(as in ``adapters.memory``). Two transactions racing past the same check still hit the database constraint:
``IntegrityError`` is then mapped to the same error by constraint name (PostgreSQL reports the name; SQLite
reports the columns, which ``metadata`` maps back to the name). After such a race the transaction is aborted
and the unit of work must be rolled back (leaving its ``with`` block does that).

Device rows are looked up by protocol id many times per ingested message (the message's device, the event's
reference, the presence update). A row this session already loaded is not selected again: a new SELECT would
return the same identity-mapped object anyway (the ORM does not overwrite attributes of a loaded row), so
the per-session map ``device_id -> row`` (kept in ``Session.info`` for the unit of work's short life) changes
no result, only the number of queries. A row that stopped being persistent in the session (its insert was
rolled back, the session closed) is looked up again.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from dispenser_hub.adapters.db.tables import DeviceRow, PatientRow, metadata
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from sqlmodel import Session
    from sqlmodel.sql.expression import SelectOfScalar

    from dispenser_hub.ports import FieldProtector

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<columns>[\w., ]+)")
_PG_UNIQUE_VIOLATION = "23505"
_PG_FOREIGN_KEY_VIOLATION = "23503"
_DEVICE_ROWS = "dispenser_hub.device_rows"
_IN_CHUNK = 500
"""Most ids in one ``IN (...)`` list (SQLite allows 32,766 bind parameters, PostgreSQL 65,535)."""


class SqlRepository:
    """Base of the SQL repositories: one ``Session`` (one transaction) shared by a unit of work."""

    def __init__(self, session: Session, protector: FieldProtector) -> None:
        self._session = session
        self._protector = protector

    @property
    def _postgresql(self) -> bool:
        return self._session.get_bind().dialect.name == "postgresql"

    def _insert(self, table: Any) -> Any:  # noqa: ANN401 - dialect-specific SQLAlchemy statements
        """``INSERT`` of the session's dialect (for ``ON CONFLICT`` clauses)."""
        return (postgresql if self._postgresql else sqlite).insert(table)

    def _flush(self, messages: Mapping[str, str]) -> None:
        """Write pending changes now; map an integrity error to ``ConflictError``/``NotFoundError``.

        ``messages`` maps the unique constraints this write may break to the ``ConflictError`` message.
        """
        try:
            self._session.flush()
        except IntegrityError as exc:
            raise integrity_error(exc, messages) from exc

    def _device_exists(self, device_id: str) -> bool:
        return self._device_row(device_id) is not None

    def _device_row(self, device_id: str) -> DeviceRow | None:
        """The device's row, selected once per session (see the module docstring)."""
        rows: dict[str, DeviceRow] = self._session.info.setdefault(_DEVICE_ROWS, {})
        row = rows.get(device_id)
        if row is not None and sa.inspect(row).persistent:
            return row
        row = self._session.exec(_select_device(), params={"device_id": device_id}).first()
        if row is not None:
            rows[device_id] = row
        return row

    def _device_rows(self, device_ids: Collection[str], *, lock: bool = False) -> dict[str, DeviceRow]:
        """The rows of the ``device_ids`` that exist: cached ones, the rest in one query (then cached).

        ``lock``: the rows selected are locked until the transaction ends (``FOR UPDATE`` on PostgreSQL;
        SQLite's writer lock covers the whole transaction already).
        """
        rows: dict[str, DeviceRow] = self._session.info.setdefault(_DEVICE_ROWS, {})
        found: dict[str, DeviceRow] = {}
        missing: list[str] = []
        for device_id in dict.fromkeys(device_ids):
            row = rows.get(device_id)
            if row is not None and sa.inspect(row).persistent:
                found[device_id] = row
            else:
                missing.append(device_id)
        for start in range(0, len(missing), _IN_CHUNK):
            statement = select(DeviceRow).where(
                col(DeviceRow.device_id).in_(missing[start : start + _IN_CHUNK])
            )
            if lock:
                statement = statement.with_for_update()
            for row in self._session.exec(statement):
                rows[row.device_id] = found[row.device_id] = row
        return found

    def _patient_exists(self, patient_id: int) -> bool:
        if self._session.identity_map.get(self._session.identity_key(PatientRow, patient_id)) is not None:
            return True
        return (
            self._session.exec(select(PatientRow.id).where(PatientRow.id == patient_id)).first() is not None
        )


@cache
def _select_device() -> SelectOfScalar[DeviceRow]:
    """The device row by protocol id (bind parameter ``device_id``), built once."""
    return select(DeviceRow).where(col(DeviceRow.device_id) == sa.bindparam("device_id"))


def stored_id(row_id: int | None) -> int:
    """The id of a flushed row (the database has set it)."""
    if row_id is None:  # pragma: no cover - a flush sets it
        msg = "flushed row without id"
        raise AssertionError(msg)
    return row_id


def integrity_error(exc: IntegrityError, messages: Mapping[str, str]) -> ConflictError | NotFoundError:
    """The hub's error for a database integrity error (see the module docstring)."""
    original: Any = exc.orig
    sqlstate = getattr(original, "sqlstate", None)
    text = str(original)
    if sqlstate == _PG_FOREIGN_KEY_VIOLATION or "FOREIGN KEY constraint failed" in text:
        return NotFoundError("the record refers to a record that does not exist")
    constraint = None
    if sqlstate == _PG_UNIQUE_VIOLATION:
        constraint = getattr(getattr(original, "diag", None), "constraint_name", None)
    elif (match := _SQLITE_UNIQUE.search(text)) is not None:
        columns = tuple(column.strip() for column in match["columns"].split(","))
        constraint = _unique_constraints_by_columns().get(columns)
    if constraint is None:
        return ConflictError("the write breaks a uniqueness rule of the database")
    return ConflictError(messages.get(constraint, f"the write breaks the uniqueness rule {constraint}"))


@cache
def _unique_constraints_by_columns() -> dict[tuple[str, ...], str]:
    """``("table.column", ...)`` (as SQLite reports them) -> unique constraint name."""
    found: dict[tuple[str, ...], str] = {}
    for table in metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, sa.UniqueConstraint) and isinstance(constraint.name, str):
                found[tuple(f"{table.name}.{column.name}" for column in constraint.columns)] = constraint.name
    return found
