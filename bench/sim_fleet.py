"""How many simulated devices can one process keep connected to a local Mosquitto, and at what cost?

Two phases, each in its own child process (so that memory figures do not mix) against its own fresh
Mosquitto on a free port of 127.0.0.1:

* ``bare``: N ``MqttLink`` clients (paho on the asyncio transport of ``device_sim.transport``), each
  publishing a fixed unsigned 100-byte payload every second from one small task per client: the cost of
  the MQTT connection alone.
* ``full``: N simulated devices in a ``device_sim.fleet.Fleet`` on a real clock, each signing a real
  ``heartbeat`` envelope (``firmware_protocol.seal``, its own Ed25519 key from a seeded generator) every
  second, with a signed ``death`` as Last Will. (A full ``Dispenser`` heartbeats every 30 s at the most,
  as its config allows, so it cannot produce this one-per-second load; this device is the same signing
  and publishing path with only the heartbeat left.)

Each phase ramps up at ``--connect-rate`` connections per second, waits until every device is connected,
then measures ``--seconds`` of steady state: messages/s achieved vs expected (N/s), lateness of each
heartbeat (scheduled time vs the moment it is handed to paho) at p50/p99, RSS per device (from
``/proc/self/statm``, growth over the idle interpreter), and CPU of the simulator process and of Mosquitto.

    .venv/bin/python bench/sim_fleet.py                   # 10,000 devices, 30 s steady state
    .venv/bin/python bench/sim_fleet.py --devices 2000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._mosquitto import mosquitto
from device_sim.clock import RealClock
from device_sim.fleet import Fleet
from device_sim.ports import Output, Publish
from device_sim.sockets import ConnectPacer, KeepaliveTicker, resolve
from device_sim.transport import MqttLink
from firmware_protocol import Envelope, Signer, new_ulid, seal
from firmware_protocol.broker import BrokerAddress
from firmware_protocol.messages import Death, DeathReason, Heartbeat

if TYPE_CHECKING:
    from collections.abc import Callable

    from device_sim.ports import SimulatedDevice

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
BARE_PAYLOAD = b"x" * 100
PERIOD_MS = 1000


def rss_bytes() -> int:
    """Resident set size of this process."""
    return int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1]) * PAGE


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (or of ``pid``)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard limit; return it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- devices ------------------------------------------------------------------------------------------------


@dataclass
class Lateness:
    """Collects heartbeat lateness (ms) while ``active``."""

    active: bool = False
    samples: list[float] = field(default_factory=list)

    def record(self, scheduled_ms: float) -> None:
        """One heartbeat scheduled at ``scheduled_ms`` is being handed over now."""
        if self.active:
            self.samples.append(time.time() * 1000 - scheduled_ms)


class HeartbeatDevice:
    """A minimal ``SimulatedDevice``: a signed ``heartbeat`` every second, a signed ``death`` as will."""

    def __init__(self, device_id: str, signer: Signer, start_ms: int, lateness: Lateness) -> None:
        """First heartbeat at ``start_ms``."""
        self.device_id = device_id
        self._signer = signer
        self._boot_ms = start_ms
        self._boot_id = new_ulid(start_ms)
        self._seq = 0
        self._connection = 0
        self._online = False
        self._next = start_ms
        self._lateness = lateness

    def _envelope(self, body: Heartbeat | Death, now_ms: int) -> bytes:
        self._seq += 1
        return seal(Envelope(body, self.device_id, self._boot_id, self._seq, now_ms), self._signer)

    def will(self, now_ms: int) -> Publish:
        """A signed ``death`` for the coming connection, retained."""
        body = Death(connection=self._connection + 1, reason=DeathReason.CONNECTION_LOST)
        envelope = Envelope(body, self.device_id, self._boot_id, 0, now_ms)
        return Publish(envelope.topic, seal(envelope, self._signer), retain=True)

    def subscriptions(self) -> list[str]:
        """No downlink in this benchmark."""
        return []

    def link_wanted(self, now_ms: int) -> bool:  # noqa: ARG002 - always online
        """Always."""
        return True

    def next_wakeup(self) -> int | None:
        """The next heartbeat."""
        return self._next

    def advance(self, now_ms: int) -> list[Output]:
        """Heartbeats due up to ``now_ms`` (only the latest if several are due)."""
        if now_ms < self._next:
            return []
        self._lateness.record(self._next)
        while self._next <= now_ms:
            self._next += PERIOD_MS
        if not self._online:
            return []
        body = Heartbeat(
            uptime_s=(now_ms - self._boot_ms) // 1000,
            battery_pct=100,
            on_mains=True,
            buffered=0,
            rssi_dbm=-60,
        )
        payload = self._envelope(body, now_ms)
        return [Publish(f"dsp/v1/{self.device_id}/up/telemetry", payload)]

    def on_connected(self, now_ms: int) -> list[Output]:  # noqa: ARG002 - nothing to send on connect here
        """Online."""
        self._online = True
        self._connection += 1
        return []

    def on_disconnected(self, now_ms: int) -> list[Output]:  # noqa: ARG002
        """Offline."""
        self._online = False
        return []

    def on_message(self, topic: str, payload: bytes, now_ms: int) -> list[Output]:  # noqa: ARG002
        """Ignored."""
        return []


# -- phases (child process) ---------------------------------------------------------------------------------


async def run_bare(args: argparse.Namespace, address: BrokerAddress, lateness: Lateness) -> dict[str, Any]:
    """N bare links, each publishing a fixed payload every second from its own small task."""
    pacer, ticker = ConnectPacer(args.connect_rate), KeepaliveTicker()
    sockaddr = await resolve(address)
    links = [
        MqttLink(address, f"BARE-{i:06d}", pacer=pacer, ticker=ticker, sockaddr=sockaddr)
        for i in range(args.devices)
    ]
    sent = 0
    rng = random.Random(1)  # noqa: S311 - spreading start times, not cryptography

    async def publisher(link: MqttLink, first_ms: float) -> None:
        nonlocal sent
        topic = f"bench/{link.client_id}"
        scheduled = first_ms
        while True:
            delay = (scheduled - time.time() * 1000) / 1000
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.record(scheduled)
            if link.ready and link.publish(topic, BARE_PAYLOAD):
                sent += 1
            scheduled += PERIOD_MS

    start = time.time() * 1000
    for link in links:
        link.connect()
    tasks = [asyncio.create_task(publisher(link, start + rng.random() * PERIOD_MS)) for link in links]

    def connected() -> int:
        return sum(1 for link in links if link.ready)

    def counters() -> tuple[int, int]:
        return sent, sum(link.counters.errors for link in links)

    try:
        return await measure(args, connected, counters, lateness)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(link.close() for link in links))
        await ticker.aclose()


async def run_full(args: argparse.Namespace, address: BrokerAddress, lateness: Lateness) -> dict[str, Any]:
    """N simulated devices in a ``Fleet``."""
    rng = random.Random(args.seed)  # noqa: S311 - seeded keys for a benchmark, on purpose
    start = int(time.time() * 1000) + 1000
    devices: list[SimulatedDevice] = []
    for i in range(args.devices):
        signer = Signer.from_seed(rng.randbytes(32))
        first = start + rng.randrange(PERIOD_MS)
        devices.append(HeartbeatDevice(f"SIM-{i:06d}", signer, first, lateness))
    fleet = Fleet(address, RealClock(), connect_rate=args.connect_rate, seed=args.seed)
    fleet.extend(devices)
    await fleet.start()
    try:
        return await measure(
            args, lambda: fleet.stats.connected, lambda: (fleet.stats.sent, fleet.stats.errors), lateness
        )
    finally:
        await fleet.stop()


async def measure(
    args: argparse.Namespace,
    connected: Callable[[], int],
    counters: Callable[[], tuple[int, int]],
    lateness: Lateness,
) -> dict[str, Any]:
    """Wait for the ramp-up, then measure the steady state."""
    ramp_start = time.perf_counter()
    ramp_limit = args.devices / args.connect_rate + 30
    while connected() < args.devices and time.perf_counter() - ramp_start < ramp_limit:  # noqa: ASYNC110
        await asyncio.sleep(0.25)
    ramp_s = time.perf_counter() - ramp_start
    await asyncio.sleep(2)  # let the schedule settle after the ramp
    sent0, errors0 = counters()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    broker_cpu0 = cpu_seconds(args.broker_pid)
    lateness.active = True
    min_connected = connected()
    end = wall0 + args.seconds
    while time.perf_counter() < end:
        await asyncio.sleep(min(0.5, max(0.0, end - time.perf_counter())))
        min_connected = min(min_connected, connected())
    lateness.active = False
    wall = time.perf_counter() - wall0
    sent1, errors1 = counters()
    return {
        "devices": args.devices,
        "connected": min_connected,
        "ramp_s": round(ramp_s, 1),
        "msgs_per_s": round((sent1 - sent0) / wall, 1),
        "expected_per_s": args.devices * 1000 / PERIOD_MS,
        "late_p50_ms": round(percentile(lateness.samples, 0.50), 1),
        "late_p99_ms": round(percentile(lateness.samples, 0.99), 1),
        "cpu_pct": round(100 * (cpu_seconds() - cpu0) / wall, 1),
        "broker_cpu_pct": round(100 * (cpu_seconds(args.broker_pid) - broker_cpu0) / wall, 1),
        "rss_mib": round(rss_bytes() / 2**20, 1),
        "errors": errors1 - errors0,
    }


def child(args: argparse.Namespace) -> None:
    """Run one phase and print its figures as JSON."""
    raise_nofile()
    baseline_rss = rss_bytes()
    lateness = Lateness()
    address = BrokerAddress.parse(f"mqtt://127.0.0.1:{args.port}")
    runner = run_bare if args.phase == "bare" else run_full
    result = asyncio.run(runner(args, address, lateness))
    result["rss_per_device_kib"] = round((result["rss_mib"] * 2**20 - baseline_rss) / args.devices / 1024, 1)
    print(json.dumps(result))


# -- parent: brokers, phases, report ----------------------------------------------------------------


def broker_config(port: int) -> list[str]:
    """Mosquitto for many connections."""
    return [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        "max_connections -1",
        "max_queued_messages 100",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "",
    ]


def run_phase(args: argparse.Namespace, phase: str, workdir: Path) -> dict[str, Any]:
    """Start a broker and a child process for ``phase``; return the child's figures."""
    with mosquitto(workdir, broker_config) as (port, pid):
        command = [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--port",
            str(port),
            "--broker-pid",
            str(pid),
            "--devices",
            str(args.devices),
            "--seconds",
            str(args.seconds),
            "--connect-rate",
            str(args.connect_rate),
            "--seed",
            str(args.seed),
        ]
        timeout = args.devices / args.connect_rate + args.seconds + 180
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
        if done.returncode != 0:
            raise SystemExit(f"{phase} phase failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


ROWS = [
    ("devices connected (min in steady state)", "connected", "{:,.0f}"),
    ("ramp-up to all connected (s)", "ramp_s", "{:.1f}"),
    ("messages/s achieved", "msgs_per_s", "{:,.0f}"),
    ("messages/s expected", "expected_per_s", "{:,.0f}"),
    ("lateness p50 (ms)", "late_p50_ms", "{:.1f}"),
    ("lateness p99 (ms)", "late_p99_ms", "{:.1f}"),
    ("simulator CPU (% of one core)", "cpu_pct", "{:.0f}"),
    ("Mosquitto CPU (% of one core)", "broker_cpu_pct", "{:.0f}"),
    ("simulator RSS (MiB)", "rss_mib", "{:.0f}"),
    ("RSS per device (KiB)", "rss_per_device_kib", "{:.1f}"),
    ("errors in steady state", "errors", "{:,.0f}"),
]


def parent(args: argparse.Namespace) -> None:
    """Run both phases and print the table and a summary line."""
    limit = raise_nofile()
    print(
        f"sim_fleet: {args.devices:,} devices, {args.seconds} s steady state, "
        f"connect rate {args.connect_rate:g}/s; "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}, RLIMIT_NOFILE {limit}"
    )
    with tempfile.TemporaryDirectory(prefix="sim-fleet-") as tmp:
        bare = run_phase(args, "bare", Path(tmp))
        full = run_phase(args, "full", Path(tmp))
    print()
    print("| measurement | bare MQTT client | signing device | device/bare |")
    print("|---|---:|---:|---:|")
    for label, key, fmt in ROWS:
        ratio = f"{full[key] / bare[key]:.2f}" if bare[key] else "-"
        print(f"| {label} | {fmt.format(bare[key])} | {fmt.format(full[key])} | {ratio} |")
    print()
    print(
        f"RESULT devices={args.devices} connected={full['connected']}/{bare['connected']} "
        f"msgs/s={full['msgs_per_s']:.0f}/{bare['msgs_per_s']:.0f} (expected {full['expected_per_s']:.0f}) "
        f"p99_late_ms={full['late_p99_ms']}/{bare['late_p99_ms']} "
        f"cpu%={full['cpu_pct']}/{bare['cpu_pct']} kib/device={full['rss_per_device_kib']}/"
        f"{bare['rss_per_device_kib']} (device/bare)"
    )


def main() -> None:
    """Parse the command line and run the parent or a phase."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=30, help="steady-state measurement (default 30)")
    parser.add_argument("--connect-rate", type=float, default=1000.0, help="connects per second (1000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--phase", choices=["bare", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--broker-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase is None:
        parent(args)
    else:
        child(args)


if __name__ == "__main__":
    main()
