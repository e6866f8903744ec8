"""The VKP and SCAIP code lists and the mapping of every uplink event onto them."""

from __future__ import annotations

import pytest

from firmware_protocol.codes import (
    EVENT_MAPPINGS,
    HUB_CONDITIONS,
    NOT_REPORTABLE,
    SCAIP_CODES,
    VKP_CODES,
    Severity,
    mapping_for,
)
from firmware_protocol.messages import FAULT_TYPES, MESSAGE_TYPES, DosePredispensed, FaultCleared
from firmware_protocol.topics import Direction

UPLINK_TYPES = {name for name, cls in MESSAGE_TYPES.items() if cls.CHANNEL.direction is Direction.UPLINK}
ALL_ROWS = {**EVENT_MAPPINGS, **{f"hub:{name}": row for name, row in HUB_CONDITIONS.items()}}
CLEARABLE = sorted(FaultCleared.model_json_schema()["properties"]["fault"]["enum"])


def test_every_uplink_type_is_mapped_or_not_reportable_but_not_both() -> None:
    assert set(EVENT_MAPPINGS).isdisjoint(NOT_REPORTABLE)
    assert set(EVENT_MAPPINGS) | NOT_REPORTABLE == UPLINK_TYPES


def test_every_fault_has_a_vkp_code() -> None:
    for fault in FAULT_TYPES:
        row = EVENT_MAPPINGS[fault.TYPE]
        if fault.TYPE == "fault.mains_restored":
            assert (row.vkp, row.clears, row.severity) == (None, "3.9", Severity.NOT_REPORTED)
        else:
            assert row.vkp in VKP_CODES, fault.TYPE


def test_every_vkp_code_is_produced() -> None:
    produced = {row.vkp for row in ALL_ROWS.values()}
    assert set(VKP_CODES) <= produced
    assert produced - {None} <= set(VKP_CODES)


def test_every_scaip_code_is_used_and_known() -> None:
    used = {row.scaip for row in ALL_ROWS.values()}
    assert set(SCAIP_CODES) <= used
    assert used - {None} <= set(SCAIP_CODES)
    assert all(len(code) == 4 and code.isdigit() for code in SCAIP_CODES)


def test_every_clears_names_a_vkp_code() -> None:
    for name, row in ALL_ROWS.items():
        assert row.clears is None or row.clears in VKP_CODES, name
        assert row.clears is None or row.clears != row.vkp, name


def test_rows_are_consistent() -> None:
    for name, row in ALL_ROWS.items():
        if row.vkp is None:
            assert row.severity is Severity.NOT_REPORTED or row.dispense_category, name
        assert row.dispense_category in {None, "1.1", "1.2", "2"}, name


def test_clearable_faults_are_every_fault_but_mains_restored() -> None:
    assert set(CLEARABLE) == {f.TYPE for f in FAULT_TYPES} - {"fault.mains_restored"}


@pytest.mark.parametrize("fault", CLEARABLE)
def test_fault_cleared_clears_the_code_of_the_fault_it_names(fault: str) -> None:
    row = mapping_for(FaultCleared(fault=fault))
    assert row is not None
    assert row.clears == EVENT_MAPPINGS[fault].vkp
    assert row.clears in VKP_CODES
    assert (row.vkp, row.scaip, row.severity) == (None, None, Severity.NOT_REPORTED)


@pytest.mark.parametrize("type_name", sorted(EVENT_MAPPINGS))
def test_mapping_for_an_example_body_is_its_row(type_name: str) -> None:
    body = MESSAGE_TYPES[type_name].model_validate(MESSAGE_TYPES[type_name].EXAMPLE)
    assert mapping_for(body) == EVENT_MAPPINGS[type_name]  # the predispensed example is short of doses


@pytest.mark.parametrize("type_name", sorted(NOT_REPORTABLE - {"fault.cleared", "prov.request"}))
def test_not_reportable_bodies_map_to_nothing(type_name: str) -> None:
    body = MESSAGE_TYPES[type_name].model_validate(MESSAGE_TYPES[type_name].EXAMPLE)
    assert mapping_for(body) is None


def test_predispensed_raises_3_15_only_when_short() -> None:
    example = dict(DosePredispensed.EXAMPLE)
    short = mapping_for(DosePredispensed.model_validate(example))
    assert short is not None
    assert (short.vkp, short.severity, short.dispense_category) == ("3.15", Severity.YELLOW, "2")
    full = mapping_for(DosePredispensed.model_validate({**example, "requested": 2}))
    assert full is not None
    assert (full.vkp, full.severity, full.dispense_category) == (None, Severity.NOT_REPORTED, "2")
    assert full.scaip == short.scaip == "0083"
