"""Faults, power, network outages and scripted timeline actions of a simulated dispenser.

Each fault is reported the way PROTOCOL.md says: ``fault.<kind>`` when it starts and ``fault.cleared``
(or ``fault.mains_restored``) when it ends. Network outages and reboots are not reported by the device at
all: the hub sees the Last Will, then a birth. Battery: full on mains; on battery it drains about 4 % an
hour (a day's autonomy), ``fault.battery_low`` at 20 %, ``fault.battery_dead`` at 0 % (the device powers
off until mains returns, then boots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from device_sim.device import doses, hostile
from device_sim.device.supply import Roll, Tray
from device_sim.ports import FaultEvent, FaultKind
from firmware_protocol.messages import BootReason, Family, FaultCleared, RollLoaded, TrayLoaded

if TYPE_CHECKING:
    from device_sim.device.dispenser import Dispenser
    from device_sim.ports import Output

HOUR = 3_600_000
DRAIN_PCT_PER_HOUR = 4
CHARGE_PCT_PER_HOUR = 20
BATTERY_LOW_PCT = 20
REBOOT_MS = 30_000
"""A reboot keeps the device off the network this long."""
DEFAULT_DURATION_MS = {FaultKind.JAM: 2 * HOUR, FaultKind.LID_OPEN: 600_000, FaultKind.TILT: 1_800_000}
REPORTED = {
    FaultKind.JAM: "fault.jam",
    FaultKind.LID_OPEN: "fault.lid_open",
    FaultKind.TILT: "fault.tilted",
    FaultKind.BREAK_IN: "fault.break_in",
}
"""Faults with a raise and a clear event."""


def schedule_next(device: Dispenser, after_ms: int) -> None:
    """Ask the fault model for the next random fault and schedule it."""
    event = device.fault_model.next_fault(after_ms, device.rng)
    if event is not None:
        key = f"random:{event.at_ms}:{event.kind.value}"
        device.pending_faults[key] = event
        device.schedule(event.at_ms, "fault.start", key)


def inject(device: Dispenser, event: FaultEvent, now_ms: int) -> list[Output]:
    """Start a fault now (from the timeline)."""
    key = f"script:{now_ms}:{event.kind.value}:{len(device.pending_faults)}"
    device.pending_faults[key] = event
    return _start(device, key, now_ms)


def on_timer(device: Dispenser, kind: str, key: str, now_ms: int) -> list[Output]:
    """Run a fault timer: a start, an end, or a battery update."""
    if kind == "fault.start":
        out = _start(device, key, now_ms)
        if key.startswith("random:"):
            schedule_next(device, now_ms)
        return out
    if kind == "fault.end":
        return _end(device, key, now_ms)
    if not device.on_mains:
        device.schedule(now_ms + HOUR // 4, "fault.battery")
    return update_battery(device, now_ms)


def _raise(device: Dispenser, fault_type: str, now_ms: int, detail: str | None = None) -> list[Output]:
    device.active_faults.add(fault_type)
    out = device.outbox.send(device.fault_body(fault_type, detail), device.device_time(now_ms))
    return [*out, device.truth(now_ms, "fault.raised", fault=fault_type), *device.state_changed(now_ms)]


def _start(device: Dispenser, key: str, now_ms: int) -> list[Output]:  # noqa: PLR0911 - one branch a fault kind
    event = device.pending_faults[key]
    duration = event.duration_ms or DEFAULT_DURATION_MS.get(event.kind, 0)
    if event.kind in REPORTED:
        if duration:
            device.schedule(now_ms + duration, "fault.end", key)
        return _raise(device, REPORTED[event.kind], now_ms)
    device.pending_faults.pop(key)
    if event.kind is FaultKind.POUCH_UNREADABLE:
        if device.family is Family.MULTIDOSE_ROLL:
            device.unreadable_next = True
        return []
    if event.kind is FaultKind.MAINS_LOSS:
        return mains(device, now_ms, on=False, for_ms=duration or 6 * HOUR)
    if event.kind in {FaultKind.NETWORK_BLIP, FaultKind.NETWORK_OUTAGE}:
        return network_down(device, now_ms, duration or 60_000)
    if event.kind is FaultKind.CLOCK_DRIFT:
        device.clock_offset_ms += event.amount_ms
        if device.config is not None:
            doses.apply_schedule(device, device.config, now_ms)
        return [
            device.truth(now_ms, "clock.drift", amount_ms=event.amount_ms, offset_ms=device.clock_offset_ms)
        ]
    if event.kind is FaultKind.REBOOT:
        return network_down(device, now_ms, REBOOT_MS) + device.reboot(now_ms, BootReason.WATCHDOG)
    return []


def _end(device: Dispenser, key: str, now_ms: int) -> list[Output]:
    if key == "mains":
        return mains(device, now_ms, on=True)
    if key == "network":
        return [device.truth(now_ms, "network.up")]
    event = device.pending_faults.pop(key, None)
    fault_type = REPORTED.get(event.kind) if event else None
    if fault_type is None or fault_type not in device.active_faults:
        return []
    device.active_faults.discard(fault_type)
    out = device.outbox.send(FaultCleared(fault=fault_type), device.device_time(now_ms))
    return [*out, device.truth(now_ms, "fault.cleared", fault=fault_type), *device.state_changed(now_ms)]


def network_down(device: Dispenser, now_ms: int, for_ms: int) -> list[Output]:
    """The device's network is gone for ``for_ms``: the driver drops the link (the broker sends the will)."""
    device.network_down_until = max(device.network_down_until, now_ms + for_ms)
    device.schedule(device.network_down_until, "fault.end", "network")
    return [device.truth(now_ms, "network.down", until=device.network_down_until)]


def mains(device: Dispenser, now_ms: int, *, on: bool, for_ms: int = 0) -> list[Output]:
    """Mains power lost (for ``for_ms``) or restored."""
    update_battery(device, now_ms)
    if on == device.on_mains:
        return []
    device.on_mains = on
    device.battery_updated_at = now_ms
    if not on:
        device.schedule(now_ms + for_ms, "fault.end", "mains")
        device.schedule(now_ms + HOUR // 4, "fault.battery")
        return _raise(device, "fault.mains_lost", now_ms)
    device.active_faults -= {"fault.mains_lost", "fault.battery_low", "fault.battery_dead"}
    out: list[Output] = []
    if not device.powered:
        device.powered = True
        out += device.reboot(now_ms, BootReason.POWER_ON)
    body = device.fault_body("fault.mains_restored")
    out += device.outbox.send(body, device.device_time(now_ms))
    return [
        *out,
        device.truth(now_ms, "fault.cleared", fault="fault.mains_lost"),
        *device.state_changed(now_ms),
    ]


def update_battery(device: Dispenser, now_ms: int) -> list[Output]:
    """Charge or drain the battery since the last update; raise low/dead faults as they happen."""
    hours = max(0, now_ms - device.battery_updated_at) / HOUR
    device.battery_updated_at = now_ms
    if device.on_mains:
        device.battery = min(100.0, device.battery + hours * CHARGE_PCT_PER_HOUR)
        return []
    device.battery = max(0.0, device.battery - hours * DRAIN_PCT_PER_HOUR)
    out: list[Output] = []
    if device.battery_pct <= BATTERY_LOW_PCT and "fault.battery_low" not in device.active_faults:
        out += _raise(device, "fault.battery_low", now_ms)
    if device.battery_pct == 0 and device.powered:
        out += _raise(device, "fault.battery_dead", now_ms)
        device.powered = False
        out.append(device.truth(now_ms, "power.off"))
    return out


def on_timeline(device: Dispenser, key: str, now_ms: int) -> list[Output]:  # noqa: PLR0911 - one branch an action
    """Carry out the scripted action ``key`` (an index into ``device.timeline``)."""
    _, kind, params = device.timeline[int(key)]
    if kind == "network_down":
        return network_down(device, now_ms, int(str(params["for_ms"])))
    if kind == "reboot":
        return network_down(device, now_ms, REBOOT_MS) + device.reboot(now_ms, BootReason.USER)
    if kind == "mains_loss":
        return mains(device, now_ms, on=False, for_ms=int(str(params["for_ms"])))
    if kind == "fault":
        event = FaultEvent(FaultKind(str(params["kind"])), now_ms, int(str(params.get("for_ms", 0))))
        return inject(device, event, now_ms)
    if kind in {"load_roll", "load_wrong_roll", "load_tray"}:
        return load(device, now_ms, wrong_patient=kind == "load_wrong_roll")
    if kind == "hostile":
        return hostile.send(device, str(params["kind"]), int(str(params.get("count", 1))), now_ms)
    # Patient-side actions (scripted misses, absences) are carried out by the patient model; record them.
    return [device.truth(now_ms, f"patient.{kind}", **{k: str(v) for k, v in params.items()})]


def load(device: Dispenser, now_ms: int, *, wrong_patient: bool = False) -> list[Output]:
    """A helper loads a new roll (locked until the hub accepts it) or a freshly filled tray."""
    if device.loader is None:
        return []
    supply = device.loader(now_ms, wrong_patient)
    device.warned.clear()
    if isinstance(supply, Roll):
        device.roll, device.locked, device.untaken_in_tray = supply, True, 0
        device.active_faults.discard("fault.tray_full")
        times = [p.intake_ms for p in supply.pouches]
        body: RollLoaded | TrayLoaded = RollLoaded(
            roll_id=supply.roll_id,
            printed_patient_ref=supply.printed_patient_ref,
            first_intake=min(times, default=None),
            last_intake=max(times, default=None),
            pouches=len(times),
        )
        truth = device.truth(now_ms, "roll.loaded", roll_id=supply.roll_id, wrong_patient=wrong_patient)
    else:
        assert isinstance(supply, Tray)  # noqa: S101 - the loader returns a roll or a tray
        device.tray = supply
        body = TrayLoaded(tray_id=supply.tray_id, pots_filled=len(supply.pots))
        truth = device.truth(now_ms, "tray.loaded", tray_id=supply.tray_id)
    out = device.outbox.send(body, device.device_time(now_ms))
    return [*out, truth, *device.state_changed(now_ms)]
