"""A simulated dispenser of either family: a sans-I/O state machine implementing ``SimulatedDevice``.

The dispenser behaves as PROTOCOL.md asks of a firmware: birth on every connection (``seq`` 0 after a
boot), retained ``state``, heartbeats, a signed Last Will, signed uplink with per-boot sequence numbers,
an offline buffer replayed in order after the next birth, verified downlink (unsigned or wrongly signed
commands are refused with ``cmd.nack`` and never acted on), the retained config applied and acknowledged
with its version. It keeps its schedule locally, so it reminds and dispenses while offline.

Time: the driver passes simulated time; the device's own clock is simulated time plus ``clock_offset_ms``
(clock drift), and every timestamp it sends is its own clock's. Doses (``doses``), downlink handling
(``commands``) and misbehaviour (``hostile``) live in their own modules.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device_sim.device import commands, doses, faults
from device_sim.device.outbox import Outbox
from device_sim.ports import FaultEvent, FaultModel, Output, PatientModel, Publish, Truth
from firmware_protocol import DownlinkCheck, KeyRing, device_subscriptions, enrollment_subscriptions, new_ulid
from firmware_protocol.messages import (
    MESSAGE_TYPES,
    Birth,
    BootReason,
    Config,
    Death,
    DeathReason,
    Family,
    Heartbeat,
    ProvisionRequest,
    State,
    Supply,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from device_sim.device.identity import DeviceIdentity
    from device_sim.device.supply import Roll, Tray
    from firmware_protocol.messages import Body

DEFAULT_HEARTBEAT_S = 300
"""Heartbeat interval before a config says otherwise."""
UNTAKEN_TRAY_CAPACITY = 10
"""Untaken pouches a multidose device can lock away before ``fault.tray_full``."""


@dataclass(order=True, frozen=True, slots=True)
class Timer:
    """Something due at simulated time ``at``; ``generation`` voids timers of a replaced schedule."""

    at: int
    order: int
    kind: str = field(compare=False)
    key: str = field(compare=False, default="")
    generation: int = field(compare=False, default=0)


@dataclass
class Dispenser:
    """One simulated dispenser. Construct with ``Dispenser.create``; drive through ``SimulatedDevice``."""

    identity: DeviceIdentity
    patient: PatientModel
    fault_model: FaultModel
    seed: int
    outbox: Outbox
    roll: Roll | None = None
    tray: Tray | None = None
    config: Config | None = None
    clock_offset_ms: int = 0
    clock_synced: bool = True
    connection: int = -1
    boot_reason: BootReason = BootReason.POWER_ON
    locked: bool = False
    paused_until: int | None = None
    paused: bool = False
    battery: float = 100.0
    """Charge in percent; reported rounded down."""
    on_mains: bool = True
    powered: bool = True
    network_down_until: int = 0
    untaken_in_tray: int = 0
    booted_at: int = 0
    active_faults: set[str] = field(default_factory=set)
    warned: set[str] = field(default_factory=set)
    """Supply warnings already sent for the current roll or tray."""
    battery_updated_at: int = 0
    pending_faults: dict[str, FaultEvent] = field(default_factory=dict)
    timeline: list[tuple[int, str, dict[str, object]]] = field(default_factory=list)
    """Scripted actions: (simulated time, kind, parameters); see ``faults.on_timeline``."""
    loader: Callable[[int, bool], Roll | Tray] | None = None
    """Makes the next roll or tray a helper loads: ``loader(now_ms, wrong_patient)``."""
    unreadable_next: bool = False
    """The next pouch read fails (an injected ``pouch_unreadable`` fault)."""
    slots: dict[str, doses.SlotState] = field(default_factory=dict)
    generation: int = 0
    timers: list[Timer] = field(default_factory=list)
    seen_commands: dict[str, None] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def create(
        cls,
        identity: DeviceIdentity,
        patient: PatientModel,
        fault_model: FaultModel,
        *,
        seed: int,
        now_ms: int,
        roll: Roll | None = None,
        tray: Tray | None = None,
    ) -> Dispenser:
        """A powered-on device at ``now_ms`` with its roll or tray loaded (and, for a roll, locked)."""
        device = cls(
            identity,
            patient,
            fault_model,
            seed,
            Outbox(identity.device_id, identity.signer),
            roll=roll,
            tray=tray,
            rng=random.Random(seed),
        )
        device.outbox.new_boot(new_ulid(now_ms, device.rng.randbytes(10)))
        device.booted_at = device.battery_updated_at = now_ms
        device.locked = roll is not None and not roll.accepted
        device.schedule(now_ms, "heartbeat")
        faults.schedule_next(device, now_ms)
        return device

    # -- time ------------------------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        """The device id (``SimulatedDevice``)."""
        return self.identity.device_id

    @property
    def family(self) -> Family:
        """Multidose roll or dose pot."""
        return self.identity.family

    def device_time(self, now_ms: int) -> int:
        """The device's own clock at simulated time ``now_ms``."""
        return now_ms + self.clock_offset_ms

    def schedule(self, at_ms: int, kind: str, key: str = "", *, generation: int | None = None) -> None:
        """Run ``kind`` (with ``key``) at simulated time ``at_ms``."""
        gen = self.generation if generation is None else generation
        heapq.heappush(self.timers, Timer(at_ms, next(self._order), kind, key, gen))

    def next_wakeup(self) -> int | None:
        """The earliest timer (``SimulatedDevice``)."""
        return self.timers[0].at if self.timers else None

    def truth(self, now_ms: int, kind: str, **data: object) -> Truth:
        """A ground-truth record at simulated time ``now_ms``."""
        return Truth(now_ms, self.device_id, kind, data)

    def advance(self, now_ms: int) -> list[Output]:
        """Run every timer due up to ``now_ms``, in time order (``SimulatedDevice``)."""
        out: list[Output] = []
        while self.timers and self.timers[0].at <= now_ms:
            timer = heapq.heappop(self.timers)
            out += self._run(timer, timer.at)
        return out

    def _run(self, timer: Timer, now_ms: int) -> list[Output]:
        if timer.kind == "heartbeat":
            return self._heartbeat(now_ms)
        if timer.kind.startswith("dose."):
            if timer.generation != self.generation:
                return []  # a slot of a schedule that was replaced
            return doses.on_timer(self, timer.kind, timer.key, now_ms)
        if timer.kind.startswith("fault."):
            return faults.on_timer(self, timer.kind, timer.key, now_ms)
        if timer.kind == "timeline":
            return faults.on_timeline(self, timer.key, now_ms)
        msg = f"unknown timer {timer.kind}"
        raise ValueError(msg)

    # -- connection ------------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Enrollment topic until enrolled, then commands and config (``SimulatedDevice``)."""
        if not self.identity.enrolled:
            return enrollment_subscriptions(self.device_id)
        return device_subscriptions(self.device_id)

    def link_wanted(self, now_ms: int) -> bool:
        """No link while powered off or during a network outage (``SimulatedDevice``)."""
        return self.powered and now_ms >= self.network_down_until

    def will(self, now_ms: int) -> Publish:
        """The signed Last Will for the next connection: ``death`` with that connection's number."""
        body = Death(connection=self.connection + 1, reason=DeathReason.CONNECTION_LOST)
        return self.outbox.sign(self.outbox.envelope(body, self.device_time(now_ms)))

    def on_connected(self, now_ms: int) -> list[Output]:
        """Enrol, or send birth and state and then everything buffered, in order.

        Until it has enrolled a device only asks for its certificate: events wait in the buffer (a real
        device holds no certificate to publish them with) and go out after the first birth.
        """
        self.outbox.online = self.identity.enrolled
        out: list[Output] = [self.truth(now_ms, "device.online", connection=self.connection + 1)]
        if not self.identity.enrolled:
            return [*out, self._provision_request(now_ms)]
        self.connection += 1
        ts = self.device_time(now_ms)
        out.append(self.outbox.send_now(self.birth(now_ms), ts))
        out.append(self.outbox.send_now(self._state(now_ms), ts))
        self.boot_reason = BootReason.UNKNOWN
        return out + list(self.outbox.flush())

    def on_disconnected(self, now_ms: int) -> list[Output]:
        """The link is gone: buffer from now on."""
        self.outbox.online = False
        return [self.truth(now_ms, "device.offline")]

    def _provision_request(self, now_ms: int) -> Publish:
        code = self.identity.enrollment_code or "0000-0000-0000"
        body = ProvisionRequest(
            enrollment_code=code,
            csr=self.identity.csr_pem(),
            serial=self.identity.serial,
            family=self.family,
            model=self.identity.model,
            firmware=self.identity.firmware,
        )
        return self.outbox.sign(self.outbox.envelope(body, self.device_time(now_ms)))

    def on_message(self, topic: str, payload: bytes, now_ms: int) -> list[Output]:
        """A downlink message: verify, check, act, answer (``SimulatedDevice``)."""
        return commands.handle(self, topic, payload, now_ms)

    def hub_keys(self) -> KeyRing:
        """The keys downlink must be signed with: the hub key learned at enrollment."""
        ring = KeyRing()
        if self.identity.hub_key is not None:
            ring.add(None, self.identity.hub_key)
        return ring

    def downlink_check(self) -> DownlinkCheck:
        """The device-side checks on verified downlink."""
        return DownlinkCheck(self.device_id)

    # -- periodic and state messages --------------------------------------------------------------------

    def _heartbeat(self, now_ms: int) -> list[Output]:
        interval = self.config.heartbeat_s if self.config else DEFAULT_HEARTBEAT_S
        self.schedule(now_ms + interval * 1000, "heartbeat")
        out = faults.update_battery(self, now_ms)
        if not self.outbox.online or not self.identity.enrolled:
            return out  # heartbeats are liveness: stale ones are not worth buffering
        body = Heartbeat(
            uptime_s=max(0, now_ms - self.booted_at) // 1000,
            battery_pct=self.battery_pct,
            on_mains=self.on_mains,
            buffered=self.outbox.buffered,
            schedule_version=self.config.version if self.config else None,
        )
        return out + self.outbox.send(body, self.device_time(now_ms))

    def supply(self, now_ms: int) -> Supply:
        """Doses left in the device and the due time of the last one."""
        device_now = self.device_time(now_ms)
        if self.roll is not None:
            times = [p.intake_ms for p in self.roll.left(device_now)]
        elif self.tray is not None:
            times = [self.tray.pots[p] for p in self.tray.left(device_now)]
        else:
            times = []
        return Supply(doses_left=len(times), until=max(times) if times else None)

    def birth(self, now_ms: int) -> Birth:
        """The birth message for the current connection."""
        return Birth(
            family=self.family,
            model=self.identity.model,
            firmware=self.identity.firmware,
            serial=self.identity.serial,
            protocols=["1.0"],
            capabilities=["tilt", "lid_sensor", "battery"],
            connection=self.connection,
            buffered=self.outbox.buffered,
            boot_reason=self.boot_reason,
            schedule_version=self.config.version if self.config else None,
            battery_pct=self.battery_pct,
            on_mains=self.on_mains,
            supply=self.supply(now_ms),
            clock_synced=self.clock_synced,
            locked=self.locked,
            paused=self.paused,
        )

    def _state(self, now_ms: int) -> State:
        return State(
            connection=self.connection,
            schedule_version=self.config.version if self.config else None,
            battery_pct=self.battery_pct,
            on_mains=self.on_mains,
            supply=self.supply(now_ms),
            locked=self.locked,
            paused=self.paused,
            faults=sorted(self.active_faults),
        )

    def state_changed(self, now_ms: int) -> list[Output]:
        """Publish the retained ``state`` snapshot now (only when online: it is a snapshot, not an event)."""
        if not self.outbox.online or not self.identity.enrolled:
            return []
        return [self.outbox.send_now(self._state(now_ms), self.device_time(now_ms))]

    def reboot(self, now_ms: int, reason: BootReason) -> list[Output]:
        """Restart: new boot id and numbering; volatile state is lost, the buffer and config are kept."""
        self.outbox.new_boot(new_ulid(self.device_time(now_ms), self.rng.randbytes(10)))
        self.booted_at = now_ms
        self.connection = -1
        self.boot_reason = reason
        self.seen_commands.clear()
        return [self.truth(now_ms, "reboot", reason=reason.value)]

    def fault_body(self, fault_type: str, detail: str | None = None) -> Body:
        """The body of the fault event ``fault_type`` (e.g. ``fault.jam``)."""
        return MESSAGE_TYPES[fault_type].model_validate({"detail": detail} if detail else {})

    def add_timeline(self, at_ms: int, kind: str, params: dict[str, object]) -> None:
        """Script an action at simulated time ``at_ms`` (``network_down``, ``fault``, ``hostile``, ...)."""
        self.timeline.append((at_ms, kind, params))
        self.schedule(at_ms, "timeline", str(len(self.timeline) - 1))

    @property
    def battery_pct(self) -> int:
        """Battery charge as reported, whole percent."""
        return int(self.battery)

    def untaken_full(self) -> bool:
        """Whether the untaken-dose tray has no room left."""
        return self.family is Family.MULTIDOSE_ROLL and self.untaken_in_tray >= UNTAKEN_TRAY_CAPACITY
