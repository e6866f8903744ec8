"""The dose cycle of a simulated dispenser, slot by slot, on the device's own clock.

For each slot of the held config (``opens <= due < closes``):

- at ``opens`` the patient model decides what the patient will do (its own seeded generator per slot,
  so the decision does not depend on event order); early access: a take before ``due`` presents the dose
  at once and is reported ``dose.taken_early``;
- ``notice_before_s`` before ``due``: ``dose.reminder`` ``notice``;
- at ``due``: a multidose device reads the pouch (``pouch.scanned``) and cuts it, a carousel opens the pot
  (``pot.opened``); then ``dose.presented`` and the ``light`` reminder; ``sound`` after ``sound_after_s``,
  ``repeat`` every ``repeat_every_s`` up to ``repeat_max`` times while the window is open;
- a dose that cannot be presented (locked, paused, jammed, unreadable, empty) is ``dose.not_dispensed``;
- at ``closes`` an untaken dose is ``dose.not_taken`` and locked away (a multidose device keeps untaken
  pouches in a tray of limited size: ``fault.tray_full`` when it is full).

Every slot ends in exactly one ground-truth outcome: ``dose.taken``, ``dose.missed`` or ``dose.cancelled``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from device_sim.ports import Output, PatientAction
from firmware_protocol.messages import (
    DoseAssisted,
    DoseNotDispensed,
    DoseNotTaken,
    DosePresented,
    DoseReminder,
    DoseTaken,
    DoseTakenEarly,
    Family,
    NotDispensedReason,
    PotOpened,
    PouchScanned,
    ReminderStage,
    RollAlmostEmpty,
    RollEmpty,
    TrayAlmostEmpty,
    TrayEmpty,
)

if TYPE_CHECKING:
    from device_sim.device.dispenser import Dispenser
    from firmware_protocol.messages import Body, Config, Slot

DEFAULT_ALMOST_EMPTY = 6


@dataclass
class SlotState:
    """Where one slot is in its cycle."""

    slot: Slot
    presented: bool = False
    done: bool = False
    attempts: int = 0
    pouch_id: str | None = None
    pot: int | None = None


def _ref(state: SlotState) -> dict[str, object]:
    ref: dict[str, object] = {"slot_id": state.slot.slot_id, "due": state.slot.due}
    if state.pouch_id is not None:
        ref["pouch_id"] = state.pouch_id
    if state.pot is not None:
        ref["pot"] = state.pot
    return ref


def _send(device: Dispenser, body: Body, now_ms: int) -> list[Output]:
    return list(device.outbox.send(body, device.device_time(now_ms)))


def apply_schedule(device: Dispenser, config: Config, now_ms: int) -> None:
    """Hold ``config``: replace the slot timers (slots already finished stay finished)."""
    device.generation += 1
    device.config = config
    previous = device.slots
    device.slots = {}
    offset = device.clock_offset_ms
    device_now = device.device_time(now_ms)
    for slot in config.slots:
        state = previous.get(slot.slot_id) or SlotState(slot)
        state.slot = slot
        device.slots[slot.slot_id] = state
        if state.done or slot.closes <= device_now:
            continue
        device.schedule(max(slot.opens - offset, now_ms), "dose.opens", slot.slot_id)
        notice = slot.due - config.reminders.notice_before_s * 1000
        if config.reminders.notice_before_s and notice > device_now:
            device.schedule(notice - offset, "dose.notice", slot.slot_id)
        device.schedule(max(slot.due - offset, now_ms), "dose.due", slot.slot_id)
        device.schedule(slot.closes - offset, "dose.close", slot.slot_id)


def on_timer(device: Dispenser, kind: str, slot_id: str, now_ms: int) -> list[Output]:
    """Run one dose timer."""
    state = device.slots.get(slot_id)
    if state is None or state.done:
        return []
    handlers = {
        "dose.opens": _opens,
        "dose.notice": _notice,
        "dose.due": _due,
        "dose.sound": _reminder,
        "dose.take": _take,
        "dose.press": _press,
        "dose.close": _close,
    }
    return handlers[kind](device, state, now_ms)


def _opens(device: Dispenser, state: SlotState, now_ms: int) -> list[Output]:
    _ask_patient(device, state, state.slot.opens, now_ms)
    return []


def _ask_patient(device: Dispenser, state: SlotState, from_ms: int, now_ms: int) -> None:
    """Ask the patient model what happens next with this dose, from device time ``from_ms`` on.

    A confused patient may press without taking; the model is then asked again from just after the
    press, so presses repeat as often as the model says (its own generator per slot and press).
    """
    slot = state.slot
    rng = random.Random(f"{device.seed}:{slot.slot_id}:{from_ms}")
    response = device.patient.respond(opens_ms=from_ms, due_ms=slot.due, closes_ms=slot.closes, rng=rng)
    if response.action is PatientAction.IGNORE or response.at_ms is None or response.at_ms >= slot.closes:
        return
    kind = "dose.take" if response.action is PatientAction.TAKE else "dose.press"
    device.schedule(max(response.at_ms - device.clock_offset_ms, now_ms), kind, slot.slot_id)


def _notice(device: Dispenser, state: SlotState, now_ms: int) -> list[Output]:
    return _send(
        device, DoseReminder.model_validate({**_ref(state), "stage": "notice", "attempt": 1}), now_ms
    )


def _blocked(device: Dispenser, now_ms: int) -> tuple[NotDispensedReason | None, str]:
    """Why nothing can be presented now, if anything stops it."""
    device_now = device.device_time(now_ms)
    if device.paused or (device.paused_until is not None and device_now < device.paused_until):
        return None, "paused"
    if device.config is None:
        return NotDispensedReason.NO_SCHEDULE, "no schedule"
    if device.locked:
        return NotDispensedReason.LOCKED, "locked"
    if "fault.jam" in device.active_faults:
        return NotDispensedReason.JAM, "jam"
    return None, ""


def present(device: Dispenser, state: SlotState, now_ms: int) -> tuple[bool, list[Output]]:
    """Bring the slot's dose out (scan and cut the pouch, or open the pot); False if it cannot be."""
    reason, why = _blocked(device, now_ms)
    if why == "paused":
        state.done = True
        return False, [device.truth(now_ms, "dose.cancelled", slot_id=state.slot.slot_id, reason="paused")]
    out: list[Output] = []
    if reason is None and device.family is Family.MULTIDOSE_ROLL:
        reason, out = _cut_pouch(device, state, now_ms)
    elif reason is None:
        reason, out = _open_pot(device, state, now_ms)
    if reason is not None:
        state.done = True
        out += _send(device, DoseNotDispensed.model_validate({**_ref(state), "reason": reason.value}), now_ms)
        return False, [
            *out,
            device.truth(
                now_ms, "dose.missed", slot_id=state.slot.slot_id, reason=f"not_dispensed:{reason.value}"
            ),
        ]
    state.presented = True
    out += _send(device, DosePresented.model_validate(_ref(state)), now_ms)
    out.append(device.truth(now_ms, "dose.presented", slot_id=state.slot.slot_id))
    return True, out + check_supply(device, now_ms)


def _cut_pouch(
    device: Dispenser, state: SlotState, now_ms: int
) -> tuple[NotDispensedReason | None, list[Output]]:
    roll = device.roll
    pouch = roll.pouch_for(state.slot.due) if roll is not None else None
    if roll is None or pouch is None:
        return NotDispensedReason.EMPTY, []
    if device.unreadable_next:
        device.unreadable_next = False
        fault = device.fault_body("fault.pouch_unreadable", f"pouch {pouch.pouch_id} barcode unreadable")
        return NotDispensedReason.UNREADABLE, _send(device, fault, now_ms)
    state.pouch_id = pouch.pouch_id
    scan = PouchScanned(
        roll_id=roll.roll_id,
        pouch_id=pouch.pouch_id,
        printed_patient_ref=roll.printed_patient_ref,
        intake_time=pouch.intake_ms,
    )
    roll.take(pouch)
    return None, _send(device, scan, now_ms)


def _open_pot(
    device: Dispenser, state: SlotState, now_ms: int
) -> tuple[NotDispensedReason | None, list[Output]]:
    tray = device.tray
    pot = state.slot.pot if state.slot.pot is not None else None
    if tray is None:
        return NotDispensedReason.EMPTY, []
    if pot is None or pot in tray.opened or pot not in tray.pots:
        pot = tray.pot_for(state.slot.due)
    if pot is None:
        return NotDispensedReason.EMPTY, []
    tray.opened.add(pot)
    state.pot = pot
    return None, _send(device, PotOpened(tray_id=tray.tray_id, pot=pot, slot_id=state.slot.slot_id), now_ms)


def _due(device: Dispenser, state: SlotState, now_ms: int) -> list[Output]:
    out: list[Output] = [device.truth(now_ms, "dose.due", slot_id=state.slot.slot_id, due=state.slot.due)]
    if not state.presented:
        ok, presented = present(device, state, now_ms)
        out += presented
        if not ok:
            return out
    state.attempts = 1
    out += _send(device, DoseReminder.model_validate({**_ref(state), "stage": "light", "attempt": 1}), now_ms)
    reminders = device.config.reminders if device.config else None
    if reminders is not None:
        device.schedule(now_ms + reminders.sound_after_s * 1000, "dose.sound", state.slot.slot_id)
    return out


def _reminder(device: Dispenser, state: SlotState, now_ms: int) -> list[Output]:
    reminders = device.config.reminders if device.config else None
    if reminders is None or not state.presented or state.attempts > reminders.repeat_max:
        return []
    stage = ReminderStage.SOUND if state.attempts == 1 else ReminderStage.REPEAT
    body = DoseReminder.model_validate({**_ref(state), "stage": stage.value, "attempt": state.attempts})
    state.attempts += 1
    next_at = now_ms + reminders.repeat_every_s * 1000
    if next_at < state.slot.closes - device.clock_offset_ms:
        device.schedule(next_at, "dose.sound", state.slot.slot_id)
    return _send(device, body, now_ms)


def _take(device: Dispenser, state: SlotState, now_ms: int) -> list[Output]:
    out: list[Output] = []
    early = device.device_time(now_ms) < state.slot.due
    if not state.presented:
        if not early:
            return []  # the dose could not be presented at its due time; nothing to take
        ok, out = present(device, state, now_ms)
        if not ok:
            return out
    return out + take(device, state, now_ms, early=early)


def take(
    device: Dispenser, state: SlotState, now_ms: int, *, early: bool = False, staff_ref: str | None = None
) -> list[Output]:
    """The patient (or a helper, with ``staff_ref``) took the presented dose."""
    state.done = True
    taken_at = device.device_time(now_ms)
    ref = {**_ref(state), "taken_at": taken_at}
    if staff_ref is not None:
        body: Body = DoseAssisted.model_validate({**ref, "staff_ref": staff_ref})
    elif early:
        body = DoseTakenEarly.model_validate(ref)
    else:
        body = DoseTaken.model_validate(ref)
    truth = device.truth(
        now_ms,
        "dose.taken",
        slot_id=state.slot.slot_id,
        taken_at=taken_at,
        delay_ms=taken_at - state.slot.due,
        early=early,
        assisted=staff_ref is not None,
    )
    return [*_send(device, body, now_ms), truth]


def _press(device: Dispenser, state: SlotState, now_ms: int) -> list[Output]:
    _ask_patient(device, state, device.device_time(now_ms) + 1, now_ms)
    return [device.truth(now_ms, "dose.pressed", slot_id=state.slot.slot_id)]


def _close(device: Dispenser, state: SlotState, now_ms: int) -> list[Output]:
    state.done = True
    out: list[Output] = []
    if not state.presented:
        return [device.truth(now_ms, "dose.missed", slot_id=state.slot.slot_id, reason="not_presented")]
    retained = not device.untaken_full()
    if device.family is Family.MULTIDOSE_ROLL and retained:
        device.untaken_in_tray += 1
        if device.untaken_full() and "fault.tray_full" not in device.active_faults:
            device.active_faults.add("fault.tray_full")
            out += _send(device, device.fault_body("fault.tray_full", "untaken-dose tray full"), now_ms)
    body = DoseNotTaken.model_validate(
        {**_ref(state), "closed_at": device.device_time(now_ms), "retained": retained}
    )
    out += _send(device, body, now_ms)
    return [*out, device.truth(now_ms, "dose.missed", slot_id=state.slot.slot_id, reason="not_taken")]


def check_supply(device: Dispenser, now_ms: int) -> list[Output]:
    """Warn once per load when the supply is almost empty, and when it is empty."""
    supply = device.supply(now_ms)
    threshold = device.config.almost_empty_doses if device.config else DEFAULT_ALMOST_EMPTY
    until = supply.until or device.device_time(now_ms)
    if device.roll is not None:
        rid = device.roll.roll_id
        empty: Body = RollEmpty(roll_id=rid)
        almost: Body = RollAlmostEmpty(roll_id=rid, doses_left=supply.doses_left, until=until)
    elif device.tray is not None:
        tid = device.tray.tray_id
        empty = TrayEmpty(tray_id=tid)
        almost = TrayAlmostEmpty(tray_id=tid, doses_left=supply.doses_left, until=until)
    else:
        return []
    if supply.doses_left == 0 and "empty" not in device.warned:
        device.warned.add("empty")
        return _send(device, empty, now_ms)
    if 0 < supply.doses_left <= threshold and "almost" not in device.warned:
        device.warned.add("almost")
        return _send(device, almost, now_ms)
    return []
