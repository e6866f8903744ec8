"""What an accepted device message means for the device's presence and its device alarms.

Presence rules:

- Every accepted message proves contact: ``last_seen_at`` becomes the hub's receive time (never the
  device's clock, which may drift or replay old events).
- ``birth`` -> online, with what the device reports (capabilities, firmware, battery, mains, supply, the
  schedule version it holds) and the new ``boot_id``/``connection``. ``state`` and ``heartbeat`` refresh the
  reported values and also mean online (a message arrived over a live connection).
- ``death`` (the Last Will, or a graceful goodbye) -> offline, unless it is *stale*: a will registered for
  an earlier connection or boot, delivered after the device already came back (Sparkplug's bdSeq rule).
  A stale death changes nothing.
- Sequence numbers are tracked per boot (``last_seq``), only forward: a replayed older message that is
  accepted (an offline buffer) does not move it back.

Device alarm rules (issue: hub core; dose alarms come with the dose lifecycle):

- Faults (``fault.*``), running empty (``roll.empty``, ``tray.empty``) and the device going offline
  (``death``) raise a device alarm with the VKP code and default severity of ``firmware_protocol.codes``.
  Severity 0 rows (not reported) raise nothing.
- The condition ends with the message that clears it: ``fault.cleared`` clears the fault it names,
  ``fault.mains_restored`` clears ``fault.mains_lost``, ``birth`` clears ``death`` and ``no_contact``,
  loading a roll or tray clears ``roll.empty``/``tray.empty``. Clearing resolves the open alarm as the
  system ("the device reported the condition over").
- ``no_contact`` (VKP 3.10) is raised by the hub itself when a device is silent longer than allowed
  (``silence_condition``).

Pure: callers pass the current presence, the message and ``now``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dispenser_hub.domain.alarms import Condition
from dispenser_hub.domain.model import Presence, SubjectKind
from firmware_protocol.codes import HUB_CONDITIONS, mapping_for
from firmware_protocol.messages import Birth, Death, FaultCleared, Heartbeat, State
from firmware_protocol.receiver import SEQUENCE_EXEMPT

if TYPE_CHECKING:
    from firmware_protocol import Envelope
    from firmware_protocol.messages.common import Body

ALARMING_PREFIXES = ("fault.",)
ALARMING_TYPES = frozenset({"death", "roll.empty", "tray.empty", "dose.predispensed"})
"""Besides faults; ``dose.predispensed`` alarms (3.15) only when fewer doses came out than requested."""
CLEARED_BY: dict[str, tuple[str, ...]] = {
    "birth": ("death", "no_contact"),
    "fault.mains_restored": ("fault.mains_lost",),
    "roll.loaded": ("roll.empty",),
    "tray.loaded": ("tray.empty",),
}
"""Message type -> the alarm kinds it ends (``fault.cleared`` ends the fault named in its body)."""
NO_CONTACT = "no_contact"


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _seq(presence: Presence, envelope: Envelope[Body]) -> tuple[str, int | None]:
    if envelope.type in SEQUENCE_EXEMPT:  # carries the next number without using it
        return (presence.boot_id or envelope.boot_id), presence.last_seq
    if presence.boot_id != envelope.boot_id or presence.last_seq is None:
        return envelope.boot_id, envelope.seq
    return envelope.boot_id, max(presence.last_seq, envelope.seq)


def is_stale_death(presence: Presence, envelope: Envelope[Body]) -> bool:
    """A will from an earlier boot or connection than the one the device is on now (see the rules)."""
    body = envelope.body
    if not isinstance(body, Death) or presence.boot_id is None:
        return False
    if envelope.boot_id != presence.boot_id:
        return True  # a will of an earlier boot, delivered after the new boot's birth
    return presence.connection is not None and body.connection < presence.connection


def apply_message(presence: Presence, envelope: Envelope[Body], now: datetime) -> Presence:
    """The presence after an accepted message (see the module rules)."""
    body = envelope.body
    if isinstance(body, Death):
        if is_stale_death(presence, envelope):
            return dataclasses.replace(presence, last_seen_at=now)
        return dataclasses.replace(presence, online=False, since=now, last_seen_at=now)
    boot_id, last_seq = _seq(presence, envelope)
    changed = dataclasses.replace(
        presence,
        online=True,
        since=presence.since if presence.online else now,
        last_seen_at=now,
        boot_id=boot_id,
        last_seq=last_seq,
    )
    if isinstance(body, Birth):
        return dataclasses.replace(
            changed,
            connection=body.connection,
            battery_pct=body.battery_pct,
            on_mains=body.on_mains,
            schedule_version=body.schedule_version,
            capabilities=tuple(body.capabilities),
            supply_doses_left=body.supply.doses_left,
            supply_until=_ms(body.supply.until) if body.supply.until is not None else None,
            firmware=body.firmware,
        )
    if isinstance(body, State):
        return dataclasses.replace(
            changed,
            connection=body.connection,
            battery_pct=body.battery_pct,
            on_mains=body.on_mains,
            schedule_version=body.schedule_version,
            supply_doses_left=body.supply.doses_left,
            supply_until=_ms(body.supply.until) if body.supply.until is not None else None,
        )
    if isinstance(body, Heartbeat):
        return dataclasses.replace(
            changed,
            battery_pct=body.battery_pct,
            on_mains=body.on_mains,
            schedule_version=body.schedule_version,
        )
    return changed


@dataclass(frozen=True, slots=True)
class AlarmFacts:
    """The device alarms a message raises and the alarm kinds it ends."""

    raised: tuple[Condition, ...] = ()
    cleared: tuple[str, ...] = ()


def alarm_facts(envelope: Envelope[Body], *, patient_id: int | None, stale_death: bool = False) -> AlarmFacts:
    """What ``envelope`` (accepted, from its device) does to the device's alarms (see the module rules)."""
    body = envelope.body
    kind = body.TYPE
    if isinstance(body, FaultCleared):
        return AlarmFacts(cleared=(body.fault,))
    cleared = CLEARED_BY.get(kind, ())
    if stale_death or not (kind in ALARMING_TYPES or kind.startswith(ALARMING_PREFIXES)):
        return AlarmFacts(cleared=cleared)
    mapping = mapping_for(body)
    if mapping is None or mapping.vkp is None or mapping.severity <= 0:
        return AlarmFacts(cleared=cleared)
    condition = Condition(
        kind=kind,
        subject_kind=SubjectKind.DEVICE,
        subject_id=envelope.device,
        severity=int(mapping.severity),
        detail=_detail(body),
        vkp_code=mapping.vkp,
        device_id=envelope.device,
        patient_id=patient_id,
    )
    return AlarmFacts(raised=(condition,), cleared=cleared)


def _detail(body: Body) -> str:
    """A short operator-facing description (never patient data: only the type and coded fields)."""
    if isinstance(body, Death):
        return f"device went offline ({body.reason.value})"
    return body.TYPE.replace("fault.", "fault: ").replace("_", " ")


def silence_condition(
    device_id: str, last_seen_at: datetime | None, *, patient_id: int | None, now: datetime
) -> Condition:
    """The ``no_contact`` condition (VKP 3.10) of a device silent since ``last_seen_at``."""
    mapping = HUB_CONDITIONS[NO_CONTACT]
    since = "never" if last_seen_at is None else f"{(now - last_seen_at).total_seconds() / 60:.0f} minutes"
    return Condition(
        kind=NO_CONTACT,
        subject_kind=SubjectKind.DEVICE,
        subject_id=device_id,
        severity=int(mapping.severity),
        detail=f"no contact with the device for {since}",
        vkp_code=mapping.vkp,
        device_id=device_id,
        patient_id=patient_id,
    )
