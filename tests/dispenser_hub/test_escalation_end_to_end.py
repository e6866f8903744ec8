"""Escalation end to end: a simulated dispenser over a real broker, the hub, and real receivers.

The receivers (``tests.support.escalation_world.Channels``) are an HTTP SMS gateway, the response centre's
alarm system (signed webhooks) and an SMTP server; the hub is configured for them by settings, as
``dispenser-hub serve`` is. The patient is a home-care patient (``set_up_world``): the default policy tells
the relative after 30 minutes, the response centre after 60 and the team's on-call nurse after 90 (SMS and
e-mail), then the nurse again every 30 minutes, twice.

- The chain, and the nurse's link that stops it: the hub in this process (``HubRuntime``, its API on a real
  port) on the simulator's accelerated clock; its timers tick every ``FAST_TICK_S`` real seconds
  (``fast_timers``), so step times are checked within ``TOLERANCE``.
- ``kill -9`` in the middle of a chain: ``dispenser-hub serve --clock SPEC`` as a child process, killed twice
  and restarted on the same simulated timeline; every step arrives once.
- An offline dispenser whose patient takes the doses: one no-contact alarm, no missed dose, nobody told.
- The night the clocks go back, and a pause: the hub's services driven minute by minute on a manual clock.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from device_sim.build import build
from device_sim.clock import ScaledClock, real_now_ms
from device_sim.device.identity import DeviceIdentity
from device_sim.runner import SimulationRun
from dispenser_hub import bootstrap
from dispenser_hub.adapters.clock import ManualClock, SimulatedClock, SystemClock
from dispenser_hub.adapters.notify.email import message_id
from dispenser_hub.bootstrap import load_ca, open_storage
from dispenser_hub.domain.doses import DoseState
from dispenser_hub.domain.escalation import MISSED_DOSE_KINDS
from dispenser_hub.domain.model import (
    AlarmStatus,
    CareTeam,
    Contact,
    NotificationStatus,
    Patient,
    Responsibility,
    RosterRecord,
    SubjectKind,
)
from dispenser_hub.domain.notices import verify_webhook
from dispenser_hub.domain.pouches import DrugLine, Pouch, RollManifest, from_ms, to_ms
from dispenser_hub.domain.wallclock import OSLO
from dispenser_hub.ports import Inbound
from dispenser_hub.runtime import HubRuntime
from dispenser_hub.services.escalations import STEP
from dispenser_hub.services.ingest import Verdict
from dispenser_hub.services.routing import RESPONSE_CENTRE
from dispenser_hub.services.schedule_admin import PatientSchedules
from dispenser_hub.settings import Settings
from firmware_protocol.messages import Family, Heartbeat, RollLoaded
from tests.dispenser_hub.services.support import Device
from tests.support.broker import free_tcp_port
from tests.support.escalation_world import (
    NURSE_EMAIL,
    NURSE_PHONE,
    RELATIVE_PHONE,
    SENDER,
    WEBHOOK_SECRET,
    Channels,
    HubChild,
    World,
    on_call_all_week,
    scenario,
    set_up_world,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from email.message import EmailMessage
    from pathlib import Path

    from device_sim.build import Built
    from device_sim.ports import Truth
    from device_sim.scenario import Scenario
    from dispenser_hub.bootstrap import Hub
    from dispenser_hub.domain.model import Alarm, Notification
    from tests.conftest import BrokerFactory
    from tests.support.broker import MqttBroker
    from tests.support.receivers import Request

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
HOUR_MS = 3_600_000
FAST_TICK_S = 0.1
"""The in-process hub's timer cadence (deadlines, notifications, commands), real seconds."""
IN_PROCESS_SPEED = 1200
"""A tick is 2 simulated minutes."""
TOLERANCE = 10 * MINUTE
"""A step is sent at the first deadline tick after it is due, then at the next notification round."""
WAIT_S = 60.0
MISSING = "  - {at: day 1 07:00, patient: 1, action: miss_doses, until: day 1 23:00}\n"
"""The patient takes nothing on day 1: the 08:00 dose's window closes at 10:00 unconfirmed."""
ACK_LINK = re.compile(r"https?://[^\s\"'<>]+/ack/[A-Za-z0-9._~-]+")
DUE_AFTER = {0: 30, 1: 60, 2: 90}
"""Minutes from the raise to each step of the home-care default (the nurse's repeats every 30 more)."""


@pytest.fixture
def fast_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process hub's periodic jobs every ``FAST_TICK_S`` (``Hub.start`` reads these when it starts)."""
    monkeypatch.setattr(bootstrap, "DEADLINE_TICK_S", FAST_TICK_S)
    monkeypatch.setattr(bootstrap, "SEND_EVERY_S", FAST_TICK_S)
    monkeypatch.setattr(bootstrap, "SWEEP_EVERY_S", FAST_TICK_S * 2)


# -- helpers -------------------------------------------------------------------------------------------------


def _missing_plan() -> Scenario:
    return scenario(start="2026-11-23T07:00", doses=["08:00"], timeline=MISSING)


def _frozen(at_ms: int) -> ScaledClock:
    """A clock that (nearly) stands still at ``at_ms`` while the office work is done."""
    return ScaledClock(at_ms, real_now_ms(), 1e-6)


def _at(ms: int) -> datetime:
    return from_ms(ms).astimezone(UTC)


async def _until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            msg = f"timed out waiting for {what}"
            raise AssertionError(msg)
        await asyncio.sleep(0.02)


def _open(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the hub's own http link
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _get(url: str) -> int:
    return _open(urllib.request.Request(url))  # noqa: S310 - the hub's own http link


def _post(url: str) -> int:
    return _open(urllib.request.Request(url, data=b"", method="POST"))  # noqa: S310 - the hub's own link


def _sms_to(request: Request) -> str:
    return str(json.loads(request.body)["to"])


def _hook_body(request: Request) -> dict[str, object]:
    """The alarm a response-centre webhook is about (its ``text`` is the JSON the escalation wrote)."""
    text = json.loads(request.body)["text"]
    body = json.loads(text)
    assert isinstance(body, dict)
    return body


def _mail_text(mail: EmailMessage) -> str:
    """The decoded text of every text part of ``mail``."""
    parts = [part for part in mail.walk() if part.get_content_maintype() == "text"]
    return "\n".join(str(part.get_content()) for part in parts)


def _hooks_about(channels: Channels, alarm_id: int) -> list[tuple[int, Request]]:
    """The response centre's webhooks about one alarm, with their arrival (dispenser alarms go there too)."""
    requests = channels.centre_requests
    return [
        (at, request)
        for at, request in zip(requests.at_ms, requests, strict=True)
        if _hook_body(request)["alarm_id"] == alarm_id
    ]


def _received(channels: Channels, alarm_id: int) -> int:
    """What the receivers got about one patient alarm (SMS and e-mail are only about patients here)."""
    return len(channels.sms_requests) + len(channels.mails) + len(_hooks_about(channels, alarm_id))


def _patient_alarms(hub: Hub, patient_id: int) -> list[Alarm]:
    with hub.uow_factory() as uow:
        return [
            alarm
            for alarm in uow.alarms.select(limit=100)
            if alarm.subject_kind is SubjectKind.PATIENT and alarm.patient_id == patient_id
        ]


def _no_patient_data(world: World, channels: Channels) -> None:
    bodies = [request.body.decode() for request in [*channels.sms_requests, *channels.centre_requests]]
    bodies += [mail.as_string() for _, mail in channels.mails]
    assert bodies
    leaks = [body for body in bodies if world.patient_name in body or world.national_id in body]
    assert not leaks, f"patient data in what the receivers got: {leaks}"


def _step_due(raised: datetime, step_key: str) -> datetime:
    """When ``esc:<alarm>:<step>:<repeat>:<count>`` was due."""
    _, _, step, repeat, _ = step_key.split(":")
    return raised + (DUE_AFTER[int(step)] + 30 * int(repeat)) * MINUTE


@dataclass
class InProcess:
    """An in-process hub (with its API) and the simulated fleet's build, for a one-dispenser world."""

    runtime: HubRuntime
    clock: SimulatedClock
    world: World
    built: Built
    broker_url: str

    @property
    def hub(self) -> Hub:
        return self.runtime.hub

    def start(self, start_ms: int, speed: float) -> ScaledClock:
        """Let simulated time run from ``start_ms`` at ``speed``; start the hub's timers, MQTT and API."""
        self.clock.clock = ScaledClock.starting_now(start_ms, speed=speed)
        self.runtime.start_in_thread()
        return self.clock.clock


def _in_process(
    tmp_path: Path,
    broker_url: str,
    plan: Scenario,
    channels: Channels,
    *,
    clock: SimulatedClock,
    client_id: str,
) -> InProcess:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        pki_dir=tmp_path / "pki",
        mqtt_url=broker_url,
        mqtt_client_id=client_id,
        http_port=free_tcp_port(),
        **channels.settings(),  # type: ignore[arg-type]
    )
    runtime = HubRuntime(settings, clock=clock)
    hub = runtime.hub
    (spec,) = plan.devices()
    _, code = hub.registry.register_device(
        spec.device_id, serial=spec.device_id, family=spec.family, model="sim", by="test"
    )
    world = set_up_world(plan, hub.registry, hub.uow_factory, now=hub.clock.now())
    built = build(plan, standalone=False, enrollment_codes={spec.device_id: code.code})
    return InProcess(runtime, clock, world, built, broker_url)


# -- 1. the chain, and a link that stops it -----------------------------------------------------------------


@dataclass
class _LinkUse:
    """What the nurse's link did, and what the receivers had got at each moment."""

    shown: int = 0
    status_after_showing: AlarmStatus | None = None
    used: int = 0
    received_at_ack: int = -1
    received_at_end: int = -1
    used_again: int = 0


async def _chain_and_link(
    setup: InProcess, channels: Channels, clock: ScaledClock, plan: Scenario
) -> _LinkUse:
    """Run until the nurse's e-mail, use its link, run past the nurse's repeats, use the link again."""
    use = _LinkUse()
    async with SimulationRun(setup.built, setup.broker_url, clock) as simulation:
        runner = asyncio.create_task(simulation.run_until(plan.start_ms + 8 * HOUR_MS))
        await _until(lambda: len(channels.mails) >= 1, "the nurse's e-mail")
        _, mail = channels.mails[0]
        link = ACK_LINK.search(_mail_text(mail))
        assert link is not None, mail.as_string()
        use.shown = await asyncio.to_thread(_get, link.group(0))
        (alarm,) = _patient_alarms(setup.hub, setup.world.patient_id)
        use.status_after_showing = alarm.status
        use.used = await asyncio.to_thread(_post, link.group(0))
        assert alarm.id is not None
        use.received_at_ack = _received(channels, alarm.id)
        quiet_until = to_ms(alarm.raised_at + 170 * MINUTE)  # past the repeats at +120 and +150
        await _until(lambda: clock.now_ms() >= quiet_until, "the end of the chain")
        use.received_at_end = _received(channels, alarm.id)
        use.used_again = await asyncio.to_thread(_post, link.group(0))
        simulation.request_stop()
        await runner
    return use


def _check_step_times(raised: datetime, channels: Channels, hooks: list[tuple[int, Request]]) -> None:
    """The relative by SMS at +30, the centre's system at +60, the nurse by SMS and e-mail at +90."""
    sms = list(zip(channels.sms_requests.at_ms, map(_sms_to, channels.sms_requests), strict=True))
    assert [to for _, to in sms] == [RELATIVE_PHONE, NURSE_PHONE]
    assert len(hooks) == 1
    assert [envelope.rcpt_tos for envelope, _ in channels.mails] == [[NURSE_EMAIL]]
    arrived = {
        "relative": (sms[0][0], 30),
        "centre": (hooks[0][0], 60),
        "nurse sms": (sms[1][0], 90),
        "nurse e-mail": (channels.mails.at_ms[0], 90),
    }
    off = {
        who: _at(at) - (raised + after * MINUTE)
        for who, (at, after) in arrived.items()
        if not MINUTE * 0 <= _at(at) - (raised + after * MINUTE) <= TOLERANCE
    }
    assert not off, f"steps not within {TOLERANCE} after they were due (how far off): {off}"


@pytest.mark.usefixtures("fast_timers")
def test_missed_dose_escalates_relative_centre_home_care_and_a_link_stops_it(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    plan = _missing_plan()
    hub_clock = SimulatedClock(_frozen(plan.start_ms - 60_000))
    with Channels(lambda: to_ms(hub_clock.now())) as channels:
        setup = _in_process(
            tmp_path,
            fresh_mqtt_broker().url,
            plan,
            channels,
            clock=hub_clock,
            client_id="hub-escalation-chain",
        )
        clock = setup.start(plan.start_ms, IN_PROCESS_SPEED)
        try:
            use = asyncio.run(_chain_and_link(setup, channels, clock, plan))
        finally:
            setup.runtime.stop()
    world = setup.world
    (alarm,) = _patient_alarms(setup.hub, world.patient_id)
    assert alarm.kind in MISSED_DOSE_KINDS
    assert alarm.id is not None
    with setup.hub.uow_factory() as uow:
        notifications = uow.notifications.for_alarm(alarm.id)
        pending_steps = [d for d in uow.deadlines.pending(kind=STEP) if d.payload.get("alarm_id") == alarm.id]

    hooks = _hooks_about(channels, alarm.id)
    _check_step_times(alarm.raised_at, channels, hooks)
    ((hooked_at, webhook),) = hooks
    verify_webhook(
        WEBHOOK_SECRET.encode(), webhook.headers["x-dispenser-signature"], webhook.body, now=_at(hooked_at)
    )
    keys = [r.headers["idempotency-key"] for r in [*channels.sms_requests, webhook]]
    assert len(set(keys)) == len(keys) == 3
    _no_patient_data(world, channels)
    # looking at the link (a mail scanner does) changes nothing; the POST acknowledges, as the nurse, by link
    assert (use.shown, use.status_after_showing) == (200, AlarmStatus.ACTIVE)
    assert use.used == 200
    assert (alarm.status, alarm.acknowledged_by) == (AlarmStatus.ACKNOWLEDGED, f"link:{world.nurse}")
    # the chain stopped: the nurse's repeats at +120 and +150 never came, nor were they planned any longer
    assert use.received_at_end == use.received_at_ack == 4
    assert pending_steps == []
    assert all(n.status is not NotificationStatus.PENDING for n in notifications)
    # the link was spent
    assert use.used_again == 410


# -- 2. kill -9 of the hub in the middle of a chain ----------------------------------------------------------

CRASH_SPEED = 600
"""``dispenser-hub serve`` ticks every real second: 10 simulated minutes."""
LEAD_MS = 6_000
"""Real time the first instance has to start before the simulated day begins."""
READY_S = 30.0


def _sent_keys(db_path: Path) -> list[str]:
    connection = sqlite3.connect(db_path, timeout=10.0, isolation_level=None)
    try:
        rows = connection.execute("SELECT key FROM notification WHERE status = 'sent'").fetchall()
    finally:
        connection.close()
    return [str(key) for (key,) in rows]


def _sent(db_path: Path, pattern: str) -> bool:
    return any(re.fullmatch(pattern, key) for key in _sent_keys(db_path))


@dataclass
class _CrashSetup:
    settings: Settings
    db_path: Path
    world: World
    built: Built
    clock: ScaledClock


def _prepare_crash(tmp_path: Path, broker: MqttBroker, plan: Scenario) -> _CrashSetup:
    """The database, the PKI, the registrations and the office work, before any hub runs."""
    db_path = tmp_path / "hub.db"
    settings = Settings(
        database_url=f"sqlite:///{db_path}",
        pki_dir=tmp_path / "pki",
        mqtt_url=broker.url,
        mqtt_client_id="hub-escalation-crash",
    )
    storage = open_storage(settings, SimulatedClock(_frozen(plan.start_ms - 60_000)))
    load_ca(settings, from_ms(plan.start_ms) - timedelta(days=1))
    (spec,) = plan.devices()
    _, code = storage.registry.register_device(
        spec.device_id, serial=spec.device_id, family=spec.family, model="sim", by="test"
    )
    world = set_up_world(plan, storage.registry, storage.uow_factory, now=from_ms(plan.start_ms - 60_000))
    storage.engine.dispose()
    built = build(plan, standalone=False, enrollment_codes={spec.device_id: code.code})
    # the simulated day begins LEAD_MS from now: the first instance starts meanwhile
    clock = ScaledClock(plan.start_ms, real_now_ms() + LEAD_MS, CRASH_SPEED)
    return _CrashSetup(settings, db_path, world, built, clock)


def _hub_child(tmp_path: Path, setup: _CrashSetup, channels: Channels) -> HubChild:
    settings = setup.settings
    environment = {
        "DISPENSER_DATABASE_URL": settings.database_url,
        "DISPENSER_PKI_DIR": str(settings.pki_dir),
        "DISPENSER_MQTT_URL": settings.mqtt_url,
        "DISPENSER_MQTT_CLIENT_ID": settings.mqtt_client_id,
        "DISPENSER_HTTP_PORT": str(free_tcp_port()),
        "DISPENSER_NO_CONTACT_AFTER_S": "14400",  # a restart takes simulated hours at this speed
        **channels.environment(),
    }
    return HubChild(environment, tmp_path / "hub", clock_spec=setup.clock.spec)


async def _crash_twice(setup: _CrashSetup, broker_url: str, hub: HubChild, channels: Channels) -> list[int]:
    """Kill -9 after the relative's step and after the nurse's first; the centre's webhooks at each kill."""
    centre_at_kill: list[int] = []

    def restart() -> None:
        about_doses = [r for r in channels.centre_requests if _hook_body(r)["kind"] in MISSED_DOSE_KINDS]
        centre_at_kill.append(len(about_doses))
        hub.kill()
        hub.start()
        hub.wait_ready(READY_S)

    world, db_path, clock = setup.world, setup.db_path, setup.clock
    await asyncio.sleep(max(0.0, (clock.real_epoch_ms - real_now_ms()) / 1000))
    async with SimulationRun(setup.built, broker_url, clock) as simulation:
        runner = asyncio.create_task(simulation.run_until(clock.sim_epoch_ms + 8 * HOUR_MS))
        relative = rf"esc:\d+:0:0:1:{world.relative}:sms"
        await _until(lambda: _sent(db_path, relative), "the relative's SMS")
        await asyncio.to_thread(restart)  # after the relative's step, before the centre's
        nurse = rf"esc:\d+:2:0:1:{world.nurse}:sms"
        await _until(lambda: _sent(db_path, nurse), "the nurse's first SMS")
        await asyncio.to_thread(restart)  # between the nurse's step and its repeats
        last = rf"esc:\d+:2:2:1:{world.nurse}:email"
        await _until(lambda: _sent(db_path, last), "the nurse's last repeat")
        await asyncio.sleep(1.5)  # anything more (a step sent again) would arrive now
        simulation.request_stop()
        await runner
    return centre_at_kill


def _planned(alarm_id: int, world: World) -> dict[str, str]:
    """The notification keys of the whole home-care chain (step key, recipient, channel) -> channel."""
    steps = {
        "0:0": [(world.relative, "sms")],
        "1:0": [(RESPONSE_CENTRE, "console"), (RESPONSE_CENTRE, "webhook")],
        **{
            f"2:{repeat}": [
                (world.nurse, "sms"),
                (world.nurse, "email"),
                (f"team:{world.team_id}", "console"),
            ]
            for repeat in range(3)
        },
    }
    return {
        f"esc:{alarm_id}:{step}:1:{recipient}:{channel}": channel
        for step, reached in steps.items()
        for recipient, channel in reached
    }


def _arrivals(channels: Channels, alarm_id: int, keys: Iterable[str]) -> list[tuple[int, str]]:
    """(simulated arrival, notification key) of what arrived about the alarm; e-mails by ``Message-ID``."""
    by_message_id = {message_id(key, SENDER.split("@")[1]): key for key in keys}
    sms = channels.sms_requests
    found = [
        (at, request.headers["idempotency-key"])
        for at, request in [*zip(sms.at_ms, sms, strict=True), *_hooks_about(channels, alarm_id)]
    ]
    found += [
        (at, by_message_id.get(str(mail["Message-ID"]), str(mail["Message-ID"])))
        for at, (_, mail) in zip(channels.mails.at_ms, channels.mails, strict=True)
    ]
    return found


def _check_each_step_once(
    alarm: Alarm, notifications: list[Notification], world: World, channels: Channels
) -> None:
    assert alarm.id is not None
    planned = _planned(alarm.id, world)
    # every planned step was notified, once per recipient and channel, and nothing else
    assert sorted(n.key for n in notifications) == sorted(planned)
    assert {n.key: n.status for n in notifications} == dict.fromkeys(planned, NotificationStatus.SENT)
    # each arrived once (Idempotency-Key; e-mail: Message-ID), none before it was due on the shared clock
    arrivals = _arrivals(channels, alarm.id, planned)
    others = {str(_hook_body(r)["kind"]) for r in channels.centre_requests} - {alarm.kind}
    assert not others & MISSED_DOSE_KINDS, others  # the centre's other webhooks are about the dispenser
    assert Counter(key for _, key in arrivals) == Counter(
        {key: 1 for key, channel in planned.items() if channel != "console"}
    )
    early = [
        (key, _at(at))
        for at, key in arrivals
        if _at(at) < _step_due(alarm.raised_at, ":".join(key.split(":")[:5]))
    ]
    assert not early, f"sent before the step was due: {early}"


def test_kill_9_in_the_middle_of_a_chain_sends_each_step_once(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    broker = fresh_mqtt_broker("mosquitto")
    setup = _prepare_crash(tmp_path, broker, _missing_plan())
    with Channels(setup.clock.now_ms) as channels:
        hub = _hub_child(tmp_path, setup, channels)
        hub.start()
        try:
            hub.wait_ready(READY_S)
            centre_at_kill = asyncio.run(_crash_twice(setup, broker.url, hub, channels))
            exit_code = hub.stop(signal.SIGINT)
        finally:
            hub.stop(signal.SIGKILL)

    assert len(hub.logs) == 3
    for number, log in enumerate(hub.logs, start=1):
        text = log.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in text, f"hub instance {number} logged:\n{text[-3000:]}"
    assert exit_code == 0
    assert centre_at_kill == [0, 1], "the kills did not come between the steps they were meant for"
    storage = open_storage(setup.settings, SystemClock())
    try:
        with storage.uow_factory() as uow:
            alarms = uow.alarms.select(limit=100)
            ours = [a for a in alarms if a.subject_kind is SubjectKind.PATIENT]
            assert len(ours) == 1, [(a.kind, a.subject_id, a.raised_at, a.detail) for a in alarms]
            (alarm,) = ours
            assert alarm.id is not None
            notifications = uow.notifications.for_alarm(alarm.id)
            pending = [d for d in uow.deadlines.pending(kind=STEP) if d.payload.get("alarm_id") == alarm.id]
    finally:
        storage.engine.dispose()
    assert (alarm.kind in MISSED_DOSE_KINDS, alarm.status, alarm.count) == (True, AlarmStatus.ACTIVE, 1)
    assert pending == []
    _check_each_step_once(alarm, notifications, setup.world, channels)
    _no_patient_data(setup.world, channels)


# -- 3. an offline dispenser: one no-contact alarm, the replay tells the truth -------------------------------

OFFLINE_SPEED = 2400
"""A tick is 4 simulated minutes; nothing here is timed closer than an hour."""


@pytest.mark.usefixtures("fast_timers")
def test_offline_device_raises_one_no_contact_alarm_and_late_replay_resolves(
    tmp_path: Path, fresh_mqtt_broker: BrokerFactory
) -> None:
    offline = "  - {at: day 1 07:30, device: 1, action: network_down, for: 7h15m}\n"  # back at 14:45
    # from 05:00, so that the dispenser has enrolled and holds its roll and schedule well before it goes
    plan = scenario(start="2026-11-23T05:00", doses=["08:00", "11:00", "14:00"], timeline=offline)
    back_ms = plan.start_ms + (9 * 60 + 45) * 60_000
    hub_clock = SimulatedClock(_frozen(plan.start_ms - 60_000))
    records: list[Truth] = []
    with Channels(lambda: to_ms(hub_clock.now())) as channels:
        setup = _in_process(
            tmp_path,
            fresh_mqtt_broker().url,
            plan,
            channels,
            clock=hub_clock,
            client_id="hub-escalation-offline",
        )

        async def run() -> None:
            async with SimulationRun(setup.built, setup.broker_url, clock, keep_records=True) as simulation:
                await simulation.run_until(back_ms + 45 * 60_000)
                records.extend(simulation.records)

        clock = setup.start(plan.start_ms, OFFLINE_SPEED)
        try:
            asyncio.run(run())
        finally:
            setup.runtime.stop()
    with setup.hub.uow_factory() as uow:
        alarms = uow.alarms.select(limit=100)
        doses = {dose.slot_id: dose.state for dose in uow.doses.for_device(setup.world.device_id)}

    taken = {str(r.data["slot_id"]) for r in records if r.kind == "dose.taken"}
    assert len(taken) == 3, "the patient took the three doses while the dispenser was offline"
    # one no-contact alarm for the silence, resolved by the dispenser's return
    no_contact = [a for a in alarms if a.kind == "no_contact"]
    assert [(a.subject_id, a.count, a.status) for a in no_contact] == [
        (setup.world.device_id, 1, AlarmStatus.RESOLVED)
    ]
    assert no_contact[0].raised_at < from_ms(back_ms)
    # no missed dose: the replayed reports made them taken, late as the hub heard of them late
    assert [a for a in alarms if a.kind in MISSED_DOSE_KINDS] == []
    assert {
        slot: doses.get(slot) in {DoseState.TAKEN, DoseState.TAKEN_LATE} for slot in taken
    } == dict.fromkeys(taken, True), doses
    # nobody was told about the doses: no SMS, no e-mail; the centre's system only about the dispenser
    # (its connection lost, then the silence)
    assert list(channels.sms_requests) == []
    assert list(channels.mails) == []
    kinds = {_hook_body(request)["kind"] for request in channels.centre_requests}
    assert "no_contact" in kinds
    assert kinds <= {"no_contact", "death"}


# -- 4. the night the clocks go back, and a pause ------------------------------------------------------------

NIGHT_DEVICE = "RM3-000031"
NIGHT_NID = "01819010001"
"""Synthetic (month + 80): never a real person."""
NIGHT_PATIENT = "Nora Nattdose"
NIGHT_DOSE = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
"""01:30 CEST on Sunday 25 October 2026, 90 minutes before the clocks go back from 03:00 to 02:00."""
PAUSED_DOSE = datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
"""08:00 CET, inside the hospital stay registered below (06:00-12:00 CET)."""
STAY = (datetime(2026, 10, 25, 5, 0, tzinfo=UTC), datetime(2026, 10, 25, 11, 0, tzinfo=UTC))
ACKNOWLEDGE_AT = datetime(2026, 10, 25, 4, 30, tzinfo=UTC)
NIGHT_END = datetime(2026, 10, 25, 12, 0, tzinfo=UTC)


def _deliver(hub: Hub, message: tuple[str, bytes]) -> None:
    assert hub.ingest.handle([Inbound(*message, hub.clock.now())]) == [Verdict.STORED]


def _night_setup(hub: Hub, device: Device) -> int:
    """A home-care patient with a relative and an on-call nurse, a roll of two pouches, the hospital stay."""
    now = hub.clock.now()
    _, code = hub.registry.register_device(
        NIGHT_DEVICE, serial=device.identity.serial, family=Family.MULTIDOSE_ROLL, model="t", by="test"
    )
    _deliver(hub, device.enrollment(code.code, now))
    _deliver(hub, device.birth(now))
    team = hub.registry.add_team(CareTeam("Hjemmesykepleien Natt"), by="test")
    assert team.id is not None
    patient = hub.registry.add_patient(
        Patient(NIGHT_PATIENT, NIGHT_NID, Responsibility.HOME_CARE, team_id=team.id), by="test"
    )
    assert patient.id is not None
    hub.registry.add_contact(Contact(patient.id, "Rita", phone=RELATIVE_PHONE), by="test")
    drugs = (DrugLine("Paracetamol", "500 mg", Decimal(1)),)
    pouches = tuple(Pouch(f"R-N-{n}", at, drugs) for n, at in enumerate((NIGHT_DOSE, PAUSED_DOSE)))
    with hub.uow_factory() as uow:
        uow.escalation.put_roster(RosterRecord(team.id, on_call_all_week(team.id), now, "test"))
        manifest = RollManifest("R-N", NIGHT_NID, "PX-N", "Apotek", now, pouches)
        uow.rolls.add_manifest(manifest, imported_at=now, imported_by="test")
        uow.commit()
    hub.registry.bind(NIGHT_DEVICE, patient.id, by="test", reason="installed")
    loaded = device.message(
        RollLoaded,
        now,
        roll_id="R-N",
        printed_patient_ref="PX-N",
        first_intake=to_ms(NIGHT_DOSE),
        last_intake=to_ms(PAUSED_DOSE),
        pouches=2,
    )
    _deliver(hub, loaded)
    PatientSchedules(hub.uow_factory, hub.clock).add_pause(patient.id, *STAY, "hospital", by="test")
    return patient.id


def _night(hub: Hub, clock: ManualClock, device: Device, patient_id: int) -> None:
    """Through the night minute by minute (quarter hours before and after), as the hub's timers would.

    The dispenser keeps in touch every 15 minutes; an operator acknowledges the alarm at ``ACKNOWLEDGE_AT``.
    """
    acknowledged = False
    while clock.now() < NIGHT_END:
        night = NIGHT_DOSE + 2 * HOUR <= clock.now() < NIGHT_DOSE + 5 * HOUR
        clock.advance(MINUTE if night else 15 * MINUTE)  # every due instant is on a quarter hour anyway
        if clock.now().minute % 15 == 0:
            _deliver(hub, device.message(Heartbeat, clock.now()))
            hub.presence.sweep()
        hub.deadlines.tick()
        hub.notifications.send_due()
        if not acknowledged and clock.now() >= ACKNOWLEDGE_AT:
            (missed,) = _patient_alarms(hub, patient_id)
            assert missed.id is not None
            hub.registry.acknowledge_alarm(missed.id, by="operator:night")
            acknowledged = True


def test_dst_night_and_pause(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 10, 24, 18, 0, tzinfo=UTC))
    device = Device(DeviceIdentity.create(NIGHT_DEVICE, Family.MULTIDOSE_ROLL, seed=3))
    with Channels(lambda: to_ms(clock.now())) as channels:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'hub.db'}",
            pki_dir=tmp_path / "pki",
            **channels.settings(),  # type: ignore[arg-type]
        )
        hub = bootstrap.build_hub(settings, clock=clock, notify_ahead=timedelta(0))  # a hand-moved clock
        try:
            patient_id = _night_setup(hub, device)
            with hub.uow_factory() as uow:
                assert sorted(dose.due for dose in uow.doses.for_device(NIGHT_DEVICE)) == [
                    NIGHT_DOSE,
                    PAUSED_DOSE,
                ]
            _night(hub, clock, device, patient_id)
            (missed,) = _patient_alarms(hub, patient_id)
            with hub.uow_factory() as uow:
                states = {dose.due: dose.state for dose in uow.doses.for_device(NIGHT_DEVICE)}
        finally:
            hub.stop()

    # the night's dose: its 2-hour window is 2 elapsed hours (01:30 CEST to 02:30 CET), then the 5-minute
    # grace: missed at 01:35 UTC (02:35 CET); the steps 30, 60 and 90 elapsed minutes later, the nurse's
    # repeats every 30 (urgent: quiet hours do not hold them back)
    assert (missed.kind, missed.raised_at) == ("dose.missed", datetime(2026, 10, 25, 1, 35, tzinfo=UTC))
    assert missed.raised_at.astimezone(OSLO).strftime("%H:%M %Z") == "02:35 CET"
    relative, centre, nurse = (datetime(2026, 10, 25, 1, 35, tzinfo=UTC) + n * 30 * MINUTE for n in (1, 2, 3))
    assert [at.astimezone(OSLO).strftime("%H:%M") for at in (relative, centre, nurse)] == [
        "03:05",
        "03:35",
        "04:05",
    ]
    nurse_times = [nurse, nurse + 30 * MINUTE, nurse + 60 * MINUTE]
    sms = [
        (_at(at), _sms_to(r))
        for at, r in zip(channels.sms_requests.at_ms, channels.sms_requests, strict=True)
    ]
    assert sms == [(relative, RELATIVE_PHONE), *((at, NURSE_PHONE) for at in nurse_times)]
    assert [_at(at) for at in channels.mails.at_ms] == nurse_times
    assert missed.id is not None
    # (the centre's other webhooks are about the dispenser, which had no schedule until its roll came)
    assert [_at(at) for at, _ in _hooks_about(channels, missed.id)] == [centre]
    # the paused dose: cancelled, never missed, and nobody told (the only patient alarm is the night's)
    assert states == {NIGHT_DOSE: DoseState.MISSED, PAUSED_DOSE: DoseState.CANCELLED}
    assert (missed.status, missed.acknowledged_at) == (AlarmStatus.ACKNOWLEDGED, ACKNOWLEDGE_AT)
    world = World(NIGHT_DEVICE, patient_id, NIGHT_PATIENT, NIGHT_NID, 0, 0)
    _no_patient_data(world, channels)
