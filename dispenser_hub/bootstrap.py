"""Composition root: settings -> adapters -> services -> (MQTT client, timers, web app). Nothing at import.

``build_hub`` wires a ``Hub`` from ``Settings``; ``Hub.start``/``stop`` run its MQTT ingest and timers.
The database must be at the code's migration revision (``dispenser-hub migrate``), and the PKI must exist
(``dispenser-hub pki init``); in development both are created on first use, so the demo needs no set-up.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dispenser_hub.adapters.clock import SystemClock
from dispenser_hub.adapters.crypto.fields import FieldCipher
from dispenser_hub.adapters.db.engine import create_engine_for
from dispenser_hub.adapters.db.migrate import check as check_schema
from dispenser_hub.adapters.db.migrate import upgrade
from dispenser_hub.adapters.db.uow import SqlUnitOfWorkFactory
from dispenser_hub.adapters.mqtt.hub_client import HubMqttClient
from dispenser_hub.adapters.notify.factory import channels_from_settings
from dispenser_hub.adapters.pki import CaMissingError, CertificateAuthority
from dispenser_hub.adapters.scheduler import PacedLoop, PeriodicJobs
from dispenser_hub.ports import StorageUnavailableError
from dispenser_hub.services.ack import notice_secret
from dispenser_hub.services.alarm_records import PLAN_ESCALATION
from dispenser_hub.services.deadlines import TICK_S, DeadlineTimer
from dispenser_hub.services.doses import CLOSE
from dispenser_hub.services.downlink import CommandSender, HubSender
from dispenser_hub.services.escalations import STEP, Escalations
from dispenser_hub.services.ingest import IngestLimits, IngestService, Verdict
from dispenser_hub.services.notifications import AHEAD, NotificationSender
from dispenser_hub.services.presence import PresenceMonitor
from dispenser_hub.services.provisioning import Provisioning
from dispenser_hub.services.registry import Registry
from dispenser_hub.services.schedules import ScheduleService, ScheduleSweep
from dispenser_hub.services.supply import SupplySweep
from dispenser_hub.settings import Environment, Settings

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy import Engine

    from dispenser_hub.ports import Clock, DevicePublisher, Inbound, NotificationChannel, UnitOfWorkFactory

_log = logging.getLogger(__name__)
SEND_EVERY_S = 1.0
SWEEP_EVERY_S = 30.0
DEADLINE_TICK_S = TICK_S
SCHEDULE_EVERY_S = 300.0
"""Schedules are refreshed on every change anyway; the timer moves the horizon on and checks 3.8."""
CA_ORGANISATION = "dispenser-hub"


@dataclass
class Hub:
    """The running parts of one hub process."""

    settings: Settings
    engine: Engine
    uow_factory: UnitOfWorkFactory
    clock: Clock
    ca: CertificateAuthority
    registry: Registry
    ingest: IngestService
    commands: CommandSender
    presence: PresenceMonitor
    schedules: ScheduleSweep
    supply: SupplySweep
    deadlines: DeadlineTimer
    notifications: NotificationSender
    mqtt: HubMqttClient
    channels: dict[str, NotificationChannel] = field(default_factory=dict)
    jobs: PeriodicJobs = field(default_factory=PeriodicJobs)
    started: bool = False
    _sender: PacedLoop | None = field(default=None, repr=False)

    def start(self) -> None:
        """Connect to the broker and start the timers (returns at once)."""
        self.mqtt.start()
        self.jobs.every(SEND_EVERY_S, self.commands.send_due, name="send-commands")
        self.jobs.every(SWEEP_EVERY_S, self.presence.sweep, name="no-contact-sweep")
        self.jobs.every(SCHEDULE_EVERY_S, self.schedules.sweep, name="schedule-sweep")
        self.jobs.every(SCHEDULE_EVERY_S, self.supply.sweep, name="refill-sweep")
        self.jobs.every(DEADLINE_TICK_S, self.fire_deadlines, name="deadline-timer")
        self.jobs.start()
        self._sender = PacedLoop(self.send_notifications, name="send-notifications")
        self._sender.start()
        self.started = True

    def fire_deadlines(self) -> int:
        """Fire what is due; wake the notification sender if that made something to send."""
        fired = self.deadlines.tick()
        if fired and self._sender is not None:
            self._sender.wake()
        return fired

    def send_notifications(self) -> float:
        """One run of the sender's own thread: send what is due; returns the seconds until more is due.

        At most ``SEND_EVERY_S``. Its network I/O never holds up the deadline timer or ingest.
        """
        self.notifications.send_due()
        return self.notifications.seconds_to_next(SEND_EVERY_S)

    def stop(self) -> None:
        """Stop timers, finish the batch in hand, disconnect, release the database."""
        if self.started:
            self.jobs.stop()
            if self._sender is not None:
                self._sender.stop()
            self.mqtt.stop()
            self.started = False
            try:
                self.deadlines.release()  # another hub process may lead at once
            except StorageUnavailableError:
                _log.warning("could not release the deadline timer's lease; it lapses by itself")
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if callable(close):
                close()
        self.engine.dispose()

    def health(self) -> dict[str, object]:
        """Liveness figures for ``/api/v1/health`` (no patient data)."""
        counters = self.ingest.counters
        return {
            "mqtt_connected": self.mqtt.subscribed.is_set(),
            "ingest_backlog": self.mqtt.backlog,
            "stored": counters.stored,
            "duplicates": counters.duplicates,
            "refused": counters.refused,
        }


def load_ca(settings: Settings, now: datetime) -> CertificateAuthority:
    """The PKI from ``settings.pki_dir``; created on first use in development only."""
    try:
        return CertificateAuthority.load(settings.pki_dir)
    except CaMissingError:
        if settings.environment is not Environment.DEVELOPMENT:
            raise
        _log.warning("development: creating a new PKI in %s", settings.pki_dir)
        return CertificateAuthority.init(settings.pki_dir, organisation=CA_ORGANISATION, now=now)


def prepare_database(settings: Settings) -> None:
    """Migrate in development; elsewhere refuse a database not at the code's revision."""
    if settings.environment is Environment.DEVELOPMENT:
        upgrade(settings.database_url)
    else:
        check_schema(settings.database_url)


@dataclass(frozen=True)
class Storage:
    """The database and the services that need nothing else (CLI administration, the API)."""

    engine: Engine
    uow_factory: UnitOfWorkFactory
    protector: FieldCipher
    registry: Registry


def open_storage(settings: Settings, clock: Clock) -> Storage:
    """Check (or, in development, migrate) the database and open it."""
    prepare_database(settings)
    engine = create_engine_for(settings.database_url)
    protector = FieldCipher.from_settings(
        settings.encryption_keys.get_secret_value(), settings.lookup_key.get_secret_value()
    )
    uow_factory = SqlUnitOfWorkFactory(engine, protector)
    registry = Registry(
        uow_factory, protector, clock, code_ttl=timedelta(seconds=settings.enrollment_code_ttl_s)
    )
    return Storage(engine, uow_factory, protector, registry)


def build_hub(
    settings: Settings,
    *,
    clock: Clock | None = None,
    schedules: ScheduleService | None = None,
    publisher: DevicePublisher | None = None,
    channels: Mapping[str, NotificationChannel] | None = None,
    notify_ahead: timedelta = AHEAD,
) -> Hub:
    """Wire a hub (not started): database, PKI, services, MQTT client.

    ``schedules``, ``publisher`` (where commands go; default the MQTT client) and ``channels`` (default
    ``channels_from_settings``) may be given, for a hub driven in process (``sim_driver``), which also sets
    ``notify_ahead`` to 0 (``NotificationSender``'s ``ahead``: its clock only moves between steps).
    """
    clock = clock or SystemClock()
    storage = open_storage(settings, clock)
    engine, uow_factory, protector, registry = (
        storage.engine,
        storage.uow_factory,
        storage.protector,
        storage.registry,
    )
    ca = load_ca(settings, clock.now().astimezone(UTC))
    sender = HubSender(ca.hub_signer)
    schedules = schedules or ScheduleService()
    ingest = IngestService(
        uow_factory,
        Provisioning(ca, ca.hub_signer, protector),
        limits=IngestLimits(
            dead_letter_max_bytes=settings.dead_letter_max_bytes,
            burst_threshold=settings.security_burst_threshold,
            burst_window=timedelta(seconds=settings.security_burst_window_s),
        ),
        schedules=schedules,
    )
    address = settings.broker_address

    def handle(batch: Sequence[Inbound]) -> list[Verdict]:
        """Ingest a batch, then send what it queued (verdicts, configs) now rather than at the next tick."""
        verdicts = ingest.handle(batch)
        try:
            commands.send_due()
        except Exception:  # noqa: BLE001 - the outbox keeps them; the timer sends them next
            _log.exception("sending commands after a batch failed; the timer will")
        return verdicts

    mqtt = HubMqttClient(address, settings.mqtt_client_id, handle, now=clock.now)
    commands = CommandSender(uow_factory, sender, publisher or mqtt, clock)
    presence = PresenceMonitor(
        uow_factory, clock, allowed_silence=timedelta(seconds=settings.no_contact_after_s)
    )
    sweep = ScheduleSweep(uow_factory, clock, schedules)
    refill = SupplySweep(uow_factory, clock, schedules.supply)
    holder = f"{settings.mqtt_client_id}:{socket.gethostname()}:{os.getpid()}"
    escalations = Escalations(  # the SMS replies' and links' checks use the same secret
        notice_secret(settings),
        link_base=settings.link_base,
        centre_webhook=settings.response_centre_webhook_url,
    )
    handlers = {
        CLOSE: schedules.doses.on_close,
        PLAN_ESCALATION: escalations.on_plan,
        STEP: escalations.on_step,
    }
    timer = DeadlineTimer(uow_factory, clock, handlers, holder=holder)
    channels = dict(channels) if channels is not None else channels_from_settings(settings, clock=clock)
    notifications = NotificationSender(
        uow_factory, clock, channels, move_on=escalations.move_on, ahead=notify_ahead
    )
    return Hub(
        settings,
        engine,
        uow_factory,
        clock,
        ca,
        registry,
        ingest,
        commands,
        presence,
        sweep,
        refill,
        timer,
        notifications,
        mqtt,
        channels,
    )
