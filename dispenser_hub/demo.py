"""``dispenser-hub demo``, the README's run command: broker, hub, simulated fleet and inspector together.

What runs, in start order:

1. the embedded MQTT broker (amqtt) on ``--port`` (a free port if that one is taken);
2. the protocol inspector, subscribed to everything, printing every message with its verdict, and the
   example messages (samples) it publishes once;
3. the hub (``HubRuntime``): SQLite and PKI in ``--state-dir`` (a fresh database each run), MQTT ingest,
   timers and the HTTP API on ``--http-port``, following the fleet's accelerated clock;
4. the simulated fleet (a ``device_sim`` scenario): each device is registered with the hub first, bound
   to a demo patient, and the pharmacy manifests of the rolls it will load are imported
   (``demo_pharmacy``); it enrolls over MQTT with the code it was given, is born, loads its roll (the hub
   judges it and sends its schedule) and reports.

Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from dispenser_hub.inspector.cli import (
    OptionError,
    add_view_options,
    build_inspector,
    printing_sink,
    status_printer,
)
from dispenser_hub.inspector.keys import KeyFileError, add_keys
from dispenser_hub.inspector.samples import SampleSet
from firmware_protocol.broker import BrokerAddress

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from dispenser_hub.cli import Subparsers
    from dispenser_hub.demo_fleet import DemoFleet
    from dispenser_hub.demo_outbox import DemoOutbox
    from dispenser_hub.inspector.analysis import Inspector
    from dispenser_hub.runtime import HubRuntime

DEMO_CLIENT_ID = "dispenser-hub-demo"


def add_demo_command(subparsers: Subparsers) -> None:
    """Register ``demo``: the README's run command."""
    parser = subparsers.add_parser(
        "demo",
        help="embedded broker, hub, simulated dispensers and the protocol inspector (python3 tasks.py run)",
        description="Start an embedded MQTT broker, the hub (SQLite, API) and a simulated fleet of both "
        "dispenser families on accelerated time, which enrolls with the hub; the protocol inspector shows "
        "every message. Point a device or mosquitto_pub at the broker too; example payloads are written to "
        "a folder, with the commands that publish them.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=1883,
        help="MQTT port; if taken, a free one is used (default: %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=8000,
        help="API port; if taken, a free one is used (default: %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("var/demo"),
        help="hub database (new each run), PKI and ground truth (default: %(default)s)",
    )
    parser.add_argument(
        "--samples-dir",
        type=Path,
        default=Path("var/demo-samples"),
        help="where example payloads are written (default: %(default)s)",
    )
    parser.add_argument("--no-samples", action="store_true", help="do not publish the example messages")
    fleet = parser.add_argument_group("simulated dispensers")
    fleet.add_argument(
        "--scenario",
        default="demo",
        metavar="NAME_OR_FILE",
        help="shipped scenario name or scenario file (default: %(default)s; see 'dispenser-sim scenarios')",
    )
    fleet.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (default: %(default)g)"
    )
    fleet.add_argument(
        "--no-fleet", action="store_true", help="no simulated dispensers (the hub on real time)"
    )
    add_view_options(parser)
    parser.set_defaults(handler=run_demo)


def _free_port(host: str, port: int) -> int:
    """``port`` if a listener could bind it now, else 0 (any free port)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return 0
    return port


def _pick_port(host: str, port: int) -> int:
    """A port to give a server that cannot take 0 (uvicorn): ``port`` or one the OS picks now."""
    if port and _free_port(host, port):
        return port
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
    return chosen


def _hub_and_fleet(
    args: argparse.Namespace, address: BrokerAddress, inspector: Inspector, status: Callable[[str], None]
) -> tuple[HubRuntime, DemoFleet | None, DemoOutbox]:
    """The hub on a fresh database, its outbox (started), and the fleet registered with it (not started)."""
    from pydantic import SecretStr  # noqa: PLC0415

    from device_sim.clock import ScaledClock  # noqa: PLC0415 - heavy imports only for the demo
    from dispenser_hub.adapters.clock import SimulatedClock, SystemClock  # noqa: PLC0415
    from dispenser_hub.demo_care import set_up_care  # noqa: PLC0415
    from dispenser_hub.demo_fleet import DemoFleet, load_scenario  # noqa: PLC0415
    from dispenser_hub.demo_outbox import DemoOutbox  # noqa: PLC0415
    from dispenser_hub.demo_pharmacy import set_up_office  # noqa: PLC0415
    from dispenser_hub.runtime import HubRuntime  # noqa: PLC0415
    from dispenser_hub.settings import Settings  # noqa: PLC0415

    if args.speed <= 0:
        raise OptionError(f"--speed must be positive, not {args.speed:g}")
    state: Path = args.state_dir
    shutil.rmtree(state / "hub", ignore_errors=True)
    scenario = None
    if not args.no_fleet:
        try:
            scenario = load_scenario(args.scenario)
        except (OSError, ValueError) as exc:  # ScenarioError is a ValueError
            raise OptionError(f"--scenario {args.scenario}: {exc}") from None
    clock = ScaledClock.starting_now(scenario.start_ms, args.speed) if scenario is not None else None
    hub_clock = SimulatedClock(clock) if clock is not None else SystemClock()
    secret = secrets.token_urlsafe(32)
    outbox = DemoOutbox(secret.encode(), hub_clock, status)
    outbox.start()
    settings = Settings(
        database_url=f"sqlite:///{state / 'hub' / 'hub.db'}",
        pki_dir=state / "pki",
        mqtt_url=address.url,
        mqtt_client_id=DEMO_CLIENT_ID,
        http_host=args.host,
        http_port=_pick_port(args.host, args.http_port),
        sms_gateway_url=f"{outbox.url}/sms",
        webhook_secret=SecretStr(secret),
        response_centre_webhook_url=f"{outbox.url}/webhook",
    )
    runtime = HubRuntime(settings, clock=hub_clock)
    if scenario is None or clock is None:
        return runtime, None, outbox
    codes = {}
    for spec in scenario.devices():
        _, code = runtime.hub.registry.register_device(
            spec.device_id, serial=spec.device_id, family=spec.family, model="simulated", by="demo"
        )
        codes[spec.device_id] = code.code
    office = set_up_office(
        scenario, runtime.hub.registry, runtime.hub.uow_factory, now=runtime.hub.clock.now()
    )
    set_up_care(scenario, runtime.hub.registry, runtime.hub.uow_factory, office, now=runtime.hub.clock.now())
    fleet = DemoFleet(
        scenario, address, clock=clock, enrollment_codes=codes, truth_path=state / "truth.jsonl"
    )
    add_keys(fleet.keys, inspector.keys, source=f"scenario {scenario.name}")
    inspector.keys.add(None, runtime.hub.ca.hub_signer.public_key)  # configs go out before enrollment
    inspector.device_clocks.update(fleet.clocks)
    return runtime, fleet, outbox


def run_demo(args: argparse.Namespace) -> int:
    """Run everything until Ctrl-C (see the module docstring)."""
    from dispenser_hub.adapters.mqtt.embedded_broker import EmbeddedBroker  # noqa: PLC0415
    from dispenser_hub.adapters.mqtt.monitor import BrokerMonitor  # noqa: PLC0415

    args.trust_test_keys = True
    status = status_printer(args)
    try:
        inspector = build_inspector(args)
    except (KeyFileError, OptionError) as exc:
        sys.stderr.write(f"dispenser-hub demo: {exc}\n")
        return 2
    broker = EmbeddedBroker(args.host, _free_port(args.host, args.port))
    broker.start()
    if args.port and broker.port != args.port:
        status(f"port {args.port} is taken (another broker?); using {broker.port} instead")
    try:
        address = BrokerAddress.parse(broker.url)
        try:
            runtime, fleet, outbox = _hub_and_fleet(args, address, inspector, status)
        except OptionError as exc:
            sys.stderr.write(f"dispenser-hub demo: {exc}\n")
            return 2
        samples = SampleSet.create(args.samples_dir)
        sys.stderr.write(samples.banner(broker.host, broker.port))
        monitor = BrokerMonitor(address, inspector, printing_sink(args, sys.stdout), status=status)
        monitor.start()
        if not monitor.subscribed.wait(10):
            sys.stderr.write("dispenser-hub demo: the inspector could not subscribe to the embedded broker\n")
            return 1
        if not args.no_samples:
            samples.publish(address)
        runtime.start_in_thread()
        token = next(iter(runtime.settings.api_tokens_by_name().values())).get_secret_value()
        status(f"hub API: {runtime.api_url}/docs  (token: {token})")
        status(
            "escalations: SMS and the response centre's alarms print here as [SMS til ...] and "
            "[responssenterets alarmsystem] lines; acknowledge with the printed link (/ack/...) or "
            f"POST {runtime.api_url}/alarms/<id>/acknowledge"
        )
        if fleet is not None:
            fleet.start()
            scenario = fleet.scenario
            status(
                f"simulated fleet: {scenario.name}, {scenario.size} dispensers at {args.speed:g}x enrolling "
                f"with the hub; clock {fleet.clock.spec}; ground truth in {args.state_dir}/truth.jsonl"
            )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the orderly stop
        status("stopping: devices disconnect, the hub commits and leaves its session to the broker")
        if fleet is not None:
            fleet.stop()
        runtime.stop()
        outbox.stop()
        monitor.stop()
    finally:
        broker.stop()
    return 0
