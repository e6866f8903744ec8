"""Periodic hub work on APScheduler: sending due commands, the no-contact sweep.

Each job runs in APScheduler's thread pool with ``max_instances=1`` (a slow run is never overlapped by the
next), ``coalesce=True`` (runs missed while the process was busy or asleep collapse into one) and an
explicit ``misfire_grace_time`` (a run later than that is skipped; the next interval catches up, because
every job works from the database state, not from the missed tick).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

if TYPE_CHECKING:
    from collections.abc import Callable

_log = logging.getLogger(__name__)


class PeriodicJobs:
    """A background scheduler of interval jobs (see the module rules)."""

    def __init__(self) -> None:
        """An idle scheduler; add jobs, then ``start``."""
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=4)}, timezone="UTC"
        )

    def every(self, seconds: float, job: Callable[[], object], *, name: str) -> None:
        """Run ``job`` every ``seconds`` (first run one interval after ``start``)."""

        def run() -> None:
            try:
                job()
            except Exception:  # noqa: BLE001 - a failing job is logged and retried next interval
                _log.exception("periodic job %s failed", name)

        self._scheduler.add_job(
            run,
            IntervalTrigger(seconds=seconds),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds)),
        )

    def start(self) -> None:
        """Start the background thread."""
        self._scheduler.start()

    def stop(self) -> None:
        """Stop, waiting for running jobs."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
