"""The demo's simulated dispensers: a ``device_sim`` scenario run over MQTT in a background thread.

``python3 tasks.py run`` shows a fleet of both dispenser families served by the hub. The fleet runs on its
own event loop in a daemon thread, on accelerated simulated time (``device_sim.clock.ScaledClock``) that
the hub follows too. Each device enrolls with the code the hub issued when the demo registered it.
``keys`` and ``clocks`` tell the inspector how to verify the fleet's messages and which clock their
timestamps follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING

from device_sim.build import build
from device_sim.runner import SimulationRun, inspector_keys
from device_sim.scenario import load_shipped, parse_scenario, shipped_scenario_names

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from device_sim.clock import ScaledClock
    from device_sim.scenario import Scenario
    from firmware_protocol.broker import BrokerAddress

STOP_TIMEOUT_S = 10.0


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, else a scenario file (``ScenarioError``/``OSError`` if unusable)."""
    name = str(name_or_path)
    if name in shipped_scenario_names():
        return load_shipped(name)
    with open(name, encoding="utf-8") as file:  # noqa: PTH123 - str or Path
        return parse_scenario(file.read(), file=name)


class DemoFleet:
    """A scenario's devices and stand-in hub, running over ``address`` until ``stop``."""

    def __init__(
        self,
        scenario: Scenario,
        address: BrokerAddress,
        *,
        clock: ScaledClock,
        enrollment_codes: Mapping[str, str],
        truth_path: Path | None = None,
    ) -> None:
        """Build the devices (nothing connects before ``start``)."""
        self.scenario = scenario
        self.built = build(scenario, standalone=False, enrollment_codes=enrollment_codes)
        self.clock = clock
        self._address = address
        self._truth_path = truth_path
        self._run: SimulationRun | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None

    @property
    def keys(self) -> dict[str, object]:
        """The inspector key file's content for the fleet's device keys."""
        return inspector_keys(self.built)

    @property
    def clocks(self) -> dict[str, Callable[[], int]]:
        """Each simulated device id mapped to the simulated clock its messages are stamped with."""
        return {device.device_id: self.clock.now_ms for device in self.built.devices}

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the thread and wait until the stand-in is connected (raises what stopped it)."""
        self._thread = threading.Thread(target=self._main, name="demo-fleet", daemon=True)
        self._thread.start()
        self._started.wait(timeout_s)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Disconnect every device gracefully and wait for the thread."""
        loop, run = self._loop, self._run
        if loop is not None and run is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop finished in the meantime
                loop.call_soon_threadsafe(run.request_stop)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # noqa: BLE001 - reported to the starting thread
            self.error = exc
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        run = SimulationRun(self.built, self._address, self.clock, truth_path=self._truth_path)
        self._run = run
        async with run:
            self._started.set()
            await run.run_until(self.scenario.end_ms)
