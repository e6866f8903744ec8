"""Run a built scenario over a real MQTT broker: the fleet of dispensers, the stand-in hub, the ground truth.

``SimulationRun`` wires what ``device_sim.loopback`` wires in memory, over MQTT instead:

* a ``Fleet`` with one ``MqttLink`` per dispenser;
* in standalone mode, the stand-in hub on its own ``MqttLink`` (client id ``standin-<hex>``, subscribed to
  ``firmware_protocol.hub_subscriptions()``, no will). Every uplink message goes to ``StandIn.on_message``
  at the clock's time and every reply is published with its retain flag; a task calls ``StandIn.tick``
  whenever the clock reaches ``next_config_ms`` (the daily configs);
* the ground truth, to a ``TruthLog`` file (truncated at start), an in-memory list, or both.

Start-up order (``start``): the stand-in link is connected *and subscribed* first, so the devices' first
births reach it; then it publishes the first configs (retained, and acknowledged by the broker before any
device connects, which replaces retained configs a previous run left on the broker); then the fleet starts.
``stop`` disconnects everything gracefully (no wills) and closes the truth file.

Ground-truth timestamps: everything driven by a device's own timers (doses, faults, the timeline) carries
the timer's simulated time, so it does not depend on delivery timing; what a received message causes
(``roll.verdict``, ``schedule.applied``) carries the simulated time it arrived.

``population`` builds a ``Scenario`` for ``dispenser-sim run --devices N`` by writing scenario YAML and
parsing it (one code path with scenario files); ``write_inspector_keys`` writes the key file of
``dispenser-hub inspect --keys``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from device_sim.fleet import DEFAULT_CONNECT_RATE, Fleet, FleetStats
from device_sim.scenario import parse_scenario
from device_sim.timespec import iso_utc
from device_sim.transport import MqttLink
from device_sim.truth import TruthKind, TruthLog
from firmware_protocol import hub_subscriptions
from firmware_protocol.broker import BrokerAddress
from firmware_protocol.signing import b64url, raw_public_key

if TYPE_CHECKING:
    import ssl
    from collections.abc import Coroutine, Mapping

    from device_sim.build import Built
    from device_sim.ports import Clock, Publish, Truth
    from device_sim.scenario import Scenario
    from device_sim.standin import StandIn

STANDIN_READY_TIMEOUT_S = 10.0
"""How long ``start`` waits for the stand-in's connection (and its first configs' acknowledgements)."""


class BrokerUnavailableError(ConnectionError):
    """The stand-in could not connect to the broker (the message names it)."""


@dataclass(frozen=True, slots=True)
class RunStats:
    """A snapshot of a run for a progress display: the fleet's figures and the truth so far."""

    sim_ms: int
    fleet: Mapping[str, object]
    """``FleetStats.as_dict()``."""
    due: int
    taken: int
    missed: int
    faults: int
    """``fault.raised`` records."""
    hostile: int
    """Hostile messages sent (the ``count`` of ``hostile.sent`` records)."""
    standin_in: int
    standin_out: int

    def as_dict(self) -> dict[str, object]:
        """The snapshot as plain data (for JSON)."""
        return {
            "sim_ms": self.sim_ms,
            "sim_time": iso_utc(self.sim_ms),
            **self.fleet,
            "due": self.due,
            "taken": self.taken,
            "missed": self.missed,
            "faults": self.faults,
            "hostile": self.hostile,
            "standin_in": self.standin_in,
            "standin_out": self.standin_out,
        }


class _Tally:
    """Counts the truth records the progress display shows."""

    def __init__(self) -> None:
        self.due = self.taken = self.missed = self.faults = self.hostile = 0

    def add(self, record: Truth) -> None:
        match record.kind:
            case TruthKind.DOSE_DUE:
                self.due += 1
            case TruthKind.DOSE_TAKEN:
                self.taken += 1
            case TruthKind.DOSE_MISSED:
                self.missed += 1
            case TruthKind.FAULT_RAISED:
                self.faults += 1
            case TruthKind.HOSTILE_SENT:
                count = record.data.get("count", 1)
                self.hostile += count if isinstance(count, int) else 1
            case _:
                pass


class SimulationRun:
    """A built scenario running over a broker; ``async with`` it, then ``run_until`` (see the module doc)."""

    def __init__(
        self,
        built: Built,
        broker: BrokerAddress | str,
        clock: Clock,
        *,
        truth_path: str | Path | None = None,
        keep_records: bool = False,
        connect_rate: float = DEFAULT_CONNECT_RATE,
        backoff: tuple[float, float] = (1.0, 30.0),
        tls: ssl.SSLContext | None = None,
        seed: int | None = None,
    ) -> None:
        """Prepare a run (nothing connects before ``start``).

        ``truth_path``: the ground truth's JSON Lines file (truncated; parent folders created).
        ``keep_records``: also keep every record in ``records``. ``seed``: reconnect jitter.
        """
        self.address = BrokerAddress.parse(broker) if isinstance(broker, str) else broker
        self.clock = clock
        self.devices = built.devices
        self.standin: StandIn | None = built.standin
        self.records: list[Truth] = []
        self.truth_path = Path(truth_path) if truth_path is not None else None
        self._keep = keep_records
        self._tls = tls if tls is not None else self.address.ssl_context()
        self._tally = _Tally()
        self._log: TruthLog | None = None
        self.fleet = Fleet(
            self.address,
            clock,
            truth_sink=self._truth,
            connect_rate=connect_rate,
            backoff=backoff,
            tls=self._tls,
            seed=seed,
        )
        self.fleet.extend(built.devices)
        self.standin_link: MqttLink | None = None
        if self.standin is not None:
            self.standin_link = MqttLink(
                self.address,
                f"standin-{secrets.token_hex(6)}",
                subscriptions=hub_subscriptions(),
                on_message=self._standin_message,
                on_error=self._standin_error,
                backoff=backoff,
                tls=self._tls,
            )
        self._standin_in = 0
        self._standin_out = 0
        self._ticker: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._started = False
        self._stopped = False

    # -- life cycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the truth file, connect the stand-in, publish the first configs, then start the fleet.

        On failure (``BrokerUnavailableError``, an unwritable truth file) everything started so far is
        stopped again before the exception propagates: no link keeps retrying and no file stays open.
        """
        if self._started:
            return
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        if self.truth_path is not None:
            self.truth_path.parent.mkdir(parents=True, exist_ok=True)
            self.truth_path.write_text("", encoding="utf-8")
            self._log = TruthLog(self.truth_path)
        link = self.standin_link
        if link is not None:
            link.connect()
            try:
                async with asyncio.timeout(STANDIN_READY_TIMEOUT_S):
                    await self._unless_stopped(link.wait_ready())
                    self._tick_standin()
                    while link.counters.acked < link.counters.published:  # noqa: ASYNC110 - paho has no await
                        await asyncio.sleep(0.005)
            except TimeoutError:
                detail = f" ({link.counters.last_error})" if link.counters.last_error else ""
                msg = (
                    f"no connection to the broker at {self.address.url} within {STANDIN_READY_TIMEOUT_S:g} s"
                )
                raise BrokerUnavailableError(msg + detail) from None
            self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="standin-tick")
        try:
            await self.fleet.start()
        except OSError as exc:  # the broker's name does not resolve (the stand-in retries until its timeout)
            msg = f"no connection to the broker at {self.address.url}: {exc}"
            raise BrokerUnavailableError(msg) from None

    async def _unless_stopped(self, waiting: Coroutine[object, object, None]) -> None:
        """Wait for ``waiting`` unless ``request_stop`` comes first (Ctrl-C while the broker is silent)."""
        done = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({done, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (done, stop):
                future.cancel()
            await asyncio.gather(done, stop, return_exceptions=True)
        if done.cancelled():
            msg = f"stopped while waiting for the broker at {self.address.url}"
            raise BrokerUnavailableError(msg)
        done.result()

    async def stop(self) -> None:
        """Stop the devices and the stand-in, disconnect gracefully, close the truth file; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        await self.fleet.stop()
        if self.standin_link is not None:
            await self.standin_link.close()
        if self._log is not None:
            self._log.close()

    async def __aenter__(self) -> SimulationRun:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def request_stop(self) -> None:
        """Make ``run_until`` return now (e.g. on Ctrl-C); call ``stop`` afterwards.

        While ``start`` still waits for the broker, it gives up at once (``BrokerUnavailableError``).
        """
        self._stop_requested.set()

    async def run_until(self, end_ms: int | None) -> bool:
        """Run until simulated time ``end_ms`` (``None``: until ``request_stop``); True if it was reached."""
        if not self._started:
            await self.start()
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(self._wait_stop())}
        if end_ms is not None:
            waits.add(asyncio.ensure_future(self._wait_clock(end_ms)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return end_ms is not None and self.clock.now_ms() >= end_ms

    async def _wait_stop(self) -> object:
        return await self._stop_requested.wait()

    async def _wait_clock(self, end_ms: int) -> object:
        # The shipped clocks never wake a sleeper early, but a caller's ``Clock`` might: sleep again until the
        # end has really been reached (the run's result says whether it was).
        while self.clock.now_ms() < end_ms:
            await self.clock.sleep_until(end_ms)
        return None

    # -- figures -------------------------------------------------------------------------------------------

    @property
    def fleet_stats(self) -> FleetStats:
        """The fleet's live figures."""
        return self.fleet.stats

    @property
    def stats(self) -> RunStats:
        """A snapshot for the progress display."""
        t = self._tally
        return RunStats(
            sim_ms=self.clock.now_ms(),
            fleet=self.fleet.stats.as_dict(),
            due=t.due,
            taken=t.taken,
            missed=t.missed,
            faults=t.faults,
            hostile=t.hostile,
            standin_in=self._standin_in,
            standin_out=self._standin_out,
        )

    # -- internals -----------------------------------------------------------------------------------------

    def _truth(self, record: Truth) -> None:
        self._tally.add(record)
        if self._keep:
            self.records.append(record)
        if self._log is not None:
            self._log.write(record)

    def _publish(self, replies: list[Publish]) -> None:
        link = self.standin_link
        assert link is not None  # noqa: S101 - only called in standalone mode
        for reply in replies:
            if link.publish(reply.topic, reply.payload, retain=reply.retain):
                self._standin_out += 1

    def _standin_message(self, topic: str, payload: bytes) -> None:
        assert self.standin is not None  # noqa: S101 - the link exists only with a stand-in
        self._standin_in += 1
        self._publish(self.standin.on_message(topic, payload, self.clock.now_ms()))

    def _standin_error(self, text: str) -> None:
        stats = self.fleet.stats
        stats.errors += 1
        stats.last_error = f"stand-in: {text}"

    def _tick_standin(self) -> None:
        assert self.standin is not None  # noqa: S101 - only called in standalone mode
        self._publish(self.standin.tick(self.clock.now_ms()))

    async def _tick_loop(self) -> None:
        standin = self.standin
        assert standin is not None  # noqa: S101 - only started in standalone mode
        while True:
            await self.clock.sleep_until(standin.next_config_ms)
            if self.clock.now_ms() >= standin.next_config_ms:
                self._tick_standin()


# -- scenarios without a file ----------------------------------------------------------------------------

FAMILY_NAMES: Mapping[str, str] = {"roll": "multidose_roll", "pot": "dose_pot"}
"""``--families`` names and the scenario family each stands for."""
BEHAVIOURS = ("adherent", "late", "forgetful", "confused", "early")
DEFAULT_FAMILIES: Mapping[str, int] = {"roll": 60, "pot": 40}
DEFAULT_BEHAVIOURS: Mapping[str, int] = {
    "adherent": 70,
    "late": 10,
    "forgetful": 10,
    "confused": 5,
    "early": 5,
}
_DOSE_TIMES = {"multidose_roll": '["08:00", "14:00", "20:00"]', "dose_pot": '["09:00", "21:00"]'}
FOREVER_DURATION_MS = 366 * 86_400_000
"""The scenario span of an endless population run (the longest a scenario may be)."""


def split(total: int, mix: Mapping[str, int]) -> dict[str, int]:
    """Share ``total`` by percentages (largest remainder; ties in ``mix`` order); zero shares left out."""
    weight = sum(mix.values())
    if weight <= 0:
        msg = "a mix needs at least one positive share"
        raise ValueError(msg)
    exact = {name: total * share / weight for name, share in mix.items()}
    counts = {name: int(value) for name, value in exact.items()}
    order = sorted(mix, key=lambda name: -(exact[name] - counts[name]))
    for name in order[: total - sum(counts.values())]:
        counts[name] += 1
    return {name: count for name, count in counts.items() if count > 0}


def population(
    devices: int,
    *,
    start_ms: int,
    duration_ms: int | None = None,
    families: Mapping[str, int] = DEFAULT_FAMILIES,
    behaviours: Mapping[str, int] = DEFAULT_BEHAVIOURS,
    seed: int = 1,
    faults: str = "default",
    id_prefixes: Mapping[str, str] | None = None,
    name: str = "population",
) -> Scenario:
    """A scenario of ``devices`` dispensers mixed by family and behaviour (percentages), without a file.

    Families are ``roll`` and ``pot`` (``FAMILY_NAMES``); behaviours are the ``device_sim.patient`` models
    with their default parameters. Roll devices take doses at 08:00, 14:00 and 20:00, pot devices at 09:00
    and 21:00. ``duration_ms`` ``None`` means ``FOREVER_DURATION_MS``. ``id_prefixes`` maps a family name
    to a device id prefix. Unknown family or behaviour names (also as ``id_prefixes`` keys) are a
    ``ValueError``; the YAML is parsed like a file (``ScenarioError`` for bad values).
    """
    unknown = (
        (set(families) - set(FAMILY_NAMES))
        | (set(behaviours) - set(BEHAVIOURS))
        | (set(id_prefixes or ()) - set(FAMILY_NAMES))
    )
    if unknown:
        msg = f"unknown families or behaviours: {', '.join(sorted(unknown))}"
        raise ValueError(msg)
    span = FOREVER_DURATION_MS if duration_ms is None else duration_ms
    lines = [
        f"name: {json.dumps(name)}",
        f"seed: {seed}",
        f"start: {json.dumps(iso_utc(start_ms))}",
        f"duration: {max(1, span // 1000)}s",
        "population:",
    ]
    for family, family_count in split(devices, families).items():
        full = FAMILY_NAMES[family]
        for behaviour, count in split(family_count, behaviours).items():
            lines += [
                f"  - count: {count}",
                f"    family: {full}",
                f"    doses: {_DOSE_TIMES[full]}",
                f"    behaviour: {{model: {behaviour}}}",
                f"    faults: {faults}",
            ]
            if id_prefixes and family in id_prefixes:
                lines.append(f"    id_prefix: {json.dumps(id_prefixes[family])}")
    return parse_scenario("\n".join(lines) + "\n", file=f"<--devices {devices}>")


def inspector_keys(built: Built) -> dict[str, object]:
    """The inspector key file's content: the stand-in hub key and every device's public key."""
    hub = [b64url(raw_public_key(built.standin.signer.public_key))] if built.standin is not None else []
    devices = {d.device_id: [b64url(raw_public_key(d.identity.signer.public_key))] for d in built.devices}
    return {"hub": hub, "devices": devices}


def write_inspector_keys(path: str | Path, built: Built) -> None:
    """Write the key file ``dispenser-hub inspect --keys`` reads: ``{"hub": [...], "devices": {...}}``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(inspector_keys(built), indent=2) + "\n", encoding="utf-8")
