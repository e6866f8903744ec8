"""``dispenser-hub inspect`` and ``dispenser-hub demo``: watch a broker and explain every message on it."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dispenser_hub.inspector.analysis import Inspection, Inspector
from dispenser_hub.inspector.keys import KeyFileError, load_key_file
from dispenser_hub.inspector.render import TextRenderer, render_json
from dispenser_hub.inspector.samples import SampleSet, test_key_ring
from firmware_protocol.broker import BrokerAddress, BrokerUrlError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from dispenser_hub.cli import Subparsers


def _add_view_options(parser: argparse.ArgumentParser) -> None:
    view = parser.add_argument_group("what to show")
    view.add_argument("--topic", default="#", help="topic filter to watch (default: %(default)s, everything)")
    view.add_argument("--json", action="store_true", help="one JSON object per message (for scripts)")
    view.add_argument("-v", "--verbose", action="store_true", help="show whole bodies as indented JSON")
    view.add_argument("--show-refs", action="store_true", help="do not mask printed patient references")
    view.add_argument(
        "--no-skew", action="store_true", help="do not check device timestamps against this clock"
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
        help="start the embedded broker and the protocol inspector (python3 tasks.py run)",
        description="Start an embedded MQTT broker and watch it with the protocol inspector. Point a device "
        "or mosquitto_pub at the broker; example payloads are written to a folder, with the commands that "
        "publish them.",
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
    _add_view_options(parser)
    parser.set_defaults(handler=_run_demo)


def _inspector(args: argparse.Namespace) -> Inspector:
    ring = test_key_ring() if args.trust_test_keys else None
    for path in args.keys:
        ring = load_key_file(path, ring)
    inspector = Inspector(check_skew=not args.no_skew)
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
    except (BrokerUrlError, KeyFileError) as exc:
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


def _run_demo(args: argparse.Namespace) -> int:
    """Embedded broker + inspector (+ example messages) until interrupted."""
    from dispenser_hub.adapters.mqtt.embedded_broker import EmbeddedBroker  # noqa: PLC0415
    from dispenser_hub.adapters.mqtt.monitor import BrokerMonitor  # noqa: PLC0415

    args.trust_test_keys = True
    try:
        inspector = _inspector(args)
    except KeyFileError as exc:
        sys.stderr.write(f"dispenser-hub demo: {exc}\n")
        return 2
    port = args.port
    if port and not _port_free(args.host, port):
        port = 0
    broker = EmbeddedBroker(args.host, port)
    broker.start()
    if args.port and broker.port != args.port:
        sys.stderr.write(f"-- port {args.port} is taken (another broker?); using {broker.port} instead\n")
    try:
        address = BrokerAddress.parse(broker.url)
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
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        monitor.stop()
    finally:
        broker.stop()
    return 0
