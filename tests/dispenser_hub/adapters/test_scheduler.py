"""The paced loop: runs its work at once, again after the pause the work returned, or when woken."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from dispenser_hub.adapters.scheduler import PacedLoop

if TYPE_CHECKING:
    import pytest

WAIT_S = 5.0


class Work:
    """Counts its runs; each returns the next pause from ``pauses`` (the last one repeats)."""

    def __init__(self, *pauses: float, fail_first: bool = False) -> None:
        self.pauses = list(pauses)
        self.fail_first = fail_first
        self.runs: list[float] = []
        self.ran = threading.Event()

    def __call__(self) -> float:
        self.runs.append(time.monotonic())
        self.ran.set()
        if self.fail_first and len(self.runs) == 1:
            msg = "storage is down"
            raise RuntimeError(msg)
        return self.pauses.pop(0) if len(self.pauses) > 1 else self.pauses[0]

    def wait_for(self, runs: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while len(self.runs) < runs:
            assert time.monotonic() < deadline, f"only {len(self.runs)} of {runs} runs"
            self.ran.wait(0.01)
            self.ran.clear()


def test_it_runs_at_once_then_after_the_pause_the_work_returned() -> None:
    work = Work(0.2, 60.0)
    loop = PacedLoop(work, name="test-loop")
    loop.start()
    try:
        work.wait_for(2)
        assert 0.15 <= work.runs[1] - work.runs[0] < 2.0
        time.sleep(0.2)
        assert len(work.runs) == 2  # now asleep for 60 s
    finally:
        loop.stop()


def test_waking_runs_it_again_at_once_and_stop_ends_a_long_pause() -> None:
    work = Work(60.0)
    loop = PacedLoop(work, name="test-loop")
    loop.start()
    work.wait_for(1)
    loop.wake()
    work.wait_for(2)
    assert work.runs[1] - work.runs[0] < 2.0
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 2.0
    assert len(work.runs) == 2


def test_a_failing_run_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    work = Work(60.0, fail_first=True)
    loop = PacedLoop(work, name="test-loop", on_error_s=0.05)
    with caplog.at_level(logging.ERROR):
        loop.start()
        try:
            work.wait_for(2)
        finally:
            loop.stop()
    assert "test-loop failed" in caplog.text
    assert "storage is down" in caplog.text
