"""Safety properties of rolls and pouches, checked with hypothesis.

ARCHITECTURE.md: "A roll or pouch whose patient is not the dispenser's bound patient is never accepted."

``ReferenceHub`` keeps the state a hub service would keep (bindings made with ``domain.bindings``, imported
manifests, roll loads, dispensed pouches) and puts every roll load and pouch scan hypothesis invents to
``judge_roll`` and ``judge_pouch``, in any interleaving with binds, unbinds (ending the dispenser's roll or,
like a careless service, not), manifest imports, roll ends and the passing of time. Whenever a roll or a
pouch is accepted it checks that it belongs to the dispenser's bound patient at that moment (and a pouch to
the accepted roll of that dispenser, given once). A scripted run shows that correct rolls and pouches do get
through the same machine, so the property is not vacuous.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import string
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from dispenser_hub.domain.bindings import BindingError, bind, unbind
from dispenser_hub.domain.model import Binding, Device, Patient, Responsibility
from dispenser_hub.domain.pouches import (
    REF_PATTERN,
    WRONG_ROLL,
    DrugLine,
    Pouch,
    PouchScan,
    RollManifest,
    judge_pouch,
)
from dispenser_hub.domain.rolls import (
    BoundPatient,
    ReportedRoll,
    RollEndReason,
    RollLoad,
    end_load,
    judge_roll,
    start_load,
)
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
NATIONAL_IDS = {1: "01819010001", 2: "05928510052", 3: "12847010035"}
"""Patients A, B and C (synthetic test numbers: they never belong to a real person)."""
PATIENTS = {
    pid: Patient(f"Patient {pid}", nid, Responsibility.HOME_CARE, id=pid) for pid, nid in NATIONAL_IDS.items()
}
DEVICES = {d: Device(d, f"SN-{d}", Family.MULTIDOSE_ROLL, "RollMate 3") for d in ("RM3-1", "RM3-2", "RM3-3")}
DEVICE_IDS = sorted(DEVICES)
ROLL_IDS = ("R-1", "R-2", "R-3", "R-4", "R-5")
REFS = ("PX-A", "PX-B", "PX-C")
DRUG = DrugLine("Metformin", "500 mg", Decimal(1))
MACHINE_SETTINGS = settings(max_examples=40, stateful_step_count=30, deadline=None)
FIELD_SETTINGS = settings(max_examples=100, deadline=None)


def report_of(manifest: RollManifest) -> ReportedRoll:
    """What a device reads from the roll ``manifest`` describes."""
    m = manifest
    return ReportedRoll(m.roll_id, m.printed_patient_ref, m.first_intake, m.last_intake, len(m.pouches))


def scan_of(manifest: RollManifest, pouch: Pouch) -> PouchScan:
    """What a device reads from ``pouch`` of the roll ``manifest`` describes."""
    return PouchScan(manifest.roll_id, pouch.pouch_id, manifest.printed_patient_ref, pouch.intake_at)


class ReferenceHub(RuleBasedStateMachine):
    """A hub reduced to the facts the roll and pouch rules need; asserts the safety invariant on every yes."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.device_bindings: dict[str, Binding] = {}
        self.patient_bindings: dict[int, Binding] = {}
        self.manifests: dict[str, RollManifest] = {}
        self.loads: list[RollLoad] = []
        """Every load, oldest first (an ended load is replaced in place by its ended form)."""
        self.dispensed: defaultdict[str, set[str]] = defaultdict(set)
        self.accepted_rolls = 0
        self.given_pouches = 0

    # --- what a service would look up ------------------------------------------------------------------

    def bound(self, device_id: str) -> BoundPatient | None:
        binding = self.device_bindings.get(device_id)
        return None if binding is None else BoundPatient(binding.patient_id, NATIONAL_IDS[binding.patient_id])

    def active_load(self, device_id: str) -> RollLoad | None:
        return next((ld for ld in reversed(self.loads) if ld.device_id == device_id and ld.active), None)

    def previous(self, patient_id: int) -> RollLoad | None:
        return next((ld for ld in reversed(self.loads) if ld.patient_id == patient_id), None)

    def active_elsewhere(self, roll_id: str, device_id: str) -> RollLoad | None:
        return next(
            (ld for ld in self.loads if ld.roll_id == roll_id and ld.active and ld.device_id != device_id),
            None,
        )

    def withdrawn(self, roll_id: str) -> bool:
        return any(ld.roll_id == roll_id and ld.end_reason == RollEndReason.PLAN_CHANGED for ld in self.loads)

    def end(self, load: RollLoad, reason: str) -> None:
        self.loads[self.loads.index(load)] = end_load(load, reason=reason, now=self.now)

    # --- events ----------------------------------------------------------------------------------------

    @initialize(
        patients=st.permutations(sorted(PATIENTS)),
        bound=st.sampled_from((3, 2, 1)),
        start_hours=st.integers(-6, 24),
    )
    def install(self, patients: list[int], bound: int, start_hours: int) -> None:
        """Start with a manifest per patient (``R-1`` is patient 1's), some dispensers bound and loaded."""
        for patient_id in sorted(PATIENTS):
            ref = REFS[patient_id - 1]
            self.import_manifest(
                roll_id=f"R-{patient_id}",
                patient_id=patient_id,
                ref=ref,
                start_hours=start_hours,
                count=6,
                spacing_hours=12,
            )
        for device_id, patient_id in zip(DEVICE_IDS[:bound], patients, strict=False):
            self.bind_device(device_id, patient_id)
            self.try_load(device_id, report_of(self.manifests[f"R-{patient_id}"]))
        assert self.accepted_rolls == bound

    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    def bind_device(self, device_id: str, patient_id: int) -> None:
        """Bind by the binding rules (a refused bind changes nothing)."""
        try:
            binding = bind(
                DEVICES[device_id],
                PATIENTS[patient_id],
                device_binding=self.device_bindings.get(device_id),
                patient_binding=self.patient_bindings.get(patient_id),
                by="operator",
                reason="dispenser installed",
                now=self.now,
            )
        except BindingError:
            return
        self.device_bindings[device_id] = self.patient_bindings[patient_id] = binding

    def unbind_device(self, device_id: str, *, end_its_roll: bool) -> None:
        """Unbind; a careless service leaves the dispenser's roll load active."""
        try:
            ended = unbind(self.device_bindings.get(device_id), by="operator", reason="moved", now=self.now)
        except BindingError:
            return
        del self.device_bindings[device_id], self.patient_bindings[ended.patient_id]
        load = self.active_load(device_id)
        if end_its_roll and load is not None:
            self.end(load, RollEndReason.UNBOUND)

    def import_manifest(
        self, *, roll_id: str, patient_id: int, ref: str, start_hours: int, count: int, spacing_hours: int
    ) -> None:
        """Import a manifest for any patient (the printed reference too is drawn freely)."""
        start = self.now + start_hours * HOUR
        pouches = tuple(
            Pouch(f"{roll_id}-{n}", start + n * spacing_hours * HOUR, (DRUG,)) for n in range(count)
        )
        manifest = RollManifest(roll_id, NATIONAL_IDS[patient_id], ref, "Apotek", self.now, pouches)
        self.manifests.setdefault(roll_id, manifest)  # a conflicting manifest for a known roll is refused

    def end_roll(self, device_id: str, reason: RollEndReason) -> None:
        load = self.active_load(device_id)
        if load is not None:
            self.end(load, reason)

    @rule(data=st.data())
    def something_else_happens(self, data: st.DataObject) -> None:
        """Time passes; an operator binds, unbinds or ends a roll; a pharmacy sends a manifest.

        One rule for these, so that about a third of all steps load a roll and a third scan pouches.
        """
        devices, patients = st.sampled_from(DEVICE_IDS), st.sampled_from(sorted(PATIENTS))
        event = data.draw(
            st.sampled_from(("time", "bind", "manifest", "roll ended", "time", "bind", "unbind"))
        )
        if event == "time":
            self.time_passes(data.draw(st.integers(0, 24 * 60)))
        elif event == "bind":  # mostly a free dispenser to a free patient; sometimes a bind the rules refuse
            free_devices = [d for d in DEVICE_IDS if d not in self.device_bindings]
            free_patients = [p for p in sorted(PATIENTS) if p not in self.patient_bindings]
            if free_devices and free_patients and data.draw(st.booleans()):
                devices, patients = st.sampled_from(free_devices), st.sampled_from(free_patients)
            self.bind_device(data.draw(devices), data.draw(patients))
        elif event == "unbind":
            self.unbind_device(data.draw(devices), end_its_roll=data.draw(st.booleans()))
        elif event == "manifest":
            self.import_manifest(
                roll_id=data.draw(st.sampled_from(ROLL_IDS)),
                patient_id=data.draw(patients),
                ref=data.draw(st.sampled_from(REFS)),
                start_hours=data.draw(st.integers(-48, 96)),
                count=data.draw(st.integers(1, 6)),
                spacing_hours=data.draw(st.sampled_from((6, 12, 24, 48))),
            )
        else:
            self.end_roll(data.draw(devices), data.draw(st.sampled_from(list(RollEndReason))))

    @rule(data=st.data())
    def load_roll(self, data: st.DataObject) -> None:
        """Load a roll, mostly in a bound dispenser: often the patient's, else one with a manifest, or any."""
        bound = sorted(self.device_bindings)
        devices = st.sampled_from(DEVICE_IDS)
        device_id = data.draw(st.sampled_from(bound) | devices if bound else devices)
        patient = self.bound(device_id)
        mine = [
            r for r, m in self.manifests.items() if patient and m.patient_national_id == patient.national_id
        ]
        any_roll = st.sampled_from((*sorted(self.manifests), *ROLL_IDS))
        roll_id = data.draw(st.sampled_from(mine) | any_roll if mine else any_roll)
        self.try_load(device_id, data.draw(reports(roll_id, self.manifests.get(roll_id))))

    @rule(data=st.data())
    def scan_pouch(self, data: st.DataObject) -> None:
        """Scan some pouch: often the next due one of a dispenser's roll, often with one field changed."""
        loaded = [d for d in DEVICE_IDS if self.active_load(d) is not None]
        devices = st.sampled_from(DEVICE_IDS)
        device_id = data.draw(st.sampled_from(loaded) | devices if loaded else devices)
        load = self.active_load(device_id)
        manifest = None if load is None else self.manifests[load.roll_id]
        dispensed = frozenset(self.dispensed[load.roll_id]) if load is not None else frozenset[str]()
        waiting = [] if manifest is None else [p for p in manifest.pouches if p.pouch_id not in dispensed]
        next_due = waiting[0] if waiting else None
        scan = data.draw(scans(manifest, next_due, list(self.manifests.values()), self.now))
        wrong_times = st.sampled_from((None, self.now, *(p.intake_at for p in waiting[1:2])))
        due = st.just(next_due.intake_at) | wrong_times if next_due is not None else wrong_times
        self.try_scan(device_id, scan, data.draw(due))

    # --- the checks, and the invariant -------------------------------------------------------------------

    def try_load(self, device_id: str, reported: ReportedRoll) -> None:
        """A roll is loaded in ``device_id``: judge it, check the invariant on a yes, record the load."""
        manifest = self.manifests.get(reported.roll_id)
        patient = self.bound(device_id)
        decision = judge_roll(
            device_id=device_id,
            patient=patient,
            manifest=manifest,
            reported=reported,
            active_elsewhere=self.active_elsewhere(reported.roll_id, device_id),
            previous=None if patient is None else self.previous(patient.patient_id),
            withdrawn=self.withdrawn(reported.roll_id),
            now=self.now,
        )
        if not decision.accept:
            assert decision.reason is not None
            assert decision.alarm == (patient is not None)
            return
        # The invariant: an accepted roll is the bound patient's, as its manifest and its print say.
        assert patient is not None
        assert manifest is not None
        assert manifest.patient_national_id == patient.national_id
        assert reported.printed_patient_ref == manifest.printed_patient_ref
        self.accepted_rolls += 1
        current = self.active_load(device_id)
        if current is not None and current.roll_id == reported.roll_id:
            return  # a re-load: the load continues
        if current is not None:
            self.end(current, RollEndReason.REPLACED)
        self.loads.append(
            start_load(manifest, device_id=device_id, patient_id=patient.patient_id, now=self.now)
        )

    def try_scan(self, device_id: str, scan: PouchScan, next_due_at: datetime | None) -> None:
        """A pouch is scanned in ``device_id``: judge it, check the invariant on a yes, record it given."""
        load = self.active_load(device_id)
        manifest = None if load is None else self.manifests[load.roll_id]
        dispensed = frozenset(self.dispensed[load.roll_id]) if load is not None else frozenset[str]()
        patient = self.bound(device_id)
        decision = judge_pouch(
            device_id=device_id,
            patient=patient,
            load=load,
            manifest=manifest,
            scan=scan,
            dispensed=dispensed,
            next_due_at=next_due_at,
        )
        if not decision.ok:
            assert decision.alarm_kind == WRONG_ROLL
            return
        # The invariant: a pouch given is on the dispenser's accepted roll, of its bound patient, once.
        assert load is not None
        assert manifest is not None
        assert patient is not None
        assert scan.roll_id == load.roll_id
        assert load.patient_id == patient.patient_id
        assert manifest.patient_national_id == patient.national_id
        packed = manifest.pouch(scan.pouch_id)
        assert packed is not None
        assert (scan.printed_patient_ref, scan.intake_time) == (
            manifest.printed_patient_ref,
            packed.intake_at,
        )
        assert scan.pouch_id not in dispensed
        self.dispensed[load.roll_id].add(scan.pouch_id)
        self.given_pouches += 1


@st.composite
def reports(draw: DrawFn, roll_id: str, manifest: RollManifest | None) -> ReportedRoll:
    """What a device reads from a roll: what the manifest says, or that with one part unknown or different."""
    if manifest is None:
        return ReportedRoll(roll_id, draw(st.sampled_from(REFS)))
    correct = report_of(manifest)
    changes = st.sampled_from(("times unknown", "ref", "first", "last", "count"))
    variant = draw(st.just("as packed") | changes)
    if variant == "times unknown":
        return ReportedRoll(roll_id, correct.printed_patient_ref)
    changed = {
        "ref": lambda: dataclasses.replace(correct, printed_patient_ref=draw(st.sampled_from(REFS))),
        "first": lambda: dataclasses.replace(correct, first_intake=manifest.first_intake - HOUR),
        "last": lambda: dataclasses.replace(correct, last_intake=manifest.last_intake + HOUR),
        "count": lambda: dataclasses.replace(correct, pouches=len(manifest.pouches) + 1),
    }
    if variant in changed:
        return changed[variant]()
    return correct


@st.composite
def scans(
    draw: DrawFn,
    manifest: RollManifest | None,
    next_due: Pouch | None,
    manifests: list[RollManifest],
    now: datetime,
) -> PouchScan:
    """A scan of the next due pouch or of any pouch of any manifest, as printed or with one field changed."""
    pairs = [(m, p) for m in manifests for p in m.pouches]
    if not pairs:
        return PouchScan(draw(st.sampled_from(ROLL_IDS)), "P-0", draw(st.sampled_from(REFS)), now)
    templates = st.sampled_from(pairs)
    if manifest is not None and next_due is not None:
        templates = st.just((manifest, next_due)) | templates
    scan = scan_of(*draw(templates))
    change = draw(
        st.just("none") | st.sampled_from(("roll_id", "pouch_id", "printed_patient_ref", "intake_time"))
    )
    if change == "roll_id":
        return dataclasses.replace(scan, roll_id=draw(st.sampled_from(ROLL_IDS)))
    if change == "pouch_id":
        return dataclasses.replace(
            scan, pouch_id=draw(st.sampled_from(["P-X", *(p.pouch_id for _, p in pairs)]))
        )
    if change == "printed_patient_ref":
        return dataclasses.replace(scan, printed_patient_ref=draw(st.sampled_from(REFS)))
    if change == "intake_time":
        return dataclasses.replace(
            scan, intake_time=draw(st.sampled_from([now, *(p.intake_at for _, p in pairs)]))
        )
    return scan


TestReferenceHub = ReferenceHub.TestCase
TestReferenceHub.settings = MACHINE_SETTINGS


def test_the_reference_hub_lets_correct_rolls_and_pouches_through() -> None:
    """The property above is not vacuous: correct rolls and pouches get through, wrong ones do not."""
    hub = ReferenceHub()
    hub.bind_device("RM3-1", 1)
    hub.bind_device("RM3-2", 2)
    for roll_id, patient_id, ref in (("R-1", 1, "PX-A"), ("R-2", 2, "PX-B")):
        hub.import_manifest(
            roll_id=roll_id, patient_id=patient_id, ref=ref, start_hours=2, count=4, spacing_hours=12
        )
    a, b = hub.manifests["R-1"], hub.manifests["R-2"]
    hub.try_load("RM3-2", report_of(a))  # A's roll in B's dispenser
    assert hub.accepted_rolls == 0
    hub.try_load("RM3-1", report_of(a))
    hub.try_load("RM3-2", report_of(b))
    assert hub.accepted_rolls == 2
    hub.try_scan("RM3-2", scan_of(a, a.pouches[0]), a.pouches[0].intake_at)  # A's pouch in B's dispenser
    for pouch in a.pouches:
        hub.try_scan("RM3-1", scan_of(a, pouch), pouch.intake_at)
    hub.try_scan("RM3-1", scan_of(a, a.pouches[0]), a.pouches[0].intake_at)  # the same pouch again
    assert hub.given_pouches == 4
    hub.unbind_device("RM3-2", end_its_roll=False)  # a careless service: B's roll load stays active
    hub.bind_device("RM3-2", 3)
    hub.try_scan("RM3-2", scan_of(b, b.pouches[0]), b.pouches[0].intake_at)  # B's pouch, C's dispenser
    assert hub.given_pouches == 4


# --- single-field changes -----------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
refs = st.builds(operator.add, st.sampled_from(_ALNUM), st.text(alphabet=_ALNUM + "._:/-", max_size=63))
"""Any protocol ``Ref`` (``REF_PATTERN``), built directly: much faster than ``st.from_regex``."""


@st.composite
def rolls(draw: DrawFn) -> tuple[RollManifest, int]:
    """A manifest of patient A (any ids, times and spacing) and the index of its next due pouch."""
    count = draw(st.integers(1, 12))
    spacing = draw(st.integers(1, 7 * 24 * 60)) * timedelta(minutes=1)
    start = T0 + draw(st.integers(0, 24 * 60)) * timedelta(minutes=1)
    roll_id = draw(refs)[:58]
    pouches = tuple(Pouch(f"{roll_id}-{n:04d}", start + n * spacing, (DRUG,)) for n in range(count))
    manifest = RollManifest(roll_id, NATIONAL_IDS[1], draw(refs), "Apotek", T0, pouches)
    return manifest, draw(st.integers(0, count - 1))


def _pouch_given(manifest: RollManifest, due: int, scan: PouchScan) -> bool:
    return judge_pouch(
        device_id="RM3-1",
        patient=BoundPatient(1, NATIONAL_IDS[1]),
        load=start_load(manifest, device_id="RM3-1", patient_id=1, now=T0),
        manifest=manifest,
        scan=scan,
        dispensed={p.pouch_id for p in manifest.pouches[:due]},
        next_due_at=manifest.pouches[due].intake_at,
    ).ok


def _other_ref(data: st.DataObject, current: str) -> str:
    """Any ``Ref`` but ``current``."""
    value = data.draw(refs)
    assert re.fullmatch(REF_PATTERN, value)
    return value if value != current else ("Y" if current[0] == "Z" else "Z") + current[1:]


@FIELD_SETTINGS
@given(rolls(), st.sampled_from(("roll_id", "pouch_id", "printed_patient_ref", "intake_time")), st.data())
def test_any_single_field_change_of_a_correct_scan_is_refused(
    roll: tuple[RollManifest, int], field: str, data: st.DataObject
) -> None:
    manifest, due = roll
    correct = scan_of(manifest, manifest.pouches[due])
    assert _pouch_given(manifest, due, correct)
    if field == "roll_id":
        changed = dataclasses.replace(correct, roll_id=_other_ref(data, correct.roll_id))
    elif field == "pouch_id":
        changed = dataclasses.replace(correct, pouch_id=_other_ref(data, correct.pouch_id))
    elif field == "printed_patient_ref":
        ref = _other_ref(data, correct.printed_patient_ref)
        changed = dataclasses.replace(correct, printed_patient_ref=ref)
    else:
        shift = data.draw(st.integers(-30 * 24 * 3_600_000, 30 * 24 * 3_600_000).filter(bool))
        changed = dataclasses.replace(
            correct, intake_time=correct.intake_time + timedelta(milliseconds=shift)
        )
    assert not _pouch_given(manifest, due, changed)


@FIELD_SETTINGS
@given(
    rolls(),
    st.sampled_from(("roll_id", "printed_patient_ref", "first_intake", "last_intake", "pouches")),
    st.data(),
)
def test_any_single_field_change_of_a_correct_roll_report_is_refused(
    roll: tuple[RollManifest, int], field: str, data: st.DataObject
) -> None:
    mine, _ = roll
    others = dataclasses.replace(mine, roll_id=mine.roll_id + "-B", patient_national_id=NATIONAL_IDS[2])
    known = {m.roll_id: m for m in (mine, others)}

    def accepted(reported: ReportedRoll) -> bool:
        return judge_roll(
            device_id="RM3-1",
            patient=BoundPatient(1, NATIONAL_IDS[1]),
            manifest=known.get(reported.roll_id),
            reported=reported,
            active_elsewhere=None,
            previous=None,
            withdrawn=False,
            now=T0,
        ).accept

    correct = report_of(mine)
    assert accepted(correct)
    shift = data.draw(st.integers(-30 * 24 * 60, 30 * 24 * 60).filter(bool)) * timedelta(minutes=1)
    if field == "roll_id":
        roll_id = data.draw(st.sampled_from((others.roll_id, _other_ref(data, mine.roll_id))))
        changed = dataclasses.replace(correct, roll_id=roll_id)
    elif field == "printed_patient_ref":
        changed = dataclasses.replace(correct, printed_patient_ref=_other_ref(data, mine.printed_patient_ref))
    elif field == "first_intake":
        changed = dataclasses.replace(correct, first_intake=mine.first_intake + shift)
    elif field == "last_intake":
        changed = dataclasses.replace(correct, last_intake=mine.last_intake + shift)
    else:
        count = len(mine.pouches) + data.draw(st.integers(-len(mine.pouches), 500).filter(bool))
        changed = dataclasses.replace(correct, pouches=count)
    assert not accepted(changed)
