"""The ``dispenser-sim`` command line: simulated dispensers for tests, demos and load runs.

Commands: ``run`` (a scenario, or ``--devices N`` without a file, over an MQTT broker), ``scenarios`` (the
shipped ones) and ``check FILE`` (validate a scenario file). Exit codes: 0 done, 1 a scenario file with
errors (``check``) or no broker, 2 bad arguments or an unusable scenario (a message, never a traceback).
Progress goes to stdout, the header and the final summary to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from device_sim.build import build
from device_sim.clock import ScaledClock, real_now_ms
from device_sim.fleet import DEFAULT_CONNECT_RATE
from device_sim.progress import ProgressMode, ProgressPrinter, show_progress, sim_time
from device_sim.runner import (
    BEHAVIOURS,
    DEFAULT_BEHAVIOURS,
    DEFAULT_FAMILIES,
    FAMILY_NAMES,
    BrokerUnavailableError,
    SimulationRun,
    population,
    write_inspector_keys,
)
from device_sim.scenario import ScenarioError, load_shipped, parse_scenario, shipped_scenario_names
from device_sim.timespec import parse_duration_ms, parse_instant
from firmware_protocol.broker import BrokerAddress, BrokerUrlError

if TYPE_CHECKING:
    from collections.abc import Callable

    from device_sim.runner import RunStats
    from device_sim.scenario import Scenario

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_SCENARIO = "demo"
DEFAULT_SPEED = 60.0
DEFAULT_TRUTH = Path("var/sim/truth.jsonl")


class UsageError(Exception):
    """A bad argument combination or an unusable scenario: printed, exit code 2."""


def _mix(allowed: tuple[str, ...]) -> Callable[[str], dict[str, int]]:
    def parse(text: str) -> dict[str, int]:
        mix: dict[str, int] = {}
        for part in text.split(","):
            name, _, share = part.strip().partition("=")
            if name not in allowed or not share.strip().isdigit():
                msg = f"{part.strip()!r}: expected NAME=PERCENT with NAME one of {', '.join(allowed)}"
                raise argparse.ArgumentTypeError(msg)
            mix[name] = int(share)
        if sum(mix.values()) <= 0:
            raise argparse.ArgumentTypeError("the shares must not all be 0")
        return mix

    return parse


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
        return value

    return parse


def _duration(text: str) -> int:
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(text: str) -> int:
    try:
        return parse_instant(text, strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _clock_spec(text: str) -> ScaledClock:
    try:
        clock = ScaledClock.from_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(clock.speed) or clock.speed <= 0:
        raise argparse.ArgumentTypeError(f"clock spec {text!r}: the speed must be a positive number")
    return clock


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    families = ",".join(f"{k}={v}" for k, v in DEFAULT_FAMILIES.items())
    behaviours = ",".join(f"{k}={v}" for k, v in DEFAULT_BEHAVIOURS.items())
    run = subparsers.add_parser(
        "run",
        help="run simulated dispensers against an MQTT broker",
        description="Run a scenario (or --devices N) over MQTT. In standalone mode (the default) a built-in "
        "stand-in hub enrolls the devices, publishes their configs and judges their rolls. Ctrl-C stops "
        "cleanly (graceful disconnects, truth file closed) and prints a summary.",
    )
    what = run.add_argument_group("what to simulate")
    what.add_argument(
        "--scenario",
        metavar="FILE_OR_NAME",
        help=f"a scenario file, or a shipped scenario's name (see 'dispenser-sim scenarios'; "
        f"default: {DEFAULT_SCENARIO})",
    )
    what.add_argument("--devices", type=_positive(int), metavar="N", help="N devices without a scenario file")
    what.add_argument(
        "--families",
        type=_mix(tuple(FAMILY_NAMES)),
        metavar="MIX",
        help=f"family mix in percent for --devices (default: {families}); roll = multidose_roll, "
        "pot = dose_pot",
    )
    what.add_argument(
        "--behaviour",
        type=_mix(BEHAVIOURS),
        metavar="MIX",
        help=f"patient behaviour mix in percent for --devices (default: {behaviours})",
    )
    what.add_argument("--seed", type=int, help="random seed (default: the scenario's; 1 for --devices)")
    what.add_argument(
        "--start",
        type=_instant,
        metavar="ISO",
        help="simulated start for --devices: ISO date or datetime, naive = Europe/Oslo (default: now)",
    )
    what.add_argument(
        "--duration",
        type=_duration,
        metavar="SPAN",
        help="simulated time to run, e.g. 90m, 12h, 3d (default: the scenario's; forever for --devices)",
    )
    when = run.add_argument_group("time")
    when.add_argument(
        "--speed",
        type=_positive(float),
        help=f"simulated seconds per real second (default: the scenario's speed, else {DEFAULT_SPEED:g}; "
        "1 = real time)",
    )
    when.add_argument(
        "--clock-spec",
        type=_clock_spec,
        metavar="SPEC",
        help="follow another process's scaled clock, SIM_EPOCH_MS@REAL_EPOCH_MSxSPEED (as printed at start)",
    )
    net = run.add_argument_group("broker")
    net.add_argument(
        "--broker",
        default=DEFAULT_BROKER,
        metavar="URL",
        help=f"mqtt://[user:pass@]host[:port] or mqtts://... (default: {DEFAULT_BROKER})",
    )
    net.add_argument("--cafile", help="CA certificate(s) to verify an mqtts:// broker")
    net.add_argument("--cert", help="client certificate for mqtts://")
    net.add_argument("--key", help="client certificate's private key for mqtts://")
    net.add_argument(
        "--connect-rate",
        type=_positive(float),
        default=DEFAULT_CONNECT_RATE,
        metavar="PER_S",
        help=f"connection attempts per second for the whole fleet (default: {DEFAULT_CONNECT_RATE:g})",
    )
    net.add_argument(
        "--no-standin",
        action="store_true",
        help="no stand-in hub: a real dispenser-hub must serve the devices, and they must be provisioned "
        "there first (needs hub support for simulated devices; not available yet)",
    )
    out = run.add_argument_group("output")
    out.add_argument(
        "--truth",
        type=Path,
        default=DEFAULT_TRUTH,
        metavar="FILE",
        help=f"ground-truth JSON Lines file, overwritten (default: {DEFAULT_TRUTH})",
    )
    out.add_argument(
        "--keys-out",
        type=Path,
        metavar="FILE",
        help="write the public keys (hub and devices) for 'dispenser-hub inspect --keys'",
    )
    out.add_argument("--json", action="store_true", help="progress as one JSON object per second")
    out.add_argument("--quiet", action="store_true", help="no progress and no summary")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``dispenser-sim`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dispenser-sim",
        description="Simulated medication dispensers speaking firmware_protocol over MQTT.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    _add_run(subparsers)
    subparsers.add_parser(
        "scenarios", help="list the shipped scenarios", description="List shipped scenarios."
    )
    check = subparsers.add_parser(
        "check",
        help="validate a scenario file",
        description="Validate a scenario file: print every problem as file:line:col: path: message and exit "
        "1, or a summary and exit 0.",
    )
    check.add_argument("file", type=Path, help="the scenario file")
    return parser


# -- scenarios -------------------------------------------------------------------------------------------


def _read(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: not a UTF-8 text file") from None
    return parse_scenario(text, file=str(path))


def _scenario(args: argparse.Namespace) -> Scenario:
    if args.devices is not None:
        if args.scenario is not None:
            raise UsageError("give either --scenario or --devices, not both")
        return population(
            args.devices,
            start_ms=args.start if args.start is not None else real_now_ms(),
            duration_ms=args.duration,
            families=args.families or DEFAULT_FAMILIES,
            behaviours=args.behaviour or DEFAULT_BEHAVIOURS,
            seed=args.seed if args.seed is not None else 1,
        )
    for option in ("families", "behaviour", "start"):
        if getattr(args, option) is not None:
            raise UsageError(f"--{option} applies to --devices; a scenario file sets it itself")
    name = args.scenario or DEFAULT_SCENARIO
    if Path(name).is_file():
        scenario = _read(Path(name))
    elif name in shipped_scenario_names():
        scenario = load_shipped(name)
    else:
        shipped = ", ".join(shipped_scenario_names())
        raise UsageError(f"--scenario {name}: no such file and no shipped scenario of that name ({shipped})")
    if args.duration is not None:
        scenario = dataclasses.replace(scenario, end_ms=scenario.start_ms + args.duration)
    if args.seed is not None:
        scenario = dataclasses.replace(scenario, seed=args.seed)
    return scenario


def _scenarios() -> int:
    for name in shipped_scenario_names():
        scenario = load_shipped(name)
        sys.stdout.write(f"{name:<28} {scenario.size:>4} devices  {scenario.description or ''}\n")
    return 0


def _check(path: Path) -> int:
    try:
        scenario = _read(path)
    except ScenarioError as exc:
        sys.stdout.write(f"{exc}\n")
        return 1
    except UsageError as exc:
        sys.stderr.write(f"dispenser-sim check: {exc}\n")
        return 2
    days = (scenario.end_ms - scenario.start_ms) / 86_400_000
    sys.stdout.write(
        f"{path}: ok: {scenario.name}: {scenario.size} devices in {len(scenario.groups)} groups, "
        f"{len(scenario.timeline)} timeline actions, {days:g} days from {sim_time(scenario.start_ms)}\n"
    )
    return 0


# -- run -------------------------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, scenario: Scenario, address: BrokerAddress) -> int:
    built = build(scenario, standalone=not args.no_standin)
    if args.keys_out is not None:
        write_inspector_keys(args.keys_out, built)
    speed = args.speed or scenario.speed or DEFAULT_SPEED
    clock = args.clock_spec or ScaledClock.starting_now(scenario.start_ms, speed)
    forever = args.devices is not None and args.duration is None
    end_ms = None if forever else scenario.end_ms
    err = sys.stderr
    if not args.quiet:
        span = "forever" if end_ms is None else f"until {sim_time(end_ms)}"
        err.write(
            f"dispenser-sim: {scenario.name}: {scenario.size} devices on {address.url}, "
            f"{'stand-in hub' if built.standin else 'no stand-in'}; "
            f"from {sim_time(scenario.start_ms)} {span}\n"
            f"clock spec: {clock.spec} (speed {clock.speed:g}); truth: {args.truth}\n"
        )
    mode = ProgressMode.QUIET if args.quiet else ProgressMode.JSON if args.json else None
    if mode is None:
        mode = ProgressMode.LINE if sys.stdout.isatty() else ProgressMode.LOG
    printer = ProgressPrinter(sys.stdout, mode)
    run = SimulationRun(
        built, address, clock, truth_path=args.truth, connect_rate=args.connect_rate, seed=scenario.seed
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, run.request_stop)
    reached = False
    final = run.stats
    try:
        async with run:
            progress = loop.create_task(show_progress(lambda: run.stats, printer))
            try:
                reached = await run.run_until(end_ms)
            finally:
                final = run.stats
                progress.cancel()
                await asyncio.gather(progress, return_exceptions=True)
    except BrokerUnavailableError as exc:
        err.write(f"dispenser-sim: {exc}\n")
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    printer.report(final, final=True)
    if not args.quiet:
        _summary(run, final, reached=reached)
    return 0


def _summary(run: SimulationRun, stats: RunStats, *, reached: bool) -> None:
    fleet = run.fleet_stats
    written = run.truth_path if run.truth_path is not None else "(not written)"
    sys.stderr.write(
        f"dispenser-sim: {'scenario end reached' if reached else 'stopped'} at {sim_time(stats.sim_ms)}\n"
        f"  doses due {stats.due}, taken {stats.taken}, missed {stats.missed}; faults {stats.faults}, "
        f"hostile {stats.hostile}\n"
        f"  messages sent {fleet.sent + stats.standin_out}, received {fleet.received + stats.standin_in}; "
        f"reconnects {fleet.reconnects}, errors {fleet.errors}"
        + (f" (last: {fleet.last_error})" if fleet.last_error else "")
        + f"\n  ground truth: {fleet.truths} records in {written}\n"
    )
    for device_id, problem in fleet.failed_devices.items():
        sys.stderr.write(f"  device {device_id} failed: {problem}\n")


def _tls_files(args: argparse.Namespace) -> list[str]:
    """The TLS options given, each checked to be a readable file (``UsageError`` naming it otherwise)."""
    if args.key is not None and args.cert is None:
        raise UsageError("--key is the private key of --cert; give --cert too")
    given = []
    for option, value in (("--cafile", args.cafile), ("--cert", args.cert), ("--key", args.key)):
        if value is None:
            continue
        try:
            with Path(value).open("rb"):
                pass
        except OSError as exc:
            raise UsageError(f"{option} {value}: cannot read it: {exc.strerror}") from None
        given.append(f"{option} {value}")
    return given


def _writable(option: str, path: Path | None) -> None:
    """Fail now (``UsageError``) if an output file cannot be created, before anything connects."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(path) else ""
        raise UsageError(f"{option} {path}: cannot write it: {exc.strerror}{where}") from None


def _command_run(args: argparse.Namespace) -> int:
    try:
        address = BrokerAddress.parse(args.broker, cafile=args.cafile, certfile=args.cert, keyfile=args.key)
        tls_files = _tls_files(args)
        scenario = _scenario(args)
        _writable("--truth", args.truth)
        _writable("--keys-out", args.keys_out)
    except (BrokerUrlError, UsageError, ScenarioError, ValueError) as exc:
        sys.stderr.write(f"dispenser-sim run: {exc}\n")
        return 2
    try:
        address.ssl_context()  # fail now on certificate files that do not load
    except (OSError, ssl.SSLError) as exc:
        sys.stderr.write(f"dispenser-sim run: TLS files ({', '.join(tls_files)}): {exc}\n")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(args, scenario, address))
    return 130


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen command; without one, print help."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _command_run(args)
    if args.command == "scenarios":
        return _scenarios()
    if args.command == "check":
        return _check(args.file)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
