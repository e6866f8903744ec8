"""The real hub services against a simulated fleet, in one process, on a stepped simulated clock.

For long runs (a simulated month in about a minute) where a broker at an accelerated clock is too slow:
``SteppedRun`` wires the hub as ``dispenser-hub serve`` does (``bootstrap.build_hub``: SQLite through the
real SQL adapters and migrations, PKI, ``IngestService``, ``CommandSender``, ``DeadlineTimer``,
``NotificationSender``, ``PresenceMonitor``, ``ScheduleSweep``, ``SupplySweep``), replaces only MQTT (by
in-process delivery) and the notification channels' transport (``RecordingChannel``, which records what
was handed to it and when), and steps the simulated devices of ``device_sim`` and the hub's timers on one
deterministic clock. The office work is the demo's (``demo_pharmacy.set_up_office``: patients, bindings,
roll manifests, the first tray fill), plus the later tray fills and the pauses of absences the office
hears of.

Rules of the stepping:

- **Devices** run event by event at their own wake-up times, with connections, Last Wills and retained
  messages as in ``device_sim.loopback``. What a device publishes while connected goes to the hub's
  inbox with the publish time as its receive time.
- **The hub** acts on a grid of ``cadence_ms`` (default one simulated minute): at a grid point with
  messages in its inbox (they arrived since the previous point) it ingests them as one batch
  (``IngestService.handle``, as the MQTT adapter hands it a batch), sends due commands
  (``CommandSender.send_due``), and delivers them to the devices; repeated until nothing more comes back.
  Its timers run at the grid point where they are due: the deadline timer and then the notification
  sender when the earliest pending deadline or notification is due (``deadlines.pending``,
  ``notifications.next_due``: an escalation step's notifications are stored ahead of its time); the
  no-contact sweep when a device has been silent for the allowed silence (from what the driver delivered)
  and every ``SAFETY_SWEEP_MS`` anyway; the schedule and refill sweeps every ``SWEEP_MS``; the outbox every
  ``SAFETY_SWEEP_MS`` for retries. Idle grid points are skipped. So the hub's reaction times are those of
  a hub whose timers tick once a cadence, never sooner than the real hub's (1 s) nor later by more than a
  cadence (the schedule sweep: by ``SWEEP_MS`` instead of 5 minutes).
- **MQTT semantics kept**: retained messages (the signed ``config``, the devices' ``state``/``death``)
  reach a device at every (re)connect; the device's persistent session (``clean_session=False``) queues
  non-retained downlink while it is offline and delivers it at the reconnect; a publish of a device whose
  link dropped is lost (the device replays from its outbox after the reconnect); the Last Will is
  published when a link drops. QoS 1 redelivery is not simulated (nothing is lost in process).
- **Operators**: when ``ack_after`` is set, an operator acknowledges each alarm that long after its first
  notification was handed over (``Registry.acknowledge_alarm``), as the response centre does; a later
  missed dose then escalates again (``alarm_records.EACH_ONE_NEEDS_A_HUMAN``).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from device_sim.build import ROLL_LOAD_DELAY_MS, build, supply_loader
from device_sim.device.supply import Tray
from device_sim.loopback import topic_matches
from device_sim.ports import Publish, Truth
from device_sim.scenario import ActionKind, Group, ScheduledAction
from dispenser_hub.bootstrap import Hub, build_hub
from dispenser_hub.demo_pharmacy import dosett_plan, set_up_office
from dispenser_hub.domain.dosett import fill_tray
from dispenser_hub.domain.model import FillRecord
from dispenser_hub.domain.pouches import from_ms, to_ms
from dispenser_hub.domain.wallclock import oslo_day
from dispenser_hub.ports import Delivery, Inbound
from dispenser_hub.services.registry import Conflict
from dispenser_hub.services.schedule_admin import PatientSchedules
from dispenser_hub.services.schedules import DeviceSettings, ScheduleService
from dispenser_hub.settings import Settings
from firmware_protocol import hub_subscriptions
from firmware_protocol.codes import EVENT_MAPPINGS, Severity
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping
    from pathlib import Path

    from device_sim.device.dispenser import Dispenser
    from device_sim.ports import Output
    from device_sim.scenario import DeviceSpec, Scenario
    from dispenser_hub.demo_pharmacy import DemoOffice
    from dispenser_hub.ports import DevicePublisher, NotificationChannel

MINUTE_MS = 60_000
DAY_MS = 86_400_000
HOUR_MS = 60 * MINUTE_MS
SWEEP_MS = 2 * DAY_MS
"""The schedule and refill sweeps: every other day at ``SWEEP_AT_MS`` into the day (the real hub: every 5
minutes). They move the 7-day horizon on (a new version goes out when half of it is used, so two days
keep at least three ahead) and raise "no schedule" and "refill needed" (never between 22:00 and 07:00,
hence midday); every change (roll, tray, pause...) rebuilds a schedule at once anyway. A sweep rebuilds
every device's schedule, about 50-80 ms a device on SQLite: too much every few simulated minutes for a
month."""
SWEEP_AT_MS = 12 * HOUR_MS
SAFETY_SWEEP_MS = HOUR_MS
"""The no-contact sweep and the outbox run at least this often, whatever the driver expects."""
LIVENESS_MS = 15 * MINUTE_MS
"""An inbox of heartbeats only waits for the next multiple of this (processed with their receive times)."""
HEARTBEAT_S = 1_800
"""The devices' heartbeat in these runs: 30 min (``serve``: 5 min) keeps the no-contact threshold (1 h) at two
missed heartbeats and a month of 30 devices at 43,000 heartbeats instead of 260,000 signature checks."""
TELEMETRY = "/up/telemetry"
MAX_ROUNDS = 20
"""Ingest/deliver rounds per grid point (a device answers a command, the hub answers that...)."""
BATCH = 200
"""The MQTT adapter's batch size."""
CHANNELS = ("console", "sms", "email", "webhook")
BY = "office (simulated)"


class SteppedClock:
    """The hub's ``Clock``: simulated time the driver sets."""

    def __init__(self, now_ms: int) -> None:
        """Start at ``now_ms``."""
        self.now_ms = now_ms

    def now(self) -> datetime:
        """The simulated time, aware UTC."""
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Sent:
    """One notification a channel accepted: what, to whom, and the simulated time it was handed over."""

    channel: str
    address: str
    subject: str
    key: str
    at: datetime

    @property
    def alarm_id(self) -> int:
        """The alarm it is about (the key is ``esc:<alarm>:<step>:<repeat>:<raise count>:<recipient>``)."""
        return int(self.key.split(":")[1])

    @property
    def step_key(self) -> str:
        """The escalation step (the deadline key): the key without the recipient."""
        return ":".join(self.key.split(":")[:5])

    @property
    def episode(self) -> tuple[int, int]:
        """(alarm id, raise count): one escalation of one alarm."""
        parts = self.key.split(":")
        return int(parts[1]), int(parts[4])


@dataclass
class RecordingChannel:
    """A ``NotificationChannel`` whose transport is a list: accepts everything, records it with the time."""

    name: str
    clock: SteppedClock
    sent: list[Sent] = field(default_factory=list)

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:  # noqa: ARG002
        """Record the notification as handed over now."""
        self.sent.append(Sent(self.name, address, subject, key, self.clock.now()))
        return Delivery(ok=True, detail="recorded")


@dataclass(frozen=True, slots=True)
class Uplink:
    """A device message as the hub received it (the event stream, for comparisons)."""

    at_ms: int
    topic: str
    payload: bytes

    def body_type(self) -> str | None:
        """The message type (``dose.taken``, ``death``...), or ``None`` if it is not a readable envelope."""
        try:
            data = json.loads(self.payload)
        except ValueError:
            return None
        kind = data.get("type") if isinstance(data, dict) else None
        return kind if isinstance(kind, str) else None

    def msg_id(self) -> str:
        """The envelope's ``msg_id`` (empty if unreadable)."""
        try:
            data = json.loads(self.payload)
        except ValueError:
            return ""
        return str(data.get("msg_id", "")) if isinstance(data, dict) else ""


@dataclass
class Stats:
    """What the run did (for the summary)."""

    hub_steps: int = 0
    ingested: int = 0
    downlink: int = 0
    deadline_ticks: int = 0
    acknowledged: int = 0
    wall_s: float = 0.0


@dataclass
class _Link:
    online: bool = False
    session: bool = False
    will: Publish | None = None
    queued: list[tuple[str, bytes]] = field(default_factory=list)


class _Publisher:
    """The hub's ``DevicePublisher``: the broker is in process, the driver delivers after the outbox round."""

    def __init__(self) -> None:
        self.out: list[tuple[str, bytes, bool]] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.out.append((topic, payload, retain))


def wire_hub(
    settings: Settings,
    clock: SteppedClock,
    schedules: ScheduleService,
    publisher: DevicePublisher,
    channels: Mapping[str, NotificationChannel],
) -> Hub:
    """The hub exactly as ``serve`` wires it (``bootstrap.build_hub``), with three parts given.

    ``schedules``, ``publisher`` and ``channels`` come from the caller. The MQTT client is built (the
    ``Hub`` holds one) but never started.
    """
    return build_hub(
        settings,
        clock=clock,
        schedules=schedules,
        publisher=publisher,
        channels=channels,
        notify_ahead=timedelta(0),  # the stepped clock does not move while the sender would wait
    )


def subset(scenario: Scenario, *, patients: int | None = None, days: float | None = None) -> Scenario:
    """The first ``patients`` devices of ``scenario`` over its first ``days`` (its timeline cut to match)."""
    size = scenario.size if patients is None else patients
    if not 1 <= size <= scenario.size:
        msg = f"the scenario has 1 to {scenario.size} patients, not {size}"
        raise ValueError(msg)
    groups: list[Group] = []
    for group in scenario.groups:
        count = min(group.count, size - group.first_index + 1)
        if count > 0:
            groups.append(dataclasses.replace(group, count=count))
    end_ms = scenario.end_ms if days is None else min(scenario.end_ms, scenario.start_ms + int(days * DAY_MS))
    timeline: list[ScheduledAction] = []
    for scheduled in scenario.timeline:
        targets = tuple(t for t in scheduled.targets if t <= size)
        if targets and scheduled.action.at_ms <= end_ms:
            timeline.append(dataclasses.replace(scheduled, targets=targets))
    return dataclasses.replace(scenario, groups=tuple(groups), timeline=tuple(timeline), end_ms=end_ms)


def _absences(spec: DeviceSpec) -> list[tuple[datetime, datetime, str]]:
    return [
        (from_ms(a.at_ms), from_ms(int(str(a.params["until_ms"]))), str(a.params["reason"]))
        for a in spec.timeline
        if a.kind is ActionKind.AWAY
    ]


@dataclass
class SteppedRun:
    """A scenario's fleet and a real hub in one process (see the module rules); ``run`` it, then look."""

    scenario: Scenario
    workdir: Path
    cadence_ms: int = MINUTE_MS
    unregistered: Collection[int] = ()
    """Patients (device numbers) whose absences the office never hears of: no pause is registered."""
    ack_after: timedelta | None = timedelta(minutes=10)
    heartbeat_s: int = HEARTBEAT_S
    """The devices' heartbeat (the hub's ``DeviceSettings``; ``dispenser-hub serve`` uses 300 s)."""
    truth: list[Truth] = field(default_factory=list)
    uplink: list[Uplink] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    pauses: dict[int, list[tuple[datetime, datetime, str]]] = field(default_factory=dict)
    """Registered pauses by patient id."""

    def __post_init__(self) -> None:
        """Wire the hub, register the fleet and do the office work (nothing runs yet)."""
        scenario = self.scenario
        self.now = scenario.start_ms
        self.clock = SteppedClock(self.now)
        settings = Settings(
            database_url=f"sqlite:///{self.workdir / 'hub.db'}",
            pki_dir=self.workdir / "pki",
            mqtt_client_id="hub-stepped-run",
        )
        self._publisher = _Publisher()
        self.channels = {name: RecordingChannel(name, self.clock) for name in CHANNELS}
        self.schedule_service = ScheduleService(DeviceSettings(heartbeat_s=self.heartbeat_s))
        hub = wire_hub(settings, self.clock, self.schedule_service, self._publisher, self.channels)
        self.hub: Hub = hub
        self.specs = scenario.devices()
        codes: dict[str, str] = {}
        for spec in self.specs:
            _, code = hub.registry.register_device(
                spec.device_id, serial=spec.device_id, family=spec.family, model="sim", by=BY
            )
            codes[spec.device_id] = code.code
        self.office: DemoOffice = set_up_office(scenario, hub.registry, hub.uow_factory, now=self.clock.now())
        self._later_trays()
        office = PatientSchedules(hub.uow_factory, self.clock, self.schedule_service)
        for spec in self.specs:
            if spec.index in self.unregistered:
                continue
            patient = self.office.patients[spec.device_id]
            for start, end, reason in _absences(spec):
                office.add_pause(patient, start, end, reason, by=BY)
                self.pauses.setdefault(patient, []).append((start, end, reason))
        self.devices: list[Dispenser] = build(scenario, standalone=False, enrollment_codes=codes).devices
        self._links = {device.device_id: _Link() for device in self.devices}
        self._by_id = {device.device_id: device for device in self.devices}
        self._retained: dict[str, bytes] = {}
        self._inbox: list[Inbound] = []
        self._hub_filters = hub_subscriptions()
        self._heard: dict[str, int] = dict.fromkeys(self._by_id, self.now)
        self._covered: set[str] = set()
        """Devices the no-contact sweep has seen silent (until the driver delivers from them again)."""
        self._silence_ms = int(self.hub.presence.allowed_silence.total_seconds() * 1000)
        self._next_timer: int | None = None
        """When the next deadline or notification (a step's, stored ahead of it) is due."""
        self._next_sweep = self.now + SWEEP_AT_MS
        self._next_safety = self.now
        self._acks: list[tuple[int, int]] = []
        self._acked: set[tuple[int, int]] = set()
        self._seen_sent = 0

    # -- office ----------------------------------------------------------------------------------------

    def _later_trays(self) -> None:
        """Register the fill of every later tray (``set_up_office`` did the first), as a nurse does."""
        records: list[FillRecord] = []
        for spec in self.specs:
            if spec.family is not Family.DOSE_POT:
                continue
            loads = [spec.start_ms + ROLL_LOAD_DELAY_MS] + [
                a.at_ms for a in spec.timeline if a.kind is ActionKind.LOAD_TRAY
            ]
            load = supply_loader(spec)
            plan = dosett_plan(spec)
            patient = self.office.patients[spec.device_id]
            for number, at_ms in enumerate(loads):
                tray = load(at_ms, False)  # noqa: FBT003 - the loader's signature (replayed in order)
                if number == 0 or not isinstance(tray, Tray) or not tray.pots:
                    continue
                first = oslo_day(from_ms(min(tray.pots.values())))
                fill = fill_tray(
                    plan,
                    tray_id=tray.tray_id,
                    patient_id=patient,
                    first_day=first,
                    pot_count=len(tray.pots),
                    filled_by="home-care nurse (simulated)",
                    filled_at=self.clock.now(),
                )
                records.append(FillRecord(fill))
        with self.hub.uow_factory() as uow:
            for record in records:
                uow.dosett.add_fill(record)
            uow.commit()

    # -- the broker ------------------------------------------------------------------------------------

    def _to_hub(self, message: Publish) -> None:
        if message.retain:
            self._retained[message.topic] = message.payload
        if any(topic_matches(f, message.topic) for f in self._hub_filters):
            self._inbox.append(Inbound(message.topic, message.payload, from_ms(self.now)))
            self.uplink.append(Uplink(self.now, message.topic, message.payload))

    def _carry_out(self, device: Dispenser, outputs: Iterable[Output]) -> None:
        for item in outputs:
            if isinstance(item, Truth):
                self.truth.append(item)
            elif self._links[device.device_id].online:
                self._to_hub(item)
            # else: the link dropped while the device was talking: lost, as on a real network

    def _to_device(self, topic: str, payload: bytes, *, retain: bool) -> None:
        if retain:
            self._retained[topic] = payload
        for device in self.devices:  # a downlink topic names one device; its filters decide
            link = self._links[device.device_id]
            if not any(topic_matches(f, topic) for f in device.subscriptions()):
                continue
            if link.online:
                self._carry_out(device, device.on_message(topic, payload, self.now))
            elif link.session and not retain:
                link.queued.append((topic, payload))  # the persistent session keeps it for the reconnect

    def _connections(self) -> None:
        for device in self.devices:
            link = self._links[device.device_id]
            wanted = device.link_wanted(self.now)
            if wanted and not link.online:
                link.will, link.online, link.session = device.will(self.now), True, True
                self._carry_out(device, device.on_connected(self.now))
                queued, link.queued = link.queued, []
                retained = [
                    (topic, payload)
                    for topic, payload in self._retained.items()
                    if any(topic_matches(f, topic) for f in device.subscriptions())
                ]
                for topic, payload in [*queued, *retained]:
                    self._carry_out(device, device.on_message(topic, payload, self.now))
            elif link.online and not wanted:
                link.online = False
                self._carry_out(device, device.on_disconnected(self.now))
                if link.will is not None:
                    self._to_hub(link.will)
                    link.will = None

    # -- the hub ---------------------------------------------------------------------------------------

    def _exchange(self, *, outbox: bool) -> None:
        """Ingest the inbox, send due commands and deliver them, until nothing more comes back.

        ``outbox``: send due commands even with an empty inbox (timers ran, or the retry safety net).
        """
        for _ in range(MAX_ROUNDS):
            if not self._inbox and not outbox:
                return
            outbox = False
            if self._inbox:
                batch, self._inbox = self._inbox, []
                for start in range(0, len(batch), BATCH):
                    self.hub.ingest.handle(batch[start : start + BATCH])
                self.stats.ingested += len(batch)
                for message in batch:
                    device_id = message.topic.split("/")[2]
                    self._heard[device_id] = self.now
                    self._covered.discard(device_id)
            self.hub.commands.send_due()
            out, self._publisher.out = self._publisher.out, []
            self.stats.downlink += len(out)
            for topic, payload, retain in out:
                self._to_device(topic, payload, retain=retain)

    def _sweep_due(self) -> bool:
        limit = self.now - self._silence_ms
        return any(at <= limit for d, at in self._heard.items() if d not in self._covered)

    def _hub_step(self) -> None:
        """Everything the hub does at the grid point ``self.now`` (see the module rules)."""
        hub, now = self.hub, self.now
        self.clock.now_ms = now
        self.stats.hub_steps += 1
        safety = now >= self._next_safety
        self._exchange(outbox=safety)
        timers = False
        if self._next_timer is not None and self._next_timer <= now:
            hub.deadlines.tick()
            self.stats.deadline_ticks += 1
            hub.notifications.send_due()
            self._note_sent()
            timers = True
        if safety or self._sweep_due():
            hub.presence.sweep()
            limit = now - self._silence_ms
            self._covered |= {d for d, at in self._heard.items() if at <= limit}
            timers = True
        if now >= self._next_sweep:
            hub.schedules.sweep()
            hub.supply.sweep()
            self._next_sweep = now + SWEEP_MS
            timers = True
        if safety:
            self._next_safety = now + SAFETY_SWEEP_MS
        while self._acks and self._acks[0][0] <= now:
            _, alarm_id = heapq.heappop(self._acks)
            try:
                hub.registry.acknowledge_alarm(alarm_id, by="operator (simulated)", note="seen")
                self.stats.acknowledged += 1
            except Conflict:
                pass  # resolved (or acknowledged) meanwhile
            timers = True
        self._exchange(outbox=timers)
        with hub.uow_factory() as uow:  # every step may have scheduled deadlines (ingest, timers, acks)
            pending = uow.deadlines.pending(limit=1)
            notification = uow.notifications.next_due()  # an escalation step's, stored ahead
        due = [to_ms(pending[0].due_at)] if pending else []
        due += [to_ms(notification)] if notification is not None else []
        self._next_timer = min(due, default=None)

    def _note_sent(self) -> None:
        """Plan the operator's acknowledgement of alarms whose first notification just went out."""
        if self.ack_after is None:
            return
        sent = sorted((s for c in self.channels.values() for s in c.sent), key=lambda s: s.at)
        for item in sent[self._seen_sent :]:
            if item.episode not in self._acked:
                self._acked.add(item.episode)
                due = to_ms(item.at + self.ack_after)
                heapq.heappush(self._acks, (due, item.alarm_id))
        self._seen_sent = len(sent)

    def _grid(self, ms: int) -> int:
        """The first grid point at or after ``ms``."""
        start = self.scenario.start_ms
        return start + -(-(ms - start) // self.cadence_ms) * self.cadence_ms

    def _next_hub_ms(self) -> int:
        after = self.now + 1 if not self._inbox else self.now
        candidates = [self._next_safety, self._next_sweep]
        if any(not m.topic.endswith(TELEMETRY) for m in self._inbox):
            candidates.append(after)
        elif self._inbox:
            start = self.scenario.start_ms
            candidates.append(start + -(-(self.now - start) // LIVENESS_MS) * LIVENESS_MS)
        if self._next_timer is not None:
            candidates.append(self._next_timer)
        if self._acks:
            candidates.append(self._acks[0][0])
        waiting = [at + self._silence_ms for d, at in self._heard.items() if d not in self._covered]
        candidates += waiting
        return self._grid(max(after, min(candidates)))

    # -- running ---------------------------------------------------------------------------------------

    def run(self, until_ms: int | None = None, *, progress: Callable[[int], None] | None = None) -> None:
        """Run devices and hub to ``until_ms`` (default: the scenario's end)."""
        end = self.scenario.end_ms if until_ms is None else until_ms
        started = time.perf_counter()
        hub_at = self._grid(self.now)
        day = self.now // DAY_MS
        while self.now <= end:
            self._connections()
            for device in self.devices:
                wakeup = device.next_wakeup()
                if wakeup is not None and wakeup <= self.now:
                    self._carry_out(device, device.advance(self.now))
            self._connections()
            if self.now >= hub_at:
                self._hub_step()
            hub_at = self._next_hub_ms()
            wakeups = [w for d in self.devices if (w := d.next_wakeup()) is not None]
            upcoming = min([*wakeups, hub_at])
            if upcoming > end:
                break
            self.now = max(self.now, upcoming)
            if progress is not None and self.now // DAY_MS != day:
                day = self.now // DAY_MS
                progress(self.now)
        self.now = end
        self.clock.now_ms = end
        self.stats.wall_s += time.perf_counter() - started

    def sent(self) -> list[Sent]:
        """Every notification handed to a channel, in time order."""
        return sorted((s for c in self.channels.values() for s in c.sent), key=lambda s: (s.at, s.key))

    def close(self) -> None:
        """Release the database."""
        self.hub.engine.dispose()


NAIVE_GOOD_NEWS = frozenset({"roll.loaded"})
"""Reports with a VKP code that are not bad news (a naive policy does not alarm on them)."""


def naive_alarm(body_type: str | None) -> bool:
    """Whether a naive policy alarms on a message: every report the VKP code table grades (green and up).

    That is what an integration forwarding the dispenser's own alarms one to one would do: every missed
    or undispensed dose, fault, disconnect, empty and almost-empty roll or tray, trip shortfall.
    """
    mapping = EVENT_MAPPINGS.get(body_type) if body_type is not None else None
    if mapping is None or body_type in NAIVE_GOOD_NEWS:
        return False
    return mapping.vkp is not None and mapping.severity >= Severity.GREEN


@dataclass(frozen=True, slots=True)
class AlarmLoad:
    """Operator-facing alarms of the hub's policies and of the naive policy, per 100 doses of one run."""

    doses: int
    """Doses the dispensers offered (ground truth ``dose.due``)."""
    hub_alarms: int
    """Escalations that reached a person or the console: (alarm, raise) with at least one notification."""
    naive_alarms: int
    """Distinct messages a naive policy alarms on (``naive_alarm``)."""
    hub_by_kind: dict[str, int]
    naive_by_kind: dict[str, int]

    @property
    def hub_per_100(self) -> float:
        """The hub's operator-facing alarms per 100 doses."""
        return 100 * self.hub_alarms / self.doses if self.doses else 0.0

    @property
    def naive_per_100(self) -> float:
        """The naive policy's alarms per 100 doses."""
        return 100 * self.naive_alarms / self.doses if self.doses else 0.0

    @property
    def ratio(self) -> float:
        """Hub alarms / naive alarms."""
        return self.hub_alarms / self.naive_alarms if self.naive_alarms else 0.0


def alarm_load(run: SteppedRun) -> AlarmLoad:
    """The alarm load of a finished run, both policies from the same event stream and ground truth."""
    doses = sum(1 for record in run.truth if record.kind == "dose.due")
    episodes: dict[tuple[int, int], str] = {}
    for sent in run.sent():
        episodes.setdefault(sent.episode, sent.subject.split(" ")[0])
    hub_by_kind: dict[str, int] = {}
    for kind in episodes.values():
        hub_by_kind[kind] = hub_by_kind.get(kind, 0) + 1
    seen: set[str] = set()
    naive_by_kind: dict[str, int] = {}
    for message in run.uplink:
        body_type = message.body_type()
        msg_id = message.msg_id()
        if naive_alarm(body_type) and msg_id not in seen:
            seen.add(msg_id)
            naive_by_kind[str(body_type)] = naive_by_kind.get(str(body_type), 0) + 1
    return AlarmLoad(doses, len(episodes), len(seen), hub_by_kind, naive_by_kind)
