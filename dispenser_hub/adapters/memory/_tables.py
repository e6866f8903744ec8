"""Copy-on-write tables: a unit of work shares the committed dicts until it first writes to one.

Rules: a committed ``Tables`` is never changed again (commit replaces the store's tables with the unit of
work's); ``fork`` is O(number of tables); the first write to a table in a unit of work copies that table
(O(its rows)). So reads are snapshot-isolated for free and a rollback is dropping the fork.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from dispenser_hub.domain.doses import Dose
    from dispenser_hub.domain.model import (
        Alarm,
        AlarmLogEntry,
        AuditEntry,
        Binding,
        CareTeam,
        Command,
        Contact,
        DeadLetter,
        Deadline,
        Device,
        DeviceEvent,
        DeviceSchedule,
        DoseSettings,
        EnrollmentCode,
        FillRecord,
        Notification,
        Patient,
        PauseRecord,
        PlanRecord,
        PolicyRecord,
        RosterRecord,
        SupplyRecord,
    )
    from dispenser_hub.domain.pouches import RollManifest
    from dispenser_hub.domain.rolls import RollLoad

K = TypeVar("K")
V = TypeVar("V")


class _Stored(Protocol):
    @property
    def id(self) -> int | None: ...


class Table(Generic[K, V]):
    """One table: rows by key in insertion order, copied on the first write after a fork."""

    __slots__ = ("_owned", "_rows")

    def __init__(self, rows: dict[K, V] | None = None) -> None:
        self._rows: dict[K, V] = {} if rows is None else rows
        self._owned = rows is None

    @property
    def rows(self) -> Mapping[K, V]:
        """The rows (read-only view; write through ``put``/``pop``)."""
        return self._rows

    def newest_first(self) -> list[V]:
        """The rows, last inserted first."""
        return list(reversed(self._rows.values()))

    def put(self, key: K, value: V) -> None:
        """Insert or replace (a replaced row keeps its place in the insertion order)."""
        self._own()
        self._rows[key] = value

    def pop(self, key: K) -> None:
        """Remove a row (no error if there is none)."""
        self._own()
        self._rows.pop(key, None)

    def fork(self) -> Table[K, V]:
        """A table sharing these rows until either is written (only the fork is ever written)."""
        return Table(self._rows)

    def _own(self) -> None:
        if not self._owned:
            self._rows = dict(self._rows)
            self._owned = True


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A roll manifest as stored: with its content digest, and who imported it when."""

    manifest: RollManifest
    digest: str
    imported_at: datetime
    imported_by: str


@dataclass(frozen=True, slots=True)
class DispensedPouch:
    """A pouch dispensed from a roll: by which device, when."""

    device_id: str
    dispensed_at: datetime


@dataclass(frozen=True, slots=True)
class StoredLease:
    """A named lease: who holds it, until when."""

    holder: str
    expires_at: datetime


@dataclass(slots=True)
class Tables:
    """Every table of the store, plus the id counters and the unique indexes kept as tables."""

    teams: Table[int, CareTeam] = field(default_factory=Table)
    patients: Table[int, Patient] = field(default_factory=Table)
    contacts: Table[int, Contact] = field(default_factory=Table)
    devices: Table[str, Device] = field(default_factory=Table)
    enrollment_codes: Table[int, EnrollmentCode] = field(default_factory=Table)
    bindings: Table[int, Binding] = field(default_factory=Table)
    events: Table[int, DeviceEvent] = field(default_factory=Table)
    event_keys: Table[tuple[str, str], int] = field(default_factory=Table)
    """(device_id, msg_id) -> event id: the duplicate check without a scan."""
    dead_letters: Table[int, DeadLetter] = field(default_factory=Table)
    commands: Table[int, Command] = field(default_factory=Table)
    alarms: Table[int, Alarm] = field(default_factory=Table)
    open_alarms: Table[str, int] = field(default_factory=Table)
    """dedup key -> id of the open alarm with that key."""
    alarm_log: Table[int, AlarmLogEntry] = field(default_factory=Table)
    audit: Table[int, AuditEntry] = field(default_factory=Table)
    roll_manifests: Table[str, StoredManifest] = field(default_factory=Table)
    """roll id -> its manifest (one per roll)."""
    roll_loads: Table[int, RollLoad] = field(default_factory=Table)
    dispensed_pouches: Table[tuple[str, str], DispensedPouch] = field(default_factory=Table)
    """(roll_id, pouch_id) -> when and where it was dispensed (once per pouch)."""
    dose_settings: Table[int, DoseSettings] = field(default_factory=Table)
    pauses: Table[int, PauseRecord] = field(default_factory=Table)
    device_schedules: Table[str, DeviceSchedule] = field(default_factory=Table)
    dosett_plans: Table[int, PlanRecord] = field(default_factory=Table)
    tray_fills: Table[int, FillRecord] = field(default_factory=Table)
    opened_pots: Table[tuple[int, int], datetime] = field(default_factory=Table)
    """(fill id, pot) -> when the pot was opened (once per pot of a fill)."""
    supplies: Table[int, SupplyRecord] = field(default_factory=Table)
    """patient id -> the patient's supply record."""
    deadlines: Table[int, Deadline] = field(default_factory=Table)
    deadline_keys: Table[str, int] = field(default_factory=Table)
    """deadline key -> id of the deadline with that key (unique)."""
    leases: Table[str, StoredLease] = field(default_factory=Table)
    """lease name -> its holder and expiry."""
    doses: Table[int, Dose] = field(default_factory=Table)
    dose_keys: Table[tuple[str, str], int] = field(default_factory=Table)
    """(device_id, slot_id) -> id of the dose of that slot (unique)."""
    notifications: Table[int, Notification] = field(default_factory=Table)
    notification_keys: Table[str, int] = field(default_factory=Table)
    """notification key -> id of the notification with that key (unique)."""
    rosters: Table[int, RosterRecord] = field(default_factory=Table)
    """team id -> the team's on-call roster."""
    policies: Table[int, PolicyRecord] = field(default_factory=Table)
    """patient id -> the patient's own escalation policy."""
    last_ids: Table[str, int] = field(default_factory=Table)
    """Last id handed out per table name (ids start at 1 and are never reused)."""

    def fork(self) -> Tables:
        """Tables sharing every row with these until written (every field, so no table is ever left out)."""
        return Tables(**{spec.name: getattr(self, spec.name).fork() for spec in fields(self)})

    def next_id(self, table: str) -> int:
        """A new id for a row of ``table``."""
        new_id = self.last_ids.rows.get(table, 0) + 1
        self.last_ids.put(table, new_id)
        return new_id


@dataclass(slots=True)
class Transaction:
    """The state of one unit of work: its forked tables and whether it wrote anything."""

    tables: Tables
    base_version: int
    """The store's commit counter when ``tables`` was forked (detects a concurrent commit)."""
    dirty: bool = False

    def write(self) -> Tables:
        """The tables, for writing (marks the transaction dirty)."""
        self.dirty = True
        return self.tables


def stored_id(record: _Stored) -> int:
    """The id of a stored record (always set once stored)."""
    if record.id is None:  # pragma: no cover - ids are set when a record is added
        msg = f"stored {type(record).__name__} without an id"
        raise AssertionError(msg)
    return record.id
