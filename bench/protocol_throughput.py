#!/usr/bin/env python3
"""Throughput of the protocol's receive path on one core: parse, validate and verify sealed uplink messages.

Usage::

    python bench/protocol_throughput.py [--seconds N] [--rounds R] [--messages M] [--json]

Builds ``M`` distinct sealed uplink payloads (heartbeats, dose events and faults from 50 devices, each with
its own Ed25519 key registered in a ``KeyRing``) and measures, in the same run and pinned to one CPU:

(a) ``json.loads`` of the same bytes (the floor of any JSON receiver);
(b) ``decode``: strict parse, schema validation, topic and skew checks, no signature;
(c) ``open_message``: ``decode`` plus Ed25519 verification (what the hub does for every message);
(d) raw Ed25519 ``verify`` via ``cryptography`` on the same canonical bytes (the crypto floor).

Each measurement runs ``R`` rounds over the whole set, interleaved, and reports the best and the median.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from firmware_protocol import (  # noqa: E402 - after the sys.path fix above
    Envelope,
    KeyRing,
    Signer,
    decode,
    new_ulid,
    open_message,
    seal,
)
from firmware_protocol.messages import (  # noqa: E402
    FAULT_TYPES,
    Body,
    DoseNotTaken,
    DoseReminder,
    DoseTaken,
    Heartbeat,
)
from firmware_protocol.messages.uplink import T  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DEVICES = 50
NOW = T + 3_600_000


@dataclass(frozen=True)
class Sample:
    """One sealed message as a receiver gets it."""

    payload: bytes
    topic: str


@dataclass(frozen=True)
class Result:
    """Timings of one measurement: messages per second of every round."""

    name: str
    rates: list[float]

    @property
    def best(self) -> float:
        """Best rate (least disturbed round)."""
        return max(self.rates)

    @property
    def median(self) -> float:
        """Median rate."""
        return statistics.median(self.rates)


def _body(index: int) -> Body:
    """A realistic body: half heartbeats, dose events, some faults."""
    kind = index % 10
    due = T + (index // 10) * 3_600_000
    dose = {"slot_id": f"s-{index:06d}", "due": due, "pouch_id": f"P-4711-{index:04d}"}
    if kind < 5:
        return Heartbeat(
            uptime_s=86_400 + index * 300,
            battery_pct=index % 101,
            on_mains=index % 7 != 0,
            rssi_dbm=-40 - index % 60,
            temperature_dc=180 + index % 90,
            buffered=index % 3,
            schedule_version=12,
        )
    if kind == 5:
        return DoseReminder.model_validate({**dose, "stage": "sound", "attempt": 1 + index % 5})
    if kind in {6, 7}:
        return DoseTaken.model_validate({**dose, "taken_at": due + 60_000 * (index % 30)})
    if kind == 8:
        return DoseNotTaken.model_validate({**dose, "closed_at": due + 7_200_000, "retained": True})
    fault = FAULT_TYPES[index % len(FAULT_TYPES)]
    return fault.model_validate({"detail": f"sensor {index % 17} reading {index}"})


def build(count: int) -> tuple[list[Sample], KeyRing]:
    """``count`` distinct sealed uplink messages and the key ring that verifies them."""
    signers = [Signer.from_seed(i.to_bytes(2, "big") * 16) for i in range(DEVICES)]
    keys = KeyRing()
    devices = [f"RM3-{100_000 + i:06d}" for i in range(DEVICES)]
    for device_id, signer in zip(devices, signers, strict=True):
        keys.add(device_id, signer.public_key)
    samples = []
    for index in range(count):
        device = index % DEVICES
        envelope: Envelope[Body] = Envelope(
            body=_body(index),
            device=devices[device],
            boot_id=new_ulid(T - 86_400_000, device.to_bytes(10, "big")),
            seq=index // DEVICES,
            ts=NOW - (count - index) * 1_000,
            msg_id=new_ulid(NOW - (count - index) * 1_000, index.to_bytes(10, "big")),
        )
        samples.append(Sample(seal(envelope, signers[device]), envelope.topic))
    assert len({sample.payload for sample in samples}) == count
    return samples, keys


def pin_to_one_core() -> str:
    """Pin this process to the CPU it runs on, where the OS allows it."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def cpu_model() -> str:
    """The CPU model name, as the OS reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed_round(work: Callable[[], None], passes: int, messages: int) -> float:
    """Run ``work`` (one pass over every message) ``passes`` times; return messages per second."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(passes):
        work()
    return passes * messages / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0, help="approximate total run time (default 15)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measurement (default 5)")
    parser.add_argument("--messages", type=int, default=1000, help="distinct payloads (default 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)

    pinning = pin_to_one_core()
    samples, keys = build(args.messages)
    received = [decode(s.payload, s.topic, now_ms=NOW) for s in samples]
    raw: list[tuple[Ed25519PublicKey, bytes, bytes]] = []
    for item in received:
        key = keys.resolve(item.envelope.device, item.kid)
        assert key is not None
        raw.append((key, item.signature, item.signed_bytes))
    payloads = [s.payload for s in samples]
    pairs = [(s.payload, s.topic) for s in samples]

    def baseline() -> None:
        loads = json.loads
        for payload in payloads:
            loads(payload)

    def decode_only() -> None:
        for payload, topic in pairs:
            decode(payload, topic, now_ms=NOW)

    def open_all() -> None:
        for payload, topic in pairs:
            open_message(payload, topic, keys, now_ms=NOW)

    def verify_only() -> None:
        for key, signature, signed in raw:
            key.verify(signature, signed)

    work: dict[str, Callable[[], None]] = {
        "json.loads": baseline,
        "decode": decode_only,
        "open_message": open_all,
        "ed25519 verify": verify_only,
    }
    # Calibrate: passes per round so that all rounds of all measurements take about --seconds.
    budget = args.seconds / (len(work) * args.rounds)
    passes: dict[str, int] = {}
    for name, fn in work.items():
        rate = timed_round(fn, 1, len(samples))
        passes[name] = max(1, round(budget * rate / len(samples)))
    rates: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(args.rounds):
        for name, fn in work.items():
            rates[name].append(timed_round(fn, passes[name], len(samples)))
    results = [Result(name, rates[name]) for name in work]
    report(results, passes, [len(p) for p in payloads], args.rounds, pinning, as_json=args.json)
    return 0


def environment(pinning: str) -> dict[str, object]:
    """Versions and machine, for the record."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cryptography": cryptography.__version__,
        "openssl": openssl_backend.openssl_version_text(),
        "cpu": cpu_model(),
        "cpus_online": os.cpu_count(),
        "pinning": pinning,
        "platform": platform.platform(),
    }


def report(
    results: list[Result],
    passes: dict[str, int],
    sizes: list[int],
    rounds: int,
    pinning: str,
    *,
    as_json: bool,
) -> None:
    """Print the figures as text (with a final one-line summary) or as one JSON object."""
    by_name = {r.name: r for r in results}
    env = environment(pinning)
    ratios = {
        "open_message/json.loads": by_name["open_message"].best / by_name["json.loads"].best,
        "open_message/ed25519 verify": by_name["open_message"].best / by_name["ed25519 verify"].best,
        "decode/json.loads": by_name["decode"].best / by_name["json.loads"].best,
    }
    if as_json:
        print(
            json.dumps(
                {
                    "environment": env,
                    "messages": len(sizes),
                    "payload_bytes": {"min": min(sizes), "mean": statistics.mean(sizes), "max": max(sizes)},
                    "rounds": rounds,
                    "passes_per_round": passes,
                    "results": {
                        r.name: {"best_per_s": r.best, "median_per_s": r.median, "best_us": 1e6 / r.best}
                        for r in results
                    },
                    "ratios_best": ratios,
                },
                indent=2,
            )
        )
        return
    print("Protocol decode + validate + verify throughput (one core)")
    for label, value in env.items():
        print(f"  {label:<15} {value}")
    mean_size = statistics.mean(sizes)
    print(f"  payloads        {len(sizes)} distinct, {min(sizes)}-{max(sizes)} bytes (mean {mean_size:.0f})")
    print(f"  rounds          {rounds}, passes per round {passes}")
    print()
    print(
        f"  {'measurement':<17}{'best msg/s':>12}{'median msg/s':>14}{'best us/msg':>13}{'median us/msg':>15}"
    )
    for r in results:
        print(f"  {r.name:<17}{r.best:>12,.0f}{r.median:>14,.0f}{1e6 / r.best:>13.1f}{1e6 / r.median:>15.1f}")
    print()
    for label, ratio in ratios.items():
        print(f"  {label:<28} {ratio:.3f}")
    summary = " ".join(f"{r.name.replace(' ', '_')}={r.best:.0f}/s" for r in results)
    print()
    print(
        f"RESULT {summary} open/loads={ratios['open_message/json.loads']:.3f} "
        f"open/verify={ratios['open_message/ed25519 verify']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
