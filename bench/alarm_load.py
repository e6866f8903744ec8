#!/usr/bin/env python3
"""Alarm load: operator-facing alarms per 100 doses in a simulated month, the hub against a naive policy.

Usage::

    python bench/alarm_load.py [--days D] [--patients N] [--ack-after MIN] [--json]

One run of the ``month`` scenario (``device_sim/scenarios/month.yaml``: 30 patients from 2026-10-12 over the
autumn DST change; ``--patients`` takes the first N, ``--days`` the first D days) against the real hub
services on a fresh SQLite database, in process on a stepped clock (``dispenser_hub.sim_driver``: the
hub as ``serve`` wires it, MQTT replaced by in-process delivery, notification channels recorded; patient
5's trip unregistered, the other absences registered as pauses; an operator acknowledges each alarm
``--ack-after`` minutes after it reached the console). From the same run:

* **hub**: escalations that reached a person or the console: each (alarm, raise) with at least one
  notification handed to a channel (repeats of a step, and recipients, are not counted again);
* **naive**: a policy that alarms on every bad event of the same event stream the hub received: every
  ``dose.not_taken`` and ``dose.not_dispensed`` report, every fault report except the "cleared" ones, and
  every ``death`` (Last Will: a disconnect), each distinct message once;

both per 100 doses the dispensers offered (ground truth ``dose.due``), and their ratio. Ends with a
``RESULT`` line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device_sim.scenario import load_shipped
from dispenser_hub.sim_driver import SteppedRun, alarm_load, subset

UNREGISTERED = frozenset({5})
"""Patient 5's trip is never registered with the office (month.yaml)."""


def main(argv: list[str] | None = None) -> int:
    """Run the month and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    parser.add_argument("--patients", type=int, default=30, help="patients, the first N of 30 (default 30)")
    parser.add_argument("--ack-after", type=float, default=10.0, help="operator ack delay, minutes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    scenario = subset(load_shipped("month"), patients=args.patients, days=args.days)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alarm-load-") as folder:
        run = SteppedRun(
            scenario, Path(folder), unregistered=UNREGISTERED, ack_after=timedelta(minutes=args.ack_after)
        )

        def progress(now_ms: int) -> None:
            if not args.json:
                day = (now_ms - scenario.start_ms) / 86_400_000
                print(
                    f"  day {day:4.1f}  {time.perf_counter() - started:6.1f} s", file=sys.stderr, flush=True
                )

        try:
            run.run(progress=progress)
        finally:
            run.close()
    load = alarm_load(run)
    figures = {
        "patients": args.patients,
        "days": args.days,
        "doses": load.doses,
        "hub_alarms": load.hub_alarms,
        "hub_per_100_doses": round(load.hub_per_100, 3),
        "naive_alarms": load.naive_alarms,
        "naive_per_100_doses": round(load.naive_per_100, 3),
        "ratio": round(load.ratio, 3),
        "hub_by_kind": dict(sorted(load.hub_by_kind.items())),
        "naive_by_kind": dict(sorted(load.naive_by_kind.items())),
        "notifications": len(run.sent()),
        "messages": run.stats.ingested,
        "wall_s": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"month scenario: {args.patients} patients, {args.days:g} days, {load.doses} doses offered")
        print(f"{'policy':<8} {'alarms':>7} {'per 100 doses':>14}  by kind")
        print(f"{'hub':<8} {load.hub_alarms:>7} {load.hub_per_100:>14.2f}  {figures['hub_by_kind']}")
        print(f"{'naive':<8} {load.naive_alarms:>7} {load.naive_per_100:>14.2f}  {figures['naive_by_kind']}")
        print(
            f"notifications handed over: {figures['notifications']}; device messages: {figures['messages']}"
        )
        print(f"wall time: {figures['wall_s']} s")
    print(
        f"RESULT patients={args.patients} days={args.days:g} doses={load.doses}"
        f" hub={load.hub_per_100:.2f}/100 naive={load.naive_per_100:.2f}/100 ratio={load.ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
