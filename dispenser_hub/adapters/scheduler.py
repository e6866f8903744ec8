"""Periodic hub work on APScheduler (sending due commands, the no-contact sweep), and paced loops.

Each job runs in APScheduler's thread pool with ``max_instances=1`` (a slow run is never overlapped by the
next), ``coalesce=True`` (runs missed while the process was busy or asleep collapse into one) and an
explicit ``misfire_grace_time`` (a run later than that is skipped; the next interval catches up, because
every job works from the database state, not from the missed tick).

A ``PacedLoop`` is for work that knows when it is next needed (the notification sender): its own thread,
sleeping as long as the work says, woken early by whoever made new work.
"""

from __future__ import annotations

import logging
import threading
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


class PacedLoop:
    """A thread that runs ``work`` again when the pause it returned is over, or at once when woken.

    ``work`` returns how many seconds to sleep before its next run (the notification sender: until the next
    notification is due, at most a second). A failing run is logged and the loop sleeps ``on_error_s``.
    """

    def __init__(self, work: Callable[[], float], *, name: str, on_error_s: float = 1.0) -> None:
        """Run ``work`` in a thread called ``name`` once ``start`` is called."""
        self._work, self._name, self._on_error_s = work, name, on_error_s
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (the first run is at once)."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run again now (or as soon as the run in hand ends)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop, waiting for the run in hand."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                pause = self._work()
            except Exception:  # noqa: BLE001 - logged; the loop goes on
                _log.exception("%s failed; running again in %.1f s", self._name, self._on_error_s)
                pause = self._on_error_s
            if pause > 0:
                self._wake.wait(pause)
            self._wake.clear()
