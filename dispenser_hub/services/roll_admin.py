"""Operator actions on the roll in a dispenser: record it replaced, or withdrawn by a pharmacy plan change.

Rules (``domain.rolls``): ending a load is a person's record, never the hub's guess, because it explains
an overlap with the next roll (``EXPLAINS_OVERLAP``):

- ``replaced``: the roll was taken out and another one put in (the next roll may overlap it).
- ``plan_changed`` (VKP 3.22): the pharmacy changed the plan mid-roll; the roll's remaining pouches are
  withdrawn: the dispenser's schedule loses them at once (a new, empty config version), the roll can never
  be accepted again (``was_withdrawn``), and the new roll the pharmacy packs may overlap it. The
  "plan changed" alarm (green, informational) tells the team to bring the new roll; "no schedule" (3.8)
  follows until it is loaded.

Audited; the schedule is rebuilt in the same transaction.
"""

from __future__ import annotations

from datetime import UTC
from enum import StrEnum
from typing import TYPE_CHECKING

from dispenser_hub.domain.model import AuditEntry, SubjectKind
from dispenser_hub.domain.rolls import RollEndReason, end_load
from dispenser_hub.services.alarm_records import device_condition, raise_alarm
from dispenser_hub.services.operator import OperatorService
from dispenser_hub.services.registry import Conflict, NotFound, RegistryError

if TYPE_CHECKING:
    from dispenser_hub.domain.rolls import RollLoad

PLAN_CHANGED = "plan_changed"
"""Alarm kind of a pharmacy plan change (the hub condition of VKP 3.22)."""


class EndReason(StrEnum):
    """Why an operator ends the roll in a dispenser."""

    REPLACED = RollEndReason.REPLACED.value
    PLAN_CHANGED = RollEndReason.PLAN_CHANGED.value


class RollAdmin(OperatorService):
    """Ends the roll load of a dispenser on an operator's word (see the module rules)."""

    def end_roll(self, device_id: str, reason: EndReason, *, note: str, by: str) -> RollLoad:
        """End the dispenser's active roll load for ``reason``; ``note`` says what happened."""
        if not note.strip():
            raise RegistryError(
                "note: say what happened (e.g. 'new plan from Apotek 1, 24 Nov')", field="note"
            )
        now = self._clock.now().astimezone(UTC)
        with self._uow_factory() as uow:
            device = uow.devices.get(device_id)
            if device is None:
                raise NotFound(f"there is no device {device_id}", field="device_id")
            load = uow.rolls.active_load_for_device(device_id)
            if load is None:
                raise Conflict(f"device {device_id} has no roll accepted", field="device_id")
            ended = uow.rolls.update_load(end_load(load, reason=reason.value, now=now))
            subject = f"{SubjectKind.DEVICE.value}:{device_id}"
            detail = f"roll {load.roll_id} ended ({reason.value}): {note.strip()[:200]}"
            uow.audit.add(AuditEntry(now, by, "roll.end", subject, detail))
            if reason is EndReason.PLAN_CHANGED:
                detail = (
                    f"the pharmacy changed the plan: roll {load.roll_id} withdrawn {now:%Y-%m-%d %H:%M} UTC; "
                    "load the new roll"
                )
                raise_alarm(uow, device_condition(PLAN_CHANGED, device_id, load.patient_id, detail), now)
            self._schedules.refresh(uow, device, now)
            uow.commit()
        return ended
