"""Ingest over the memory store: enrollment, storage exactly once, refusals, presence, alarms, commands."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.model import AlarmStatus, CommandStatus, DeviceStatus
from dispenser_hub.domain.presence import apply_message
from dispenser_hub.ports import StorageUnavailableError
from dispenser_hub.services import ingest as ingest_module
from dispenser_hub.services.ingest import IngestLimits, Verdict
from firmware_protocol import DownlinkCheck, KeyRing, decode, verify
from firmware_protocol.messages import (
    CommandAck,
    Death,
    DoseTaken,
    FaultCleared,
    Heartbeat,
    ProvisionAccepted,
    ProvisionRejected,
)
from firmware_protocol.messages.uplink import FaultJam
from tests.dispenser_hub.services.support import Device, HubUnderTest, enrolled

if TYPE_CHECKING:
    from pathlib import Path

    from dispenser_hub.ports import UnitOfWork
    from firmware_protocol import Received


@pytest.fixture
def hub(tmp_path: Path) -> HubUnderTest:
    return HubUnderTest(tmp_path)


def _published(hub: HubUnderTest) -> list[Received]:
    ring = KeyRing()
    ring.add(None, hub.ca.hub_signer.public_key)
    out = []
    for topic, payload, _retain in hub.published.messages:
        received = decode(payload, topic)
        verify(received, ring)
        out.append(received)
    return out


def test_a_registered_device_enrolls_with_its_code_and_becomes_active_on_birth(hub: HubUnderTest) -> None:
    device = Device.create()
    _, code = hub.registry.register_device(
        device.device_id, serial=device.identity.serial, family=device.identity.family, model="RM3", by="op"
    )
    request = device.enrollment(code.code, hub.clock.now())
    assert hub.deliver(request) == [Verdict.STORED]
    with hub.store() as uow:
        stored = uow.devices.get(device.device_id)
    assert stored is not None
    assert stored.status is DeviceStatus.ENROLLED
    assert stored.certificate_pem is not None
    assert hub.ca.verify_issued(stored.certificate_pem)

    assert hub.commands.send_due() == 1
    (answer,) = _published(hub)
    assert isinstance(answer.envelope.body, ProvisionAccepted)
    assert answer.envelope.corr_id == decode(request[1]).envelope.msg_id
    DownlinkCheck(device.device_id).check_enrollment(answer.envelope.body, device.identity.signer.public_key)
    assert hub.commands.send_due() == 0  # answers expect no ack: published once

    assert hub.deliver(device.birth(hub.clock.now())) == [Verdict.STORED]
    with hub.store() as uow:
        active = uow.devices.get(device.device_id)
    assert active is not None
    assert (active.status, active.presence.online) == (DeviceStatus.ACTIVE, True)


@pytest.mark.parametrize(
    ("code", "fields", "reason"),
    [
        ("ZZZZ-ZZZZ-ZZZZ-ZZZZ", {}, "code_unknown"),
        (None, {"family": "dose_pot"}, "code_mismatch"),
        (None, {"serial": "SOMEONE-ELSE"}, "code_mismatch"),
    ],
)
def test_wrong_enrollments_are_refused_with_a_reason(
    hub: HubUnderTest, code: str | None, fields: dict[str, str], reason: str
) -> None:
    device = Device.create()
    _, issued = hub.registry.register_device(
        device.device_id, serial=device.identity.serial, family=device.identity.family, model="RM3", by="op"
    )
    assert hub.deliver(device.enrollment(code or issued.code, hub.clock.now(), **fields)) == [Verdict.STORED]
    hub.commands.send_due()
    (answer,) = _published(hub)
    body = answer.envelope.body
    assert isinstance(body, ProvisionRejected)
    assert body.reason.value == reason
    with hub.store() as uow:
        assert uow.devices.get(device.device_id).public_key is None  # type: ignore[union-attr]


def test_a_used_code_is_refused_but_the_same_key_gets_its_certificate_again(hub: HubUnderTest) -> None:
    device = Device.create()
    _, code = hub.registry.register_device(
        device.device_id, serial=device.identity.serial, family=device.identity.family, model="RM3", by="op"
    )
    hub.deliver(device.enrollment(code.code, hub.clock.now()))
    hub.deliver(device.enrollment(code.code, hub.clock.now()))  # it missed the answer
    thief = Device.create()
    thief.identity = type(thief.identity).create(device.device_id, device.identity.family)  # another key
    hub.deliver(thief.enrollment(code.code, hub.clock.now()))
    hub.commands.send_due()
    bodies = [r.envelope.body for r in _published(hub)]
    assert [type(b) for b in bodies] == [ProvisionAccepted, ProvisionAccepted, ProvisionRejected]
    assert isinstance(bodies[2], ProvisionRejected)
    assert bodies[2].reason.value == "code_used"


def test_each_message_is_stored_once_and_duplicates_are_acknowledged(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    beat = device.message(Heartbeat, hub.clock.now())
    assert hub.deliver(beat, beat) == [Verdict.STORED, Verdict.DUPLICATE]
    assert hub.deliver(beat) == [Verdict.DUPLICATE]
    with hub.store() as uow:
        assert uow.events.count(device_id=device.device_id) == 3  # prov.request, birth, heartbeat


def test_one_batch_acts_as_its_messages_would_one_by_one(hub: HubUnderTest) -> None:
    """Storage is batched (one read, one insert, one write-back); what each message sees is not."""
    newcomer, known = Device.create("RM3-000021"), Device.create("RM3-000022")
    enrolled(hub, known)
    _, code = hub.registry.register_device(
        newcomer.device_id,
        serial=newcomer.identity.serial,
        family=newcomer.identity.family,
        model="RM3",
        by="op",
    )
    now = hub.clock.now()
    forged = Device.create()
    forged.identity = type(forged.identity).create(known.device_id, known.identity.family)
    beat = known.message(Heartbeat, now)
    batch = [
        newcomer.birth(now),  # before its enrollment request: not enrolled yet
        newcomer.enrollment(code.code, now),
        newcomer.birth(now),  # after it, in the same batch: verified with the key just registered
        beat,
        beat,
        known.message(DoseTaken, now, seq=9),  # a gap: 3..8 are asked for again
        forged.message(Heartbeat, now),
    ]
    verdicts = hub.deliver(*batch)
    assert verdicts == [
        Verdict.REFUSED,
        Verdict.STORED,
        Verdict.STORED,
        Verdict.STORED,
        Verdict.DUPLICATE,
        Verdict.STORED,
        Verdict.REFUSED,
    ]
    with hub.store() as uow:
        devices = uow.devices.get_many([newcomer.device_id, known.device_id])
        letters = sorted(letter.reason for letter in uow.dead_letters.select())
        resyncs = [c.body for c in uow.commands.select(device_id=known.device_id) if c.type == "cmd.resync"]
    assert devices[newcomer.device_id].status is DeviceStatus.ACTIVE
    assert devices[known.device_id].presence.last_seq == 9
    assert letters == ["E_NOT_ENROLLED", "E_UNKNOWN_KEY"]
    assert [(r["from_seq"], r["to_seq"]) for r in resyncs] == [(3, 8)]


def test_refused_messages_are_dead_lettered_with_their_reason(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    now = hub.clock.now()
    forged = Device.create()
    forged.identity = type(forged.identity).create(device.device_id, device.identity.family)
    stranger = Device.create("RM3-000099")
    topic, payload = device.message(Heartbeat, now)
    cases = {
        "E_UNKNOWN_KEY": forged.message(Heartbeat, now),
        "E_SIGNATURE": (topic, payload.replace(b'"uptime_s":', b'"uptime_s":1')),
        "E_UNKNOWN_DEVICE": stranger.message(Heartbeat, now),
        "E_MALFORMED": ("dsp/v1/RM3-000017/up/telemetry", b"\xff not json"),
        "E_TOPIC": (
            device.message(Heartbeat, now)[0].replace("telemetry", "event"),
            device.message(Heartbeat, now)[1],
        ),
        "E_SKEW": device.message(Heartbeat, now + timedelta(hours=1)),
    }
    verdicts = hub.deliver(*cases.values())
    assert verdicts == [Verdict.REFUSED] * len(cases)
    with hub.store() as uow:
        letters = uow.dead_letters.select(limit=10)
    assert sorted(letter.reason for letter in letters) == sorted(cases)
    malformed = next(letter for letter in letters if letter.reason == "E_MALFORMED")
    assert (malformed.raw, malformed.device_id) == (b"\xff not json", "RM3-000017")


def test_dead_letters_keep_only_the_first_bytes_of_big_payloads(tmp_path: Path) -> None:
    hub = HubUnderTest(tmp_path, limits=IngestLimits(dead_letter_max_bytes=300))
    assert hub.deliver(("dsp/v1/RM3-000017/up/event", b"x" * 100_000)) == [Verdict.REFUSED]
    with hub.store() as uow:
        (letter,) = uow.dead_letters.select()
    assert (len(letter.raw), letter.raw_size, letter.reason) == (300, 100_000, "E_TOO_LARGE")


def test_a_burst_of_forged_messages_raises_one_security_alarm(tmp_path: Path) -> None:
    hub = HubUnderTest(tmp_path, limits=IngestLimits(burst_threshold=3))
    device = Device.create()
    enrolled(hub, device)
    forged = Device.create()
    forged.identity = type(forged.identity).create(device.device_id, device.identity.family)
    hub.deliver(*(forged.message(Heartbeat, hub.clock.now()) for _ in range(5)))
    with hub.store() as uow:
        alarms = uow.alarms.select(device_id=device.device_id)
    (alarm,) = [a for a in alarms if a.kind == "security.invalid_messages"]
    assert alarm.count == 3  # raised at the 3rd, repeated at the 4th and 5th


def test_a_retired_device_is_refused(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    hub.registry.retire_device(device.device_id, by="op", reason="broken")
    assert hub.deliver(device.message(Heartbeat, hub.clock.now())) == [Verdict.REFUSED]
    with hub.store() as uow:
        (letter,) = uow.dead_letters.select()
    assert letter.reason == "E_DEVICE_RETIRED"


def test_faults_raise_alarms_that_the_device_clears(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    hub.deliver(device.message(FaultJam, hub.clock.now()))
    hub.deliver(device.message(FaultJam, hub.clock.now()))
    with hub.store() as uow:
        (jam,) = uow.alarms.select(device_id=device.device_id)
    assert (jam.kind, jam.vkp_code, jam.severity, jam.count, jam.status) == (
        "fault.jam",
        "3.14",
        3,
        2,
        AlarmStatus.ACTIVE,
    )
    hub.deliver(device.message(FaultCleared, hub.clock.now(), fault="fault.jam"))
    with hub.store() as uow:
        cleared = uow.alarms.get(jam.id)  # type: ignore[arg-type]
        history = uow.alarms.history(jam.id)  # type: ignore[arg-type]
    assert cleared is not None
    assert (cleared.status, cleared.resolved_by) == (AlarmStatus.RESOLVED, "system")
    assert [entry.action.value for entry in history] == ["raised", "repeated", "resolved"]


def test_death_goes_offline_with_an_alarm_and_the_next_birth_resolves_it(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    hub.deliver(device.message(Death, hub.clock.now(), connection=0))
    with hub.store() as uow:
        offline = uow.devices.get(device.device_id)
        (alarm,) = uow.alarms.select(open_only=True)
    assert offline is not None
    assert not offline.presence.online
    assert alarm.kind == "death"
    device.boot_id = "01KAR5J1XG0000000000000009"
    hub.deliver(device.birth(hub.clock.now(), connection=0))
    with hub.store() as uow:
        assert uow.alarms.select(open_only=True) == []
        back = uow.devices.get(device.device_id)
    assert back is not None
    assert back.presence.online


def test_a_sequence_gap_asks_the_device_to_resend_the_missing_range(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)  # seq 0 (prov.request), 1 (birth)
    hub.deliver(device.message(DoseTaken, hub.clock.now(), seq=5))
    with hub.store() as uow:
        (resync,) = [c for c in uow.commands.select(device_id=device.device_id) if c.type == "cmd.resync"]
    assert (resync.body["from_seq"], resync.body["to_seq"]) == (2, 4)


def test_acks_finish_their_commands(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    hub.deliver(device.birth(hub.clock.now(), clock_synced=False))
    hub.commands.send_due()
    with hub.store() as uow:
        (set_time,) = [c for c in uow.commands.select() if c.type == "cmd.set_time"]
    assert set_time.status is CommandStatus.SENT
    hub.deliver(device.message(CommandAck, hub.clock.now(), corr_id=set_time.msg_id, command="cmd.set_time"))
    with hub.store() as uow:
        done = uow.commands.get(set_time.msg_id)
    assert done is not None
    assert done.status is CommandStatus.ACKED


def test_unacknowledged_commands_are_retried_with_the_same_id_then_expire(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    hub.deliver(device.birth(hub.clock.now(), clock_synced=False))
    hub.commands.send_due()
    hub.clock.advance(timedelta(seconds=31))
    hub.commands.send_due()
    ids = [r.envelope.msg_id for r in _published(hub) if r.envelope.type == "cmd.set_time"]
    assert len(ids) == 2
    assert ids[0] == ids[1]
    hub.clock.advance(timedelta(hours=2))
    hub.commands.send_due()
    with hub.store() as uow:
        (command,) = [c for c in uow.commands.select() if c.type == "cmd.set_time"]
    assert command.status is CommandStatus.EXPIRED


def test_a_silent_device_raises_one_no_contact_alarm(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    hub.clock.advance(timedelta(minutes=59))
    assert hub.presence.sweep() == 0
    hub.clock.advance(timedelta(minutes=2))
    assert hub.presence.sweep() == 1
    assert hub.presence.sweep() == 0
    with hub.store() as uow:
        (alarm,) = uow.alarms.select(open_only=True)
    assert (alarm.kind, alarm.vkp_code) == ("no_contact", "3.10")


def test_a_device_that_enrolled_but_never_spoke_raises_no_contact_too(hub: HubUnderTest) -> None:
    device = Device.create()
    _, code = hub.registry.register_device(
        device.device_id, serial=device.identity.serial, family=device.identity.family, model="RM3", by="op"
    )
    hub.deliver(device.enrollment(code.code, hub.clock.now()))  # enrolled; no birth ever follows
    hub.clock.advance(timedelta(minutes=61))
    assert hub.presence.sweep() == 1
    with hub.store() as uow:
        (alarm,) = uow.alarms.select(open_only=True)
    assert (alarm.kind, alarm.device_id) == ("no_contact", device.device_id)
    assert "61 minutes" in alarm.detail  # counted from enrollment


def test_a_message_that_breaks_the_service_is_dead_lettered_alone(
    hub: HubUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = Device.create()
    enrolled(hub, device)

    def broken(presence, envelope, now):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        if envelope.type == "fault.jam":
            raise RuntimeError("bug")
        return apply_message(presence, envelope, now)

    monkeypatch.setattr(ingest_module, "apply_message", broken)
    verdicts = hub.deliver(
        device.message(Heartbeat, hub.clock.now()),
        device.message(FaultJam, hub.clock.now()),
        device.message(Heartbeat, hub.clock.now()),
    )
    assert verdicts == [Verdict.STORED, Verdict.REFUSED, Verdict.STORED]
    with hub.store() as uow:
        (letter,) = uow.dead_letters.select()
    assert letter.reason == "E_INTERNAL"


def test_an_unavailable_database_is_not_the_messages_fault(hub: HubUnderTest) -> None:
    device = Device.create()
    enrolled(hub, device)
    beat = device.message(Heartbeat, hub.clock.now())
    working = hub.ingest._uow_factory

    def down() -> UnitOfWork:
        raise StorageUnavailableError("the database is unavailable: OperationalError")

    hub.ingest._uow_factory = down
    with pytest.raises(StorageUnavailableError):
        hub.deliver(beat)  # not acknowledged: the broker delivers it again
    hub.ingest._uow_factory = working
    assert hub.deliver(beat) == [Verdict.STORED]
    with hub.store() as uow:
        assert uow.dead_letters.select() == []


def test_nothing_is_marked_sent_while_the_broker_is_out_of_reach(hub: HubUnderTest) -> None:
    device = Device.create()
    _, code = hub.registry.register_device(
        device.device_id, serial=device.identity.serial, family=device.identity.family, model="RM3", by="op"
    )
    hub.deliver(device.enrollment(code.code, hub.clock.now()))
    hub.published.connected = False
    assert hub.commands.send_due() == 0
    hub.published.connected = True
    assert hub.commands.send_due() == 1  # the enrollment answer, kept for when the broker is back
    assert [r.envelope.type for r in _published(hub)] == ["prov.accepted"]


def test_an_enrollment_request_for_an_unregistered_id_is_dead_lettered_unanswered(hub: HubUnderTest) -> None:
    stranger = Device.create("RM3-000404")
    assert hub.deliver(stranger.enrollment("K7QF-9M2D-XC4P-8WRT", hub.clock.now())) == [Verdict.REFUSED]
    assert hub.commands.send_due() == 0
    with hub.store() as uow:
        (letter,) = uow.dead_letters.select()
    assert (letter.reason, letter.device_id) == ("E_UNKNOWN_DEVICE", "RM3-000404")
