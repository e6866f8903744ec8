"""Multidose rolls: manifests, loads, the roll verdict and the pouch check, and the simulator's rolls."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, get_args

import pytest

from device_sim.build import ROLL_LOAD_DELAY_MS, build_device
from device_sim.device.faults import load as load_supply
from device_sim.ports import Publish
from device_sim.scenario import ActionKind, load_shipped
from dispenser_hub.domain.model import Patient, Responsibility
from dispenser_hub.domain.pouches import (
    MAX_DETAIL,
    POUCH_UNREADABLE,
    REF_PATTERN,
    WRONG_ROLL,
    DrugLine,
    ManifestError,
    Pouch,
    PouchDecision,
    PouchScan,
    RollManifest,
    from_ms,
    judge_pouch,
    to_ms,
)
from dispenser_hub.domain.rolls import (
    MIN_GAP_ALLOWANCE,
    BoundPatient,
    ReportedRoll,
    RollDecision,
    RollEndReason,
    RollLoad,
    end_load,
    judge_roll,
    start_load,
)
from firmware_protocol import decode
from firmware_protocol.messages import PouchScanned, RollLoaded, RollVerdict, VerdictReason
from firmware_protocol.messages.common import Ref, Text

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Set as AbstractSet

    from device_sim.device.dispenser import Dispenser
    from device_sim.device.supply import Roll

NID_A, NID_B = "01819010001", "05928510052"
"""Synthetic test national id numbers (month + 80): they never belong to a real person."""
A = BoundPatient(1, NID_A)
B = BoundPatient(2, NID_B)
T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DEVICE = "RM3-000001"
PARACET = DrugLine("Paracetamol", "500 mg", Decimal(2))


def make_manifest(
    roll_id: str = "R-1",
    national_id: str = NID_A,
    ref: str = "PX-A",
    *,
    start: datetime = T0 + 2 * HOUR,
    count: int = 6,
    spacing: timedelta = 12 * HOUR,
) -> RollManifest:
    pouches = tuple(
        Pouch(f"{roll_id[:58]}-{n:04d}", start + n * spacing, (PARACET,)) for n in range(1, count + 1)
    )
    return RollManifest(roll_id, national_id, ref, "Apotek 1 Bergen", T0 - 24 * HOUR, pouches)


MANIFEST = make_manifest()


def report(manifest: RollManifest) -> ReportedRoll:
    """What a device reads from the roll ``manifest`` describes."""
    return ReportedRoll(
        manifest.roll_id,
        manifest.printed_patient_ref,
        manifest.first_intake,
        manifest.last_intake,
        len(manifest.pouches),
    )


REPORTED = report(MANIFEST)


def judge(
    manifest: RollManifest | None = MANIFEST,
    *,
    reported: ReportedRoll | None = None,
    patient: BoundPatient | None = A,
    active_elsewhere: RollLoad | None = None,
    previous: RollLoad | None = None,
    withdrawn: bool = False,
    now: datetime = T0,
    device_id: str = DEVICE,
) -> RollDecision:
    return judge_roll(
        device_id=device_id,
        patient=patient,
        manifest=manifest,
        reported=reported or report(manifest or MANIFEST),
        active_elsewhere=active_elsewhere,
        previous=previous,
        withdrawn=withdrawn,
        now=now,
    )


def loaded(
    manifest: RollManifest = MANIFEST, *, device_id: str = DEVICE, patient_id: int = 1, at: datetime = T0
) -> RollLoad:
    return start_load(manifest, device_id=device_id, patient_id=patient_id, now=at)


def refused(decision: RollDecision, reason: VerdictReason, *words: str) -> bool:
    text = decision.detail.lower()
    return not decision.accept and decision.reason is reason and all(word in text for word in words)


# --- manifests ----------------------------------------------------------------------------------------


def test_a_manifest_knows_its_first_and_last_intake_spacing_and_pouches() -> None:
    assert MANIFEST.first_intake == T0 + 14 * HOUR
    assert MANIFEST.last_intake == T0 + 74 * HOUR
    assert MANIFEST.max_spacing == 12 * HOUR
    assert MANIFEST.pouch("R-1-0003") == MANIFEST.pouches[2]
    assert MANIFEST.pouch("R-1-0099") is None
    single = make_manifest(count=1)
    assert single.max_spacing == timedelta(0)
    assert single.first_intake == single.last_intake


def test_the_largest_spacing_is_the_widest_step_between_pouches() -> None:
    times = (T0, T0 + 8 * HOUR, T0 + 40 * HOUR, T0 + 44 * HOUR)
    pouches = tuple(Pouch(f"P-{n}", at, (PARACET,)) for n, at in enumerate(times))
    manifest = RollManifest("R-9", NID_A, "PX-A", "Apotek", T0, pouches)
    assert manifest.max_spacing == 32 * HOUR


def _pouch(pouch_id: str = "P-1", at: datetime = T0, drugs: tuple[DrugLine, ...] = (PARACET,)) -> Pouch:
    return Pouch(pouch_id, at, drugs)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: RollManifest("R 1", NID_A, "PX-A", "Apotek", T0, (_pouch(),)), "roll_id"),
        (
            lambda: RollManifest("R-1", "01819010002", "PX-A", "Apotek", T0, (_pouch(),)),
            "patient_national_id",
        ),
        (lambda: RollManifest("R-1", NID_A, "", "Apotek", T0, (_pouch(),)), "printed_patient_ref"),
        (lambda: RollManifest("R-1", NID_A, "PX-A", "  ", T0, (_pouch(),)), "pharmacy"),
        (
            lambda: RollManifest("R-1", NID_A, "PX-A", "Apotek", T0.replace(tzinfo=None), (_pouch(),)),
            "packed_at",
        ),
        (lambda: RollManifest("R-1", NID_A, "PX-A", "Apotek", T0, ()), "pouches"),
        (
            lambda: RollManifest(
                "R-1", NID_A, "PX-A", "Apotek", T0, (_pouch("P-1"), _pouch("P-1", T0 + HOUR))
            ),
            "pouches[1].pouch_id",
        ),
        (
            lambda: RollManifest("R-1", NID_A, "PX-A", "Apotek", T0, (_pouch("P-1"), _pouch("P-2", T0))),
            "pouches[1].intake_at",
        ),
        (
            lambda: RollManifest(
                "R-1", NID_A, "PX-A", "Apotek", T0, (_pouch("P-1", T0 + HOUR), _pouch("P-2", T0))
            ),
            "pouches[1].intake_at",
        ),
        (lambda: _pouch("P/../..\n"), "pouch_id"),
        (lambda: _pouch(at=T0.astimezone(timezone(HOUR))), "intake_at"),
        (lambda: _pouch(at=T0 + timedelta(microseconds=1)), "intake_at"),
        (lambda: _pouch(drugs=()), "drugs"),
        (lambda: DrugLine(" ", "5 mg", Decimal(1)), "name"),
        (lambda: DrugLine("Metformin", "", Decimal(1)), "strength"),
        (lambda: DrugLine("Metformin", "500 mg", Decimal(0)), "quantity"),
        (lambda: DrugLine("Metformin", "500 mg", Decimal(-1)), "quantity"),
        (lambda: DrugLine("Metformin", "500 mg", Decimal("NaN")), "quantity"),
    ],
)
def test_invalid_manifests_are_refused_naming_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ManifestError) as caught:
        build()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_an_invalid_national_id_error_does_not_show_the_number() -> None:
    with pytest.raises(ManifestError) as caught:
        make_manifest(national_id="01819010002")
    assert "01819010002" not in str(caught.value)
    assert "check digit" in str(caught.value)


def test_reprs_show_no_national_id_and_no_printed_reference() -> None:
    for record in (MANIFEST, A):
        assert NID_A not in repr(record)
        assert "PX-A" not in repr(record)
    assert "R-1" in repr(MANIFEST)


def test_a_half_tablet_and_an_as_needed_line_are_valid() -> None:
    line = DrugLine("Oxazepam", "10 mg", Decimal("0.5"), as_needed=True)
    assert line.as_needed
    assert line.quantity == Decimal("0.5")


# --- content digest ---------------------------------------------------------------------------------


def test_the_same_manifest_imported_twice_has_the_same_digest() -> None:
    assert make_manifest().content_digest() == MANIFEST.content_digest()
    assert len(MANIFEST.content_digest()) == 64


def test_the_digest_ignores_formatting_but_not_content() -> None:
    ibux = DrugLine("Ibuprofen", "200 mg", Decimal(1))
    one = RollManifest("R-1", NID_A, "PX-A", "Apotek", T0, (_pouch(drugs=(PARACET, ibux)),))
    reformatted = RollManifest(
        "R-1",
        NID_A,
        "PX-A",
        " Apotek ",
        T0.astimezone(timezone(timedelta(0))),
        (_pouch(drugs=(dataclasses.replace(ibux, quantity=Decimal("1.00")), PARACET)),),
    )
    assert one.content_digest() == reformatted.content_digest()


def _with_pouch(index: int, pouch: Pouch) -> RollManifest:
    """``MANIFEST`` with its pouch number ``index`` replaced."""
    pouches = list(MANIFEST.pouches)
    pouches[index] = pouch
    return dataclasses.replace(MANIFEST, pouches=tuple(pouches))


SECOND = MANIFEST.pouches[1]


@pytest.mark.parametrize(
    "changed",
    [
        dataclasses.replace(MANIFEST, patient_national_id=NID_B),
        dataclasses.replace(MANIFEST, printed_patient_ref="PX-B"),
        dataclasses.replace(MANIFEST, pharmacy="Vitusapotek"),
        dataclasses.replace(MANIFEST, packed_at=T0),
        dataclasses.replace(MANIFEST, pouches=MANIFEST.pouches[:-1]),
        _with_pouch(1, dataclasses.replace(SECOND, pouch_id="R-1-9999")),
        _with_pouch(1, dataclasses.replace(SECOND, intake_at=SECOND.intake_at + timedelta(milliseconds=1))),
        _with_pouch(
            1, dataclasses.replace(SECOND, drugs=(dataclasses.replace(PARACET, quantity=Decimal(1)),))
        ),
        _with_pouch(1, dataclasses.replace(SECOND, drugs=(dataclasses.replace(PARACET, as_needed=True),))),
        _with_pouch(1, dataclasses.replace(SECOND, drugs=(dataclasses.replace(PARACET, strength="1 g"),))),
        _with_pouch(1, dataclasses.replace(SECOND, drugs=(dataclasses.replace(PARACET, name="Paracet"),))),
        _with_pouch(1, dataclasses.replace(SECOND, drugs=(PARACET, PARACET))),
    ],
)
def test_any_change_of_content_changes_the_digest(changed: RollManifest) -> None:
    assert changed.content_digest() != MANIFEST.content_digest()


def test_the_digest_is_stable_across_versions() -> None:
    """Stored digests must keep matching: a change of the canonical form needs a new ``DIGEST_FORMAT``."""
    manifest = RollManifest(
        "R-2026-4711",
        NID_A,
        "PX-93A7F2",
        "Apotek 1 Bergen",
        datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        (
            Pouch("P-4711-0001", datetime(2026, 11, 23, 7, 0, tzinfo=UTC), (PARACET,)),
            Pouch(
                "P-4711-0002",
                datetime(2026, 11, 23, 19, 0, tzinfo=UTC),
                (PARACET, DrugLine("Zopiklon", "3.75 mg", Decimal("0.5"), as_needed=True)),
            ),
        ),
    )
    canonical = (
        '{"format":"dispenser-hub/roll-manifest/1","packed_at":1795176000000,'
        f'"patient_national_id":"{NID_A}","pharmacy":"Apotek 1 Bergen","pouches":['
        '{"drugs":[{"as_needed":false,"name":"Paracetamol","quantity":"2","strength":"500 mg"}],'
        '"intake_at":1795417200000,"pouch_id":"P-4711-0001"},'
        '{"drugs":[{"as_needed":false,"name":"Paracetamol","quantity":"2","strength":"500 mg"},'
        '{"as_needed":true,"name":"Zopiklon","quantity":"0.5","strength":"3.75 mg"}],'
        '"intake_at":1795460400000,"pouch_id":"P-4711-0002"}],'
        '"printed_patient_ref":"PX-93A7F2","roll_id":"R-2026-4711"}'
    )
    assert manifest.content_digest() == hashlib.sha256(canonical.encode()).hexdigest()
    assert manifest.content_digest() == "783df4f85e708c6d490322640be9db000fc908ec6f901028a96c1411fa51a277"


LOADED = start_load(MANIFEST, device_id=DEVICE, patient_id=1, now=T0)

# --- loads ------------------------------------------------------------------------------------------


def test_a_load_takes_its_times_from_the_manifest_and_ends_once() -> None:
    load = loaded()
    assert (load.first_intake, load.last_intake, load.max_spacing) == (
        MANIFEST.first_intake,
        MANIFEST.last_intake,
        MANIFEST.max_spacing,
    )
    assert load.active
    ended = end_load(load, reason=RollEndReason.EMPTY, now=T0 + HOUR)
    assert not ended.active
    assert ended.end_reason == "empty"
    with pytest.raises(ValueError, match="ended already"):
        end_load(ended, reason=RollEndReason.REPLACED, now=T0 + 2 * HOUR)


@pytest.mark.parametrize(
    "build",
    [
        lambda: dataclasses.replace(LOADED, ended_at=T0 + HOUR),
        lambda: dataclasses.replace(LOADED, end_reason="empty"),
        lambda: dataclasses.replace(LOADED, ended_at=T0 - HOUR, end_reason="empty"),
        lambda: dataclasses.replace(LOADED, ended_at=T0 + HOUR, end_reason=" "),
        lambda: dataclasses.replace(LOADED, last_intake=T0),
        lambda: dataclasses.replace(LOADED, max_spacing=-HOUR),
        lambda: dataclasses.replace(LOADED, accepted_at=T0.replace(tzinfo=None)),
    ],
)
def test_inconsistent_loads_are_refused(build: Callable[[], RollLoad]) -> None:
    with pytest.raises(ManifestError):
        build()


def test_a_bound_patient_comes_from_a_stored_patient() -> None:
    patient = Patient("Kari Nordmann", NID_A, Responsibility.HOME_CARE, id=7)
    assert BoundPatient.of(patient) == BoundPatient(7, NID_A)
    with pytest.raises(ValueError, match="stored"):
        BoundPatient.of(dataclasses.replace(patient, id=None))
    with pytest.raises(ManifestError):
        BoundPatient(7, "12345678901")


# --- the roll verdict ---------------------------------------------------------------------------------


def test_the_bound_patients_roll_is_accepted() -> None:
    decision = judge()
    assert decision == RollDecision(accept=True, reason=None, detail="Roll R-1 accepted.", alarm=False)
    assert decision.alarm_kind is None


def test_a_report_without_the_optional_parts_is_judged_on_the_manifest() -> None:
    assert judge(reported=ReportedRoll("R-1", "PX-A")).accept


def test_an_unbound_dispenser_accepts_no_roll() -> None:
    decision = judge(patient=None)
    assert refused(decision, VerdictReason.OTHER, "bind the dispenser to a patient first")
    assert not decision.alarm


def test_a_roll_without_manifest_is_refused_with_what_to_import() -> None:
    decision = judge(None, reported=ReportedRoll("R-77", "PX-A"))
    assert refused(decision, VerdictReason.NO_MANIFEST, "import the pharmacy's manifest for roll r-77")
    assert decision.alarm


def test_another_patients_roll_is_refused_and_alarms() -> None:
    decision = judge(make_manifest(national_id=NID_B))
    assert refused(decision, VerdictReason.WRONG_PATIENT, "another patient")
    assert decision.alarm
    assert decision.alarm_kind == WRONG_ROLL


def test_a_roll_printed_for_another_patient_is_refused_even_with_the_right_manifest() -> None:
    decision = judge(reported=dataclasses.replace(REPORTED, printed_patient_ref="PX-B"))
    assert refused(decision, VerdictReason.WRONG_PATIENT, "patient reference", "does not match")
    assert decision.alarm


@pytest.mark.parametrize(
    ("reported", "named"),
    [
        (dataclasses.replace(REPORTED, first_intake=T0 + 15 * HOUR), "first intake"),
        (dataclasses.replace(REPORTED, last_intake=T0 + 86 * HOUR), "last intake"),
        (dataclasses.replace(REPORTED, pouches=7), "pouch count"),
        (dataclasses.replace(REPORTED, pouches=5, first_intake=T0), "first intake, pouch count"),
    ],
)
def test_a_roll_that_does_not_match_its_manifest_is_refused(reported: ReportedRoll, named: str) -> None:
    decision = judge(reported=reported)
    assert refused(decision, VerdictReason.OTHER, "does not match its manifest", named)
    assert decision.alarm


def test_a_roll_active_in_another_dispenser_is_refused() -> None:
    elsewhere = loaded(device_id="RM3-000002")
    decision = judge(active_elsewhere=elsewhere)
    assert refused(decision, VerdictReason.ALREADY_ACTIVE, "rm3-000002")
    # The same fact reached through the patient's previous load (the caller passed no active_elsewhere).
    assert refused(judge(previous=elsewhere), VerdictReason.ALREADY_ACTIVE)


def test_a_roll_whose_intake_times_are_over_is_refused() -> None:
    assert judge(now=MANIFEST.last_intake).accept
    decision = judge(now=MANIFEST.last_intake + timedelta(milliseconds=1))
    assert refused(decision, VerdictReason.OUT_OF_DATE, "over")


def test_the_safety_checks_come_before_the_others() -> None:
    others = make_manifest(national_id=NID_B)
    decision = judge(
        others, active_elsewhere=loaded(others, device_id="RM3-000002", patient_id=2), now=T0 + 1000 * HOUR
    )
    assert decision.reason is VerdictReason.WRONG_PATIENT


def test_reloading_the_active_roll_in_the_same_dispenser_is_accepted() -> None:
    decision = judge(previous=loaded(at=T0 - HOUR))
    assert decision.accept
    assert "re-loaded" in decision.detail


def test_the_latest_roll_moved_to_a_replacement_dispenser_is_accepted() -> None:
    old = end_load(loaded(device_id="RM3-000002"), reason=RollEndReason.UNBOUND, now=T0)
    assert judge(previous=old).accept


def test_a_withdrawn_roll_is_refused() -> None:
    old = end_load(loaded(), reason=RollEndReason.PLAN_CHANGED, now=T0)
    assert refused(judge(previous=old), VerdictReason.OTHER, "withdrawn")
    # Also behind a newer roll, when the caller knows it was withdrawn.
    newer = end_load(loaded(make_manifest("R-2")), reason=RollEndReason.PLAN_CHANGED, now=T0)
    decision = judge(previous=newer, withdrawn=True)
    assert refused(decision, VerdictReason.OTHER, "withdrawn")
    assert decision.alarm


def _previous(last_pouch_at: datetime, *, spacing: timedelta = 12 * HOUR, count: int = 6) -> RollLoad:
    start = last_pouch_at - count * spacing
    return loaded(make_manifest("R-0", start=start, count=count, spacing=spacing), at=T0 - 200 * HOUR)


def test_a_roll_that_joins_the_previous_one_is_accepted() -> None:
    previous = _previous(MANIFEST.first_intake - 12 * HOUR)
    assert judge(previous=previous).accept
    edge = _previous(MANIFEST.first_intake - MIN_GAP_ALLOWANCE)
    assert judge(previous=edge).accept


def test_a_gap_after_the_previous_roll_is_refused() -> None:
    previous = _previous(MANIFEST.first_intake - MIN_GAP_ALLOWANCE - timedelta(milliseconds=1))
    decision = judge(previous=previous, now=T0 - 100 * HOUR)
    assert refused(decision, VerdictReason.GAP_OR_OVERLAP, "gap", "25 h")
    assert decision.alarm


def test_the_gap_allowance_grows_with_the_previous_rolls_spacing() -> None:
    weekly = _previous(MANIFEST.first_intake - 7 * 24 * HOUR, spacing=7 * 24 * HOUR, count=3)
    assert judge(previous=weekly, now=T0 - 200 * HOUR).accept


def test_a_gap_in_the_past_does_not_block_a_roll_that_starts_now() -> None:
    """Back from a month in hospital: the old roll ended long ago; the new one starts within a day."""
    long_over = _previous(T0 - 30 * 24 * HOUR)
    assert judge(previous=long_over).accept
    decision = judge(make_manifest(start=T0 + 30 * HOUR), previous=long_over)
    assert refused(decision, VerdictReason.GAP_OR_OVERLAP, "gap")


def test_an_overlap_with_the_roll_in_use_is_refused_until_it_is_recorded_replaced() -> None:
    previous = _previous(MANIFEST.first_intake)
    decision = judge(previous=previous)
    assert refused(decision, VerdictReason.GAP_OR_OVERLAP, "overlaps roll r-0", "replaced")
    assert decision.alarm
    for reason in (RollEndReason.REPLACED, RollEndReason.PLAN_CHANGED):
        assert judge(previous=end_load(previous, reason=reason, now=T0)).accept


@pytest.mark.parametrize("reason", [RollEndReason.EMPTY, RollEndReason.UNBOUND, "lost"])
def test_an_overlap_with_a_roll_ended_for_another_reason_is_refused(reason: str) -> None:
    previous = end_load(_previous(MANIFEST.first_intake + 24 * HOUR), reason=reason, now=T0)
    assert refused(judge(previous=previous), VerdictReason.GAP_OR_OVERLAP, "overlaps", "pharmacy")


@pytest.mark.parametrize(
    "decide",
    [
        lambda: judge(make_manifest("R-2"), reported=REPORTED),
        lambda: judge(active_elsewhere=loaded(device_id=DEVICE)),
        lambda: judge(active_elsewhere=loaded(make_manifest("R-2"), device_id="RM3-000002")),
        lambda: judge(active_elsewhere=end_load(loaded(device_id="RM3-000002"), reason="empty", now=T0)),
        lambda: judge(previous=loaded(patient_id=2)),
        lambda: judge(now=T0.replace(tzinfo=None)),
    ],
)
def test_contradictory_facts_are_a_programming_error(decide: Callable[[], RollDecision]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message; the type is the contract
        decide()


def test_a_decision_is_consistent() -> None:
    with pytest.raises(ValueError, match="reason"):
        RollDecision(accept=False, reason=None, detail="", alarm=True)
    with pytest.raises(ValueError, match="no refusal reason"):
        RollDecision(accept=True, reason=None, detail="", alarm=True)
    with pytest.raises(ValueError, match="200"):
        RollDecision(accept=False, reason=VerdictReason.OTHER, detail="x" * 201, alarm=True)


# --- details fit the verdict and carry no patient data ---------------------------------------------------

LONG = "R" * 64
"""The longest roll id (and dispenser id) the protocol allows."""


def _every_roll_decision(roll_id: str, device_id: str) -> list[RollDecision]:
    mine = make_manifest(roll_id, ref="PX-A")
    others = make_manifest(roll_id, national_id=NID_B, ref="PX-B")
    previous = loaded(make_manifest("R" * 63 + "0", start=mine.first_intake - 12 * HOUR), device_id=device_id)
    gap = loaded(make_manifest("R" * 63 + "0", start=T0 - 300 * HOUR), device_id=device_id)
    ended = end_load(previous, reason=RollEndReason.EMPTY, now=T0)
    elsewhere = loaded(mine, device_id="D" * 64)
    withdrawn = end_load(loaded(mine, device_id=device_id), reason=RollEndReason.PLAN_CHANGED, now=T0)
    return [
        judge(mine, device_id=device_id),
        judge(mine, device_id=device_id, previous=loaded(mine, device_id=device_id)),
        judge(mine, device_id=device_id, patient=None),
        judge(None, device_id=device_id, reported=report(mine)),
        judge(others, device_id=device_id, reported=report(others)),
        judge(
            mine, device_id=device_id, reported=dataclasses.replace(report(mine), printed_patient_ref="PX-B")
        ),
        judge(
            mine, device_id=device_id, reported=dataclasses.replace(report(mine), pouches=1, last_intake=T0)
        ),
        judge(mine, device_id=device_id, previous=withdrawn),
        judge(mine, device_id=device_id, active_elsewhere=elsewhere),
        judge(mine, device_id=device_id, now=T0 + 1000 * HOUR),
        judge(mine, device_id=device_id, previous=previous),
        judge(mine, device_id=device_id, previous=ended),
        judge(mine, device_id=device_id, previous=gap, now=T0 - 400 * HOUR),
    ]


def test_every_roll_detail_fits_a_signed_verdict_and_names_no_patient() -> None:
    for roll_id, device_id in (("R-1", DEVICE), (LONG, "D" * 63 + "1")):
        decisions = _every_roll_decision(roll_id, device_id)
        assert {d.reason for d in decisions} == {None, *VerdictReason}
        for decision in decisions:
            verdict = RollVerdict(
                expires=1,
                roll_id=roll_id,
                accept=decision.accept,
                reason=decision.reason,
                detail=decision.detail,
            )
            assert verdict.detail == decision.detail
            assert not decision.detail.endswith("…"), "details are written to fit, never cut"
            for secret in (NID_A, NID_B, "PX-A", "PX-B"):
                assert secret not in decision.detail


def test_the_domain_limits_are_the_protocols() -> None:
    assert any(getattr(meta, "pattern", None) == REF_PATTERN for meta in get_args(Ref)[1:])
    assert any(getattr(meta, "max_length", None) == MAX_DETAIL for meta in get_args(Text)[1:])


def test_messages_convert_to_facts() -> None:
    roll = RollLoaded.model_validate(RollLoaded.EXAMPLE)
    reported = ReportedRoll.from_message(roll)
    assert reported.first_intake == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert reported.pouches == 28
    assert ReportedRoll.from_message(RollLoaded(roll_id="R-1", printed_patient_ref="PX-A")) == ReportedRoll(
        "R-1", "PX-A"
    )
    scan = PouchScan.from_message(PouchScanned.model_validate(PouchScanned.EXAMPLE))
    assert scan.intake_time == reported.first_intake
    assert scan.pouch_id == "P-4711-0042"


# --- the pouch check ------------------------------------------------------------------------------------

LOAD = loaded()
FIRST = MANIFEST.pouches[0]


def scan_of(pouch: Pouch, manifest: RollManifest = MANIFEST) -> PouchScan:
    return PouchScan(manifest.roll_id, pouch.pouch_id, manifest.printed_patient_ref, pouch.intake_at)


SCAN = scan_of(FIRST)


def check(
    scan: PouchScan = SCAN,
    *,
    patient: BoundPatient | None = A,
    load: RollLoad | None = LOAD,
    manifest: RollManifest | None = MANIFEST,
    dispensed: AbstractSet[str] = frozenset(),
    next_due_at: datetime | None = FIRST.intake_at,
) -> PouchDecision:
    return judge_pouch(
        device_id=DEVICE,
        patient=patient,
        load=load,
        manifest=manifest,
        scan=scan,
        dispensed=dispensed,
        next_due_at=next_due_at,
    )


def test_the_next_due_pouch_of_the_accepted_roll_is_given() -> None:
    decision = check()
    assert decision.ok
    assert decision.alarm_kind is None
    assert decision.vkp_code is None
    later = MANIFEST.pouches[3]
    assert check(scan_of(later), dispensed={"R-1-0001"}, next_due_at=later.intake_at).ok


@pytest.mark.parametrize(
    ("decide", "words"),
    [
        (lambda: check(load=None), "no accepted roll"),
        (lambda: check(load=end_load(LOAD, reason="empty", now=T0)), "no accepted roll"),
        (lambda: check(patient=None), "earlier binding"),
        (lambda: check(patient=B), "earlier binding"),
        (lambda: check(dataclasses.replace(SCAN, roll_id="R-2")), "from roll r-2, not the accepted roll r-1"),
        (lambda: check(manifest=None), "no manifest"),
        (lambda: check(manifest=make_manifest(national_id=NID_B)), "no manifest for the bound patient"),
        (lambda: check(dataclasses.replace(SCAN, pouch_id="R-1-0099")), "not on roll r-1"),
        (lambda: check(dataclasses.replace(SCAN, printed_patient_ref="PX-B")), "does not match"),
        (lambda: check(dataclasses.replace(SCAN, intake_time=T0)), "does not match"),
        (lambda: check(dispensed={"R-1-0001"}), "dispensed before"),
        (lambda: check(next_due_at=MANIFEST.pouches[1].intake_at), "not the next due pouch"),
        (lambda: check(next_due_at=None), "not the next due pouch"),
    ],
)
def test_a_pouch_that_breaks_a_rule_is_refused_as_wrong_roll(
    decide: Callable[[], PouchDecision], words: str
) -> None:
    decision = decide()
    assert not decision.ok
    assert decision.alarm_kind == WRONG_ROLL
    assert decision.vkp_code == "3.5"
    assert words in decision.detail.lower()
    for secret in (NID_A, NID_B, "PX-A", "PX-B"):
        assert secret not in decision.detail


def test_pouch_facts_must_agree() -> None:
    with pytest.raises(ValueError, match="dispenser"):
        check(load=loaded(device_id="RM3-000002"))
    with pytest.raises(ValueError, match="manifest"):
        check(manifest=make_manifest("R-2"))


def test_a_pouch_decision_is_consistent() -> None:
    assert PouchDecision(ok=False, alarm_kind=POUCH_UNREADABLE, detail="").vkp_code == "3.16"
    for ok, kind in ((True, WRONG_ROLL), (False, None), (False, "jam")):
        with pytest.raises(ValueError):  # noqa: PT011 - the combinations differ; the type is the contract
            PouchDecision(ok=ok, alarm_kind=kind, detail="")
    with pytest.raises(ValueError, match="200"):
        PouchDecision(ok=True, alarm_kind=None, detail="x" * 201)


# --- the simulator's rolls --------------------------------------------------------------------------------


def manifest_of(roll: Roll, national_id: str, *, printed_ref: str | None = None) -> RollManifest:
    """The manifest a pharmacy would send for a simulator roll (the hub itself never imports device_sim)."""
    pouches = tuple(Pouch(p.pouch_id, from_ms(p.intake_ms), (PARACET,)) for p in roll.pouches)
    packed_at = pouches[0].intake_at - 48 * HOUR
    ref = printed_ref or roll.printed_patient_ref
    return RollManifest(roll.roll_id, national_id, ref, "Simulated pharmacy", packed_at, pouches)


def loaded_by_simulator(
    device: Dispenser, now_ms: int, *, wrong_patient: bool = False
) -> tuple[Roll, RollLoaded]:
    """Load a roll the way the scenario does, and take the ``roll.loaded`` the device published."""
    outputs = load_supply(device, now_ms, wrong_patient=wrong_patient)
    published = [o for o in outputs if isinstance(o, Publish)]
    body = decode(published[0].payload, published[0].topic).envelope.body
    assert isinstance(body, RollLoaded)
    assert device.roll is not None
    return device.roll, body


def test_the_simulators_rolls_are_judged_as_a_hub_must() -> None:
    scenario = load_shipped("wrong_roll_and_travel")
    spec = scenario.device(1)
    device = build_device(spec, hub=None)
    device.outbox.online = True

    def verdict(
        manifest: RollManifest | None, body: RollLoaded, *, previous: RollLoad | None, now_ms: int
    ) -> RollDecision:
        return judge_roll(
            device_id=spec.device_id,
            patient=A,
            manifest=manifest,
            reported=ReportedRoll.from_message(body),
            active_elsewhere=None,
            previous=previous,
            withdrawn=False,
            now=from_ms(now_ms),
        )

    # The correct roll, loaded a minute into the run, with the pharmacy's manifest imported: accepted.
    first_ms = spec.start_ms + ROLL_LOAD_DELAY_MS
    roll, body = loaded_by_simulator(device, first_ms)
    manifest = manifest_of(roll, NID_A)
    assert verdict(manifest, body, previous=None, now_ms=first_ms).accept
    current = start_load(manifest, device_id=spec.device_id, patient_id=A.patient_id, now=from_ms(first_ms))

    # Its pouches, scanned as the device scans them before cutting, are given in order.
    for number, pouch in enumerate(roll.pouches[:3]):
        scanned = PouchScanned(
            roll_id=roll.roll_id,
            pouch_id=pouch.pouch_id,
            printed_patient_ref=roll.printed_patient_ref,
            intake_time=pouch.intake_ms,
        )
        given = judge_pouch(
            device_id=spec.device_id,
            patient=A,
            load=current,
            manifest=manifest,
            scan=PouchScan.from_message(scanned),
            dispensed={p.pouch_id for p in roll.pouches[:number]},
            next_due_at=from_ms(pouch.intake_ms),
        )
        assert given.ok

    # The wrong roll (packed for another patient) is refused, whatever the hub knows of it.
    wrong_ms = next(a.at_ms for a in spec.timeline if a.kind is ActionKind.LOAD_WRONG_ROLL)
    wrong, body = loaded_by_simulator(device, wrong_ms, wrong_patient=True)
    assert wrong.printed_patient_ref != spec.patient_ref
    for wrong_manifest, reason in (
        (manifest_of(wrong, NID_B), VerdictReason.WRONG_PATIENT),  # the other patient's manifest
        (
            manifest_of(wrong, NID_A, printed_ref=spec.patient_ref),
            VerdictReason.WRONG_PATIENT,
        ),  # id collision
        (None, VerdictReason.NO_MANIFEST),  # the other patient's pharmacy never sent one
    ):
        decision = verdict(wrong_manifest, body, previous=current, now_ms=wrong_ms)
        assert (decision.accept, decision.reason, decision.alarm) == (False, reason, True)

    # The right roll after it is the patient's own roll, put back: a re-load of the accepted one, accepted.
    right_ms = next(a.at_ms for a in spec.timeline if a.kind is ActionKind.LOAD_ROLL)
    right, body = loaded_by_simulator(device, right_ms)
    assert right.roll_id == roll.roll_id
    assert verdict(manifest, body, previous=current, now_ms=right_ms).accept

    # A new roll while that one still runs would overlap it: accepted once someone recorded it as replaced.
    new = dataclasses.replace(manifest_of(wrong, NID_A, printed_ref=spec.patient_ref), roll_id="R-NEW")
    body = RollLoaded(
        roll_id="R-NEW",
        printed_patient_ref=spec.patient_ref,
        first_intake=to_ms(new.first_intake),
        last_intake=to_ms(new.last_intake),
        pouches=len(new.pouches),
    )
    overlap = verdict(new, body, previous=current, now_ms=right_ms)
    assert overlap.reason is VerdictReason.GAP_OR_OVERLAP
    replaced = end_load(current, reason=RollEndReason.REPLACED, now=from_ms(right_ms))
    assert verdict(new, body, previous=replaced, now_ms=right_ms).accept
