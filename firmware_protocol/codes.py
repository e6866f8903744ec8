"""Standard code lists and the mapping of every event onto them.

- **VKP** alert codes: Norway's national welfare-technology hub receives dispenser alarms as FHIR R4
  ``DetectedIssue`` with these codes, and successful dispenses as ``MedicationDispense`` with a dispense
  category (1.1 unassisted, 1.2 assisted, 2 dispensed ahead for travel). Severity 0-3: not reported,
  green, yellow, red.
- **SCAIP** (CLC/TS 50134-9) status codes for device type 0011 (pill dispenser), for social-care alarm
  receivers.

Each device message that reports something a person may need to know maps to one row; some conditions
are detected by the hub, not reported by a device (``HUB_CONDITIONS``). Severities are defaults; the hub's
escalation policies decide who is told and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from firmware_protocol.messages.uplink import DosePredispensed, FaultCleared

if TYPE_CHECKING:
    from firmware_protocol.messages.common import Body

VKP_CODES: dict[str, str] = {
    "3.3": "no confirmation (dose not taken)",
    "3.4": "technical fault",
    "3.5": "wrong roll",
    "3.6": "empty",
    "3.7": "empty, dose not dispensed",
    "3.8": "no schedule",
    "3.9": "not on mains power",
    "3.10": "no contact with device",
    "3.11": "dispenser open",
    "3.12": "break-in attempt",
    "3.13": "untaken-dose tray full",
    "3.14": "roll stuck",
    "3.15": "not enough doses for a trip",
    "3.16": "pouch unreadable",
    "3.17": "battery dead",
    "3.21": "roll changed",
    "3.22": "plan changed by pharmacy",
    "3.23": "message not acknowledged",
    "3.24": "medicine waiting",
    "3.25": "refill needed",
    "3.26": "dispenser tilted",
    "3.27": "battery low",
}
"""VKP alert codes and their meaning."""

SCAIP_DEVICE_TYPE = "0011"
"""SCAIP device type of a pill dispenser."""
SCAIP_CODES: dict[str, str] = {
    "0016": "battery low",
    "0023": "IP connection lost",
    "0052": "jammed",
    "0081": "pill not taken",
    "0082": "pill reminder",
    "0083": "pill taken",
    "0085": "power failure",
    "0086": "power restored",
    "0112": "IP connection restored",
    "0125": "tamper",
}
"""SCAIP status codes used by pill dispensers."""


class Severity(IntEnum):
    """VKP severity."""

    NOT_REPORTED = 0
    GREEN = 1
    YELLOW = 2
    RED = 3


@dataclass(frozen=True, slots=True)
class Mapping:
    """How one event or condition is reported: VKP alert code, SCAIP status, severity, dispense category.

    ``vkp`` is ``None`` for events that are not alerts (a dose taken is a ``MedicationDispense`` with
    ``dispense_category``); ``clears`` names the VKP code an event resolves.
    """

    vkp: str | None
    scaip: str | None
    severity: Severity
    dispense_category: str | None = None
    clears: str | None = None


S = Severity
EVENT_MAPPINGS: dict[str, Mapping] = {
    "birth": Mapping(None, "0112", S.NOT_REPORTED, clears="3.10"),
    "death": Mapping("3.10", "0023", S.YELLOW),
    "dose.reminder": Mapping(None, "0082", S.NOT_REPORTED),
    "dose.presented": Mapping("3.24", None, S.NOT_REPORTED),
    "dose.taken": Mapping(None, "0083", S.NOT_REPORTED, dispense_category="1.1", clears="3.3"),
    "dose.taken_early": Mapping(None, "0083", S.NOT_REPORTED, dispense_category="1.1", clears="3.3"),
    "dose.assisted": Mapping(None, "0083", S.NOT_REPORTED, dispense_category="1.2", clears="3.3"),
    "dose.predispensed": Mapping("3.15", "0083", S.YELLOW, dispense_category="2"),
    "dose.not_taken": Mapping("3.3", "0081", S.YELLOW),
    "dose.not_dispensed": Mapping("3.7", "0052", S.RED),
    "roll.loaded": Mapping("3.21", None, S.GREEN),
    "pouch.scanned": Mapping(None, None, S.NOT_REPORTED),
    "roll.empty": Mapping("3.6", None, S.YELLOW),
    "roll.almost_empty": Mapping("3.25", None, S.GREEN),
    "tray.loaded": Mapping(None, None, S.NOT_REPORTED, clears="3.6"),
    "pot.opened": Mapping("3.24", None, S.NOT_REPORTED),
    "tray.empty": Mapping("3.6", None, S.YELLOW),
    "tray.almost_empty": Mapping("3.25", None, S.GREEN),
    "fault.jam": Mapping("3.14", "0052", S.RED),
    "fault.pouch_unreadable": Mapping("3.16", "0052", S.YELLOW),
    "fault.lid_open": Mapping("3.11", "0125", S.GREEN),
    "fault.break_in": Mapping("3.12", "0125", S.RED),
    "fault.tilted": Mapping("3.26", "0125", S.YELLOW),
    "fault.mains_lost": Mapping("3.9", "0085", S.GREEN),
    "fault.mains_restored": Mapping(None, "0086", S.NOT_REPORTED, clears="3.9"),
    "fault.battery_low": Mapping("3.27", "0016", S.YELLOW),
    "fault.battery_dead": Mapping("3.17", "0016", S.RED),
    "fault.tray_full": Mapping("3.13", None, S.YELLOW),
    "fault.clock_lost": Mapping("3.4", None, S.YELLOW),
    "fault.technical": Mapping("3.4", None, S.YELLOW),
}
"""Mapping of every reportable uplink message type (``mapping_for`` refines two rows by their body)."""

HUB_CONDITIONS: dict[str, Mapping] = {
    "wrong_roll": Mapping("3.5", None, S.RED),
    "no_schedule": Mapping("3.8", None, S.YELLOW),
    "no_contact": Mapping("3.10", "0023", S.YELLOW),
    "plan_changed": Mapping("3.22", None, S.GREEN),
    "command_unacknowledged": Mapping("3.23", None, S.YELLOW),
    "refill_needed": Mapping("3.25", None, S.GREEN),
}
"""Conditions the hub detects itself: a refused roll or pouch (3.5), a device holding no valid schedule
(3.8), silence past the heartbeat allowance (3.10), a pharmacy plan change (3.22), a command never
acknowledged (3.23), supply forecast to run out (3.25)."""

NOT_REPORTABLE: frozenset[str] = frozenset(
    {
        "state",
        "heartbeat",
        "fault.cleared",
        "cmd.ack",
        "cmd.nack",
        "schedule.applied",
        "schedule.rejected",
        "prov.request",
    }
)
"""Uplink types that carry state or answers, not events; ``fault.cleared`` maps through the fault it
names."""


def mapping_for(body: Body) -> Mapping | None:
    """How an uplink message body is reported, or ``None`` for messages that report nothing.

    Two rows depend on the body: ``fault.cleared`` clears the code of the fault it names, and
    ``dose.predispensed`` raises 3.15 only when fewer doses were dispensed than requested.
    """
    if isinstance(body, FaultCleared):
        return Mapping(None, None, Severity.NOT_REPORTED, clears=EVENT_MAPPINGS[body.fault].vkp)
    mapping = EVENT_MAPPINGS.get(body.TYPE)
    if isinstance(body, DosePredispensed) and mapping is not None and body.dispensed >= body.requested:
        return Mapping(None, mapping.scaip, Severity.NOT_REPORTED, mapping.dispense_category)
    return mapping
