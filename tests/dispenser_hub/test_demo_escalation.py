"""The README's demo shows an escalation chain that stops when acknowledged (issue 6, "done when").

``dispenser-hub demo`` at 300x: patient 5 (forgetful, followed by home care) misses the first morning dose
(scripted in the demo scenario); the window closes at 10:00 and the dose is missed at 10:05. The relative's
SMS arrives through the demo's outbox (the real SMS gateway adapter posting to a local endpoint); the test
acknowledges that alarm through the API, and no later step (response centre +60, home care +90) comes for
it. Dispenser 2's wrong roll (a red alarm for the response centre, repeated every 15 minutes) arrives at
the response centre's system with a one-time link; opening the link shows the alarm, posting it
acknowledges the alarm, and its repeats stop.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

import httpx
import pytest

from dispenser_hub.settings import DEV_API_TOKENS
from tests.support.broker import free_tcp_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(240)
TOKEN = DEV_API_TOKENS.split(":", 1)[1]
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
SPEED = "300"
START_S = 150.0
"""The first lines of interest come about 45 s after start (10:30 simulated); slack for a slow machine."""
QUIET_S = 15.0
"""After the acknowledgements: 75 simulated minutes in which nothing more may come for those alarms."""
RELATIVE = "[SMS til +4740000005]"
CENTRE = re.compile(r"\[responssenterets alarmsystem\] alarm (\d+): (\S+) \S+ \((\S+)\); kvitter: (\S+)")


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_the_demo_escalates_a_missed_dose_and_acknowledgement_stops_it(tmp_path: Path) -> None:
    http_port = free_tcp_port()
    command = [
        sys.executable,
        "-m",
        "dispenser_hub.cli",
        "demo",
        "--port",
        "0",
        "--http-port",
        str(http_port),
        "--speed",
        SPEED,
        "--no-samples",
        "--state-dir",
        str(tmp_path / "state"),
        "--samples-dir",
        str(tmp_path / "samples"),
    ]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True).start()
        try:
            _check_chain(lines, f"http://127.0.0.1:{http_port}")
        finally:
            process.terminate()
            process.wait(30)


def _check_chain(lines: queue.Queue[str], base: str) -> None:
    api = f"{base}/api/v1"
    missed_alarm: int | None = None
    wrong_alarm: int | None = None
    deadline = time.monotonic() + START_S
    seen: list[str] = []
    while missed_alarm is None or wrong_alarm is None:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(line)
        if RELATIVE in line and "3.3" in line and missed_alarm is None:
            assert "Demo patient" not in line  # no patient data in an SMS
            missed_alarm = _acknowledge_missed_dose(api)
        match = CENTRE.search(line)
        if match and match[2] == "wrong_roll" and wrong_alarm is None:
            wrong_alarm = int(match[1])
            _use_link(match[4], wrong_alarm, api)
    quiet_until = time.monotonic() + QUIET_S
    while (left := quiet_until - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        match = CENTRE.search(line)
        assert not (match and int(match[1]) in {missed_alarm, wrong_alarm}), line
        assert not ("RM3-000005" in line and "+4740000900" in line), line  # the nurse was not called


def _acknowledge_missed_dose(api: str) -> int:
    alarms = httpx.get(f"{api}/alarms", params={"status": "active"}, headers=HEADERS, timeout=10)
    (alarm,) = [
        a
        for a in alarms.raise_for_status().json()["items"]
        if a["kind"] == "dose.missed" and a["device_id"] == "RM3-000005"
    ]
    answer = httpx.post(
        f"{api}/alarms/{alarm['id']}/acknowledge",
        json={"note": "calling the patient"},
        headers=HEADERS,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return int(alarm["id"])


def _use_link(link: str, alarm_id: int, api: str) -> None:
    page = httpx.get(link, timeout=10)
    assert (page.status_code, "Kvitter / Acknowledge" in page.text) == (200, True)
    used = httpx.post(link, timeout=10)
    assert (used.status_code, "kvittert" in used.text) == (200, True)
    alarm = httpx.get(f"{api}/alarms/{alarm_id}", headers=HEADERS, timeout=10).raise_for_status().json()
    assert (alarm["status"], alarm["acknowledged_by"]) == ("acknowledged", "link:response-centre")
    assert httpx.post(link, timeout=10).status_code == 410
