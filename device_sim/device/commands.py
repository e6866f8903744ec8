"""Downlink handling of a simulated dispenser: verify, check, act, answer.

Nothing is acted on before the hub's signature verifies and ``DownlinkCheck`` passes. A refused command
is answered with ``cmd.nack`` carrying the protocol error code (``corr_id`` = the command's ``msg_id``
when it could be read); a refused config with ``schedule.rejected``. A command seen before (same
``msg_id``, a QoS 1 redelivery) is answered again but not acted on twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from device_sim.device import doses
from firmware_protocol import ProtocolError, decode, verify
from firmware_protocol.messages import (
    CommandAck,
    CommandNack,
    Config,
    DosePredispensed,
    Family,
    Identify,
    Lock,
    Pause,
    Predispense,
    ProvisionAccepted,
    ProvisionRejected,
    ReleaseDose,
    Resume,
    Resync,
    RollVerdict,
    ScheduleApplied,
    ScheduleRejected,
    SetTime,
    Unlock,
)
from firmware_protocol.signing import b64url_decode, public_key_from_raw

if TYPE_CHECKING:
    from device_sim.device.dispenser import Dispenser
    from device_sim.ports import Output, Publish
    from firmware_protocol import Received
    from firmware_protocol.messages import Body

SEEN_COMMANDS = 256
"""Command ids remembered for idempotency."""


class CommandRefusedError(ProtocolError):
    """A valid command the device cannot carry out (not supported, or not possible now)."""

    def __init__(self, reason: str, detail: str) -> None:
        """``reason``: ``E_NOT_SUPPORTED`` or ``E_INVALID_STATE``."""
        super().__init__(detail)
        self.reason = reason


def handle(device: Dispenser, topic: str, payload: bytes, now_ms: int) -> list[Output]:
    """Handle one downlink message."""
    device_now = device.device_time(now_ms)
    try:
        received = decode(payload, topic)
        if isinstance(received.envelope.body, ProvisionAccepted):
            _trust_enrollment(device, received)
        verify(received, device.hub_keys())
        act = device.downlink_check().check(
            received,
            now_ms=device_now if device.clock_synced else None,
            held_config_version=device.config.version if device.config else None,
        )
    except ProtocolError as error:
        return _refuse(device, payload, error, now_ms)
    envelope = received.envelope
    if isinstance(envelope.body, Config):
        return _config(device, envelope.body, envelope.msg_id, now_ms) if act else []
    if isinstance(envelope.body, ProvisionAccepted | ProvisionRejected):
        return _enrollment(device, envelope.body, now_ms)
    return _command(device, received, now_ms)


def _identify(payload: bytes) -> tuple[str | None, str | None, int]:
    """Best effort, for the answer to a refused message: its msg_id, type and (config) version."""
    try:
        envelope = decode(payload).envelope
    except ProtocolError:
        return None, None, 0
    version = envelope.body.version if isinstance(envelope.body, Config) else 0
    return envelope.msg_id, envelope.type, version


def _refuse(device: Dispenser, payload: bytes, error: ProtocolError, now_ms: int) -> list[Output]:
    corr, type_name, version = _identify(payload)
    truth = device.truth(now_ms, "downlink.refused", code=error.code.value, type=type_name)
    if not device.identity.enrolled:
        return [truth]
    detail = error.detail[:200]
    body: Body
    if type_name == "config":
        body = ScheduleRejected(version=version, reason=error.code.value, field=error.field, detail=detail)
    else:
        command = type_name if type_name and type_name.startswith("cmd.") else None
        body = CommandNack(command=command, reason=error.code.value, field=error.field, detail=detail)
    return [*device.outbox.send(body, device.device_time(now_ms), corr_id=corr), truth]


def _trust_enrollment(device: Dispenser, received: Received) -> None:
    """Learn the hub key from ``prov.accepted`` (trusted over TLS; see PROTOCOL.md), after its checks."""
    body = received.envelope.body
    assert isinstance(body, ProvisionAccepted)  # noqa: S101 - checked by the caller
    device.downlink_check().check_enrollment(body, device.identity.signer.public_key)
    device.identity.hub_key = public_key_from_raw(b64url_decode(body.hub_key, field="body.hub_key"))


def _enrollment(device: Dispenser, body: ProvisionAccepted | ProvisionRejected, now_ms: int) -> list[Output]:
    if isinstance(body, ProvisionRejected):
        return [device.truth(now_ms, "enrollment.rejected", reason=body.reason.value)]
    device.identity.certificate = body.certificate
    # A real device reconnects with its new certificate; the simulator starts its enrolled life at once.
    return [device.truth(now_ms, "enrollment.accepted"), *device.on_connected(now_ms)]


def _config(device: Dispenser, config: Config, msg_id: str, now_ms: int) -> list[Output]:
    wrong = [s.slot_id for s in config.slots if (s.pot is not None) != (device.family is Family.DOSE_POT)]
    if any(s.pot is not None or s.pouch_id is not None for s in config.slots) and wrong:
        detail = f"slot {wrong[0]} does not fit a {device.family.value} dispenser"
        body: Body = ScheduleRejected(version=config.version, reason="E_NOT_SUPPORTED", detail=detail)
        return device.outbox.send(body, device.device_time(now_ms), corr_id=msg_id)
    doses.apply_schedule(device, config, now_ms)
    applied = ScheduleApplied(version=config.version, slots=len(config.slots))
    out: list[Output] = [*device.outbox.send(applied, device.device_time(now_ms), corr_id=msg_id)]
    out.append(device.truth(now_ms, "schedule.applied", version=config.version, slots=len(config.slots)))
    return out + device.state_changed(now_ms)


def _command(device: Dispenser, received: Received, now_ms: int) -> list[Output]:
    envelope = received.envelope
    body = envelope.body
    ack = CommandAck(command=envelope.type)
    ts = device.device_time(now_ms)
    if envelope.msg_id in device.seen_commands:
        return device.outbox.send(ack, ts, corr_id=envelope.msg_id)
    try:
        effects = _carry_out(device, body, now_ms)
    except CommandRefusedError as refused:
        nack = CommandNack(command=envelope.type, reason=refused.reason, detail=refused.detail[:200])  # type: ignore[arg-type]
        return device.outbox.send(nack, ts, corr_id=envelope.msg_id)
    device.seen_commands[envelope.msg_id] = None
    if len(device.seen_commands) > SEEN_COMMANDS:
        del device.seen_commands[next(iter(device.seen_commands))]
    return [*effects, *device.outbox.send(ack, ts, corr_id=envelope.msg_id)]  # the ack means "done"


def _carry_out(device: Dispenser, body: Body, now_ms: int) -> list[Output]:  # noqa: PLR0911 - one branch a command
    if isinstance(body, RollVerdict):
        return _roll_verdict(device, body, now_ms)
    if isinstance(body, Lock | Unlock):
        device.locked = isinstance(body, Lock)
        return device.state_changed(now_ms)
    if isinstance(body, Pause):
        device.paused, device.paused_until = body.until is None, body.until
        return [
            device.truth(now_ms, "paused", until=body.until, reason=body.reason.value),
            *device.state_changed(now_ms),
        ]
    if isinstance(body, Resume):
        device.paused, device.paused_until = False, None
        return [device.truth(now_ms, "resumed"), *device.state_changed(now_ms)]
    if isinstance(body, ReleaseDose):
        return _release(device, body, now_ms)
    if isinstance(body, Predispense):
        return _predispense(device, body, now_ms)
    if isinstance(body, SetTime):
        drift = device.device_time(now_ms) - body.now
        device.clock_offset_ms, device.clock_synced = body.now - now_ms, True
        if device.config is not None:
            doses.apply_schedule(device, device.config, now_ms)
        return [device.truth(now_ms, "clock.set", corrected_ms=drift)]
    if isinstance(body, Resync):
        return _resync(device, body, now_ms)
    if isinstance(body, Identify):
        return [device.truth(now_ms, "identify", seconds=body.seconds)]
    raise CommandRefusedError("E_NOT_SUPPORTED", f"{body.TYPE} is not supported by this device")


def _roll_verdict(device: Dispenser, body: RollVerdict, now_ms: int) -> list[Output]:
    roll = device.roll
    if device.family is not Family.MULTIDOSE_ROLL:
        raise CommandRefusedError("E_NOT_SUPPORTED", "a dose-pot dispenser has no roll")
    if roll is None or roll.roll_id != body.roll_id:
        raise CommandRefusedError("E_INVALID_STATE", f"roll {body.roll_id} is not the loaded roll")
    roll.accepted = body.accept
    device.locked = not body.accept
    truth = device.truth(
        now_ms,
        "roll.verdict",
        roll_id=roll.roll_id,
        accept=body.accept,
        reason=body.reason.value if body.reason else None,
    )
    return [truth, *device.state_changed(now_ms)]


def _release(device: Dispenser, body: ReleaseDose, now_ms: int) -> list[Output]:
    state = device.slots.get(body.slot_id)
    if state is None or state.done:
        raise CommandRefusedError("E_INVALID_STATE", f"slot {body.slot_id} is not pending on this device")
    out: list[Output] = []
    if not state.presented:
        ok, out = doses.present(device, state, now_ms)
        if not ok:
            return out
    return out + doses.take(device, state, now_ms, staff_ref=body.staff_ref or "remote")


def _predispense(device: Dispenser, body: Predispense, now_ms: int) -> list[Output]:
    pending = [s for s in device.slots.values() if not s.done and body.from_ <= s.slot.due < body.until]
    out: list[Output] = []
    dispensed = []
    for state in pending:
        ok, presented = doses.present(device, state, now_ms)
        out += presented
        if ok:
            state.done = True
            dispensed.append(state.slot.slot_id)
            out.append(
                device.truth(
                    now_ms,
                    "dose.taken",
                    slot_id=state.slot.slot_id,
                    predispensed=True,
                    taken_at=device.device_time(now_ms),
                    delay_ms=0,
                    early=True,
                    assisted=False,
                )
            )
    report = DosePredispensed.model_validate(
        {
            "from": body.from_,
            "until": body.until,
            "slot_ids": dispensed,
            "requested": len(pending),
            "dispensed": len(dispensed),
        }
    )
    return out + device.outbox.send(report, device.device_time(now_ms))


def _resync(device: Dispenser, body: Resync, now_ms: int) -> list[Output]:
    found: list[Publish] = []
    if body.boot_id is not None and body.from_seq is not None and body.to_seq is not None:
        found, gone = device.outbox.resend(body.boot_id, body.from_seq, body.to_seq)
        if gone:
            raise CommandRefusedError("E_INVALID_STATE", f"no longer buffered: seq {gone[0]}..{gone[-1]}")
    out: list[Output] = [device.outbox.send_now(device.birth(now_ms), device.device_time(now_ms))]
    return out + device.state_changed(now_ms) + list(found)
