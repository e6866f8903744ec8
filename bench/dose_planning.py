#!/usr/bin/env python3
"""Dose planning and restart: plan a day of doses for many patients, then fire a missed day's deadlines.

Usage::

    python bench/dose_planning.py [--patients N] [--chunk C] [--database-url URL] [--tracemalloc] [--json]

Scenario (issue 6): ``N`` patients (default 100,000), each with an online multidose dispenser and four doses
a day (08:00, 12:00, 16:00, 20:00 Oslo time), responsibility "home care".

Fixtures (not measured): patients (national id encrypted and hashed with the hub's ``FieldCipher``) and
active, online devices, inserted in bulk into the hub's own tables (``PatientRow``/``DeviceRow``) with
SQLAlchemy Core; the hub's repositories read them like any other rows.

1. **Planning a day** (measured): what the hub does for every device when its schedule goes out
   (``ScheduleService.refresh`` -> ``DoseService.sync``): the device's day is derived from its four planned
   doses with ``domain.schedules.derive_schedule`` (default ``DoseWindow``), and ``DoseService.sync`` stores a
   ``SCHEDULED`` dose record and its ``dose.close`` deadline per slot. Devices are read page by page
   (``devices.select``, 500) as ``ScheduleSweep.sweep`` does, and, like the sweep, in one unit of work
   (``--chunk C`` commits every ``C`` devices instead). Wall time, and peak memory: the process's resident
   set sampled every 20 ms (peak minus the resident set before), and with ``--tracemalloc`` the Python heap's
   peak (``tracemalloc``; slows Python down, so the time of that run is not comparable).
2. **Restart to ready** (measured): the hub was down for the whole day. A new engine, unit-of-work factory
   and ``DeadlineTimer`` with the handlers ``bootstrap.build_hub`` gives it, on a clock past the last
   window's end; time from constructing them to the first tick that finds nothing due (``tick`` until it
   returns 0). Every dose is closed as missed (the devices are online, as the hub last knew them), each
   patient gets one missed-dose alarm (the later doses count as repeats), and its ``escalation.plan``
   deadline (due at once) plans the escalation steps (pending, 30 min ahead). Afterwards the bench checks
   that every deadline fired exactly once and no effect is doubled (doses, alarms, repeat counts, alarm log
   entries, planned steps), and that a second restart fires nothing. Exit 1 otherwise.

Baselines in the same run, on the same database, with SQLAlchemy Core and no services: an ``executemany``
INSERT of the same 4N dose rows and 4N deadline rows into scratch tables shaped like ``dose`` and
``deadline`` (rows built beforehand), and one transaction of two UPDATEs that close all of them (the
floor of "fire everything overdue"). Ratios: planning / insert, restart / update.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from bench._storage import cpu_model, database, database_version, field_cipher, find_postgres  # noqa: E402
from dispenser_hub.adapters.db import SqlUnitOfWorkFactory, create_engine_for  # noqa: E402
from dispenser_hub.adapters.db._people import NATIONAL_ID_CONTEXT  # noqa: E402
from dispenser_hub.adapters.db.tables import DeviceRow, PatientRow  # noqa: E402
from dispenser_hub.domain.model import DeviceStatus, Responsibility  # noqa: E402
from dispenser_hub.domain.schedules import DoseWindow, PlannedDose, derive_schedule  # noqa: E402
from dispenser_hub.services.alarm_records import PLAN_ESCALATION  # noqa: E402
from dispenser_hub.services.deadlines import DeadlineTimer  # noqa: E402
from dispenser_hub.services.doses import CLOSE, REPORT_GRACE  # noqa: E402
from dispenser_hub.services.escalations import STEP, Escalations  # noqa: E402
from dispenser_hub.services.schedules import PAGE, ScheduleService  # noqa: E402
from firmware_protocol.messages import Family  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine

    from dispenser_hub.adapters.crypto.fields import FieldCipher

POSTGRES_ENV = "DISPENSER_TEST_POSTGRES_URL"
PLAN_AT = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
"""06:00 in Oslo on a Monday in November: the schedules go out for the day."""
DOSE_TIMES = (timedelta(hours=2), timedelta(hours=6), timedelta(hours=10), timedelta(hours=14))
"""08:00, 12:00, 16:00, 20:00 Oslo time, from ``PLAN_AT``."""
RESTART_AT = PLAN_AT + timedelta(hours=19)
"""Midnight in Oslo: the hub comes back after the whole day (every window closed at 22:05 at the latest)."""
STEPS_PER_ALARM = 5
"""The default home-care policy: relative, response centre, home care on call (+2 repeats)."""
FIXTURE_CHUNK = 5000
SECRET = b"bench-dose-planning-reply-code-secret"


class FixedClock:
    """A clock that stands still (``ports.Clock``)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        """The fixed moment."""
        return self.moment


# -- database -----------------------------------------------------------------------------------------------


def count(engine: Engine, query: str) -> int:
    """The integer a literal SQL query returns."""
    with engine.connect() as connection:
        return int(connection.execute(sa.text(query)).scalar_one() or 0)


# -- fixtures -----------------------------------------------------------------------------------------------


def add_fixtures(engine: Engine, patients: int, cipher: FieldCipher) -> None:
    """``patients`` home-care patients (ids 1..N) and their active, online dispensers ``RM3-<n>``."""
    patient_table: Any = PatientRow.__table__  # type: ignore[attr-defined] # SQLModel sets it on table models
    device_table: Any = DeviceRow.__table__  # type: ignore[attr-defined]
    at = PLAN_AT - timedelta(days=30)
    for start in range(1, patients + 1, FIXTURE_CHUNK):
        numbers = range(start, min(patients, start + FIXTURE_CHUNK - 1) + 1)
        people = []
        devices = []
        for number in numbers:
            national_id = f"{number:011d}"
            people.append(
                {
                    "id": number,
                    "name": f"Patient {number}",
                    "national_id_enc": cipher.encrypt(national_id, context=NATIONAL_ID_CONTEXT),
                    "national_id_hash": cipher.lookup_hash(national_id, context=NATIONAL_ID_CONTEXT),
                    "responsibility": Responsibility.HOME_CARE.value,
                    "created_at": at,
                }
            )
            devices.append(
                {
                    "device_id": f"RM3-{number:06d}",
                    "serial": f"SN-{number:06d}",
                    "family": Family.MULTIDOSE_ROLL.value,
                    "model": "RollMed 3",
                    "status": DeviceStatus.ACTIVE.value,
                    "registered_at": at,
                    "enrolled_at": at,
                    "online": True,
                    "last_seen_at": PLAN_AT,
                    "online_since": at,
                    "boot_id": "boot-1",
                    "capabilities": [],
                }
            )
        with engine.begin() as connection:
            connection.execute(patient_table.insert(), people)
            connection.execute(device_table.insert(), devices)


# -- memory -------------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """The process's resident set now."""
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples the resident set every 20 ms while in the ``with`` block: ``peak - before``."""

    def __init__(self) -> None:
        self.before = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self.before = rss_bytes()
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def grew_mib(self) -> float:
        """Peak growth during the block, MiB."""
        return (self.peak - self.before) / 2**20


# -- planning -----------------------------------------------------------------------------------------------


@dataclass
class Planning:
    """The measured planning of a day."""

    seconds: float
    rss_before_mib: float
    rss_peak_mib: float
    rss_growth_mib: float
    tracemalloc_peak_mib: float | None
    devices: int
    doses: int
    deadlines: int


def plan_day(engine: Engine, cipher: FieldCipher, *, chunk: int | None, trace: bool) -> Planning:
    """Every active device's day through ``derive_schedule`` and ``DoseService.sync`` (module docstring)."""
    uow_factory = SqlUnitOfWorkFactory(engine, cipher)
    doses = ScheduleService().doses
    window = DoseWindow()
    horizon = timedelta(days=1)
    devices = 0
    if trace:
        tracemalloc.start()
    with PeakRss() as memory:
        started = time.perf_counter()
        uow = uow_factory()
        try:
            offset = 0
            while page := uow.devices.select(status=DeviceStatus.ACTIVE, offset=offset, limit=PAGE):
                offset += PAGE
                for device in page:
                    number = int(device.device_id.split("-")[1])
                    planned = [
                        PlannedDose(due=PLAN_AT + later, pouch_id=f"R-{number}-P{index:03d}")
                        for index, later in enumerate(DOSE_TIMES, start=1)
                    ]
                    schedule = derive_schedule(planned, window, [], now=PLAN_AT, horizon=horizon)
                    doses.sync(uow, device, number, schedule, PLAN_AT)
                    devices += 1
                    if chunk and devices % chunk == 0:
                        uow.commit()
            uow.commit()
        finally:
            uow.__exit__(None, None, None)
        seconds = time.perf_counter() - started
    traced = None
    if trace:
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return Planning(
        seconds=seconds,
        rss_before_mib=memory.before / 2**20,
        rss_peak_mib=memory.peak / 2**20,
        rss_growth_mib=memory.grew_mib,
        tracemalloc_peak_mib=traced,
        devices=devices,
        doses=count(engine, "SELECT count(*) FROM dose"),
        deadlines=count(engine, f"SELECT count(*) FROM deadline WHERE kind = '{CLOSE}'"),  # noqa: S608
    )


# -- restart ------------------------------------------------------------------------------------------------


@dataclass
class Restart:
    """The measured restart: ticks until nothing is due."""

    seconds: float
    ticks: list[int]
    rss_growth_mib: float
    failed: int
    checks: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def build_timer(url: str, cipher: FieldCipher, holder: str) -> tuple[Engine, DeadlineTimer]:
    """What ``bootstrap.build_hub`` builds for the deadline timer: engine, units of work, handlers, timer."""
    engine = create_engine_for(url)
    uow_factory = SqlUnitOfWorkFactory(engine, cipher)
    schedules = ScheduleService()
    escalations = Escalations(SECRET)
    handlers = {
        CLOSE: schedules.doses.on_close,
        PLAN_ESCALATION: escalations.on_plan,
        STEP: escalations.on_step,
    }
    return engine, DeadlineTimer(uow_factory, FixedClock(RESTART_AT), handlers, holder=holder)


def restart(url: str, cipher: FieldCipher, patients: int, say: Callable[[str], None]) -> Restart:
    """Restart to ready, then the exactly-once checks and a second restart (module docstring)."""
    with PeakRss() as memory:
        started = time.perf_counter()
        engine, timer = build_timer(url, cipher, "bench:restart-1")
        ticks = []
        while fired := timer.tick():
            ticks.append(fired)
            say(f"  tick {len(ticks)}: {fired:,} fired ({time.perf_counter() - started:.1f} s)")
        seconds = time.perf_counter() - started
    result = Restart(seconds, ticks, memory.grew_mib, timer.failed)
    timer.release()
    doses = 4 * patients
    expected = {
        "close_fired": doses,
        "close_pending": 0,
        "doses_missed": doses,
        "alarms": patients,
        "alarm_raises": doses,
        "alarm_log": doses,
        "plans_fired": patients,
        "steps_pending": STEPS_PER_ALARM * patients,
    }
    queries = {
        "close_fired": f"SELECT count(*) FROM deadline WHERE kind = '{CLOSE}' AND fired_at IS NOT NULL",  # noqa: S608
        "close_pending": f"SELECT count(*) FROM deadline WHERE kind = '{CLOSE}' AND fired_at IS NULL",  # noqa: S608
        "doses_missed": "SELECT count(*) FROM dose WHERE state = 'missed'",
        "alarms": "SELECT count(*) FROM alarm WHERE kind = 'dose.missed'",
        "alarm_raises": "SELECT sum(count) FROM alarm WHERE kind = 'dose.missed'",
        "alarm_log": "SELECT count(*) FROM alarm_log",
        "plans_fired": (
            f"SELECT count(*) FROM deadline WHERE kind = '{PLAN_ESCALATION}' AND fired_at IS NOT NULL"  # noqa: S608
        ),
        "steps_pending": f"SELECT count(*) FROM deadline WHERE kind = '{STEP}' AND fired_at IS NULL",  # noqa: S608
    }
    result.checks = {name: count(engine, query) for name, query in queries.items()}
    engine.dispose()
    second_engine, second = build_timer(url, cipher, "bench:restart-2")
    again = second.tick()
    second.release()
    after = {name: count(second_engine, query) for name, query in queries.items()}
    second_engine.dispose()
    result.checks["second_restart_fired"] = again
    result.problems = [
        f"{name} = {result.checks[name]}, expected {want}"
        for name, want in expected.items()
        if result.checks[name] != want
    ]
    if again or after != {name: result.checks[name] for name in queries}:
        result.problems.append(f"a second restart fired {again} and changed the counts: {after}")
    if timer.failed:
        result.problems.append(f"{timer.failed} deadlines failed")
    return result


# -- baseline -----------------------------------------------------------------------------------------------


@dataclass
class Baseline:
    """Raw executemany INSERT and UPDATE of the same rows."""

    insert_s: float
    update_s: float
    rows: int


def baseline(engine: Engine, patients: int) -> Baseline:
    """Scratch tables shaped like ``dose`` and ``deadline``; 4N rows each (see the module docstring)."""
    metadata = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    doses = sa.Table(
        "bench_dose",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String, nullable=False),
        sa.Column("patient_id", sa.Integer, nullable=False),
        sa.Column("slot_id", sa.String, nullable=False),
        sa.Column("due", tz, nullable=False),
        sa.Column("opens", tz, nullable=False),
        sa.Column("closes", tz, nullable=False),
        sa.Column("pouch_id", sa.String),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("outcome_at", tz),
        sa.Column("reminders", sa.Integer, nullable=False),
        sa.UniqueConstraint("device_id", "slot_id"),
        sa.Index("ix_bench_dose_patient_due", "patient_id", "due"),
        sa.Index("ix_bench_dose_device_due", "device_id", "due"),
        sa.Index("ix_bench_dose_state", "state"),
    )
    deadlines = sa.Table(
        "bench_deadline",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String, nullable=False, unique=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("due_at", tz, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("fired_at", tz),
        sa.Index("ix_bench_deadline_due", "due_at"),
    )
    metadata.create_all(engine)
    window = DoseWindow()
    dose_rows = []
    deadline_rows = []
    for number in range(1, patients + 1):
        device_id = f"RM3-{number:06d}"
        for index, later in enumerate(DOSE_TIMES, start=1):
            due = PLAN_AT + later
            slot_id = f"s-{number}-{index}"
            dose_rows.append(
                {
                    "device_id": device_id,
                    "patient_id": number,
                    "slot_id": slot_id,
                    "due": due,
                    "opens": due - window.early,
                    "closes": due + window.late,
                    "pouch_id": f"R-{number}-P{index:03d}",
                    "state": "scheduled",
                    "reminders": 0,
                }
            )
            deadline_rows.append(
                {
                    "key": f"dose.close:{device_id}:{slot_id}",
                    "kind": CLOSE,
                    "due_at": due + window.late + REPORT_GRACE,
                    "payload": {"device_id": device_id, "slot_id": slot_id},
                    "created_at": PLAN_AT,
                }
            )
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(doses.insert(), dose_rows)
        connection.execute(deadlines.insert(), deadline_rows)
    insert_s = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(
            deadlines.update()
            .where(deadlines.c.fired_at.is_(None), deadlines.c.due_at <= RESTART_AT)
            .values(fired_at=RESTART_AT)
        )
        connection.execute(
            doses.update().where(doses.c.state == "scheduled").values(state="missed", outcome_at=RESTART_AT)
        )
    update_s = time.perf_counter() - started
    return Baseline(insert_s, update_s, len(dose_rows) + len(deadline_rows))


# -- report -------------------------------------------------------------------------------------------------


def report(
    planning: Planning,
    ready: Restart,
    raw: Baseline,
    env: dict[str, object],
    patients: int,
    *,
    as_json: bool,
) -> None:
    """The table (or JSON) and a one-line summary."""
    doses = 4 * patients
    fired = sum(ready.ticks)
    plan_ratio = planning.seconds / raw.insert_s if raw.insert_s else float("inf")
    ready_ratio = ready.seconds / raw.update_s if raw.update_s else float("inf")
    summary = (
        f"RESULT patients={patients} doses={doses} plan={planning.seconds:.1f}s "
        f"({doses / planning.seconds:,.0f} doses/s, rss +{planning.rss_growth_mib:.0f} MiB) "
        f"restart_to_ready={ready.seconds:.1f}s ({fired:,} deadlines, {fired / ready.seconds:,.0f}/s) "
        f"baseline insert={raw.insert_s:.2f}s update={raw.update_s:.2f}s "
        f"plan/insert={plan_ratio:.0f} ready/update={ready_ratio:.0f}"
        + (" exactly-once=ok" if not ready.problems else " PROBLEMS")
    )
    if as_json:
        print(
            json.dumps(
                {
                    "environment": env,
                    "patients": patients,
                    "planning": planning.__dict__,
                    "restart": ready.__dict__,
                    "baseline": raw.__dict__,
                    "ratio_plan_to_insert": round(plan_ratio, 1),
                    "ratio_ready_to_update": round(ready_ratio, 1),
                    "result": summary,
                },
                indent=2,
                default=str,
            )
        )
        return
    print()
    for key, value in env.items():
        print(f"  {key:<14} {value}")
    print()
    traced = planning.tracemalloc_peak_mib
    print("| measurement | rows | seconds | per second | memory |")
    print("|---|---:|---:|---:|---|")
    print(
        f"| plan a day: derive_schedule + DoseService.sync, {planning.devices:,} devices "
        f"| {planning.doses:,} doses + {planning.deadlines:,} deadlines | {planning.seconds:.1f} "
        f"| {doses / planning.seconds:,.0f} doses | RSS {planning.rss_before_mib:.0f} -> "
        f"{planning.rss_peak_mib:.0f} MiB (+{planning.rss_growth_mib:.0f})"
        + ("" if traced is None else f", tracemalloc peak {traced:.0f} MiB")
        + " |"
    )
    print(
        f"| baseline: executemany INSERT of the same rows | {raw.rows:,} | {raw.insert_s:.2f} "
        f"| {raw.rows / raw.insert_s:,.0f} rows | - |"
    )
    print(
        f"| restart to ready: ticks until nothing due | {fired:,} deadlines | {ready.seconds:.1f} "
        f"| {fired / ready.seconds:,.0f} deadlines | RSS +{ready.rss_growth_mib:.0f} MiB |"
    )
    print(f"| baseline: UPDATE closing the same rows | {raw.rows:,} | {raw.update_s:.2f} | - | - |")
    print()
    print(f"  ratios: planning/insert {plan_ratio:.0f}x, restart/update {ready_ratio:.0f}x")
    print(f"  ticks: {len(ready.ticks)} ({', '.join(f'{t:,}' for t in ready.ticks)})")
    print(f"  checks: {ready.checks}")
    for problem in ready.problems:
        print(f"  PROBLEM: {problem}")
    print()
    print(summary)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=100_000, help="patients, 4 doses each (100000)")
    parser.add_argument(
        "--chunk", type=int, help="commit every C devices (default: one unit of work, as the sweep)"
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to use a fresh schema of (default: a SQLite file; 'auto': the test server)",
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the planning's Python heap")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.patients < 1 or (args.chunk is not None and args.chunk < 1):
        parser.error("--patients and --chunk must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 if a deadline did not fire exactly once."""
    args = parse_args(argv)
    url = find_postgres(args.database_url)
    patients = args.patients

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    cipher = field_cipher()
    with tempfile.TemporaryDirectory(prefix="dose-planning-") as tmp, database(url, Path(tmp)) as db:
        engine = create_engine_for(db)
        try:
            say(f"fixtures: {patients:,} patients and online dispensers (bulk) ...")
            started = time.perf_counter()
            add_fixtures(engine, patients, cipher)
            setup_s = time.perf_counter() - started
            say(f"  {setup_s:.1f} s; planning a day: {4 * patients:,} doses ...")
            planning = plan_day(engine, cipher, chunk=args.chunk, trace=args.tracemalloc)
            say(f"  {planning.seconds:.1f} s; restart after the day: firing every overdue deadline ...")
            ready = restart(db, cipher, patients, say)
            say(f"  {ready.seconds:.1f} s; baseline: raw INSERT and UPDATE of the same rows ...")
            raw = baseline(engine, patients)
            env: dict[str, object] = {
                "python": f"{platform.python_implementation()} {platform.python_version()}",
                "sqlalchemy": sa.__version__,
                "database": database_version(engine),
                "cpu": cpu_model(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "transactions": "one for the whole planning" if not args.chunk else f"every {args.chunk}",
                "fixtures": f"{setup_s:.1f} s",
                "max rss": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
            }
        finally:
            engine.dispose()
    report(planning, ready, raw, env, patients, as_json=args.json)
    return 1 if ready.problems else 0


if __name__ == "__main__":
    sys.exit(main())
