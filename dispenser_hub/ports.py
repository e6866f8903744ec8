"""The interfaces the hub's services need from the outside world (implemented in ``dispenser_hub.adapters``).

Storage is a unit of work: ``with uow_factory() as uow: ...; uow.commit()``. Everything done through one
unit of work is one database transaction; leaving the block without ``commit`` rolls it back. Repositories
take and return the plain records of ``dispenser_hub.domain.model``; ``add`` returns the record with its
storage ``id``. Every repository has an in-memory implementation (``adapters.memory``) and a SQL one
(``adapters.db``), and one contract test suite runs over both (and over PostgreSQL in CI).

All datetimes are timezone-aware UTC, in and out (the SQL adapter stores UTC and returns aware values).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta  # noqa: TC003 - used at runtime by the Inbound dataclass
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from types import TracebackType

    from dispenser_hub.domain.doses import Dose
    from dispenser_hub.domain.model import (
        Alarm,
        AlarmLogEntry,
        AlarmStatus,
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
        DeviceStatus,
        DoseSettings,
        EnrollmentCode,
        FillRecord,
        Notification,
        Patient,
        PauseRecord,
        PlanRecord,
        PolicyRecord,
        RosterRecord,
        SendOutcome,
        SupplyRecord,
    )
    from dispenser_hub.domain.pouches import RollManifest
    from dispenser_hub.domain.rolls import RollLoad


@dataclass(frozen=True, slots=True)
class Inbound:
    """A device message as the broker delivered it, with the hub's receive time (aware UTC)."""

    topic: str
    payload: bytes
    received_at: datetime


class ConflictError(Exception):
    """A write that breaks a uniqueness rule (duplicate serial, second active binding...); says which."""


class StorageUnavailableError(Exception):
    """The database cannot be used right now (down, locked past its timeout, connection lost).

    Transient: the caller should keep what it was doing and try again later, never treat the data as bad
    (ingest leaves the batch unacknowledged so the broker delivers it again).
    """


class NotFoundError(LookupError):
    """An update of a record that does not exist."""


class CareTeamRepository(Protocol):
    """Home-care teams (districts)."""

    def add(self, team: CareTeam) -> CareTeam: ...
    def get(self, team_id: int) -> CareTeam | None: ...
    def get_by_name(self, name: str) -> CareTeam | None: ...
    def select(self) -> list[CareTeam]: ...


class PatientRepository(Protocol):
    """Patients; the national id number is unique."""

    def add(self, patient: Patient) -> Patient:
        """Store a new patient; ``ConflictError`` if the national id number is already registered."""
        ...

    def get(self, patient_id: int) -> Patient | None: ...
    def find_by_national_id(self, national_id: str) -> Patient | None: ...
    def update(self, patient: Patient) -> Patient: ...
    def select(self, *, team_id: int | None = None, offset: int = 0, limit: int = 100) -> list[Patient]: ...


class ContactRepository(Protocol):
    """Patients' relatives and other contacts."""

    def add(self, contact: Contact) -> Contact: ...
    def for_patient(self, patient_id: int) -> list[Contact]:
        """The patient's contacts by ``priority``, then id."""
        ...

    def remove(self, contact_id: int) -> None: ...


class DeviceRepository(Protocol):
    """Dispensers by protocol id; serials are unique."""

    def add(self, device: Device) -> Device:
        """Store a new device; ``ConflictError`` if its id or serial is taken."""
        ...

    def get(self, device_id: str) -> Device | None: ...
    def get_many(self, device_ids: Collection[str]) -> dict[str, Device]:
        """The stored devices among ``device_ids``, by id (ids nobody registered are absent).

        For a read-modify-write (ingest): a database store locks the rows until the transaction ends.
        """
        ...

    def get_by_serial(self, serial: str) -> Device | None: ...
    def update(self, device: Device) -> Device:
        """Replace the stored device (``NotFoundError`` if there is none)."""
        ...

    def update_many(self, devices: Sequence[Device]) -> None:
        """``update`` each of ``devices`` (distinct ids), in as few statements as the store allows (ingest).

        All or nothing: ``NotFoundError`` or ``ConflictError`` if any one would fail, and none is changed.
        """
        ...

    def select(
        self, *, status: DeviceStatus | None = None, offset: int = 0, limit: int = 100
    ) -> list[Device]: ...
    def silent_since(self, before: datetime) -> list[Device]:
        """Online or active devices whose last valid message is older than ``before`` (no-contact check)."""
        ...


class EnrollmentCodeRepository(Protocol):
    """One-time enrollment codes, by keyed hash."""

    def add(self, code: EnrollmentCode) -> EnrollmentCode: ...
    def find(self, code_hash: str) -> EnrollmentCode | None: ...
    def for_device(self, device_id: str) -> list[EnrollmentCode]: ...
    def update(self, code: EnrollmentCode) -> EnrollmentCode: ...


class BindingRepository(Protocol):
    """Device-patient bindings with history: one active binding per device and per patient."""

    def add(self, binding: Binding) -> Binding:
        """Store a new active binding; ``ConflictError`` if the device or the patient already has one."""
        ...

    def active_for_device(self, device_id: str) -> Binding | None: ...
    def active_for_patient(self, patient_id: int) -> Binding | None: ...
    def update(self, binding: Binding) -> Binding: ...
    def history(self, *, device_id: str | None = None, patient_id: int | None = None) -> list[Binding]:
        """Every binding (active and ended) of a device or patient, oldest first."""
        ...


class EventRepository(Protocol):
    """Accepted device messages, append-only, unique per (device_id, msg_id)."""

    def add(self, event: DeviceEvent) -> DeviceEvent | None:
        """Store an event; ``None`` (and nothing stored) if (device_id, msg_id) is already stored."""
        ...

    def add_many(self, events: Sequence[DeviceEvent]) -> list[DeviceEvent | None]:
        """``add`` each of ``events`` in order, in as few statements as the store allows (ingest).

        One result per event: the stored event, or ``None`` for a duplicate of a stored event or of an
        earlier one in ``events``. ``NotFoundError`` (nothing stored) if an event's device does not exist.
        """
        ...

    def exists(self, device_id: str, msg_id: str) -> bool: ...
    def select(
        self,
        *,
        device_id: str | None = None,
        types: Sequence[str] = (),
        offset: int = 0,
        limit: int = 100,
    ) -> list[DeviceEvent]:
        """Events newest first (by storage id)."""
        ...

    def count(self, *, device_id: str | None = None) -> int: ...


class DeadLetterRepository(Protocol):
    """Refused device messages with the reason and their first bytes."""

    def add(self, letter: DeadLetter) -> DeadLetter: ...
    def select(self, *, device_id: str | None = None, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""
        ...

    def count_since(self, device_id: str, since: datetime) -> int:
        """Dead letters naming ``device_id`` received at or after ``since`` (security burst check)."""
        ...


class CommandRepository(Protocol):
    """The downlink outbox."""

    def add(self, command: Command) -> Command: ...
    def get(self, msg_id: str) -> Command | None: ...
    def update(self, command: Command) -> Command: ...
    def due(self, now: datetime, *, limit: int = 100) -> list[Command]:
        """Pending or sent commands whose ``next_attempt_at`` is at or before ``now``, oldest first."""
        ...

    def select(self, *, device_id: str | None = None, offset: int = 0, limit: int = 100) -> list[Command]:
        """Newest first."""
        ...


class AlarmRepository(Protocol):
    """Alarms (one open per dedup key) and their append-only log."""

    def add(self, alarm: Alarm) -> Alarm:
        """Store a new alarm; ``ConflictError`` if an open alarm with its ``dedup_key`` exists."""
        ...

    def get(self, alarm_id: int) -> Alarm | None: ...
    def open_by_key(self, dedup_key: str) -> Alarm | None: ...
    def update(self, alarm: Alarm) -> Alarm: ...
    def select(
        self,
        *,
        status: AlarmStatus | None = None,
        open_only: bool = False,
        device_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Alarm]:
        """Newest first (by ``last_raised_at``)."""
        ...

    def log(self, entry: AlarmLogEntry) -> AlarmLogEntry:
        """Append to the alarm log (never changed or deleted)."""
        ...

    def history(self, alarm_id: int) -> list[AlarmLogEntry]: ...


class RollRepository(Protocol):
    """Pharmacy roll manifests, roll loads (rolls accepted in dispensers) and the pouches dispensed.

    A manifest is stored once per roll id: adding the same content again (same ``content_digest``) is a
    no-op, other content under a known roll id is a ``ConflictError``. The patient's national id in a
    manifest is encrypted at rest like the patient's own.
    """

    def add_manifest(self, manifest: RollManifest, *, imported_at: datetime, imported_by: str) -> bool:
        """Store a manifest; False if this exact manifest was already stored (see the class rules)."""
        ...

    def manifest(self, roll_id: str) -> RollManifest | None: ...
    def manifests_for_patient(self, national_id: str, *, limit: int = 100) -> list[RollManifest]:
        """The patient's manifests, by first intake (latest last)."""
        ...

    def add_load(self, load: RollLoad) -> RollLoad:
        """Store a new active load; ``ConflictError`` if the device or the roll already has an active one."""
        ...

    def update_load(self, load: RollLoad) -> RollLoad:
        """Replace a stored load (by ``id``), e.g. to end it."""
        ...

    def active_load_for_device(self, device_id: str) -> RollLoad | None: ...
    def active_load_of_roll(self, roll_id: str) -> RollLoad | None: ...
    def latest_load_for_patient(self, patient_id: int) -> RollLoad | None:
        """The patient's most recently accepted load, active or ended."""
        ...

    def loads(
        self, *, device_id: str | None = None, patient_id: int | None = None, roll_id: str | None = None
    ) -> list[RollLoad]:
        """Loads matching every filter given, oldest first."""
        ...

    def was_withdrawn(self, roll_id: str) -> bool:
        """Whether a load of this roll ended because of a plan change (it may never be used again)."""
        ...

    def mark_dispensed(self, roll_id: str, pouch_id: str, *, device_id: str, at: datetime) -> bool:
        """Record a pouch as dispensed; False if it already was (each pouch is dispensed once)."""
        ...

    def dispensed(self, roll_id: str) -> frozenset[str]:
        """The pouch ids of the roll dispensed so far."""
        ...


class AuditRepository(Protocol):
    """Who did what to which record, append-only."""

    def add(self, entry: AuditEntry) -> AuditEntry: ...
    def select(self, *, subject: str | None = None, offset: int = 0, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""
        ...


class ScheduleRepository(Protocol):
    """Per patient: dose settings and pauses; per device: the schedule (config) built and its answers."""

    def settings(self, patient_id: int) -> DoseSettings | None:
        """The patient's dose settings; ``None``: the defaults apply."""
        ...

    def put_settings(self, settings: DoseSettings) -> DoseSettings:
        """Store (replace) the patient's settings; ``NotFoundError`` if there is no such patient."""
        ...

    def add_pause(self, record: PauseRecord) -> PauseRecord:
        """Store a new pause; ``NotFoundError`` if there is no such patient."""
        ...

    def get_pause(self, pause_id: int) -> PauseRecord | None: ...
    def update_pause(self, record: PauseRecord) -> PauseRecord:
        """Replace the stored pause (``NotFoundError`` if there is none)."""
        ...

    def pauses(self, patient_id: int, *, ending_after: datetime | None = None) -> list[PauseRecord]:
        """The patient's pauses by start (then id); with ``ending_after``, those whose end is later."""
        ...

    def device_schedule(self, device_id: str) -> DeviceSchedule | None: ...
    def put_device_schedule(self, schedule: DeviceSchedule) -> DeviceSchedule:
        """Store (replace) the device's schedule state; ``NotFoundError`` if there is no such device."""
        ...


class DosettRepository(Protocol):
    """Dose-pot plans per patient (history), tray fills, and the pots opened from each fill."""

    def add_plan(self, record: PlanRecord) -> PlanRecord:
        """Store a new plan version; ``NotFoundError`` if there is no such patient."""
        ...

    def plans(self, patient_id: int) -> list[PlanRecord]:
        """The patient's plans by ``valid_from``, then id (oldest first)."""
        ...

    def current_plan(self, patient_id: int, day: date) -> PlanRecord | None:
        """The plan in force on ``day``: the latest ``valid_from`` at or before it (ties: the newest id)."""
        ...

    def add_fill(self, record: FillRecord) -> FillRecord:
        """Store a new tray fill; ``NotFoundError`` if there is no such patient."""
        ...

    def get_fill(self, fill_id: int) -> FillRecord | None: ...
    def current_fill(self, patient_id: int) -> FillRecord | None:
        """The patient's latest fill (by ``filled_at``, then id)."""
        ...

    def latest_fill_of_tray(self, tray_id: str) -> FillRecord | None:
        """The latest fill of this tray, for any patient (by ``filled_at``, then id)."""
        ...

    def mark_opened(self, fill_id: int, pot: int, at: datetime) -> bool:
        """Record the pot as opened; ``False`` if it was already; ``NotFoundError`` for an unknown fill."""
        ...

    def opened(self, fill_id: int) -> frozenset[int]:
        """The pots of the fill recorded as opened."""
        ...


class SupplyRepository(Protocol):
    """Per patient: the supply forecast and the refill warnings sent."""

    def supply(self, patient_id: int) -> SupplyRecord | None: ...
    def put_supply(self, record: SupplyRecord) -> SupplyRecord:
        """Store (replace) the patient's record; ``NotFoundError`` if there is no such patient."""
        ...

    def running_out(self, before: datetime) -> list[SupplyRecord]:
        """Records whose supply runs out before ``before`` (and is known), earliest first."""
        ...


class EscalationSetupRepository(Protocol):
    """Home-care teams' on-call rosters and patients' own escalation policies, one record each."""

    def roster(self, team_id: int) -> RosterRecord | None: ...
    def put_roster(self, record: RosterRecord) -> RosterRecord:
        """Store (replace) the team's roster; ``NotFoundError`` if there is no such team."""
        ...

    def policy(self, patient_id: int) -> PolicyRecord | None: ...
    def put_policy(self, record: PolicyRecord) -> PolicyRecord:
        """Store (replace) the patient's policy; ``NotFoundError`` if there is no such patient."""
        ...

    def remove_policy(self, patient_id: int) -> bool:
        """Back to the default policy; whether the patient had one of their own."""
        ...


class DoseRepository(Protocol):
    """Scheduled doses and their outcome (``doses.Dose``), one per (device_id, slot_id)."""

    def put(self, dose: Dose) -> Dose:
        """Insert, or replace the dose with the same (device_id, slot_id); returns it with its id.

        ``NotFoundError`` if the device or the patient does not exist.
        """
        ...

    def get(self, device_id: str, slot_id: str) -> Dose | None: ...
    def for_device(self, device_id: str, *, since: datetime | None = None, limit: int = 500) -> list[Dose]:
        """The device's doses by due time (then id), from ``since`` (due at or after) if given."""
        ...

    def for_patient(
        self,
        patient_id: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[Dose]:
        """The patient's doses by due time (then id), due in ``[since, until)`` where given."""
        ...

    def in_states(self, patient_id: int, states: Collection[str]) -> list[Dose]:
        """The patient's doses in any of ``states`` (``DoseState`` values), by due time."""
        ...


class NotificationRepository(Protocol):
    """The notification outbox: one row per message to one recipient, unique per ``key``."""

    def add(self, notification: Notification) -> Notification | None:
        """Store a new notification; ``None`` (nothing stored) if its ``key`` exists (never sent twice)."""
        ...

    def get(self, notification_id: int) -> Notification | None: ...
    def by_key(self, key: str) -> Notification | None: ...
    def update(self, notification: Notification) -> Notification:
        """Replace the stored notification with the same id (``NotFoundError`` if there is none)."""
        ...

    def claim(self, now: datetime, *, until: datetime, limit: int = 100) -> list[Notification]:
        """Claim the pending notifications due by ``now`` (earliest ``next_attempt_at`` first, then id).

        Their stored ``next_attempt_at`` moves to ``until``, so no other sender picks them before then; they
        are returned as they were (with the time they were due). A database store skips rows another
        transaction holds.
        """
        ...

    def record(self, outcomes: Sequence[SendOutcome]) -> list[SendOutcome]:
        """Store attempts' outcomes by id, in their outcome columns only.

        Those are ``status``, ``attempts``, ``sent_at``, ``next_attempt_at`` and ``last_error``; nothing else
        of a row changes (a link used meanwhile stays used). An outcome is not stored when its
        row is no longer ``PENDING`` (cancelled meanwhile) unless the outcome is ``SENT`` (the message went
        out), nor when the row is gone. Returns the outcomes stored, in order. A database store locks the
        rows while it decides.
        """
        ...

    def next_due(self) -> datetime | None:
        """The earliest ``next_attempt_at`` of a pending notification (``None``: nothing pending)."""
        ...

    def cancel(self, ids: Collection[int], *, untried_only: bool = False) -> int:
        """Cancel those of ``ids`` still ``PENDING`` (and never tried, if ``untried_only``); how many.

        One conditional write: a row a sender recorded as sent meanwhile stays sent.
        """
        ...

    def pending_of(self, ids: Collection[int]) -> list[int]:
        """Those of ``ids`` still ``PENDING``, in id order."""
        ...

    def bring_forward(self, ids: Collection[int], *, due_at: datetime, to: datetime) -> int:
        """Make those of ``ids`` pending, never tried and still due at ``due_at`` due at ``to``; how many.

        One conditional write: a row a sender claimed meanwhile (its due time moved) is left alone.
        """
        ...

    def for_alarm(self, alarm_id: int) -> list[Notification]:
        """The alarm's notifications, oldest first."""
        ...


class DeadlineRepository(Protocol):
    """Time-driven work as rows with an indexed due time (``model.Deadline``); unique per ``key``."""

    def schedule(self, deadline: Deadline) -> Deadline:
        """Store a deadline, or move a pending one with the same key (new ``due_at``, ``kind``, ``payload``).

        A key that fired or was cancelled stays as it is (returned unchanged): a purpose is served once.
        """
        ...

    def get(self, key: str) -> Deadline | None: ...
    def cancel(self, key: str, at: datetime) -> bool:
        """Cancel a pending deadline; ``False`` if there is none pending with that key."""
        ...

    def due(self, now: datetime, *, limit: int = 100) -> list[Deadline]:
        """Pending deadlines with ``due_at`` at or before ``now``, earliest first (then id).

        A database store locks them for this transaction and skips rows another transaction holds
        (``FOR UPDATE SKIP LOCKED``), so two timers never fire the same deadline.
        """
        ...

    def update(self, deadline: Deadline) -> Deadline:
        """Replace the stored deadline with the same id (``NotFoundError`` if there is none)."""
        ...

    def pending(self, *, kind: str | None = None, limit: int = 100) -> list[Deadline]:
        """Pending deadlines (of ``kind``, if given), earliest first (for operators and tests)."""
        ...


class LeaseRepository(Protocol):
    """Named leases: at most one holder at a time (the deadline timer's leader)."""

    def acquire(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease until ``now + ttl``; ``False`` while another holder's lease runs."""
        ...

    def release(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` has it."""
        ...


class UnitOfWork(Protocol):
    """One transaction over every repository (see the module docstring)."""

    teams: CareTeamRepository
    patients: PatientRepository
    contacts: ContactRepository
    devices: DeviceRepository
    enrollment_codes: EnrollmentCodeRepository
    bindings: BindingRepository
    events: EventRepository
    dead_letters: DeadLetterRepository
    commands: CommandRepository
    alarms: AlarmRepository
    rolls: RollRepository
    schedules: ScheduleRepository
    dosett: DosettRepository
    supplies: SupplyRepository
    deadlines: DeadlineRepository
    leases: LeaseRepository
    doses: DoseRepository
    notifications: NotificationRepository
    escalation: EscalationSetupRepository
    audit: AuditRepository

    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back what was not committed and release the connection."""
        ...


class UnitOfWorkFactory(Protocol):
    """Opens a new unit of work (a new transaction)."""

    def __call__(self) -> UnitOfWork: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a channel made of one notification: accepted, or not and whether trying again may help."""

    ok: bool
    retry: bool = False
    """Not accepted, but the failure may pass (timeout, 5xx, 429, connection refused)."""
    detail: str = ""
    """For operators and logs: never the message text or the address."""


class NotificationChannel(Protocol):
    """Sends notifications of one kind (``name``: ``sms``, ``email``, ``webhook``...): the adapters."""

    name: str

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        """Hand one message to the channel; ``key`` (the notification's) lets receivers drop repeats.

        Never raises for a failed delivery: the outcome is the ``Delivery``.
        """
        ...


class Clock(Protocol):
    """The hub's time source (real, or a simulator's accelerated clock in the demo and tests)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class DevicePublisher(Protocol):
    """Publishes signed downlink payloads to devices (the MQTT adapter); QoS 1."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Hand the message to the broker connection; ``ConnectionError`` when there is none."""
        ...


class FieldProtector(Protocol):
    """Encrypts patient identifiers at rest and hashes them for lookup (``adapters.crypto.FieldCipher``).

    ``context`` names the column (``patient.national_id``) and is bound to the ciphertext, so a value
    cannot be copied into another column and decrypt there.
    """

    def encrypt(self, plaintext: str, *, context: str) -> str: ...
    def decrypt(self, token: str, *, context: str) -> str: ...
    def lookup_hash(self, value: str, *, context: str) -> str: ...


class IssuedCertificate(Protocol):
    """A device certificate just issued."""

    @property
    def pem(self) -> str: ...
    @property
    def serial(self) -> int: ...


class CertificateIssuer(Protocol):
    """The hub's device CA (``adapters.pki.CertificateAuthority``)."""

    @property
    def ca_certificate_pem(self) -> str: ...
    def issue(self, csr_pem: str, *, device_id: str, now: datetime) -> IssuedCertificate:
        """Certify the CSR's key for ``device_id``; raises ``ValueError`` (with the reason) if refused."""
        ...
