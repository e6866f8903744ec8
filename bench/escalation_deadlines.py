#!/usr/bin/env python3
"""Escalation deadlines: delay from an escalation step's due time to the notification's dispatch.

Usage::

    python bench/escalation_deadlines.py [--patients N] [--database-url URL] [--send-latency-ms L]
                                         [--natural] [--profile PATH] [--json]

Scenario (issue 6): ``N`` patients (default 10,000), each with a relative with a phone and a dispenser that
is online, all with the same dose time, and nobody takes a dose. Fixtures (not measured): patients,
contacts and devices through the repositories, and each device's one-slot schedule through
``DoseService.sync`` (the real entry point), which stores the dose and its ``dose.close`` deadline. Every
``dose.close`` deadline is due at the same instant.

The hub is wired as ``bootstrap.build_hub`` wires it: a ``DeadlineTimer`` with the handlers
``{dose.close: DoseService.on_close, escalation.plan: Escalations.on_plan, escalation.step:
Escalations.on_step}`` and a ``NotificationSender`` with the ``sms`` and ``console`` channels, driven as
``Hub.start`` drives them: ``PeriodicJobs`` (APScheduler) ticks the timer every ``DEADLINE_TICK_S``, and the
sender's ``PacedLoop`` sleeps until ``AHEAD`` before the next notification is due (at most ``SEND_EVERY_S``;
it then claims what falls due within ``AHEAD`` and sends each at its time) or is woken by
a tick that fired something. The channels are in-process recorders (``RecordingChannel``: record the time
of each ``send`` and accept it), so no network is measured (``--send-latency-ms`` adds a sleep per send, as
an SMS gateway's round trip would).

The hub's clock is the wall clock plus an offset the bench sets (``OffsetClock``; it runs at real speed):

1. **close -> plan**: the clock is set so that the ``dose.close`` deadlines fall due 2 s after the timer
   starts. The timer closes every dose as missed, raises the missed-dose alarm (VKP 3.3), and fires its
   ``escalation.plan`` deadline, which plans the policy's steps (default home-care policy: relative by
   SMS after 30 min, then response centre, then the home-care team).
2. **the first step** is 30 minutes after each raise. Raises are spread over phase 1, so unless
   ``--natural`` is given, every first step is moved to the latest of those times (the worst case: all
   ``N`` steps at one instant).

   a. **prepare**: a step's deadline is due ``PREPARE_AHEAD`` (2 min) before the step. The clock jumps so
      that they fall due 2 s later; the timer stores each step's notification, due at the step's time.
   b. **dispatch** (the measured delay): the clock jumps so that the steps' time comes 2 s later. For every
      notification the delay is the hub clock at the channel's ``send`` minus its step's time.

Baseline in the same run, on the same database: a naive dispatcher over a scratch table holding the same
``N`` due rows (key, due time, address, text), with SQLAlchemy Core and no services: from the due moment it
selects 200 due rows, calls the same recording channel for each, marks them done and writes an outbox row
(executemany), commits, and repeats until none is left. It is the floor of "due row -> channel -> row
marked" on this storage; the ratio says what the timer, the services and the cadence add.

``--profile PATH`` writes a cProfile (``pstats``) of every timer tick and sender round of phase 2b.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from bench._storage import cpu_model, database, database_version, field_cipher, find_postgres  # noqa: E402
from dispenser_hub.adapters.db import SqlUnitOfWorkFactory, create_engine_for  # noqa: E402
from dispenser_hub.adapters.scheduler import PacedLoop, PeriodicJobs  # noqa: E402
from dispenser_hub.bootstrap import DEADLINE_TICK_S, SEND_EVERY_S  # noqa: E402
from dispenser_hub.domain.model import (  # noqa: E402
    Contact,
    Deadline,
    Device,
    DeviceStatus,
    Patient,
    Presence,
    Responsibility,
)
from dispenser_hub.domain.schedules import DoseWindow, PlannedDose, derive_schedule  # noqa: E402
from dispenser_hub.ports import Delivery  # noqa: E402
from dispenser_hub.services.alarm_records import PLAN_ESCALATION  # noqa: E402
from dispenser_hub.services.deadlines import BATCH, DeadlineTimer  # noqa: E402
from dispenser_hub.services.doses import CLOSE, REPORT_GRACE  # noqa: E402
from dispenser_hub.services.escalations import PREPARE_AHEAD, STEP, Escalations  # noqa: E402
from dispenser_hub.services.notifications import AHEAD, ROUND, NotificationSender  # noqa: E402
from dispenser_hub.services.schedules import ScheduleService  # noqa: E402
from firmware_protocol.messages import Family  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy import Engine

    from dispenser_hub.ports import UnitOfWork, UnitOfWorkFactory

POSTGRES_ENV = "DISPENSER_TEST_POSTGRES_URL"
T = TypeVar("T")
TARGET_P99_S = 1.0
LEAD_S = 2.0
"""The deadlines fall due this long after the clock is set (the timer is running by then)."""
DOSE_DUE = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
"""08:00 in Oslo: everybody's dose time (daytime, so no quiet hours could move anything)."""
SETUP_CHUNK = 500
SECRET = b"bench-escalation-reply-code-secret"


# -- the hub's parts -----------------------------------------------------------------------------------------


class OffsetClock:
    """The wall clock plus an offset the bench moves (runs at real speed; ``ports.Clock``)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """Wall-clock time plus the offset, aware UTC."""
        return datetime.now(UTC) + self.offset

    def set(self, moment: datetime, *, after_s: float) -> None:
        """Make the clock read ``moment`` ``after_s`` seconds from now."""
        self.offset = moment - (datetime.now(UTC) + timedelta(seconds=after_s))


@dataclass
class RecordingChannel:
    """An in-process ``NotificationChannel``: records when each key was sent (hub clock), accepts it."""

    name: str
    clock: OffsetClock
    latency_s: float = 0.0
    sent: dict[str, datetime] = field(default_factory=dict)
    repeats: int = 0

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        """Record the send time of ``key``; ``Delivery(ok=True)``."""
        assert address
        assert subject
        assert text
        if self.latency_s:
            time.sleep(self.latency_s)
        if key in self.sent:
            self.repeats += 1
        else:
            self.sent[key] = self.clock.now()
        return Delivery(ok=True)


# -- database -----------------------------------------------------------------------------------------------


# -- fixtures -----------------------------------------------------------------------------------------------


def device_id_of(number: int) -> str:
    """The dispenser of patient ``number``."""
    return f"RM3-{number:06d}"


def add_fixtures(uow_factory: UnitOfWorkFactory, patients: int, *, now: datetime) -> None:
    """``patients`` home-care patients, each with a relative with a phone, an online dispenser and a dose.

    The dose (due at ``DOSE_DUE``, default window) and its ``dose.close`` deadline come from
    ``DoseService.sync`` with the device's one-slot schedule, as ``ScheduleService.refresh`` stores them.
    """
    doses = ScheduleService().doses
    window = DoseWindow()
    presence = Presence(online=True, last_seen_at=now, since=now, boot_id="boot-1")
    for start in range(0, patients, SETUP_CHUNK):
        with uow_factory() as uow:
            for number in range(start + 1, min(patients, start + SETUP_CHUNK) + 1):
                patient = uow.patients.add(
                    Patient(
                        name=f"Patient {number}",
                        national_id=f"{number:011d}",
                        responsibility=Responsibility.HOME_CARE,
                        created_at=now,
                    )
                )
                assert patient.id is not None
                uow.contacts.add(Contact(patient.id, f"Relative {number}", phone=f"+47 9{number:07d}"))
                device = Device(
                    device_id=device_id_of(number),
                    serial=f"SN-{number:06d}",
                    family=Family.MULTIDOSE_ROLL,
                    model="RollMed 3",
                    status=DeviceStatus.ACTIVE,
                    registered_at=now,
                    enrolled_at=now,
                    presence=presence,
                )
                uow.devices.add(device)
                planned = [PlannedDose(due=DOSE_DUE, pouch_id=f"R-{number}-P001")]
                schedule = derive_schedule(planned, window, [], now=now, horizon=timedelta(days=1))
                doses.sync(uow, device, patient.id, schedule, now)
            uow.commit()


# -- measurements -------------------------------------------------------------------------------------------


@dataclass
class Delays:
    """Delays (s) of ``count`` items from their due moment; throughput over the span."""

    values: list[float]
    span_s: float

    @classmethod
    def between(cls, due: Mapping[str, datetime], done: Mapping[str, datetime], start: datetime) -> Delays:
        """Each key's delay from ``due`` to ``done``; the span from ``start`` to the last one done."""
        return cls(
            [(at - due[key]).total_seconds() for key, at in done.items() if key in due],
            (max(done.values()) - start).total_seconds(),
        )

    def summary(self) -> dict[str, float]:
        """p50, p95, p99, max (s) and items per second."""
        ordered = sorted(self.values)
        if not ordered:
            return {"count": 0}

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

        return {
            "count": len(ordered),
            "p50_s": round(pct(0.50), 3),
            "p95_s": round(pct(0.95), 3),
            "p99_s": round(pct(0.99), 3),
            "max_s": round(ordered[-1], 3),
            "mean_s": round(statistics.fmean(ordered), 3),
            "per_s": round(len(ordered) / self.span_s, 1) if self.span_s > 0 else 0.0,
        }


@dataclass
class JobStats:
    """Calls and time of one periodic job."""

    calls: int = 0
    seconds: float = 0.0
    longest: float = 0.0
    results: list[object] = field(default_factory=list)


class Instrumented:
    """Wraps the jobs and handlers: call times, results, and (optionally) a cProfile of every call."""

    def __init__(self, clock: OffsetClock) -> None:
        self.clock = clock
        self.jobs: dict[str, JobStats] = {}
        self.handled: dict[str, dict[str, datetime]] = {CLOSE: {}, PLAN_ESCALATION: {}, STEP: {}}
        self.profile: pstats.Stats | None = None
        self.profiling = False
        self._lock = threading.Lock()

    def restart(self, *, profiling: bool) -> None:
        """Forget the jobs' figures so far; profile from now if ``profiling``."""
        self.profiling = profiling
        for stats in self.jobs.values():
            stats.calls, stats.seconds, stats.longest, stats.results = 0, 0.0, 0.0, []

    def job(self, name: str, run: Callable[[], T]) -> Callable[[], T]:
        """``run`` timed (and profiled when ``profiling``)."""
        stats = self.jobs.setdefault(name, JobStats())

        def timed() -> T:
            started = time.perf_counter()
            if self.profiling:
                profiler = cProfile.Profile()
                result = profiler.runcall(run)
                with self._lock:
                    if self.profile is None:
                        self.profile = pstats.Stats(profiler)
                    else:
                        self.profile.add(profiler)
            else:
                result = run()
            took = time.perf_counter() - started
            with self._lock:
                stats.calls += 1
                stats.seconds += took
                stats.longest = max(stats.longest, took)
                stats.results.append(result)
            return result

        return timed

    def handler(self, kind: str, handle: Callable[[UnitOfWork, Deadline, datetime], None]) -> Any:  # noqa: ANN401
        """``handle`` recording the hub clock when each deadline of ``kind`` was carried out."""
        seen = self.handled[kind]

        def recorded(uow: UnitOfWork, deadline: Deadline, now: datetime, /) -> None:
            handle(uow, deadline, now)
            seen[deadline.key] = self.clock.now()

        return recorded


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` every 20 ms; the seconds waited. ``SystemExit`` after ``timeout_s``."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout_s:
            msg = f"timed out after {timeout_s:.0f} s waiting for {what}"
            raise SystemExit(msg)
        time.sleep(0.02)
    return time.perf_counter() - started


def step_deadlines(engine: Engine) -> dict[str, tuple[datetime, datetime]]:
    """The relatives' ``escalation.step`` deadlines (first step, index 0): key -> (due_at, step time)."""
    deadline = sa.table(
        "deadline", sa.column("key"), sa.column("kind"), sa.column("due_at"), sa.column("payload")
    )
    query = sa.select(deadline.c.key, deadline.c.due_at, deadline.c.payload).where(deadline.c.kind == STEP)
    found: dict[str, tuple[datetime, datetime]] = {}
    with engine.connect() as connection:
        for key, due_at, payload in connection.execute(query):
            if key.split(":")[2] == "0":  # esc:<alarm>:<step>:<repeat>:<count>
                fields = payload if isinstance(payload, dict) else json.loads(payload)
                found[key] = (aware(due_at), aware(fields["at"]))
    return found


def one_instant(uow_factory: UnitOfWorkFactory, at: datetime) -> None:
    """Move every first step to ``at`` (the worst case: every alarm raised in the same instant).

    In transactions of ``SETUP_CHUNK`` steps, so the running timer and sender are not locked out for long.
    """
    with uow_factory() as uow:
        first = [d for d in uow.deadlines.pending(kind=STEP, limit=10**7) if d.key.split(":")[2] == "0"]
    for start in range(0, len(first), SETUP_CHUNK):
        with uow_factory() as uow:
            for deadline in first[start : start + SETUP_CHUNK]:
                payload = {**deadline.payload, "at": at.isoformat()}
                uow.deadlines.update(replace(deadline, due_at=at - PREPARE_AHEAD, payload=payload))
            uow.commit()


def aware(value: object) -> datetime:
    """A stored time (a datetime, or ISO text from SQLite) as aware UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def step_key_of(notification_key: str) -> str:
    """The step deadline's key of a notification key (``<step key>:<recipient>``)."""
    return ":".join(notification_key.split(":")[:5])


@dataclass
class HubRun:
    """What the hub did in both phases."""

    close_to_plan: Delays
    step_to_queued: Delays
    step_to_sent: Delays
    jobs: dict[str, JobStats]
    checks: dict[str, int]
    problems: list[str]


class HubTimers:
    """The deadline timer's job and the notification sender's loop, run as ``Hub.start`` runs them."""

    def __init__(self, tick: Callable[[], int], send: Callable[[], float]) -> None:
        """``tick``: the timer's tick (how many fired); ``send``: one run of ``Hub.send_notifications``."""
        self._tick = tick
        self._jobs = PeriodicJobs()
        self._jobs.every(DEADLINE_TICK_S, self._fire, name="deadline-timer")
        self._sender = PacedLoop(send, name="send-notifications")

    def _fire(self) -> None:  # Hub.fire_deadlines: a tick that fired something wakes the sender
        if self._tick():
            self._sender.wake()

    def start(self) -> None:
        """Start both."""
        self._jobs.start()
        self._sender.start()

    def stop(self) -> None:
        """Stop both, waiting for the work in hand."""
        self._jobs.stop()
        self._sender.stop()


def run_hub(engine: Engine, patients: int, args: argparse.Namespace) -> HubRun:
    """Both phases against the real timer and sender (see the module docstring)."""
    uow_factory = SqlUnitOfWorkFactory(engine, field_cipher())
    clock = OffsetClock()
    instrumented = Instrumented(clock)
    schedules = ScheduleService()
    escalations = Escalations(SECRET)
    handlers = {
        CLOSE: instrumented.handler(CLOSE, schedules.doses.on_close),
        PLAN_ESCALATION: instrumented.handler(PLAN_ESCALATION, escalations.on_plan),
        STEP: instrumented.handler(STEP, escalations.on_step),
    }
    timer = DeadlineTimer(uow_factory, clock, handlers, holder="bench:escalation", batch=args.batch)
    latency = args.send_latency_ms / 1000
    sms = RecordingChannel("sms", clock, latency)
    console = RecordingChannel("console", clock, latency)
    sender = NotificationSender(
        uow_factory, clock, {"sms": sms, "console": console}, move_on=escalations.move_on, ahead=AHEAD
    )

    def send_notifications() -> float:  # Hub.send_notifications
        sender.send_due()
        return sender.seconds_to_next(SEND_EVERY_S)

    timers = HubTimers(
        instrumented.job("deadline-timer", timer.tick),
        instrumented.job("send-notifications", send_notifications),
    )
    close_due = DOSE_DUE + DoseWindow().late + REPORT_GRACE
    clock.set(close_due, after_s=LEAD_S)
    timers.start()
    try:
        say(args, f"phase 1: {patients:,} dose.close deadlines due at once; closing, raising, planning ...")
        wait_for(
            lambda: len(instrumented.handled[PLAN_ESCALATION]) >= patients,
            args.timeout,
            "every alarm's escalation to be planned",
        )
        planned = instrumented.handled[PLAN_ESCALATION]
        close_to_plan = Delays.between(dict.fromkeys(planned, close_due), planned, close_due)
        wait_for(  # the last plan batch commits
            lambda: len(step_deadlines(engine)) >= patients, args.timeout, "the planned steps' commit"
        )
        if not args.natural:
            one_instant(uow_factory, max(at for _, at in step_deadlines(engine).values()))
        steps = step_deadlines(engine)
        first_prepare = min(due for due, _ in steps.values())
        first_step = min(at for _, at in steps.values())
        say(args, f"phase 2a: {patients:,} first steps (relative, SMS) prepared {PREPARE_AHEAD} ahead ...")
        clock.set(first_prepare, after_s=LEAD_S)
        wait_for(
            lambda: len(instrumented.handled[STEP]) >= patients, args.timeout, "every step to be prepared"
        )
        prepare_due = {key: due for key, (due, _) in steps.items()}
        step_to_queued = Delays.between(prepare_due, instrumented.handled[STEP], first_prepare)
        time.sleep(1.5)  # the last batch commits
        say(args, f"phase 2b: the {patients:,} steps' time; dispatching ...")
        instrumented.restart(profiling=args.profile is not None)
        clock.set(first_step, after_s=LEAD_S)
        wait_for(lambda: len(sms.sent) >= patients, args.timeout, "every notification to be sent")
        instrumented.profiling = False
        time.sleep(1.5)  # a further tick and round, to see that nothing more goes out
    finally:
        timers.stop()
        timer.release()
    sent = {step_key_of(key): at for key, at in sms.sent.items()}
    step_to_sent = Delays.between({key: at for key, (_, at) in steps.items()}, sent, first_step)
    checks, problems = check_hub(engine, patients, sms, console, step_to_queued)
    if args.profile:
        write_profile(instrumented.profile, args.profile)
    return HubRun(close_to_plan, step_to_queued, step_to_sent, instrumented.jobs, checks, problems)


def check_hub(
    engine: Engine, patients: int, sms: RecordingChannel, console: RecordingChannel, prepared: Delays
) -> tuple[dict[str, int], list[str]]:
    """Counts in the database; problems if anything was not done exactly once, or a step prepared late."""
    queries = {
        "doses_missed": "SELECT count(*) FROM dose WHERE state = 'missed'",
        "alarms": "SELECT count(*) FROM alarm WHERE kind = 'dose.missed'",
        "close_fired": f"SELECT count(*) FROM deadline WHERE kind = '{CLOSE}' AND fired_at IS NOT NULL",  # noqa: S608
        "plans_fired": (
            f"SELECT count(*) FROM deadline WHERE kind = '{PLAN_ESCALATION}' AND fired_at IS NOT NULL"  # noqa: S608
        ),
        "steps_fired": f"SELECT count(*) FROM deadline WHERE kind = '{STEP}' AND fired_at IS NOT NULL",  # noqa: S608
        "notifications": "SELECT count(*) FROM notification",
        "notifications_sent": "SELECT count(*) FROM notification WHERE status = 'sent'",
    }
    with engine.connect() as connection:
        checks = {
            name: int(connection.execute(sa.text(query)).scalar_one()) for name, query in queries.items()
        }
    checks["sms_sent"] = len(sms.sent)
    checks["sms_repeats"] = sms.repeats
    checks["console_sent"] = len(console.sent)
    problems = [
        f"{name} = {checks[name]}, expected {patients}"
        for name in (
            "doses_missed",
            "alarms",
            "close_fired",
            "plans_fired",
            "steps_fired",
            "notifications",
            "notifications_sent",
            "sms_sent",
        )
        if checks[name] != patients
    ]
    if sms.repeats or console.sent:
        problems.append(f"{sms.repeats} SMS sent twice, {len(console.sent)} console notifications")
    if prepared.values and max(prepared.values) > PREPARE_AHEAD.total_seconds():
        problems.append(f"a step was prepared {max(prepared.values):.0f} s after its deadline, past its time")
    return checks, problems


def write_profile(stats: pstats.Stats | None, path: str) -> None:
    """Dump the profile and print its top functions by cumulative time."""
    if stats is None:
        return
    stats.dump_stats(path)
    out = io.StringIO()
    pstats.Stats(path, stream=out).sort_stats("cumulative").print_stats(30)
    print(out.getvalue())


# -- baseline ---------------------------------------------------------------------------------------------


def run_baseline(engine: Engine, patients: int, args: argparse.Namespace) -> Delays:
    """The naive dispatcher over a scratch table of ``patients`` due rows (see the module docstring)."""
    metadata = sa.MetaData()
    rows = sa.Table(
        "bench_due",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String, unique=True, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String, nullable=False),
        sa.Column("text", sa.String, nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True)),
    )
    outbox = sa.Table(
        "bench_outbox",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String, unique=True, nullable=False),
        sa.Column("address", sa.String, nullable=False),
        sa.Column("text", sa.String, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(engine)
    clock = OffsetClock()
    channel = RecordingChannel("sms", clock, args.send_latency_ms / 1000)
    due = DOSE_DUE
    text = "Dose not taken (VKP 3.3), dispenser RM3-000001. Reply OK 123456 to acknowledge."
    with engine.begin() as connection:
        connection.execute(
            rows.insert(),
            [
                {"key": f"esc:{n}:0:0:1", "due_at": due, "address": f"+47 9{n:07d}", "text": text}
                for n in range(1, patients + 1)
            ],
        )
    clock.set(due, after_s=0.5)
    time.sleep(max(0.0, -clock.now().timestamp() + due.timestamp()))
    while True:
        now = clock.now()
        with engine.begin() as connection:
            batch = connection.execute(
                sa.select(rows.c.id, rows.c.key, rows.c.address, rows.c.text)
                .where(rows.c.fired_at.is_(None), rows.c.due_at <= now)
                .order_by(rows.c.due_at, rows.c.id)
                .limit(args.batch)
            ).all()
            if not batch:
                break
            for row in batch:
                channel.send(row.address, "dose.missed 3.3", row.text, key=row.key)
            connection.execute(
                rows.update().where(rows.c.id == sa.bindparam("row_id")).values(fired_at=now),
                [{"row_id": row.id} for row in batch],
            )
            connection.execute(
                outbox.insert(),
                [{"key": r.key, "address": r.address, "text": r.text, "sent_at": now} for r in batch],
            )
    delays = [(at - due).total_seconds() for at in channel.sent.values()]
    assert len(delays) == patients, f"baseline sent {len(delays)} of {patients}"
    return Delays(delays, max(delays))


# -- report -------------------------------------------------------------------------------------------------


def say(args: argparse.Namespace, text: str) -> None:
    """Progress, unless ``--json``."""
    if not args.json:
        print(text, flush=True)


def report(
    hub: HubRun, baseline: Delays, env: dict[str, object], args: argparse.Namespace, patients: int
) -> None:
    """The table (or JSON) and a one-line summary."""
    sent = hub.step_to_sent.summary()
    base = baseline.summary()
    ratio_p99 = sent["p99_s"] / base["p99_s"] if base["p99_s"] else float("inf")
    ratio_rate = sent["per_s"] / base["per_s"] if base["per_s"] else 0.0
    met = sent["p99_s"] < TARGET_P99_S
    jobs = {
        name: {
            "calls": s.calls,
            "seconds": round(s.seconds, 3),
            "longest_s": round(s.longest, 3),
            "results": s.results[:60],
        }
        for name, s in hub.jobs.items()
    }
    summary = (
        f"RESULT patients={patients} p50={sent['p50_s']:.2f}s p99={sent['p99_s']:.2f}s "
        f"max={sent['max_s']:.2f}s dispatch={sent['per_s']:.0f}/s baseline_p99={base['p99_s']:.2f}s "
        f"baseline={base['per_s']:.0f}/s p99_ratio={ratio_p99:.1f} rate_ratio={ratio_rate:.3f} "
        f"(target p99 < {TARGET_P99_S:.0f} s: {'met' if met else 'NOT met'})"
        + ("" if not hub.problems else " PROBLEMS")
    )
    if args.json:
        print(
            json.dumps(
                {
                    "environment": env,
                    "patients": patients,
                    "close_to_plan": hub.close_to_plan.summary(),
                    "step_to_queued": hub.step_to_queued.summary(),
                    "step_to_sent": sent,
                    "baseline": base,
                    "ratio_p99_hub_to_baseline": round(ratio_p99, 2),
                    "ratio_rate_hub_to_baseline": round(ratio_rate, 4),
                    "target_met": met,
                    "jobs_phase2": jobs,
                    "checks": hub.checks,
                    "problems": hub.problems,
                    "result": summary,
                },
                indent=2,
            )
        )
        return
    print()
    for key, value in env.items():
        print(f"  {key:<14} {value}")
    print()
    print("| measurement | count | p50 s | p95 s | p99 s | max s | per s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for delays, label in (
        (hub.close_to_plan, "phase 1: dose.close due -> escalation planned (handler ran)"),
        (hub.step_to_queued, f"phase 2a: step deadline due ({PREPARE_AHEAD} ahead) -> notification stored"),
        (hub.step_to_sent, "phase 2b: step time -> SMS channel send() (**the target**)"),
        (baseline, "baseline: naive dispatcher, due -> send()"),
    ):
        s = delays.summary()
        print(
            f"| {label} | {s['count']:,} | {s['p50_s']:.3f} | {s['p95_s']:.3f} | {s['p99_s']:.3f} "
            f"| {s['max_s']:.3f} | {s['per_s']:,.0f} |"
        )
    print()
    print(f"  ratios hub/baseline: p99 {ratio_p99:.1f}x, dispatch rate {ratio_rate:.3f}")
    for name, job in hub.jobs.items():
        shown = ", ".join(str(r) for r in job.results[:20]) + (" ..." if len(job.results) > 20 else "")
        print(
            f"  phase 2 {name}: {job.calls} calls, {job.seconds:.2f} s busy, longest {job.longest:.2f} s; "
            f"returned {shown}"
        )
    print(f"  checks: {hub.checks}")
    for problem in hub.problems:
        print(f"  PROBLEM: {problem}")
    print()
    print(summary)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=10_000, help="patients, all due at once (10000)")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to use a fresh schema of (default: a SQLite file; 'auto': the test server)",
    )
    parser.add_argument("--batch", type=int, default=BATCH, help=f"timer batch (the hub's: {BATCH})")
    parser.add_argument("--send-latency-ms", type=float, default=0.0, help="sleep per channel send (0)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on a phase after (900 s)")
    parser.add_argument("--profile", metavar="PATH", help="cProfile phase 2's ticks and rounds to PATH")
    parser.add_argument(
        "--natural",
        action="store_true",
        help="keep each step's time as planned (raise + 30 min, spread over phase 1) instead of one instant",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.patients < 1 or args.batch < 1 or args.send_latency_ms < 0:
        parser.error("--patients and --batch must be positive, --send-latency-ms not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 if the hub did not send every notification exactly once."""
    args = parse_args(argv)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: ... running instances" per tick
    url = find_postgres(args.database_url)
    patients = args.patients
    with tempfile.TemporaryDirectory(prefix="escalation-bench-") as tmp, database(url, Path(tmp)) as db:
        engine = create_engine_for(db)
        try:
            say(args, f"fixtures: {patients:,} patients, relatives, dispensers, doses ...")
            started = time.perf_counter()
            add_fixtures(
                SqlUnitOfWorkFactory(engine, field_cipher()), patients, now=DOSE_DUE - timedelta(hours=3)
            )
            setup_s = time.perf_counter() - started
            say(args, f"  {setup_s:.1f} s; baseline: naive dispatcher over {patients:,} due rows ...")
            baseline = run_baseline(engine, patients, args)
            hub = run_hub(engine, patients, args)
            env: dict[str, object] = {
                "python": f"{platform.python_implementation()} {platform.python_version()}",
                "sqlalchemy": sa.__version__,
                "database": database_version(engine),
                "cpu": cpu_model(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "hub": f"timer every {DEADLINE_TICK_S} s, batch {args.batch}; sender paced, rounds {ROUND}",
                "send latency": f"{args.send_latency_ms} ms",
                "fixtures": f"{setup_s:.1f} s",
            }
        finally:
            engine.dispose()
    report(hub, baseline, env, args, patients)
    return 1 if hub.problems else 0


if __name__ == "__main__":
    sys.exit(main())
