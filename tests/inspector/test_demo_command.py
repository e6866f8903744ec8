"""``dispenser-hub demo`` (the README's run command) as a user runs it: a real process, a real broker.

The demo publishes its example messages (device ``RM3-000017`` and one wrong topic) before the hub and the
simulated fleet start, so they come first; the fleet's messages (other device ids) and the hub's answers
must all be valid, and the hub's API must show every simulated device enrolled and online.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from dispenser_hub.settings import DEV_API_TOKENS
from tests.support.broker import free_tcp_port
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from pathlib import Path

TIMEOUT_S = 20.0
SAMPLE_DEVICES = {"RM3-000017", "RM3-999999"}
DEMO_DEVICES = 9
TOKEN = DEV_API_TOKENS.split(":", 1)[1]  # the demo runs on the development defaults
FLEET_MESSAGES = 40
EXPECTED = [
    ("birth", None),
    ("heartbeat", None),
    ("dose.taken", None),
    ("dose.taken", "E_SIGNATURE"),
    (None, "E_TOPIC"),
    (None, "E_MALFORMED"),
    (None, "E_UNKNOWN_TYPE"),
]


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_demo_starts_a_broker_and_explains_every_message(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "dispenser_hub.cli",
        "demo",
        "--port",
        "0",
        "--json",
        "--samples-dir",
        str(tmp_path),
        "--state-dir",
        str(tmp_path / "state"),
        "--http-port",
        str(http_port := free_tcp_port()),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        code = _drive_demo(process, tmp_path, http_port)
    assert code == 0
    truth = [json.loads(line) for line in (tmp_path / "state" / "truth.jsonl").read_text().splitlines()]
    assert {"device.online", "roll.loaded"} <= {record["kind"] for record in truth}


def _online(api: str) -> int:
    """How many devices the API reports active and online."""
    try:
        answer = httpx.get(
            f"{api}/devices?limit=100", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        items = answer.raise_for_status().json()["items"]
    except httpx.HTTPError:
        return -1
    return sum(1 for d in items if d["status"] == "active" and d["presence"]["online"])


def _scheduled(api: str) -> list[str]:
    """The devices holding the latest schedule the hub sent them, with doses in it."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    found = []
    try:
        items = httpx.get(f"{api}/devices?limit=100", headers=headers, timeout=5).raise_for_status().json()
        for device in items["items"]:
            url = f"{api}/devices/{device['device_id']}/schedule"
            state = httpx.get(url, headers=headers, timeout=5).raise_for_status().json()
            if state["version"] and state["applied_version"] == state["version"] and state["slots"] > 0:
                found.append(device["device_id"])
    except httpx.HTTPError:
        return []
    return found


def _device(item: dict[str, object]) -> str:
    return str(item["topic"]).split("/")[2]


def _next(out: queue.Queue[str], *, samples: bool) -> dict[str, object]:
    """The next inspection of a sample message (``samples``) or of the fleet, skipping the others."""
    while True:
        item: dict[str, object] = json.loads(out.get(timeout=TIMEOUT_S))
        if (_device(item) in SAMPLE_DEVICES) == samples:
            return item


def _drive_demo(process: subprocess.Popen[str], tmp_path: Path, http_port: int) -> int:
    assert process.stdout is not None
    assert process.stderr is not None
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, out), daemon=True).start()
    threading.Thread(target=_lines, args=(process.stderr, err), daemon=True).start()
    try:
        port = None
        while port is None:
            match = re.search(r"MQTT broker: mqtt://127\.0\.0\.1:(\d+)", err.get(timeout=TIMEOUT_S))
            port = int(match[1]) if match else None
        seen = [json.loads(out.get(timeout=TIMEOUT_S)) for _ in EXPECTED]  # before the fleet starts
        assert [(item["type"], item["error"] and item["error"]["code"]) for item in seen] == EXPECTED
        assert all(item["ok"] for item in seen[:3])

        # A user publishing a sample file again: the inspector recognises the duplicate.
        sample = tmp_path / "03-dose-taken.json"
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", port)
        client.loop_start()
        info = client.publish(seen[2]["topic"], sample.read_bytes(), qos=1)
        info.wait_for_publish(TIMEOUT_S)
        assert info.is_published()
        client.disconnect()
        client.loop_stop()
        again = _next(out, samples=True)
        assert (again["type"], again["duplicate"], again["ok"]) == ("dose.taken", True, True)

        # The simulated fleet is born and configured; the inspector finds nothing wrong with it.
        fleet = [_next(out, samples=False) for _ in range(FLEET_MESSAGES)]
        assert [item for item in fleet if not item["ok"]] == []
        types = {item["type"] for item in fleet}
        assert {"prov.request", "prov.accepted", "birth"} <= types
        assert len({_device(item) for item in fleet}) > 1

        # The hub's API shows the fleet enrolled and online.
        api = f"http://127.0.0.1:{http_port}/api/v1"
        assert wait_until(lambda: _online(api) == DEMO_DEVICES, TIMEOUT_S, 0.2), _online(api)

        # Each dispenser's roll or tray was accepted (the demo's pharmacy and nurse registered them) and
        # it applied the schedule the hub built from it.
        assert wait_until(lambda: len(_scheduled(api)) == DEMO_DEVICES, TIMEOUT_S, 0.2), _scheduled(api)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return code
