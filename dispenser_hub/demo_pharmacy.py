"""The demo's office work: a patient per simulated dispenser, bound to it, and the pharmacy's roll manifests.

So that the demo shows the hub's real work (roll verdicts, schedules, "no schedule" and wrong-roll alarms)
instead of refusing every roll for want of a manifest:

- every device of the scenario gets a patient ("Demo patient N", a synthetic national id number: month
  + 80, never a real person), bound to it as an operator would;
- every roll the scenario's helpers will load into a multidose dispenser gets its manifest, predicted with
  the simulator's own ``supply_loader`` at the times the scenario loads them (the first roll
  ``ROLL_LOAD_DELAY_MS`` after the start, then each ``load_roll``/``load_wrong_roll`` of the timeline in
  time order). A wrong roll is printed for another demo patient, who has no dispenser: the hub refuses it
  as another patient's roll (VKP 3.5), as it would a real mix-up.

- every dose-pot dispenser's patient gets a dosett plan (the scenario's dose times, every day) and the
  fill of the first tray the simulator's helper puts in (``T-<device index>-001``, ``ROLL_LOAD_DELAY_MS``
  after the start), registered as the home-care nurse would before the tray goes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from device_sim.build import ROLL_LOAD_DELAY_MS, supply_loader
from device_sim.device.supply import Roll, Tray
from device_sim.scenario import ActionKind
from dispenser_hub.domain.dosett import DosettPlan, PlanTime, TrayFill, fill_tray
from dispenser_hub.domain.model import AuditEntry, FillRecord, Patient, PlanRecord, Responsibility
from dispenser_hub.domain.national_id import NationalId
from dispenser_hub.domain.pouches import DrugLine, Pouch, RollManifest, from_ms
from dispenser_hub.domain.wallclock import oslo_day
from dispenser_hub.services.manifest_service import AUDIT_ACTION
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from device_sim.scenario import DeviceSpec, Scenario
    from dispenser_hub.ports import UnitOfWorkFactory
    from dispenser_hub.services.registry import Registry

BY = "demo"
PHARMACY = "Demo apotek (simulated)"
DRUGS = (DrugLine("Paracetamol", "500 mg", Decimal(1)), DrugLine("Metformin", "500 mg", Decimal(1)))
_K1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


@dataclass(frozen=True, slots=True)
class DemoOffice:
    """What was set up: patient id per device, and the roll ids with manifests (wrong ones included)."""

    patients: dict[str, int]
    rolls: tuple[str, ...]
    wrong_rolls: tuple[str, ...]


def synthetic_national_id(number: int) -> str:
    """A valid synthetic national id number (month + 80) for demo patient ``number`` (1 to 3,000)."""
    born = date(1940, 1, 1) + timedelta(days=number * 7)
    for individual in range(100 + number % 300, 500):
        digits = [int(c) for c in f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}{individual:03d}"]
        k1 = (11 - sum(w * d for w, d in zip(_K1, digits, strict=True)) % 11) % 11
        if k1 == 10:  # noqa: PLR2004 - mod 11: 10 has no digit, the next individual number is tried
            continue
        k2 = (11 - sum(w * d for w, d in zip(_K2, [*digits, k1], strict=True)) % 11) % 11
        if k2 != 10:  # noqa: PLR2004
            text = "".join(map(str, [*digits, k1, k2]))
            NationalId.parse(text)  # the hub's own rules agree, or this raises
            return text
    msg = f"no synthetic national id number for {number}"
    raise ValueError(msg)


def predicted_rolls(spec: DeviceSpec) -> list[tuple[Roll, bool]]:
    """Every roll the scenario's helpers load into ``spec``'s dispenser, in order, with "wrong patient"."""
    if spec.family is not Family.MULTIDOSE_ROLL:
        return []
    scripted = sorted(spec.timeline, key=lambda a: a.at_ms)
    loads = [(spec.start_ms + ROLL_LOAD_DELAY_MS, False)] + [
        (a.at_ms, a.kind is ActionKind.LOAD_WRONG_ROLL)
        for a in scripted
        if a.kind in {ActionKind.LOAD_ROLL, ActionKind.LOAD_WRONG_ROLL}
    ]
    load = supply_loader(spec)
    rolls: list[tuple[Roll, bool]] = []
    for at_ms, wrong in loads:
        roll = load(at_ms, wrong)
        if isinstance(roll, Roll) and all(roll is not seen for seen, _ in rolls):
            rolls.append((roll, wrong))
    return rolls


def dosett_plan(spec: DeviceSpec) -> DosettPlan:
    """The dosett plan of ``spec``'s patient: its dose times every day, from the scenario's first day."""
    times = tuple(
        PlanTime(at, frozenset(range(7)), f"dose {number}", DRUGS[:1])
        for number, at in enumerate(sorted(spec.dose_times), start=1)
    )
    return DosettPlan(times, valid_from=oslo_day(from_ms(spec.start_ms)))


def predicted_tray(spec: DeviceSpec, plan: DosettPlan, patient_id: int, now: datetime) -> TrayFill:
    """The fill of the tray the simulator starts ``spec``'s carousel with (the nurse's record of it)."""
    tray = supply_loader(spec)(spec.start_ms + ROLL_LOAD_DELAY_MS, False)  # noqa: FBT003 - its signature
    if not isinstance(tray, Tray):
        msg = f"{spec.device_id} is not a dose-pot dispenser"
        raise TypeError(msg)
    return fill_tray(
        plan,
        tray_id=tray.tray_id,
        patient_id=patient_id,
        first_day=plan.valid_from,
        pot_count=len(tray.pots),
        filled_by="home-care nurse (demo)",
        filled_at=now,
    )


def _manifest(roll: Roll, national_id: str, packed_at: datetime) -> RollManifest:
    pouches = tuple(Pouch(p.pouch_id, from_ms(p.intake_ms), DRUGS) for p in roll.pouches)
    return RollManifest(roll.roll_id, national_id, roll.printed_patient_ref, PHARMACY, packed_at, pouches)


def set_up_office(
    scenario: Scenario, registry: Registry, uow_factory: UnitOfWorkFactory, *, now: datetime
) -> DemoOffice:
    """Patients, bindings and roll manifests for ``scenario`` (see the module docstring)."""
    patients: dict[str, int] = {}
    manifests: list[RollManifest] = []
    trays: list[tuple[PlanRecord, FillRecord]] = []
    wrong: list[str] = []
    packed_at = from_ms((scenario.start_ms // 1000 - 86_400) * 1000).astimezone(UTC)
    for spec in scenario.devices():
        own = synthetic_national_id(spec.index)
        patient = registry.add_patient(
            Patient(f"Demo patient {spec.index}", own, Responsibility.RESPONSE_CENTRE), by=BY
        )
        assert patient.id is not None  # noqa: S101 - stored patients have ids
        patients[spec.device_id] = patient.id
        registry.bind(spec.device_id, patient.id, by=BY, reason="demo installation")
        if spec.family is Family.DOSE_POT:
            plan = dosett_plan(spec)
            fill = predicted_tray(spec, plan, patient.id, now)
            trays.append((PlanRecord(patient.id, plan, now, BY), FillRecord(fill)))
        other: str | None = None
        for roll, is_wrong in predicted_rolls(spec):
            if is_wrong and other is None:
                other = synthetic_national_id(1_000 + spec.index)
                registry.add_patient(
                    Patient(f"Demo patient {1_000 + spec.index}", other, Responsibility.RESPONSE_CENTRE),
                    by=BY,
                )
            manifests.append(_manifest(roll, other if is_wrong and other else own, packed_at))
            if is_wrong:
                wrong.append(roll.roll_id)
    with uow_factory() as uow:
        for manifest in manifests:
            uow.rolls.add_manifest(manifest, imported_at=now, imported_by=BY)
            detail = f"{len(manifest.pouches)} pouches (simulated pharmacy)"
            uow.audit.add(AuditEntry(now, BY, AUDIT_ACTION, f"roll:{manifest.roll_id}", detail))
        for plan_record, fill_record in trays:
            uow.dosett.add_plan(plan_record)
            uow.dosett.add_fill(fill_record)
        uow.commit()
    return DemoOffice(patients, tuple(m.roll_id for m in manifests), tuple(wrong))
