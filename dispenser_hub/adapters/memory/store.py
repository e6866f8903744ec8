"""The in-memory store and its unit of work: every repository of ``dispenser_hub.ports`` without a database.

Transaction rules (the same a service sees from ``adapters.db``):

* A unit of work works on its own snapshot of the store (copy-on-write, see ``_tables``). Its reads never see
  another unit of work's uncommitted writes, nor commits made after it started.
* ``commit`` swaps the snapshot in as the store's new state, atomically (under the store's lock). Leaving the
  ``with`` block without committing, or ``rollback``, discards the snapshot. After either, the unit of work
  can go on with a fresh snapshot, like a SQL session starting its next transaction.
* One writer at a time: if another unit of work committed since this one took its snapshot and both wrote,
  ``commit`` raises ``ConflictError`` instead of silently losing the other's writes (a reader-only unit of
  work always commits). The SQL adapter serialises writers by locking instead; with one writer the two
  behave the same.
* Uniqueness and reference rules, orders and error messages are those of ``adapters.db`` (one contract
  test suite runs over both). Patient identifiers are kept in plaintext: nothing here is "at rest".
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Self

from dispenser_hub.adapters.memory._activity import (
    MemoryAlarmRepository,
    MemoryAuditRepository,
    MemoryCommandRepository,
    MemoryDeadLetterRepository,
    MemoryEventRepository,
)
from dispenser_hub.adapters.memory._deadlines import MemoryDeadlineRepository, MemoryLeaseRepository
from dispenser_hub.adapters.memory._doses import MemoryDoseRepository, MemoryNotificationRepository
from dispenser_hub.adapters.memory._dosett import MemoryDosettRepository, MemorySupplyRepository
from dispenser_hub.adapters.memory._escalation import MemoryEscalationSetupRepository
from dispenser_hub.adapters.memory._registry import (
    MemoryBindingRepository,
    MemoryCareTeamRepository,
    MemoryContactRepository,
    MemoryDeviceRepository,
    MemoryEnrollmentCodeRepository,
    MemoryPatientRepository,
)
from dispenser_hub.adapters.memory._rolls import MemoryRollRepository
from dispenser_hub.adapters.memory._schedules import MemoryScheduleRepository
from dispenser_hub.adapters.memory._tables import Tables, Transaction
from dispenser_hub.ports import ConflictError

if TYPE_CHECKING:
    from types import TracebackType

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
        LeaseRepository,
        NotificationRepository,
        PatientRepository,
        RollRepository,
        ScheduleRepository,
        SupplyRepository,
    )


class MemoryStore:
    """The data of every repository, in memory. Calling it opens a unit of work (a ``UnitOfWorkFactory``).

    ``with store() as uow: ...; uow.commit()``. Thread-safe, one writer at a time (see the module docstring).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables = Tables()
        self._version = 0

    def __call__(self) -> MemoryUnitOfWork:
        """A new unit of work on a snapshot of the current data."""
        return MemoryUnitOfWork(self)

    def _begin(self) -> Transaction:
        with self._lock:
            return Transaction(tables=self._tables.fork(), base_version=self._version)

    def _commit(self, transaction: Transaction) -> None:
        with self._lock:
            if not transaction.dirty:
                return
            if transaction.base_version != self._version:
                msg = "another unit of work committed since this one began; retry the whole unit of work"
                raise ConflictError(msg)
            self._tables = transaction.tables
            self._version += 1


class MemoryUnitOfWork:
    """One transaction over every in-memory repository (see the module docstring)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._tx = store._begin()  # noqa: SLF001 - the unit of work is the store's partner
        self.teams: CareTeamRepository = MemoryCareTeamRepository(self._tx)
        self.patients: PatientRepository = MemoryPatientRepository(self._tx)
        self.contacts: ContactRepository = MemoryContactRepository(self._tx)
        self.devices: DeviceRepository = MemoryDeviceRepository(self._tx)
        self.enrollment_codes: EnrollmentCodeRepository = MemoryEnrollmentCodeRepository(self._tx)
        self.bindings: BindingRepository = MemoryBindingRepository(self._tx)
        self.events: EventRepository = MemoryEventRepository(self._tx)
        self.dead_letters: DeadLetterRepository = MemoryDeadLetterRepository(self._tx)
        self.commands: CommandRepository = MemoryCommandRepository(self._tx)
        self.alarms: AlarmRepository = MemoryAlarmRepository(self._tx)
        self.rolls: RollRepository = MemoryRollRepository(self._tx)
        self.schedules: ScheduleRepository = MemoryScheduleRepository(self._tx)
        self.dosett: DosettRepository = MemoryDosettRepository(self._tx)
        self.supplies: SupplyRepository = MemorySupplyRepository(self._tx)
        self.deadlines: DeadlineRepository = MemoryDeadlineRepository(self._tx)
        self.leases: LeaseRepository = MemoryLeaseRepository(self._tx)
        self.doses: DoseRepository = MemoryDoseRepository(self._tx)
        self.notifications: NotificationRepository = MemoryNotificationRepository(self._tx)
        self.escalation: EscalationSetupRepository = MemoryEscalationSetupRepository(self._tx)
        self.audit: AuditRepository = MemoryAuditRepository(self._tx)

    def commit(self) -> None:
        """Make this unit of work's writes the store's state; then continue on a fresh snapshot."""
        self._store._commit(self._tx)  # noqa: SLF001 - the unit of work is the store's partner
        self._restart()

    def rollback(self) -> None:
        """Discard the writes since the last commit; continue on a fresh snapshot."""
        self._restart()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Discard what was not committed."""
        self._restart()

    def _restart(self) -> None:
        fresh = self._store._begin()  # noqa: SLF001 - the unit of work is the store's partner
        self._tx.tables = fresh.tables
        self._tx.base_version = fresh.base_version
        self._tx.dirty = False
