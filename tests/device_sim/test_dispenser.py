"""The simulated dispenser against the stand-in hub, in memory (``Loopback``): behaviour a hub would see."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

from device_sim.device.dispenser import Dispenser
from device_sim.device.identity import DeviceIdentity
from device_sim.device.supply import Roll, Tray
from device_sim.loopback import Loopback
from device_sim.ports import FaultEvent, FaultKind, PatientAction, PatientResponse, Publish, Truth
from device_sim.standin import Binding, DosePlan, StandIn
from firmware_protocol import (
    DuplicateFilter,
    Envelope,
    KeyRing,
    ProtocolError,
    Received,
    SequenceTracker,
    Signer,
    canonical_bytes,
    decode,
    open_message,
    seal,
    verify,
)
from firmware_protocol.messages import Body, Family, Lock, Resync

START = 1_795_392_000_000  # 2026-11-23 00:00 UTC = 01:00 Europe/Oslo
HOUR = 3_600_000
PLAN = DosePlan((dt.time(8), dt.time(20)))


@dataclass
class TakesAt:
    """Takes every dose ``delay_min`` after it is due (negative: early), or never."""

    delay_min: int | None = 3
    name: str = "test"

    def respond(self, *, opens_ms: int, due_ms: int, closes_ms: int, rng: random.Random) -> PatientResponse:  # noqa: ARG002
        """Take at due + delay."""
        if self.delay_min is None:
            return PatientResponse(PatientAction.IGNORE)
        return PatientResponse(PatientAction.TAKE, due_ms + self.delay_min * 60_000)

    def away(self, at_ms: int) -> bool:  # noqa: ARG002 - never away
        """Never away."""
        return False


@dataclass
class ScriptedFaults:
    """Exactly the listed faults, in order."""

    events: list[FaultEvent] = field(default_factory=list)

    def next_fault(self, after_ms: int, rng: random.Random) -> FaultEvent | None:  # noqa: ARG002 - scripted
        """The next listed fault."""
        return next((e for e in self.events if e.at_ms > after_ms), None)


@dataclass
class World:
    """One device, the stand-in and everything that happened."""

    loop: Loopback
    device: Dispenser
    standin: StandIn
    truth: list[Truth]

    def run(self, hours: float) -> None:
        """Run the world ``hours`` further."""
        self.loop.run_until(self.loop.now + int(hours * HOUR))

    def uplink(self) -> list[Envelope[Body]]:
        """Every valid message the device published, as the hub decoded it."""
        found = []
        for message in self.loop.sent:
            if "/up/" not in message.topic:
                continue
            try:
                found.append(decode(message.payload, message.topic).envelope)
            except ProtocolError:
                continue
        return found

    def types(self) -> list[str]:
        """The types of every valid uplink message, in order."""
        return [e.type for e in self.uplink()]

    def kinds(self, kind: str) -> list[Truth]:
        """Ground-truth records of one kind."""
        return [t for t in self.truth if t.kind == kind]


def world(
    family: Family = Family.MULTIDOSE_ROLL,
    patient: TakesAt | None = None,
    faults: ScriptedFaults | None = None,
    *,
    enrolled: bool = True,
    code: str | None = None,
) -> World:
    standin = StandIn()
    identity = DeviceIdentity.create("SIM-000001", family, seed=1)
    identity.enrollment_code = code
    standin.bind(
        Binding(identity.device_id, "PX-000001", PLAN, enrollment_code="K7QF-9M2D-XC4P"),
        identity.signer.public_key if enrolled else None,
    )
    if enrolled:
        identity.hub_key = standin.signer.public_key
    times = [s.due for s in PLAN.slots(START, 14)]
    device = Dispenser.create(
        identity,
        patient or TakesAt(),
        faults or ScriptedFaults(),
        seed=1,
        now_ms=START,
        tray=Tray.fill("T-1", times) if family is Family.DOSE_POT else None,
    )
    if family is Family.MULTIDOSE_ROLL:
        device.loader = lambda now, wrong: Roll.pack(
            f"R-{now}", "PX-999999" if wrong else "PX-000001", [s.due for s in PLAN.slots(now, 14)]
        )
        device.add_timeline(START + 60_000, "load_roll", {})
    truth: list[Truth] = []
    return World(Loopback([device], standin, truth.append, now=START), device, standin, truth)


def terminal_outcomes(truth: list[Truth]) -> Counter[str]:
    return Counter(
        str(t.data["slot_id"]) for t in truth if t.kind in {"dose.taken", "dose.missed", "dose.cancelled"}
    )


def test_a_day_of_an_adherent_patient_on_a_roll_dispenser() -> None:
    w = world()
    w.run(24)
    types = w.types()
    assert types[:3] == ["birth", "state", "schedule.applied"]
    assert types.count("roll.loaded") == 1
    assert types.count("pouch.scanned") == types.count("dose.presented") == types.count("dose.taken") == 2
    for scan_at, present_at in zip(
        [i for i, t in enumerate(types) if t == "pouch.scanned"],
        [i for i, t in enumerate(types) if t == "dose.presented"],
        strict=True,
    ):
        assert scan_at < present_at  # the pouch is read before it is cut
    taken = w.kinds("dose.taken")
    assert {t.data["delay_ms"] for t in taken} == {180_000}
    assert all(count == 1 for count in terminal_outcomes(w.truth).values())


def test_an_untaken_dose_is_reported_at_window_end_and_locked_away() -> None:
    w = world(patient=TakesAt(None))
    w.run(12)
    missed = [e for e in w.uplink() if e.type == "dose.not_taken"]
    assert len(missed) == 1
    body = missed[0].body
    assert body.retained  # type: ignore[attr-defined]
    assert body.closed_at == body.due + PLAN.window_min * 60_000  # type: ignore[attr-defined]
    assert [t.data["reason"] for t in w.kinds("dose.missed")] == ["not_taken"]
    reminders = [e.body.stage.value for e in w.uplink() if e.type == "dose.reminder"]  # type: ignore[attr-defined]
    assert reminders[:3] == ["notice", "light", "sound"]
    assert reminders.count("repeat") >= 1


def test_early_access_take_is_reported_as_taken_early() -> None:
    w = world(patient=TakesAt(-20))
    w.run(12)
    assert "dose.taken_early" in w.types()
    assert w.kinds("dose.taken")[0].data["early"] is True


def test_offline_device_keeps_dispensing_and_replays_in_order_after_reconnecting() -> None:
    w = world()
    w.device.add_timeline(START + 6 * HOUR, "network_down", {"for_ms": 4 * HOUR})  # 07:00-11:00 Oslo
    w.run(24)
    device_messages = [e for e in w.uplink() if e.type != "death"]
    taken = [e for e in device_messages if e.type == "dose.taken"]
    first = taken[0]
    assert START + 6 * HOUR < first.ts < START + 10 * HOUR  # taken while offline, original time kept
    # The hub sees every number exactly once: a gap at the reconnect birth, filled by the replay.
    tracker, seen = SequenceTracker(), DuplicateFilter()
    statuses = []
    for envelope in device_messages:
        assert not seen.seen(envelope.device, envelope.msg_id)
        seen.remember(envelope.device, envelope.msg_id)
        statuses.append(tracker.observe(envelope.boot_id, envelope.seq, envelope.type).status.value)
    assert "gap" in statuses
    assert "late_fill" in statuses
    final = tracker.observe(device_messages[-1].boot_id, device_messages[-1].seq + 1, "heartbeat")
    assert final.missing == ()
    assert "death" in w.types()  # the broker published the Last Will when the link dropped


def _command(w: World, body: Lock, signer: Signer, *, kid: str | None = None) -> list[Envelope[Body]]:
    envelope = Envelope(body, device=w.device.device_id, boot_id=w.standin.boot_id, seq=99, ts=w.loop.now)
    payload = seal(envelope, signer)
    if kid is not None:
        payload = payload.replace(signer.kid.encode(), kid.encode())
    before = len(w.loop.sent)
    w.loop._deliver(w.device.on_message(envelope.topic, payload, w.loop.now), w.device)
    return [decode(m.payload).envelope for m in w.loop.sent[before:]]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other key", "E_UNKNOWN_KEY"),
        ("forged kid", "E_SIGNATURE"),
        ("expired", "E_EXPIRED"),
        ("valid", None),
    ],
)
def test_commands_are_acted_on_only_when_signed_by_the_hub_and_fresh(case: str, reason: str | None) -> None:
    w = world()
    w.run(1)
    expires = w.loop.now - 1 if case == "expired" else w.loop.now + 60_000
    signer = Signer.generate() if case in {"other key", "forged kid"} else w.standin.signer
    kid = w.standin.signer.kid if case == "forged kid" else None
    answers = _command(w, Lock(expires=expires, reason="test"), signer, kid=kid)
    answer = answers[-1]
    if reason is None:
        assert answer.type == "cmd.ack"
        assert w.device.locked
        return
    assert answer.type == "cmd.nack"
    assert answer.body.reason == reason  # type: ignore[attr-defined]
    assert answer.corr_id is not None
    assert not w.device.locked  # never acted on


def test_an_unsigned_command_is_refused() -> None:
    w = world()
    w.run(1)
    envelope = Envelope(
        Lock(expires=w.loop.now + 60_000),
        device=w.device.device_id,
        boot_id=w.standin.boot_id,
        seq=1,
        ts=w.loop.now,
    )
    unsigned = canonical_bytes(envelope.unsigned_object())
    answers = w.device.on_message(envelope.topic, unsigned, w.loop.now)
    nack = decode(next(o for o in answers if isinstance(o, Publish)).payload).envelope
    assert (nack.type, nack.body.reason) == ("cmd.nack", "E_SCHEMA")  # type: ignore[attr-defined]
    assert not w.device.locked


def test_a_wrong_roll_is_refused_and_the_device_stays_locked() -> None:
    w = world()
    w.device.add_timeline(START + 2 * HOUR, "load_wrong_roll", {})
    w.run(24)
    verdicts = w.kinds("roll.verdict")
    assert [v.data["accept"] for v in verdicts] == [True, False]
    assert w.device.locked
    assert {t.data["reason"] for t in w.kinds("dose.missed")} == {"not_dispensed:locked"}
    assert "dose.not_dispensed" in w.types()
    assert [t.data["wrong_patient"] for t in w.kinds("roll.loaded")] == [False, True]


def test_a_dose_pot_dispenser_opens_the_pots_of_its_tray() -> None:
    w = world(Family.DOSE_POT)
    w.run(24)
    pots = [e.body.pot for e in w.uplink() if e.type == "pot.opened"]  # type: ignore[attr-defined]
    assert pots == [1, 2]
    assert "pouch.scanned" not in w.types()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("forged_signature", "E_SIGNATURE"),
        ("other_device_id", "E_TOPIC"),
        ("garbage", "E_MALFORMED"),
        ("oversized", "E_TOO_LARGE"),
        ("duplicate", "duplicate"),
        ("replay", "duplicate"),
        ("out_of_order", "late_fill"),
    ],
)
def test_hostile_messages_get_the_verdict_the_ground_truth_promises(kind: str, expected: str) -> None:
    w = world()
    w.run(1)
    keys = KeyRing()
    keys.add(w.device.device_id, w.device.identity.signer.public_key)
    seen, tracker = DuplicateFilter(), SequenceTracker()
    outcomes = []
    for message in w.loop.sent:  # what the hub accepted so far
        if "/up/" in message.topic:
            envelope = open_message(message.payload, message.topic, keys).envelope
            seen.remember(envelope.device, envelope.msg_id)
            tracker.observe(envelope.boot_id, envelope.seq, envelope.type)
    w.device.add_timeline(w.loop.now, "hostile", {"kind": kind})
    for out in w.device.advance(w.loop.now):
        if not isinstance(out, Publish):
            assert out.data["expected"] == expected
            continue
        try:
            received: Received = open_message(out.payload, out.topic, keys)
        except ProtocolError as error:
            outcomes.append(error.code.value)
            continue
        envelope = received.envelope
        if seen.seen(envelope.device, envelope.msg_id):
            outcomes.append("duplicate")
            continue
        seen.remember(envelope.device, envelope.msg_id)
        outcomes.append(tracker.observe(envelope.boot_id, envelope.seq, envelope.type).status.value)
    assert outcomes[-1] == expected


def test_mains_loss_drains_the_battery_until_the_device_dies_and_boots_again_on_mains() -> None:
    w = world(faults=ScriptedFaults([FaultEvent(FaultKind.MAINS_LOSS, START + 2 * HOUR, 30 * HOUR)]))
    w.run(40)
    types = w.types()
    for fault in ("fault.mains_lost", "fault.battery_low", "fault.battery_dead", "fault.mains_restored"):
        assert fault in types
    births = [e for e in w.uplink() if e.type == "birth"]
    assert births[-1].body.boot_reason.value == "power_on"  # type: ignore[attr-defined]
    assert len({b.boot_id for b in births}) == 2


def test_resync_resends_a_range_and_refuses_what_is_gone() -> None:
    w = world()
    w.run(2)
    boot, last = w.device.outbox.boot_id, w.device.outbox.seq - 1
    envelope = Envelope(
        Resync(expires=w.loop.now + 60_000, boot_id=boot, from_seq=1, to_seq=last),
        device=w.device.device_id,
        boot_id=w.standin.boot_id,
        seq=5,
        ts=w.loop.now,
    )
    outputs = w.device.on_message(envelope.topic, seal(envelope, w.standin.signer), w.loop.now)
    sent = [decode(o.payload).envelope for o in outputs if isinstance(o, Publish)]
    assert [e.type for e in sent[:2]] == ["birth", "state"]
    assert [e.seq for e in sent[2:-1]] == list(range(1, last + 1))
    assert sent[-1].type == "cmd.ack"
    gone = Envelope(
        Resync(expires=w.loop.now + 60_000, boot_id="01KAQ5ZJ0G8R8W6Y4M2N3P5Q7R", from_seq=0, to_seq=3),
        device=w.device.device_id,
        boot_id=w.standin.boot_id,
        seq=6,
        ts=w.loop.now,
    )
    refused = w.device.on_message(gone.topic, seal(gone, w.standin.signer), w.loop.now)
    nack = decode(next(o for o in refused if isinstance(o, Publish)).payload).envelope
    assert (nack.type, nack.body.reason) == ("cmd.nack", "E_INVALID_STATE")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("code", "accepted"), [("K7QF-9M2D-XC4P", True), ("AAAA-BBBB-CCCC", False)])
def test_enrollment_by_code_and_csr(code: str, accepted: bool) -> None:
    w = world(enrolled=False, code=code)
    w.run(1)
    assert w.device.identity.enrolled is accepted
    responses = [decode(m.payload).envelope.type for m in w.loop.sent if "/prov/response" in m.topic]
    assert responses == (["prov.accepted"] if accepted else ["prov.rejected"])
    if accepted:
        assert {"birth", "schedule.applied"} <= set(w.types())
        hub = KeyRing()
        hub.add(None, w.standin.signer.public_key)
        for message in w.loop.sent:
            if "/down/" in message.topic:
                verify(decode(message.payload, message.topic), hub)


def test_every_dose_ends_in_exactly_one_outcome_through_faults_and_outages() -> None:
    rng = random.Random(7)
    events = [
        FaultEvent(kind, START + rng.randrange(72 * HOUR), rng.randrange(1, 5) * HOUR)
        for kind in (
            FaultKind.JAM,
            FaultKind.NETWORK_OUTAGE,
            FaultKind.LID_OPEN,
            FaultKind.REBOOT,
            FaultKind.MAINS_LOSS,
            FaultKind.CLOCK_DRIFT,
        )
    ]
    w = world(patient=TakesAt(45), faults=ScriptedFaults(sorted(events, key=lambda e: e.at_ms)))
    w.run(96)
    outcomes = terminal_outcomes(w.truth)
    due = {t.data["slot_id"] for t in w.kinds("dose.due")}
    assert due <= set(outcomes)
    assert all(count == 1 for count in outcomes.values())


def test_timers_stay_bounded_over_a_long_run_on_battery() -> None:
    w = world(faults=ScriptedFaults([FaultEvent(FaultKind.MAINS_LOSS, START + HOUR, 20 * HOUR)]))
    w.run(18)
    assert len(w.device.timers) < 40
