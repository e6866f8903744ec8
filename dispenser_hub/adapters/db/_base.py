"""What every SQL repository shares: the session, the field protector, and the mapping of integrity errors.

Rule: each repository checks uniqueness and references itself, inside the transaction, before it writes, so a
conflict raises ``ConflictError``/``NotFoundError`` with a precise message and leaves the unit of work usable
(as in ``adapters.memory``). Two transactions racing past the same check still hit the database constraint:
``IntegrityError`` is then mapped to the same error by constraint name (PostgreSQL reports the name; SQLite
reports the columns, which ``metadata`` maps back to the name). After such a race the transaction is aborted
and the unit of work must be rolled back (leaving its ``with`` block does that).
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from dispenser_hub.adapters.db.tables import DeviceRow, PatientRow, metadata
from dispenser_hub.ports import ConflictError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlmodel import Session

    from dispenser_hub.ports import FieldProtector

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<columns>[\w., ]+)")
_PG_UNIQUE_VIOLATION = "23505"
_PG_FOREIGN_KEY_VIOLATION = "23503"


class SqlRepository:
    """Base of the SQL repositories: one ``Session`` (one transaction) shared by a unit of work."""

    def __init__(self, session: Session, protector: FieldProtector) -> None:
        self._session = session
        self._protector = protector

    def _flush(self, messages: Mapping[str, str]) -> None:
        """Write pending changes now; map an integrity error to ``ConflictError``/``NotFoundError``.

        ``messages`` maps the unique constraints this write may break to the ``ConflictError`` message.
        """
        try:
            self._session.flush()
        except IntegrityError as exc:
            raise integrity_error(exc, messages) from exc

    def _device_exists(self, device_id: str) -> bool:
        statement = select(col(DeviceRow.id)).where(col(DeviceRow.device_id) == device_id)
        return self._session.exec(statement).first() is not None

    def _patient_exists(self, patient_id: int) -> bool:
        return self._session.get(PatientRow, patient_id) is not None


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
