"""Presence from accepted messages (stale wills ignored) and the device alarms messages raise and clear."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dispenser_hub.domain.model import Presence, SubjectKind
from dispenser_hub.domain.presence import alarm_facts, apply_message, is_stale_death, silence_condition
from firmware_protocol import Envelope
from firmware_protocol.messages import (
    Birth,
    Death,
    DoseTaken,
    FaultCleared,
    Heartbeat,
    RollLoaded,
)
from firmware_protocol.messages.uplink import FaultJam

if TYPE_CHECKING:
    from firmware_protocol.messages.common import Body

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DEVICE = "RM3-000017"
BOOT_A = "01KAR5J1XG0000000000000000"
BOOT_B = "01KAR5J1XG0000000000000001"


def _env(body_type: type[Body], seq: int, boot: str = BOOT_A, **changes: Any) -> Envelope[Body]:
    body = body_type.model_validate({**body_type.EXAMPLE, **changes})
    return Envelope(body, device=DEVICE, boot_id=boot, seq=seq, ts=1_795_417_200_000)


def test_birth_brings_the_device_online_with_what_it_reports() -> None:
    presence = apply_message(Presence(), _env(Birth, 0, connection=2, battery_pct=55), T0)
    assert presence.online
    assert (presence.since, presence.last_seen_at) == (T0, T0)
    assert (presence.boot_id, presence.connection, presence.last_seq) == (BOOT_A, 2, 0)
    assert presence.battery_pct == 55
    assert presence.capabilities == tuple(Birth.EXAMPLE["capabilities"])  # type: ignore[arg-type]
    assert presence.firmware == Birth.EXAMPLE["firmware"]


def test_heartbeats_refresh_last_seen_and_sequence_only_moves_forward() -> None:
    born = apply_message(Presence(), _env(Birth, 0), T0)
    later = T0 + timedelta(minutes=5)
    beat = apply_message(born, _env(Heartbeat, 7, battery_pct=40), later)
    assert (beat.last_seen_at, beat.last_seq, beat.battery_pct, beat.since) == (later, 7, 40, T0)
    replayed = apply_message(beat, _env(DoseTaken, 3), later)  # an older buffered message
    assert replayed.last_seq == 7
    new_boot = apply_message(replayed, _env(Birth, 0, boot=BOOT_B), later)
    assert (new_boot.boot_id, new_boot.last_seq) == (BOOT_B, 0)


def test_death_takes_the_device_offline_unless_the_will_is_stale() -> None:
    born = apply_message(Presence(), _env(Birth, 0, connection=1), T0)
    later = T0 + timedelta(minutes=1)
    current = _env(Death, 5, connection=1)
    assert not is_stale_death(born, current)
    gone = apply_message(born, current, later)
    assert (gone.online, gone.since) == (False, later)

    old_connection = _env(Death, 2, connection=0)
    assert is_stale_death(born, old_connection)
    assert apply_message(born, old_connection, later).online

    reborn = apply_message(gone, _env(Birth, 0, boot=BOOT_B, connection=0), later)
    old_boot = _env(Death, 9, boot=BOOT_A, connection=1)
    assert is_stale_death(reborn, old_boot)
    assert apply_message(reborn, old_boot, later).online


def test_faults_raise_device_alarms_with_vkp_code_and_severity() -> None:
    facts = alarm_facts(_env(FaultJam, 3), patient_id=4)
    (condition,) = facts.raised
    assert (condition.kind, condition.vkp_code, condition.severity) == ("fault.jam", "3.14", 3)
    assert (condition.subject_kind, condition.subject_id, condition.patient_id) == (
        SubjectKind.DEVICE,
        DEVICE,
        4,
    )
    assert facts.cleared == ()


def test_messages_that_end_a_condition_clear_its_kind() -> None:
    assert alarm_facts(_env(FaultCleared, 4, fault="fault.jam"), patient_id=None).cleared == ("fault.jam",)
    assert set(alarm_facts(_env(Birth, 0), patient_id=None).cleared) == {"death", "no_contact"}
    assert alarm_facts(_env(RollLoaded, 1), patient_id=None).cleared == ("roll.empty",)


def test_death_raises_an_offline_alarm_but_a_stale_one_does_not() -> None:
    death = _env(Death, 5)
    (condition,) = alarm_facts(death, patient_id=None).raised
    assert (condition.kind, condition.vkp_code) == ("death", "3.10")
    assert alarm_facts(death, patient_id=None, stale_death=True).raised == ()


def test_dose_events_raise_no_device_alarm() -> None:
    assert alarm_facts(_env(DoseTaken, 2), patient_id=1).raised == ()


def test_silence_is_a_no_contact_condition() -> None:
    condition = silence_condition(DEVICE, T0, patient_id=None, now=T0 + timedelta(hours=2))
    assert (condition.kind, condition.vkp_code, condition.severity) == ("no_contact", "3.10", 2)
    assert "120 minutes" in condition.detail
    never = silence_condition(DEVICE, None, patient_id=None, now=T0)
    assert "never" in never.detail
    assert dataclasses.replace(never, detail="x").dedup_key == f"device:{DEVICE}:no_contact"
