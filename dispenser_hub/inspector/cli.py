"""``dispenser-hub inspect``: watch a broker and explain every message on it (the demo uses it too)."""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from device_sim.clock import ScaledClock
from dispenser_hub.inspector.analysis import Inspection, Inspector
from dispenser_hub.inspector.keys import KeyFileError, load_key_file
from dispenser_hub.inspector.render import TextRenderer, render_json
from dispenser_hub.inspector.samples import test_key_ring
from firmware_protocol.broker import BrokerAddress, BrokerUrlError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from dispenser_hub.cli import Subparsers


class OptionError(ValueError):
    """An option that cannot be used; the message says which and why."""


def add_view_options(parser: argparse.ArgumentParser) -> None:
    """Options of what the inspector shows and which keys it trusts (inspect and demo)."""
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
    add_view_options(parser)
    parser.set_defaults(handler=_run_inspect)


def build_inspector(args: argparse.Namespace) -> Inspector:
    """An inspector with the keys and clock the options name."""
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


def printing_sink(args: argparse.Namespace, out: TextIO) -> Callable[[Inspection], None]:
    """Prints each inspection (text or JSON) to ``out``, one at a time."""
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


def status_printer(args: argparse.Namespace) -> Callable[[str], None]:
    """Prints status lines to stderr (not in JSON mode)."""

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
        inspector = build_inspector(args)
    except (BrokerUrlError, KeyFileError, OptionError) as exc:
        sys.stderr.write(f"dispenser-hub inspect: {exc}\n")
        return 2
    monitor = BrokerMonitor(
        address,
        inspector,
        printing_sink(args, sys.stdout),
        topic_filter=args.topic,
        status=status_printer(args),
    )
    with contextlib.suppress(KeyboardInterrupt):
        monitor.run_forever()
    return 0
