"""Scenario files: shipped ones load; every error names its line and column; DST; reproducible expansion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from device_sim.build import supply_loader
from device_sim.device.supply import Roll
from device_sim.patient import Forgetful, Overlaid
from device_sim.ports import FaultKind, PatientAction
from device_sim.scenario import (
    ActionKind,
    Family,
    ScenarioError,
    derive_seed,
    load_scenario,
    load_shipped,
    parse_scenario,
    shipped_scenario_names,
)

if TYPE_CHECKING:
    from pathlib import Path

BASE = """\
name: test
seed: 1
start: 2026-11-23
duration: 3d
population:
  - count: 2
    family: multidose_roll
    doses: ["08:00", "20:00"]
    behaviour:
      model: forgetful
      miss_probability:
        evening: 0.2
  - count: 1
    family: dose_pot
    doses: ["09:00"]
timeline:
  - at: day 2 08:00
    device: 1
    action: network_down
    for: 2h
"""


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, file="scenario.yaml")
    return [str(p) for p in caught.value.problems]


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def test_shipped_scenarios_load() -> None:
    names = shipped_scenario_names()
    assert {"demo", "wrong_roll_and_travel"} <= set(names)
    for name in names:
        scenario = load_shipped(name)
        devices = scenario.devices()
        assert devices
        assert len({d.device_id for d in devices}) == len(devices)
        assert all(d.doses() for d in devices)


def test_demo_has_both_families_and_the_promised_trouble() -> None:
    scenario = load_shipped("demo")
    devices = scenario.devices()
    assert {d.family for d in devices} == {Family.MULTIDOSE_ROLL, Family.DOSE_POT}
    kinds = {a.kind for d in devices for a in d.timeline}
    assert {ActionKind.LOAD_WRONG_ROLL, ActionKind.AWAY, ActionKind.NETWORK_DOWN} <= kinds


def test_base_scenario_expands() -> None:
    scenario = parse_scenario(BASE)
    assert scenario.start_ms == ms(2026, 11, 22, 23)
    assert scenario.end_ms == scenario.start_ms + 3 * 86_400_000
    devices = scenario.devices()
    assert [d.device_id for d in devices] == ["RM3-000001", "RM3-000002", "DP5-000003"]
    first = devices[0]
    assert isinstance(first.patient, Forgetful)
    assert first.window.opens_before_ms == 3_600_000
    assert first.window.closes_after_ms == 7_200_000
    assert first.reminders.notice_before_s == 900
    (action,) = first.timeline
    assert action.kind is ActionKind.NETWORK_DOWN
    assert action.at_ms == ms(2026, 11, 24, 7)
    assert action.params == {"for_ms": 7_200_000}
    assert action.line == 17
    assert devices[1].timeline == ()
    doses = first.doses()
    assert len(doses) == 6
    assert doses[0].slot_id == "s-20261123-0800"
    assert doses[0].due_ms == ms(2026, 11, 23, 7)
    assert doses[0].opens_ms == doses[0].due_ms - 3_600_000


def test_ids_and_seeds_are_reproducible() -> None:
    one, two = parse_scenario(BASE).devices(), parse_scenario(BASE).devices()
    assert [(d.device_id, d.seed) for d in one] == [(d.device_id, d.seed) for d in two]
    assert one[0].seed == derive_seed(1, 1)
    assert len({d.seed for d in one}) == 3
    assert one[0].rng("patient").random() == two[0].rng("patient").random()
    assert one[0].rng("patient").random() != one[0].rng("faults").random()
    other_seed = parse_scenario(edit("seed: 1", "seed: 2")).devices()
    assert other_seed[0].seed != one[0].seed


def test_id_prefix() -> None:
    text = edit('    doses: ["09:00"]\n', '    doses: ["09:00"]\n    id_prefix: BRG-\n')
    assert parse_scenario(text).devices()[2].device_id == "BRG-000003"


def test_load_scenario_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(edit("seed: 1", "seed: one"))
    with pytest.raises(ScenarioError, match=r"^mine\.yaml:2:1: seed: "):
        load_scenario(path)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # missing field: points at the list item that lacks it
        (
            "  - count: 1\n    family: dose_pot\n",
            "  - family: dose_pot\n",
            "scenario.yaml:13:5: population[1].count: required",
        ),
        ("name: test\n", "", "scenario.yaml:1:1: name: required"),
        # wrong type
        ("seed: 1", "seed: one", "scenario.yaml:2:1: seed: input should be a valid integer"),
        (
            "  - count: 2",
            "  - count: two",
            "scenario.yaml:6:5: population[0].count: input should be a valid integer",
        ),
        # out of range, nested
        (
            "        evening: 0.2",
            "        evening: 1.5",
            (
                "scenario.yaml:12:9: population[0].behaviour.miss_probability.evening: "
                "input should be less than or equal to 1"
            ),
        ),
        # unknown keys
        ("duration: 3d", "duration: 3d\ncolour: red", "scenario.yaml:5:1: colour: unknown key"),
        (
            "    for: 2h",
            "    for: 2h\n    loudly: true",
            "scenario.yaml:21:5: timeline[0].loudly: unknown key",
        ),
        (
            "      model: forgetful",
            "      model: grumpy",
            "scenario.yaml:10:7: population[0].behaviour.model: input tag 'grumpy'",
        ),
        (
            "    action: network_down",
            "    action: dance",
            "scenario.yaml:19:5: timeline[0].action: input tag 'dance'",
        ),
        ("start: 2026-11-23", "start: someday", "scenario.yaml:3:1: start: 'someday' is not an ISO date"),
        # bad durations and times
        ("duration: 3d", "duration: 3 days", "scenario.yaml:4:1: duration: '3 days' is not a duration"),
        (
            'doses: ["08:00", "20:00"]',
            'doses: ["08:00", "25:00"]',
            "scenario.yaml:8:22: population[0].doses[1]: '25:00' is not a time of day",
        ),
        (
            "at: day 2 08:00",
            "at: day 0 08:00",
            "scenario.yaml:17:5: timeline[0].at: 'day 0 08:00': scenario days are counted from 1",
        ),
        (
            "at: day 2 08:00",
            "at: day 2 25:00",
            "scenario.yaml:17:5: timeline[0].at: '25:00' is not a time of day",
        ),
        (
            "at: day 2 08:00",
            "at: day 9 08:00",
            "scenario.yaml:17:5: timeline[0].at: 'day 9 08:00' is outside the scenario",
        ),
        (
            "at: day 2 08:00",
            "at: tomorrow",
            "scenario.yaml:17:5: timeline[0].at: 'tomorrow' is not an ISO date or datetime",
        ),
        # targets
        (
            "    device: 1\n",
            "    device: 4\n",
            "scenario.yaml:18:5: timeline[0].device: there is no device 4",
        ),
        (
            "    device: 1\n",
            "    devices: [1, 7]\n",
            "scenario.yaml:18:18: timeline[0].devices[1]: there is no device 7",
        ),
        ("    device: 1\n", "", "scenario.yaml:17:5: timeline[0]: give exactly one target"),
        (
            "    device: 1\n",
            "    device: 1\n    patient: 1\n",
            "scenario.yaml:17:5: timeline[0]: give exactly one target",
        ),
        # a roll into a dose-pot device
        (
            "    device: 1\n    action: network_down\n    for: 2h\n",
            "    device: 3\n    action: load_wrong_roll\n",
            (
                "scenario.yaml:18:5: timeline[0].device: "
                "load_wrong_roll needs a multidose_roll device; device 3 is dose_pot"
            ),
        ),
        (
            "    device: 1\n    action: network_down\n    for: 2h\n",
            "    devices: all\n    action: load_roll\n",
            "scenario.yaml:18:5: timeline[0].devices: load_roll needs multidose_roll devices",
        ),
        # action parameters
        ("    for: 2h\n", "", "scenario.yaml:17:5: timeline[0].for: required"),
        (
            "    action: network_down\n    for: 2h\n",
            "    action: away\n    until: day 1 08:00\n",
            "scenario.yaml:20:5: timeline[0].until: must be after 'at'",
        ),
        (
            "    action: network_down\n    for: 2h\n",
            "    action: hostile\n    kind: rude\n",
            "scenario.yaml:20:5: timeline[0].kind: input should be 'replay'",
        ),
        (
            "    action: network_down\n    for: 2h\n",
            "    action: miss_doses\n    until: day 3 08:00\n    which: brunch\n",
            "scenario.yaml:21:5: timeline[0].which: expected one of all, morning",
        ),
        # duplicate keys (PyYAML would silently keep the last)
        ("seed: 1", "seed: 1\nseed: 2", "scenario.yaml:3:1: seed: duplicate key (first given on line 2)"),
        (
            "      model: forgetful",
            "      model: forgetful\n      model: late",
            "scenario.yaml:11:7: population[0].behaviour.model: duplicate key",
        ),
        # YAML syntax
        (
            'doses: ["08:00", "20:00"]',
            'doses: ["08:00", "20:00"',
            "scenario.yaml:9:5: YAML syntax error: expected ',' or ']'",
        ),
        (
            "name: test",
            "name: test\n  oops: [",
            "scenario.yaml:2:7: YAML syntax error: mapping values are not allowed here",
        ),
    ],
)
def test_errors_name_line_and_column(old: str, new: str, expected: str) -> None:
    found = errors(edit(old, new))
    assert any(line.startswith(expected) for line in found), found


def test_all_problems_are_reported_in_line_order() -> None:
    text = edit("seed: 1", "seed: x").replace("count: 1", "count: 0").replace("for: 2h", "for: soon")
    found = errors(text)
    assert [f.split(":")[1] for f in found] == ["2", "13", "20"]


def test_empty_and_non_mapping_files() -> None:
    assert errors("") == ["scenario.yaml:1:1: the file is empty"]
    assert errors("- 1\n- 2\n")[0].startswith("scenario.yaml:1:1: a scenario must be a mapping")


def test_dst_gap_in_the_timeline_is_an_error() -> None:
    # 2026-03-29 is the last Sunday of March: Oslo jumps from 02:00 CET to 03:00 CEST
    text = edit("start: 2026-11-23", "start: 2026-03-28").replace("day 2 08:00", "day 2 02:30")
    assert errors(text) == [
        (
            "scenario.yaml:17:5: timeline[0].at: 'day 2 02:30': "
            "2026-03-29 02:30 does not exist in Europe/Oslo (the clocks jump from 02:00 to 03:00 that night)"
        )
    ]
    ok = parse_scenario(text.replace("day 2 02:30", "day 2 03:00"))
    assert ok.devices()[0].timeline[0].at_ms == ms(2026, 3, 29, 1)
    assert errors(edit("start: 2026-11-23", "start: 2026-03-29T02:15"))[0].startswith(
        "scenario.yaml:3:1: start: 2026-03-29 02:15 does not exist"
    )


def test_dst_doses_shift_forward_in_the_gap_and_take_the_first_of_a_repeat() -> None:
    text = edit("start: 2026-11-23", "start: 2026-03-28").replace(
        'doses: ["08:00", "20:00"]', 'doses: ["02:30"]'
    )
    doses = parse_scenario(text).devices()[0].doses()
    assert [d.slot_id for d in doses] == ["s-20260328-0230", "s-20260329-0230", "s-20260330-0230"]
    assert doses[0].due_ms == ms(2026, 3, 28, 1, 30)  # CET
    assert doses[1].due_ms == ms(2026, 3, 29, 1, 30)  # 03:30 CEST: moved forward by the gap
    assert doses[2].due_ms == ms(2026, 3, 30, 0, 30)  # CEST
    autumn = text.replace("start: 2026-03-28", "start: 2026-10-24")
    fall = parse_scenario(autumn).devices()[0].doses()
    assert fall[1].due_ms == ms(2026, 10, 25, 0, 30)  # 02:30 occurs twice; the first (CEST) is meant
    # days are 24 h: a 3-day scenario starting at midnight before the spring change ends at 01:00 local
    assert parse_scenario(text).end_ms == ms(2026, 3, 27, 23) + 3 * 86_400_000


def test_absolute_iso_times_and_sexagesimal_safety() -> None:
    text = edit("at: day 2 08:00", "at: 2026-11-24T08:00").replace('["08:00", "20:00"]', "[08:00, 20:00]")
    scenario = parse_scenario(text)
    device = scenario.devices()[0]
    assert device.timeline[0].at_ms == ms(2026, 11, 24, 7)
    assert [t.hour for t in device.dose_times] == [8, 20]
    utc = edit("at: day 2 08:00", "at: 2026-11-24T08:00Z")
    assert parse_scenario(utc).devices()[0].timeline[0].at_ms == ms(2026, 11, 24, 8)


def test_away_and_misses_are_applied_to_the_patient() -> None:
    text = edit(
        "    action: network_down\n    for: 2h\n",
        "    action: away\n    until: day 3 08:00\n    reason: hospital\n"
        "  - at: day 1 00:00\n    devices: all\n    action: miss_doses\n"
        "    until: day 2 00:00\n    which: [evening]\n",
    )
    devices = parse_scenario(text).devices()
    patient = devices[0].patient
    assert isinstance(patient, Overlaid)
    assert patient.away(ms(2026, 11, 24, 12))
    assert not patient.away(ms(2026, 11, 25, 12))
    away, miss = sorted(devices[0].timeline, key=lambda a: a.kind)
    assert away.params["reason"] == "hospital"
    assert miss.params["bands"] == ("evening",)
    import random  # noqa: PLC0415

    evening = ms(2026, 11, 23, 19)
    answer = devices[2].patient.respond(
        opens_ms=evening - 1, due_ms=evening, closes_ms=evening + 3_600_000, rng=random.Random(1)
    )
    assert answer.action is PatientAction.IGNORE
    assert devices[2].timeline[0].kind is ActionKind.MISS_DOSES


def test_fault_action_params() -> None:
    text = edit("    action: network_down\n    for: 2h\n", "    action: fault\n    kind: tilt\n")
    (action,) = parse_scenario(text).devices()[0].timeline
    assert action.params == {"kind": FaultKind.TILT, "for_ms": 0}


def test_faults_presets() -> None:
    none = edit('    doses: ["09:00"]\n', '    doses: ["09:00"]\n    faults: none\n')
    import random  # noqa: PLC0415

    assert parse_scenario(none).devices()[2].faults.next_fault(0, random.Random(1)) is None
    assert errors(none.replace("faults: none", "faults: lots"))[0].startswith(
        "scenario.yaml:16:5: population[1].faults: expected 'none', 'default' or a mapping"
    )


def test_the_right_roll_after_a_wrong_one_is_the_patients_own_roll_again() -> None:
    spec = load_shipped("wrong_roll_and_travel").devices()[0]
    load = supply_loader(spec)
    day = 86_400_000
    own = load(spec.start_ms, False)  # noqa: FBT003 - the loader's signature
    wrong = load(spec.start_ms + day, True)  # noqa: FBT003
    again = load(spec.start_ms + day + 3_600_000, False)  # noqa: FBT003
    assert isinstance(own, Roll)
    assert isinstance(wrong, Roll)
    assert wrong.printed_patient_ref != own.printed_patient_ref
    assert again is own  # put back, with what was used of it; no new roll opened mid-roll
    later = load(spec.start_ms + 20 * day, False)  # noqa: FBT003 - the own roll has run out by then
    assert isinstance(later, Roll)
    assert later.roll_id not in {own.roll_id, wrong.roll_id}
    assert later.printed_patient_ref == own.printed_patient_ref
