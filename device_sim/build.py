"""Turn a scenario into simulated dispensers (and, in standalone mode, the stand-in hub that serves them).

Each ``DeviceSpec`` becomes a ``Dispenser`` with its own reproducible key, patient model, fault model and
scripted timeline. Supply (``supply_loader``): one minute into the run a helper loads a multidose device
with a two-week roll packed for its patient (it stays locked until the hub accepts the roll) and a
dose-pot device with a tray filled with its next 28 doses (``tray.loaded``). A "wrong roll" is packed for
another patient (a different printed reference); the right roll after it is the patient's own roll again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from device_sim.device.dispenser import Dispenser
from device_sim.device.identity import DeviceIdentity
from device_sim.device.supply import ROLL_DAYS, TRAY_POTS, Roll, Tray
from device_sim.standin import Binding, DosePlan, StandIn
from firmware_protocol.messages import Family, Reminders

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from device_sim.scenario import DeviceSpec, Scenario

DAY_MS = 86_400_000
ROLL_LOAD_DELAY_MS = 60_000
"""The first roll or tray is loaded a minute into the run, after the device's first birth."""


@dataclass(frozen=True, slots=True)
class Built:
    """A scenario's devices, and the stand-in hub serving them (``None`` when a real hub does)."""

    devices: list[Dispenser]
    standin: StandIn | None


def plan_of(spec: DeviceSpec) -> DosePlan:
    """The stand-in's dose plan for a device: its wall-clock times, window and reminder ladder."""
    r = spec.reminders
    return DosePlan(
        times=spec.dose_times,
        early_min=spec.window.opens_before_ms // 60_000,
        window_min=spec.window.closes_after_ms // 60_000,
        reminders=Reminders(
            notice_before_s=r.notice_before_s,
            sound_after_s=r.sound_after_s,
            repeat_every_s=r.repeat_every_s,
            repeat_max=r.repeat_max,
        ),
    )


def supply_loader(spec: DeviceSpec) -> Callable[[int, bool], Roll | Tray]:
    """What a helper loads into ``spec``'s dispenser at ``now_ms``: ``load(now_ms, wrong_patient)``.

    A tray is filled with the next ``TRAY_POTS`` doses. A roll is packed with the next ``ROLL_DAYS`` of
    doses (``R-<device index>-<load number>``), printed for another patient when ``wrong_patient``; but a
    right roll while the patient's own roll still has pouches to come is that roll again (the helper who
    loaded the wrong roll by mistake puts the right one back; nobody opens a new roll mid-roll). Pure
    apart from its own count and memory, so a hub's pharmacy can predict every roll (``device_sim``
    callers pass the same times).
    """
    loads = 0
    own: Roll | None = None

    def load(now_ms: int, wrong_patient: bool) -> Roll | Tray:  # noqa: FBT001 - the loader's signature
        nonlocal loads, own
        if (
            spec.family is Family.MULTIDOSE_ROLL
            and not wrong_patient
            and own is not None
            and own.left(now_ms)
        ):
            return own
        loads += 1
        doses = [d.due_ms for d in spec.doses(now_ms, now_ms + ROLL_DAYS * DAY_MS)]
        if spec.family is Family.DOSE_POT:
            return Tray.fill(f"T-{spec.index:06d}-{loads:03d}", doses[:TRAY_POTS])
        owner = f"other-{spec.index:06d}" if wrong_patient else spec.patient_ref
        roll = Roll.pack(f"R-{spec.index:06d}-{loads:03d}", owner, doses)
        if not wrong_patient:
            own = roll
        return roll

    return load


def build_device(spec: DeviceSpec, *, hub: StandIn | None, enrollment_code: str | None = None) -> Dispenser:
    """One dispenser for ``spec``; with ``hub`` it is bound there (pre-enrolled unless a code is given)."""
    identity = DeviceIdentity.create(spec.device_id, spec.family, seed=spec.seed)
    if hub is not None:
        identity.enrollment_code = enrollment_code
        key = None if enrollment_code else identity.signer.public_key
        hub.bind(
            Binding(spec.device_id, spec.patient_ref, plan_of(spec), enrollment_code=enrollment_code), key
        )
        if enrollment_code is None:
            identity.hub_key = hub.signer.public_key
    device = Dispenser.create(identity, spec.patient, spec.faults, seed=spec.seed, now_ms=spec.start_ms)
    device.loader = supply_loader(spec)
    first = "load_roll" if spec.family is Family.MULTIDOSE_ROLL else "load_tray"
    device.add_timeline(spec.start_ms + ROLL_LOAD_DELAY_MS, first, {})  # the helper's first visit
    for action in spec.timeline:
        device.add_timeline(action.at_ms, action.kind.value, dict(action.params))
    return device


def build(
    scenario: Scenario, *, standalone: bool = True, enrollment_codes: Mapping[str, str] | None = None
) -> Built:
    """Every device of ``scenario``; in standalone mode also the stand-in hub, pre-enrolling them.

    Without the stand-in, a real hub serves the devices: ``enrollment_codes`` (device id -> the code the
    hub issued when the device was registered there) makes each device enroll with its code on first
    connect. A device without a code stays unenrolled (it cannot be served).
    """
    hub = StandIn() if standalone else None
    if hub is not None:
        hub.next_config_ms = scenario.start_ms
    devices = [build_device(spec, hub=hub) for spec in scenario.devices()]
    for device in devices if hub is None else ():
        device.identity.enrollment_code = (enrollment_codes or {}).get(device.device_id)
    return Built(devices, hub)
