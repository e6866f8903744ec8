"""The ``dispenser-hub`` command line.

Subcommands register themselves on the parser built by ``build_parser()``; each sets ``handler`` (a function
taking the parsed ``argparse.Namespace`` and returning an exit code) with ``set_defaults``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import TypeAlias

from dispenser_hub.admin_cli import add_admin_commands
from dispenser_hub.demo import add_demo_command
from dispenser_hub.inspector.cli import add_inspect_command

Handler: TypeAlias = Callable[[argparse.Namespace], int]
# argparse has no public name for the object add_subparsers() returns; a string alias keeps it out of runtime.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # noqa: SLF001


def build_parser() -> tuple[argparse.ArgumentParser, Subparsers]:
    """Build the top-level parser; return it with its subparsers so other modules can add subcommands."""
    parser = argparse.ArgumentParser(
        prog="dispenser-hub", description="Edge service for networked medication dispensers."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_broker_command(subparsers)
    add_inspect_command(subparsers)
    add_demo_command(subparsers)
    add_admin_commands(subparsers)
    return parser, subparsers


def _add_broker_command(subparsers: Subparsers) -> None:
    broker = subparsers.add_parser(
        "broker", help="run an embedded MQTT broker (amqtt) for development", description=_run_broker.__doc__
    )
    broker.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    broker.add_argument(
        "--port", type=int, default=1883, help="TCP port, 0 for any free one (default: %(default)s)"
    )
    broker.set_defaults(handler=_run_broker)


def _run_broker(args: argparse.Namespace) -> int:
    """Run an embedded MQTT broker in the foreground until interrupted (Ctrl-C)."""
    # Imported here so that `dispenser-hub --help` and other subcommands do not load amqtt.
    from dispenser_hub.adapters.mqtt.embedded_broker import EmbeddedBroker  # noqa: PLC0415

    async def serve() -> None:
        async with EmbeddedBroker(args.host, args.port) as broker:
            sys.stdout.write(f"MQTT broker listening on {broker.url} (Ctrl-C to stop)\n")
            sys.stdout.flush()
            await asyncio.Event().wait()  # until cancelled by Ctrl-C

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the chosen subcommand, return its exit code."""
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
