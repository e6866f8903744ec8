"""``dispenser-hub inspect`` and ``dispenser-hub demo``: watch a broker and explain every message on it."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from device_sim.clock import ScaledClock
from dispenser_hub.inspector.analysis import Inspection, Inspector
from dispenser_hub.inspector.keys import KeyFileError, add_keys, load_key_file
from dispenser_hub.inspector.render import TextRenderer, render_json
from dispenser_hub.inspector.samples import SampleSet, test_key_ring
from firmware_protocol.broker import BrokerAddress, BrokerUrlError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from dispenser_hub.cli import Subparsers
    from dispenser_hub.demo_fleet import DemoFleet


class OptionError(ValueError):
    """An option that cannot be used; the message says which and why."""


def _add_view_options(parser: argparse.ArgumentParser) -> None:
    view = parser.add_argument_group("what to show")
    view.add_argument("--topic", default="#", help="topic filter to watch (default: %(default)s, everything)")
    view.add_argument("--json", action="store_true", help="one JSON object per message (for scripts)")
    view.add_argument("-v", "--verbose", action="store_true", help="show whole bodies as indented JSON")
    view.add_argument("--show-refs", action="store_true", help="do not mask printed patient references")
    view.add_argument(
        "--no-skew", action="store_true", help="do not check device timestamps against this clock"
    )
    view.add_argument(
        "--clock-spec",
        metavar="SPEC",
        help="check timestamps against a simulator's accelerated clock, SIM_MS@REAL_MSxSPEED as "
        "'dispenser-sim run' prints it",
    )
    view.add_argument("--no-colour", action="store_true", help="plain text even on a terminal")
    keys = parser.add_argument_group("signature keys")
    keys.add_argument(
        "--keys",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help='JSON key file {"hub": [...], "devices": {id: [...]}} (repeatable)',
    )
    keys.add_argument(
        "--trust-test-keys",
        action="store_true",
        help="trust the published test-vector keys (firmware_protocol/vectors/keys.json)",
    )


def add_inspect_command(subparsers: Subparsers) -> None:
    """Register ``inspect``."""
    parser = subparsers.add_parser(
        "inspect",
        help="decode, validate and pretty-print every message on a broker",
        description="Watch an MQTT broker and check every message against the dispenser protocol v1: "
        "schema, version, topic, signature, clock skew, duplicates and sequence numbers. Invalid messages "
        "are shown with their error code and the offending field. Keys are learned from prov.request and "
        "prov.accepted messages (trust on first use) or given with --keys.",
    )
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL (default: %(default)s)")
    parser.add_argument("--cafile", help="CA certificate for mqtts://")
    parser.add_argument("--cert", help="client certificate for mqtts://")
    parser.add_argument("--key", help="client key for mqtts://")
    _add_view_options(parser)
    parser.set_defaults(handler=_run_inspect)


def add_demo_command(subparsers: Subparsers) -> None:
    """Register ``demo``: the README's run command."""
    parser = subparsers.add_parser(
        "demo",
        help="embedded broker, simulated dispensers and the protocol inspector (python3 tasks.py run)",
        description="Start an embedded MQTT broker, a simulated fleet of both dispenser families on "
        "accelerated time (served by the simulator's stand-in hub), and the protocol inspector watching "
        "every message. Point a device or mosquitto_pub at the broker too; example payloads are written to "
        "a folder, with the commands that publish them.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=1883,
        help="port; if taken, a free one is used and printed (default: %(default)s)",
    )
    parser.add_argument(
        "--samples-dir",
        type=Path,
        default=Path("var/demo-samples"),
        help="where example payloads are written (default: %(default)s)",
    )
    parser.add_argument(
        "--no-samples", action="store_true", help="do not publish the example messages at start"
    )
    fleet = parser.add_argument_group("simulated dispensers")
    fleet.add_argument(
        "--scenario",
        default="demo",
        metavar="NAME_OR_FILE",
        help="shipped scenario name or scenario file (default: %(default)s; see 'dispenser-sim scenarios')",
    )
    fleet.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated seconds per real second (default: %(default)g)",
    )
    fleet.add_argument(
        "--truth",
        type=Path,
        default=Path("var/demo/truth.jsonl"),
        metavar="FILE",
        help="the fleet's ground-truth log (default: %(default)s)",
    )
    fleet.add_argument("--no-fleet", action="store_true", help="no simulated dispensers")
    _add_view_options(parser)
    parser.set_defaults(handler=_run_demo)


def _inspector(args: argparse.Namespace) -> Inspector:
    ring = test_key_ring() if args.trust_test_keys else None
    for path in args.keys:
        ring = load_key_file(path, ring)
    inspector = Inspector(check_skew=not args.no_skew)
    if args.clock_spec:
        try:
            inspector.clock = ScaledClock.from_spec(args.clock_spec).now_ms
        except ValueError as exc:
            msg = f"--clock-spec: {exc}"
            raise OptionError(msg) from None
    if ring is not None:
        inspector.keys = ring
    return inspector


def _sink(args: argparse.Namespace, out: TextIO) -> Callable[[Inspection], None]:
    renderer = TextRenderer(
        colour=out.isatty() and not args.no_colour, verbose=args.verbose, show_refs=args.show_refs
    )
    lock = threading.Lock()

    def sink(item: Inspection) -> None:
        text = render_json(item, show_refs=args.show_refs) if args.json else renderer.render(item)
        with lock:
            out.write(text + "\n")
            out.flush()

    return sink


def _status(args: argparse.Namespace) -> Callable[[str], None]:
    def status(line: str) -> None:
        if not args.json:
            sys.stderr.write(f"-- {line}\n")
            sys.stderr.flush()

    return status


def _run_inspect(args: argparse.Namespace) -> int:
    """Watch a broker until interrupted."""
    from dispenser_hub.adapters.mqtt.monitor import BrokerMonitor  # noqa: PLC0415 - paho only when used

    try:
        address = BrokerAddress.parse(args.broker, cafile=args.cafile, certfile=args.cert, keyfile=args.key)
        inspector = _inspector(args)
    except (BrokerUrlError, KeyFileError, OptionError) as exc:
        sys.stderr.write(f"dispenser-hub inspect: {exc}\n")
        return 2
    monitor = BrokerMonitor(
        address, inspector, _sink(args, sys.stdout), topic_filter=args.topic, status=_status(args)
    )
    with contextlib.suppress(KeyboardInterrupt):
        monitor.run_forever()
    return 0


def _port_free(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now (asyncio servers set SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _demo_fleet(args: argparse.Namespace, address: BrokerAddress, inspector: Inspector) -> DemoFleet | None:
    """Build the demo's simulated fleet and teach the inspector its keys and clock (None: --no-fleet)."""
    if args.no_fleet:
        return None
    from dispenser_hub.demo_fleet import DemoFleet, load_scenario  # noqa: PLC0415 - only when used

    if args.speed <= 0:
        msg = f"--speed must be positive, not {args.speed:g}"
        raise OptionError(msg)
    try:
        scenario = load_scenario(args.scenario)
    except (OSError, ValueError) as exc:  # ScenarioError is a ValueError
        msg = f"--scenario {args.scenario}: {exc}"
        raise OptionError(msg) from None
    fleet = DemoFleet(scenario, address, speed=args.speed, truth_path=args.truth)
    add_keys(fleet.keys, inspector.keys, source=f"scenario {scenario.name}")
    inspector.device_clocks.update(fleet.clocks)
    return fleet


def _run_demo(args: argparse.Namespace) -> int:
    """Embedded broker + inspector (+ example messages) + simulated fleet until interrupted."""
    from dispenser_hub.adapters.mqtt.embedded_broker import EmbeddedBroker  # noqa: PLC0415
    from dispenser_hub.adapters.mqtt.monitor import BrokerMonitor  # noqa: PLC0415

    args.trust_test_keys = True
    try:
        inspector = _inspector(args)
    except (KeyFileError, OptionError) as exc:
        sys.stderr.write(f"dispenser-hub demo: {exc}\n")
        return 2
    port = args.port
    if port and not _port_free(args.host, port):
        port = 0
    broker = EmbeddedBroker(args.host, port)
    broker.start()
    if args.port and broker.port != args.port:
        sys.stderr.write(f"-- port {args.port} is taken (another broker?); using {broker.port} instead\n")
    fleet: DemoFleet | None = None
    try:
        address = BrokerAddress.parse(broker.url)
        try:
            fleet = _demo_fleet(args, address, inspector)
        except OptionError as exc:
            sys.stderr.write(f"dispenser-hub demo: {exc}\n")
            return 2
        samples = SampleSet.create(args.samples_dir)
        sys.stderr.write(samples.banner(broker.host, broker.port))
        monitor = BrokerMonitor(
            address, inspector, _sink(args, sys.stdout), topic_filter=args.topic, status=_status(args)
        )
        monitor.start()
        if not monitor.subscribed.wait(10):
            sys.stderr.write("dispenser-hub demo: the inspector could not subscribe to the embedded broker\n")
            return 1
        if not args.no_samples:
            samples.publish(address)
        if fleet is not None:
            fleet.start()
            scenario = fleet.scenario
            _status(args)(
                f"simulated fleet: {scenario.name}, {scenario.size} dispensers at {args.speed:g}x; "
                f"clock {fleet.clock.spec} (inspect --clock-spec follows it); ground truth in {args.truth}"
            )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        if fleet is not None:
            fleet.stop()
        monitor.stop()
    finally:
        broker.stop()
    return 0
