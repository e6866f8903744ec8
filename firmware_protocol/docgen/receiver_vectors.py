"""Stateful receiver vectors: duplicate and sequence scenarios, the device's checks of downlink messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware_protocol import errors
from firmware_protocol.docgen.material import (
    DEVICE_BOOT_ID,
    DEVICE_ID,
    NOW_MS,
    OTHER_DEVICE_ID,
    deterministic_id,
)
from firmware_protocol.errors import ErrorCode
from firmware_protocol.messages import MESSAGE_TYPES
from firmware_protocol.receiver import SEQUENCE_EXEMPT, DuplicateFilter, SeqStatus, SequenceTracker


@dataclass(frozen=True, slots=True)
class _Step:
    seq: int
    label: str
    boot: str = DEVICE_BOOT_ID
    type: str = "dose.taken"


def _receiver_scenarios() -> list[dict[str, Any]]:
    """Sequence and duplicate scenarios, with outcomes computed by the reference receiver."""
    other_boot = deterministic_id("device second boot", NOW_MS)
    scenarios: list[tuple[str, str, list[_Step]]] = [
        (
            "in order, gap, late fill, duplicate, replay",
            (
                "One boot: a gap is reported as missing ranges and filled by late arrivals; a redelivered "
                "message (same msg_id) is a duplicate; a used number with a new msg_id is a replay, and "
                "stays refused when redelivered (only accepted ids count as duplicates)."
            ),
            [
                _Step(0, "a", type="birth"),
                _Step(1, "b", type="state"),
                _Step(2, "c"),
                _Step(5, "f"),
                _Step(3, "d"),
                _Step(5, "f"),
                _Step(2, "c-forged"),
                _Step(2, "c-forged"),
                _Step(4, "e"),
                _Step(6, "g"),
            ],
        ),
        (
            "joined mid-boot",
            "The receiver starts after the device: the first seq seen is above 0.",
            [_Step(17, "q"), _Step(18, "r"), _Step(20, "t"), _Step(17, "q-again")],
        ),
        (
            "death is outside the sequence",
            "A Last Will carries the seq current at connect time; it neither advances nor is checked.",
            [_Step(0, "a", type="birth"), _Step(1, "b"), _Step(0, "will", type="death"), _Step(2, "c")],
        ),
        (
            "reboot and buffered events",
            "Events buffered before a reboot and sent after it are checked against their own boot.",
            [
                _Step(0, "a", type="birth"),
                _Step(1, "b"),
                _Step(0, "x", boot=other_boot, type="birth"),
                _Step(2, "c"),
                _Step(1, "y", boot=other_boot),
                _Step(1, "b-forged"),
            ],
        ),
    ]
    out = []
    for name, description, steps in scenarios:
        tracker, duplicates = SequenceTracker(), DuplicateFilter()
        rows = []
        for step in steps:
            msg_id = deterministic_id(f"receiver {name} {step.boot} {step.label}")
            row: dict[str, Any] = {"boot_id": step.boot, "seq": step.seq, "msg_id": msg_id, "type": step.type}
            if duplicates.seen(DEVICE_ID, msg_id):
                row["expected"] = {"outcome": "duplicate"}
            else:
                try:
                    result = tracker.observe(step.boot, step.seq, step.type)
                except errors.ReplayError as exc:
                    row["expected"] = {"outcome": "refused", "code": exc.code.value, "field": exc.field}
                else:
                    duplicates.remember(DEVICE_ID, msg_id)
                    row["expected"] = {
                        "outcome": "accepted",
                        "status": result.status.value,
                        "missing": [list(r) for r in result.missing],
                    }
            rows.append(row)
        out.append({"name": name, "description": description, "device": DEVICE_ID, "steps": rows})
    return out


def _downlink_checks() -> list[dict[str, Any]]:
    """Device-side checks of verified downlink messages (DownlinkCheck), referring to valid vectors."""
    expiry: int = MESSAGE_TYPES["cmd.identify"].EXAMPLE["expires"]  # type: ignore[assignment]
    set_time_expiry: int = MESSAGE_TYPES["cmd.set_time"].EXAMPLE["expires"]  # type: ignore[assignment]
    version: int = MESSAGE_TYPES["config"].EXAMPLE["version"]  # type: ignore[assignment]

    def case(
        name: str,
        vector: str,
        now_ms: int,
        held: int | None,
        *,
        act: bool | None = None,
        code: ErrorCode | None = None,
        field: str | None = None,
        device_id: str = DEVICE_ID,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "vector": vector,
            "device_id": device_id,
            "now_ms": now_ms,
            "held_config_version": held,
            "expected_act": act,
            "expected_code": code.value if code else None,
            "expected_field": field,
        }

    return [
        case("command in time", "cmd.identify", expiry, None, act=True),
        case("command expired", "cmd.identify", expiry + 1, None, code=ErrorCode.EXPIRED,
             field="body.expires"),
        case("set_time never expires", "cmd.set_time", set_time_expiry + 86_400_000, None, act=True),
        case("command for another device", "cmd.identify", NOW_MS, None, code=ErrorCode.TOPIC, field="device",
             device_id=OTHER_DEVICE_ID),
        case("newer config", "config", NOW_MS, version - 1, act=True),
        case("no config held", "config", NOW_MS, None, act=True),
        case("retained config delivered again", "config", NOW_MS, version, act=False),
        case("older config", "config", NOW_MS, version + 1, code=ErrorCode.STALE_VERSION,
             field="body.version"),
    ]  # fmt: skip


def receiver_document() -> dict[str, Any]:
    """``vectors/receiver.json``: stateful receiver rules."""
    return {
        "description": (
            "Stateful receiver rules (firmware_protocol/receiver.py). scenarios: per scenario start with "
            "empty state for the device, then for each step: if (device, msg_id) was seen before the outcome "
            "is 'duplicate' (acknowledge, ignore); otherwise apply the sequence rule to (boot_id, seq): "
            "'accepted' with status and the missing ranges still open in that boot (inclusive), or "
            "'refused' with E_REPLAY. Types in sequence_exempt have status 'exempt'. downlink_checks: "
            "a device opens the named valid vector's payload, then checks it is addressed to device_id, "
            "that a command has not expired at now_ms (cmd.set_time excepted), and compares a config's "
            "version with held_config_version (null: none held). expected_code null: accepted, and "
            "expected_act says whether to act on it (false: the retained config already held, delivered "
            "again: do nothing, answer nothing)."
        ),
        "sequence_exempt": sorted(SEQUENCE_EXEMPT),
        "seq_statuses": [status.value for status in SeqStatus],
        "scenarios": _receiver_scenarios(),
        "downlink_checks": _downlink_checks(),
    }
