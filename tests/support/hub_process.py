"""``HubProcess``: ``dispenser-hub serve`` as a real child process that a test starts, kills and restarts.

Every start is a new instance (``python -m dispenser_hub.cli serve``) with the same environment, so a fixed
``DISPENSER_MQTT_CLIENT_ID`` lets the broker keep the hub's persistent session across restarts. Each
instance writes its log (stdout and stderr) to its own file, ``hub-<n>.log`` in ``log_dir``, for the test to
read. An instance is *ready* when ``/api/v1/health`` (on ``DISPENSER_HTTP_PORT`` of 127.0.0.1, which
``settings`` must give) says its MQTT subscriptions are in place. ``DISPENSER_*`` variables of the test's
own environment are not passed on: only ``settings`` are.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

STOP_TIMEOUT_S = 15.0
_POLL_S = 0.05
_LOG_TAIL = 3000
_live: set[subprocess.Popen[bytes]] = set()
"""Instances still running; killed at interpreter exit even if a test's cleanup never ran."""


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live):
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


class HubProcess:
    """Start, kill (SIGKILL) and stop (a signal) instances of ``dispenser-hub serve``; one runs at a time."""

    def __init__(self, settings: Mapping[str, str], log_dir: Path) -> None:
        """Prepare; ``settings`` are ``DISPENSER_*`` variables, logs go to ``log_dir`` (created)."""
        self._env = {key: value for key, value in os.environ.items() if not key.startswith("DISPENSER_")}
        self._env.update(settings)
        self._env["PYTHONUNBUFFERED"] = "1"
        self._log_dir = log_dir
        port = settings["DISPENSER_HTTP_PORT"]
        self._health_url = f"http://127.0.0.1:{port}/api/v1/health"
        self._process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    @property
    def pid(self) -> int | None:
        """The running instance's process id."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start a new instance (the previous one must have ended)."""
        if self._process is not None and self._process.poll() is None:
            msg = "a hub instance is still running"
            raise RuntimeError(msg)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = self._log_dir / f"hub-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "dispenser_hub.cli", "serve"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._log_dir,
            )
        _live.add(self._process)

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the current instance's API says its MQTT subscriptions are in place; fail otherwise."""
        deadline = time.monotonic() + timeout_s
        while not self._mqtt_connected():
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                msg = f"hub exited (code {code}) before it was ready; log:\n{self.log_text()[-_LOG_TAIL:]}"
                raise AssertionError(msg)
            if time.monotonic() > deadline:
                msg = f"hub not ready within {timeout_s} s; log:\n{self.log_text()[-_LOG_TAIL:]}"
                raise AssertionError(msg)
            time.sleep(_POLL_S)

    def _mqtt_connected(self) -> bool:
        try:
            with urllib.request.urlopen(self._health_url, timeout=1.0) as response:  # noqa: S310 - our http URL
                health = json.loads(response.read())
        except (OSError, ValueError):  # not listening yet, or reset by a dying instance
            return False
        return bool(health.get("details", {}).get("mqtt_connected"))

    def kill(self) -> None:
        """``kill -9`` the current instance and reap it."""
        process = self._process
        if process is None or process.poll() is not None:
            msg = "no hub instance is running"
            raise AssertionError(msg)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)
        _live.discard(process)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Send ``sig`` to the current instance (SIGKILL after ``timeout_s``); its exit code, if one ran."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        _live.discard(process)
        return process.returncode

    def log_text(self, index: int = -1) -> str:
        """The log of instance ``index`` (default: the current one) so far."""
        if not self.logs:
            return ""
        return self.logs[index].read_text(encoding="utf-8", errors="replace")
