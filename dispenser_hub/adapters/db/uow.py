"""The SQL unit of work: one SQLAlchemy ``Session``, so one database transaction, over every repository.

Rules:

* ``with factory() as uow: ...; uow.commit()``. Leaving the block without ``commit`` rolls back; after
  ``commit`` or ``rollback`` the unit of work can go on in a new transaction.
* Every write is flushed at once, so uniqueness and reference errors surface at the call that caused them
  (as ``ConflictError``/``NotFoundError``, see ``_base``), not later at ``commit``.
* Repositories return plain records (``dispenser_hub.domain.model``), never ORM rows: nothing is lazy-loaded
  after the session is gone.
* Patient identifiers are encrypted and hashed by the ``FieldProtector`` given to the factory.
* On SQLite the unit of work holds the write lock from its first statement to its end (``engine``): keep
  units of work short, never across network I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlmodel import Session

from dispenser_hub.adapters.db._activity import (
    SqlCommandRepository,
    SqlDeadLetterRepository,
    SqlEventRepository,
)
from dispenser_hub.adapters.db._alarms import SqlAlarmRepository, SqlAuditRepository
from dispenser_hub.adapters.db._base import integrity_error
from dispenser_hub.adapters.db._deadlines import SqlDeadlineRepository, SqlLeaseRepository
from dispenser_hub.adapters.db._devices import (
    SqlBindingRepository,
    SqlDeviceRepository,
    SqlEnrollmentCodeRepository,
)
from dispenser_hub.adapters.db._doses import SqlDoseRepository, SqlNotificationRepository
from dispenser_hub.adapters.db._dosett import SqlDosettRepository, SqlSupplyRepository
from dispenser_hub.adapters.db._escalation import SqlEscalationSetupRepository
from dispenser_hub.adapters.db._people import (
    SqlCareTeamRepository,
    SqlContactRepository,
    SqlPatientRepository,
)
from dispenser_hub.adapters.db._rolls import SqlRollRepository
from dispenser_hub.adapters.db._schedules import SqlScheduleRepository
from dispenser_hub.ports import StorageUnavailableError

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy.engine import Engine

    from dispenser_hub.ports import (
        AlarmRepository,
        AuditRepository,
        BindingRepository,
        CareTeamRepository,
        CommandRepository,
        ContactRepository,
        DeadLetterRepository,
        DeadlineRepository,
        DeviceRepository,
        DoseRepository,
        DosettRepository,
        EnrollmentCodeRepository,
        EscalationSetupRepository,
        EventRepository,
        FieldProtector,
        LeaseRepository,
        NotificationRepository,
        PatientRepository,
        RollRepository,
        ScheduleRepository,
        SupplyRepository,
    )


class SqlUnitOfWork:
    """One transaction over every SQL repository (see the module docstring)."""

    def __init__(self, engine: Engine, protector: FieldProtector) -> None:
        self._session = Session(engine, expire_on_commit=False, autoflush=False)
        session = self._session
        self.teams: CareTeamRepository = SqlCareTeamRepository(session, protector)
        self.patients: PatientRepository = SqlPatientRepository(session, protector)
        self.contacts: ContactRepository = SqlContactRepository(session, protector)
        self.devices: DeviceRepository = SqlDeviceRepository(session, protector)
        self.enrollment_codes: EnrollmentCodeRepository = SqlEnrollmentCodeRepository(session, protector)
        self.bindings: BindingRepository = SqlBindingRepository(session, protector)
        self.events: EventRepository = SqlEventRepository(session, protector)
        self.dead_letters: DeadLetterRepository = SqlDeadLetterRepository(session, protector)
        self.commands: CommandRepository = SqlCommandRepository(session, protector)
        self.alarms: AlarmRepository = SqlAlarmRepository(session, protector)
        self.rolls: RollRepository = SqlRollRepository(session, protector)
        self.schedules: ScheduleRepository = SqlScheduleRepository(session, protector)
        self.dosett: DosettRepository = SqlDosettRepository(session, protector)
        self.supplies: SupplyRepository = SqlSupplyRepository(session, protector)
        self.deadlines: DeadlineRepository = SqlDeadlineRepository(session, protector)
        self.leases: LeaseRepository = SqlLeaseRepository(session, protector)
        self.doses: DoseRepository = SqlDoseRepository(session, protector)
        self.notifications: NotificationRepository = SqlNotificationRepository(session, protector)
        self.escalation: EscalationSetupRepository = SqlEscalationSetupRepository(session, protector)
        self.audit: AuditRepository = SqlAuditRepository(session, protector)

    def commit(self) -> None:
        """Commit the transaction; the next call starts a new one."""
        try:
            self._session.commit()
        except IntegrityError as exc:
            raise integrity_error(exc, {}) from exc

    def rollback(self) -> None:
        """Discard everything since the last commit; the next call starts a new transaction."""
        self._session.rollback()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back what was not committed and return the connection to the pool.

        A database that cannot be reached (or stayed locked past its timeout) becomes
        ``StorageUnavailableError``: transient, never the data's fault.
        """
        self._session.close()
        if isinstance(exc, OperationalError | InterfaceError):
            msg = (
                f"the database is unavailable: {type(exc.orig).__name__ if exc.orig else type(exc).__name__}"
            )
            raise StorageUnavailableError(msg) from exc


class SqlUnitOfWorkFactory:
    """Opens SQL units of work on ``engine``, protecting patient identifiers with ``protector``."""

    def __init__(self, engine: Engine, protector: FieldProtector) -> None:
        self.engine = engine
        self._protector = protector

    def __call__(self) -> SqlUnitOfWork:
        """A new unit of work (its transaction begins with its first statement)."""
        return SqlUnitOfWork(self.engine, self._protector)
