"""Rolls through ingest over the memory store: roll verdicts, loads, pouch checks, alarms, lock commands."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.bindings import unbind
from dispenser_hub.domain.model import Patient, PauseRecord, Responsibility
from dispenser_hub.domain.pouches import DrugLine, Pouch, RollManifest, to_ms
from dispenser_hub.domain.rolls import EXPLAINS_OVERLAP, RollEndReason
from dispenser_hub.domain.schedules import Pause
from dispenser_hub.services.ingest import Verdict
from dispenser_hub.services.registry import Conflict, RegistryError
from dispenser_hub.services.roll_admin import EndReason, RollAdmin
from dispenser_hub.services.rolls import NEXT_ROLL_ACCEPTED
from firmware_protocol import KeyRing, decode, verify
from firmware_protocol.messages import (
    Lock,
    PouchScanned,
    RollEmpty,
    RollLoaded,
    RollVerdict,
    VerdictReason,
)
from tests.dispenser_hub.services.support import T0, Device, HubUnderTest, enrolled

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from dispenser_hub.domain.model import Alarm
    from dispenser_hub.domain.rolls import RollLoad
    from firmware_protocol import Received

NID_A, NID_B = "01819010001", "05928510052"
"""Synthetic test national id numbers (month + 80): they never belong to a real person."""
HOUR = timedelta(hours=1)
D1, D2 = "RM3-000017", "RM3-000018"
PARACET = DrugLine("Paracetamol", "500 mg", Decimal(2))


def make_manifest(
    roll_id: str = "R-1",
    national_id: str = NID_A,
    ref: str = "PX-A",
    *,
    start: datetime = T0 + 2 * HOUR,
    count: int = 4,
    spacing: timedelta = 12 * HOUR,
) -> RollManifest:
    pouches = tuple(Pouch(f"{roll_id}-{n:04d}", start + n * spacing, (PARACET,)) for n in range(count))
    return RollManifest(roll_id, national_id, ref, "Apotek 1 Bergen", T0 - 24 * HOUR, pouches)


class Rig:
    """A hub with two enrolled dispensers, patient A bound to the first, and helpers to talk roll."""

    def __init__(self, tmp_path: Path) -> None:
        self.hub = HubUnderTest(tmp_path)
        self.devices = {device_id: Device.create(device_id) for device_id in (D1, D2)}
        for device in self.devices.values():
            enrolled(self.hub, device)
        self.patient_a = self.patient("Kari", NID_A)
        self.hub.registry.bind(D1, self.patient_a, by="op", reason="installed")
        self.hub.commands.send_due()  # the enrollment answers: out of the way
        self.seen = len(self.hub.published.messages)

    def patient(self, name: str, national_id: str) -> int:
        stored = self.hub.registry.add_patient(
            Patient(name, national_id, Responsibility.RESPONSE_CENTRE), by="op"
        )
        assert stored.id is not None
        return stored.id

    def add(self, manifest: RollManifest) -> None:
        with self.hub.store() as uow:
            uow.rolls.add_manifest(manifest, imported_at=self.hub.clock.now(), imported_by="op")
            uow.commit()

    def send(self, device_id: str, body: type[Any], **fields: Any) -> None:
        message = self.devices[device_id].message(body, self.hub.clock.now(), **fields)
        assert self.hub.deliver(message) == [Verdict.STORED]

    def load(self, device_id: str, manifest: RollManifest, **fields: Any) -> None:
        values: dict[str, Any] = {
            "roll_id": manifest.roll_id,
            "printed_patient_ref": manifest.printed_patient_ref,
            "first_intake": to_ms(manifest.first_intake),
            "last_intake": to_ms(manifest.last_intake),
            "pouches": len(manifest.pouches),
        }
        self.send(device_id, RollLoaded, **{**values, **fields})

    def scan(self, device_id: str, manifest: RollManifest, index: int, **fields: Any) -> None:
        pouch = manifest.pouches[index]
        values: dict[str, Any] = {
            "roll_id": manifest.roll_id,
            "pouch_id": pouch.pouch_id,
            "printed_patient_ref": manifest.printed_patient_ref,
            "intake_time": to_ms(pouch.intake_at),
        }
        self.send(device_id, PouchScanned, **{**values, **fields})

    def published(self) -> list[Received]:
        """Every message published since the last call, each verified with the hub's key."""
        self.hub.commands.send_due()
        ring = KeyRing()
        ring.add(None, self.hub.ca.hub_signer.public_key)
        out = []
        for topic, payload, _retain in self.hub.published.messages[self.seen :]:
            received = decode(payload, topic)
            verify(received, ring)  # signed by the hub, or this raises
            out.append(received)
        self.seen = len(self.hub.published.messages)
        return out

    def verdict(self, device_id: str = D1) -> tuple[RollVerdict, Received]:
        (received,) = [r for r in self.published() if isinstance(r.envelope.body, RollVerdict)]
        assert received.envelope.device == device_id
        assert isinstance(received.envelope.body, RollVerdict)
        return received.envelope.body, received

    def loads(self, **filters: Any) -> list[RollLoad]:
        with self.hub.store() as uow:
            return uow.rolls.loads(**filters)

    def alarms(self) -> list[Alarm]:
        with self.hub.store() as uow:
            return [a for a in uow.alarms.select(open_only=True) if a.kind == "wrong_roll"]

    def dispensed(self, roll_id: str) -> frozenset[str]:
        with self.hub.store() as uow:
            return uow.rolls.dispensed(roll_id)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_the_bound_patients_roll_is_accepted_with_a_signed_verdict_and_its_load_is_stored(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)

    verdict, received = rig.verdict()
    assert (verdict.roll_id, verdict.accept, verdict.reason) == ("R-1", True, None)
    assert verdict.expires == to_ms(rig.hub.clock.now() + HOUR)
    with rig.hub.store() as uow:
        (event,) = uow.events.select(device_id=D1, types=["roll.loaded"])
        audit = uow.audit.select(subject=f"device:{D1}")
    assert received.envelope.corr_id == event.msg_id  # the verdict answers the report
    (load,) = rig.loads()
    assert (load.roll_id, load.device_id, load.patient_id, load.active) == ("R-1", D1, rig.patient_a, True)
    assert (load.first_intake, load.last_intake) == (manifest.first_intake, manifest.last_intake)
    assert any(e.action == "roll.verdict" and e.actor == "system" and "accepted" in e.detail for e in audit)
    assert rig.alarms() == []


def test_a_roll_without_a_manifest_is_refused_with_what_to_do_and_no_load(rig: Rig) -> None:
    rig.load(D1, make_manifest())

    verdict, _ = rig.verdict()
    assert (verdict.accept, verdict.reason) == (False, VerdictReason.NO_MANIFEST)
    assert verdict.detail is not None
    assert "Import" in verdict.detail
    assert rig.loads() == []
    (alarm,) = rig.alarms()
    assert alarm.vkp_code == "3.5"


def test_another_patients_roll_is_refused_with_the_red_wrong_roll_alarm(rig: Rig) -> None:
    manifest = make_manifest(national_id=NID_B, ref="PX-B")
    rig.add(manifest)
    rig.load(D1, manifest)

    verdict, _ = rig.verdict()
    assert (verdict.accept, verdict.reason) == (False, VerdictReason.WRONG_PATIENT)
    assert rig.loads() == []
    (alarm,) = rig.alarms()
    assert (alarm.vkp_code, alarm.severity, alarm.subject_id) == ("3.5", 3, D1)
    assert (alarm.device_id, alarm.patient_id) == (D1, rig.patient_a)
    assert NID_B not in alarm.detail
    assert "PX-B" not in alarm.detail
    with rig.hub.store() as uow:
        audit = uow.audit.select(subject=f"device:{D1}")
    (entry,) = [e for e in audit if e.action == "roll.verdict"]
    assert "wrong_patient" in entry.detail
    assert NID_B not in entry.detail


def test_a_printed_reference_that_is_not_the_manifests_is_refused(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest, printed_patient_ref="PX-OTHER")

    verdict, _ = rig.verdict()
    assert (verdict.accept, verdict.reason) == (False, VerdictReason.WRONG_PATIENT)
    assert rig.loads() == []


def test_a_roll_in_an_unbound_dispenser_is_refused_without_an_alarm(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D2, manifest)

    verdict, _ = rig.verdict(D2)
    assert (verdict.accept, verdict.reason) == (False, VerdictReason.OTHER)
    assert rig.loads() == []
    assert rig.alarms() == []


def test_a_roll_active_in_another_dispenser_is_refused(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.verdict()
    # The registry ends a load when its dispenser is unbound; end only the binding, as if that step had been
    # missed (e.g. data from before), so the roll is still active in D1.
    with rig.hub.store() as uow:
        binding = uow.bindings.active_for_device(D1)
        assert binding is not None
        uow.bindings.update(unbind(binding, by="op", reason="dispenser swapped", now=rig.hub.clock.now()))
        uow.commit()
    rig.hub.registry.bind(D2, rig.patient_a, by="op", reason="dispenser swapped")
    rig.load(D2, manifest)

    verdict, _ = rig.verdict(D2)
    assert (verdict.accept, verdict.reason) == (False, VerdictReason.ALREADY_ACTIVE)
    assert verdict.detail is not None
    assert D1 in verdict.detail
    (load,) = rig.loads()
    assert (load.device_id, load.active) == (D1, True)


def test_reloading_the_same_roll_is_accepted_without_a_second_load(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.verdict()
    rig.load(D1, manifest)  # the lid was opened

    verdict, _ = rig.verdict()
    assert verdict.accept
    (load,) = rig.loads()
    assert load.active


def test_a_pouch_of_the_accepted_roll_is_given_once_then_refused_with_an_alarm_and_a_lock(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.verdict()

    rig.scan(D1, manifest, 0)
    assert rig.dispensed("R-1") == {"R-1-0000"}
    assert rig.alarms() == []
    assert not [r for r in rig.published() if isinstance(r.envelope.body, Lock)]

    rig.scan(D1, manifest, 0)  # the roll was rewound
    (alarm,) = rig.alarms()
    assert alarm.vkp_code == "3.5"
    assert "dispensed before" in alarm.detail
    (lock,) = [r.envelope.body for r in rig.published() if isinstance(r.envelope.body, Lock)]
    assert isinstance(lock, Lock)
    assert lock.reason is not None
    assert "dispensed before" in lock.reason
    assert rig.dispensed("R-1") == {"R-1-0000"}

    rig.scan(D1, manifest, 1)  # the next due pouch is still given
    assert rig.dispensed("R-1") == {"R-1-0000", "R-1-0001"}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"pouch_id": "R-1-9999"}, "is not on roll"),
        ({"roll_id": "R-2", "pouch_id": "R-2-0000"}, "not the accepted roll"),
        ({"printed_patient_ref": "PX-B"}, "does not match"),
    ],
)
def test_a_foreign_pouch_is_refused_with_an_alarm_and_a_lock(
    rig: Rig, fields: dict[str, str], words: str
) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.verdict()

    rig.scan(D1, manifest, 0, **fields)
    (alarm,) = rig.alarms()
    assert words in alarm.detail
    assert [type(r.envelope.body) for r in rig.published()] == [Lock]
    assert rig.dispensed("R-1") == frozenset()


def test_a_pouch_out_of_order_or_without_an_accepted_roll_is_refused(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.scan(D1, manifest, 0)  # nothing accepted yet
    assert "No accepted roll" in rig.alarms()[0].detail
    rig.load(D1, manifest)
    rig.verdict()

    rig.scan(D1, manifest, 1)  # pouch 0 is due first: its window is open
    assert "not the next due pouch" in rig.alarms()[0].detail
    assert rig.dispensed("R-1") == frozenset()


def test_a_missed_pouch_does_not_block_the_next_once_its_window_closed(rig: Rig) -> None:
    manifest = make_manifest()  # T0+2h, T0+14h, ... ; windows close 2 h after due
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.verdict()
    rig.hub.clock.advance(5 * HOUR)  # pouch 0 (due T0+2h) was missed: its window closed at T0+4h
    rig.scan(D1, manifest, 1)
    assert rig.dispensed("R-1") == {manifest.pouches[1].pouch_id}
    assert rig.alarms() == []


def test_a_scan_replayed_after_an_outage_is_judged_when_it_happened(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.verdict()
    pouch = manifest.pouches[0]
    scanned_at = pouch.intake_at + timedelta(minutes=10)
    rig.hub.clock.advance(2 * HOUR + 6 * HOUR)  # delivered 6 h later, long after the window closed
    replayed = rig.devices[D1].message(
        PouchScanned,
        scanned_at,
        roll_id=manifest.roll_id,
        pouch_id=pouch.pouch_id,
        printed_patient_ref=manifest.printed_patient_ref,
        intake_time=to_ms(pouch.intake_at),
    )
    assert rig.hub.deliver(replayed) == [Verdict.STORED]
    assert rig.dispensed("R-1") == {pouch.pouch_id}
    assert rig.alarms() == []


def test_a_pouch_in_a_pause_is_not_due_and_is_refused(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.verdict()
    now = rig.hub.clock.now()
    with rig.hub.store() as uow:
        pause = Pause(now, now + 6 * HOUR, "hospital")  # covers pouch 0 (T0+2h)
        uow.schedules.add_pause(PauseRecord(rig.patient_a, pause, now, "op"))
        uow.commit()
    rig.scan(D1, manifest, 0)
    assert "not the next due pouch" in rig.alarms()[0].detail
    assert rig.dispensed("R-1") == frozenset()


def test_an_empty_roll_ends_its_load(rig: Rig) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    rig.send(D1, RollEmpty, roll_id="R-OTHER")  # not the loaded roll: nothing ends
    assert rig.loads()[0].active
    rig.send(D1, RollEmpty, roll_id="R-1")

    (load,) = rig.loads()
    assert (load.active, load.end_reason) == (False, RollEndReason.EMPTY)


def test_the_next_roll_that_joins_ends_the_previous_load_but_never_as_replaced(rig: Rig) -> None:
    first = make_manifest()
    second = make_manifest("R-2", start=first.last_intake + 12 * HOUR)
    rig.add(first)
    rig.add(second)
    rig.load(D1, first)
    rig.load(D1, second)

    old, new = rig.loads()
    assert (old.roll_id, old.active, old.end_reason) == ("R-1", False, NEXT_ROLL_ACCEPTED)
    assert old.end_reason not in EXPLAINS_OVERLAP
    assert (new.roll_id, new.active) == ("R-2", True)


def test_an_overlapping_roll_is_refused_and_the_loaded_roll_stays_active(rig: Rig) -> None:
    first = make_manifest()
    overlapping = make_manifest("R-2", start=first.first_intake + HOUR)
    rig.add(first)
    rig.add(overlapping)
    rig.load(D1, first)
    rig.verdict()
    rig.load(D1, overlapping)

    verdict, _ = rig.verdict()
    assert (verdict.accept, verdict.reason) == (False, VerdictReason.GAP_OR_OVERLAP)
    (load,) = rig.loads()
    assert (load.roll_id, load.active) == ("R-1", True)  # not ended "replaced" by the report


@pytest.mark.parametrize("leave", ["unbind", "retire"])
def test_a_dispenser_that_leaves_its_patient_leaves_its_roll(rig: Rig, leave: str) -> None:
    manifest = make_manifest()
    rig.add(manifest)
    rig.load(D1, manifest)
    if leave == "unbind":
        rig.hub.registry.unbind(D1, by="op", reason="patient moved")
    else:
        rig.hub.registry.retire_device(D1, by="op", reason="broken")
    (load,) = rig.loads()
    assert (load.active, load.end_reason) == (False, RollEndReason.UNBOUND)
    with rig.hub.store() as uow:
        assert [e.action for e in uow.audit.select(subject="roll:R-1")] == ["roll.end"]


def test_a_pharmacy_plan_change_withdraws_the_roll_and_the_new_one_may_overlap(rig: Rig) -> None:
    first = make_manifest(count=8)
    rig.add(first)
    rig.load(D1, first)
    rig.verdict()
    admin = RollAdmin(rig.hub.store, rig.hub.clock)
    with pytest.raises(RegistryError, match="note"):
        admin.end_roll(D1, EndReason.PLAN_CHANGED, note=" ", by="op")
    ended = admin.end_roll(D1, EndReason.PLAN_CHANGED, note="new plan from the pharmacy", by="op")
    assert (ended.active, ended.end_reason) == (False, "plan_changed")
    with rig.hub.store() as uow:
        alarms = uow.alarms.select(open_only=True)
        state = uow.schedules.device_schedule(D1)
    (changed,) = [a for a in alarms if a.kind == "plan_changed"]
    assert (changed.vkp_code, changed.severity, changed.patient_id) == ("3.22", 1, rig.patient_a)
    assert state is not None
    assert state.slots == 0  # the remaining pouches are withdrawn from the dispenser at once
    rig.published()

    rig.load(D1, first)  # the withdrawn roll is never accepted again
    verdict, _ = rig.verdict()
    assert not verdict.accept

    new = make_manifest("R-2", start=first.pouches[3].intake_at, count=8)  # overlaps the withdrawn roll
    rig.add(new)
    rig.load(D1, new)
    verdict, _ = rig.verdict()
    assert verdict.accept
    with pytest.raises(Conflict, match="no roll accepted"):
        admin.end_roll(D2, EndReason.REPLACED, note="x", by="op")
