"""Uplink message bodies: device to hub, signed with the device key.

Examples use 2026-11-23 08:00 Europe/Oslo (1795417200000 ms) as the dose time of slot ``s-20261123-0800``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints, model_validator

from firmware_protocol.messages.common import (
    Body,
    Count,
    DoseRef,
    Family,
    Flag,
    Millis,
    Percent,
    Ref,
    Supply,
    Text,
    VersionString,
)
from firmware_protocol.topics import Channel

T = 1_795_417_200_000
"""2026-11-23T07:00:00Z, the examples' dose time."""
_DOSE = {"slot_id": "s-20261123-0800", "due": T, "pouch_id": "P-4711-0042"}
_CAPABILITY = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,39}$")]


class BootReason(StrEnum):
    """Why the device (re)started."""

    POWER_ON = "power_on"
    WATCHDOG = "watchdog"
    FIRMWARE_UPDATE = "firmware_update"
    USER = "user"
    CRASH = "crash"
    UNKNOWN = "unknown"


class Birth(Body):
    """First message of every connection (Sparkplug's NBIRTH): who the device is and what it holds.

    Sent with ``seq`` 0 after a boot, and with the next ``seq`` after a reconnect within the same boot
    (``connection`` counts up). Exempt from the clock-skew check, so a hub can correct a device clock.
    """

    TYPE: ClassVar[str] = "birth"
    CHANNEL: ClassVar[Channel] = Channel.BIRTH
    family: Family = Field(description="Dispenser family: multidose roll or dose-pot carousel.")
    model: Text = Field(description="Product model name, for people (e.g. RollMate 3).")
    firmware: Text = Field(description="Firmware version, for people.")
    serial: Ref = Field(description="Manufacturer serial number (example devices use it as device id).")
    protocols: list[VersionString] = Field(min_length=1, max_length=16, description="Versions spoken.")
    capabilities: list[_CAPABILITY] = Field(max_length=32, description="Optional features, e.g. 'tilt'.")
    connection: Count = Field(description="Connection number within this boot, from 0; matches the will.")
    buffered: Count = Field(description="Messages buffered while offline, resent right after this birth.")
    boot_reason: BootReason = Field(description="Why the device last (re)started.")
    schedule_version: Count | None = Field(None, description="Version of the config held; absent when none.")
    battery_pct: Percent = Field(description="Battery charge in percent, 0-100.")
    on_mains: Flag = Field(description="True while on mains power, false on battery.")
    supply: Supply = Field(description="How long the loaded medication lasts.")
    clock_synced: Flag = Field(
        description="False when the real-time clock has not been set since power loss."
    )
    locked: Flag = Field(
        description="True while the device refuses to present doses (cmd.lock or an unaccepted roll)."
    )
    paused: Flag = Field(
        description="True while doses and reminders are paused (cmd.pause or config.paused_until)."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {
        "family": "multidose_roll",
        "model": "RollMate 3",
        "firmware": "3.2.1",
        "serial": "RM3-000017",
        "protocols": ["1.0"],
        "capabilities": ["tilt", "lid_sensor", "battery"],
        "connection": 0,
        "buffered": 0,
        "boot_reason": "power_on",
        "schedule_version": 12,
        "battery_pct": 96,
        "on_mains": True,
        "supply": {"doses_left": 27, "until": T + 6 * 86_400_000},
        "clock_synced": True,
        "locked": False,
        "paused": False,
    }


class DeathReason(StrEnum):
    """Why the device went offline."""

    CONNECTION_LOST = "connection_lost"
    """Published by the broker as the Last Will."""
    SHUTDOWN = "shutdown"
    """Published by the device itself before a clean disconnect."""


class Death(Body):
    """The device is offline: the Last Will, retained on ``up/state``, composed when connecting.

    Applies only when ``connection`` equals the latest birth's ``connection`` of the same boot; an older
    will delivered late (after a reconnect) is stale. Exempt from the sequence and skew checks.
    """

    TYPE: ClassVar[str] = "death"
    CHANNEL: ClassVar[Channel] = Channel.STATE
    connection: Count = Field(
        description="Connection number (within the boot) this will was composed for; as in its birth."
    )
    reason: DeathReason = Field(
        description="connection_lost: the broker published the will; shutdown: the device did."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {"connection": 0, "reason": "connection_lost"}


class State(Body):
    """Retained snapshot of the device (Homie-style): sent after birth and whenever it changes."""

    TYPE: ClassVar[str] = "state"
    CHANNEL: ClassVar[Channel] = Channel.STATE
    online: Literal[True] = Field(
        default=True, description="Always true; a retained death on up/state means offline."
    )
    connection: Count = Field(description="Connection number within this boot, as in the latest birth.")
    schedule_version: Count | None = Field(None, description="Version of the config held; absent when none.")
    battery_pct: Percent = Field(description="Battery charge in percent, 0-100.")
    on_mains: Flag = Field(description="True while on mains power, false on battery.")
    supply: Supply = Field(description="How long the loaded medication lasts.")
    locked: Flag = Field(
        description="True while the device refuses to present doses (cmd.lock or an unaccepted roll)."
    )
    paused: Flag = Field(
        description="True while doses and reminders are paused (cmd.pause or config.paused_until)."
    )
    faults: list[Annotated[str, StringConstraints(pattern=r"^fault\.[a-z_]{2,30}$")]] = Field(
        max_length=16, description="Message types of the faults now active."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {
        "online": True,
        "connection": 0,
        "schedule_version": 12,
        "battery_pct": 96,
        "on_mains": True,
        "supply": {"doses_left": 27, "until": T + 6 * 86_400_000},
        "locked": False,
        "paused": False,
        "faults": [],
    }


class Heartbeat(Body):
    """Periodic liveness and telemetry, every ``heartbeat_s`` seconds of the config."""

    TYPE: ClassVar[str] = "heartbeat"
    CHANNEL: ClassVar[Channel] = Channel.TELEMETRY
    uptime_s: Annotated[Count, Field(le=2**40)] = Field(description="Seconds since this boot.")
    battery_pct: Percent = Field(description="Battery charge in percent, 0-100.")
    on_mains: Flag = Field(description="True while on mains power, false on battery.")
    rssi_dbm: int | None = Field(
        None,
        ge=-150,
        le=0,
        strict=True,
        description="Radio signal strength in dBm; absent when not measured.",
    )
    temperature_dc: int | None = Field(
        None, ge=-400, le=1000, strict=True, description="Tenths of a degree C."
    )
    buffered: Count = Field(description="Uplink messages queued while offline, not yet sent.")
    schedule_version: Count | None = Field(None, description="Version of the config held; absent when none.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "uptime_s": 86_400,
        "battery_pct": 95,
        "on_mains": True,
        "rssi_dbm": -71,
        "temperature_dc": 214,
        "buffered": 0,
        "schedule_version": 12,
    }


class ReminderStage(StrEnum):
    """Steps of the device's local reminder ladder."""

    NOTICE = "notice"
    """Before the due time: a quiet notice."""
    LIGHT = "light"
    """At the due time: light."""
    SOUND = "sound"
    """After ``sound_after_s``: rising sound."""
    REPEAT = "repeat"
    """Repeats every ``repeat_every_s``."""


class DoseReminder(DoseRef):
    """The device started a reminder step for a dose."""

    TYPE: ClassVar[str] = "dose.reminder"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    stage: ReminderStage = Field(description="The reminder step started.")
    attempt: Annotated[Count, Field(le=100)] = Field(
        description="How many times this step has started for the dose, from 1."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {**_DOSE, "stage": "light", "attempt": 1}


class DosePresented(DoseRef):
    """The dose is waiting for the patient (pouch cut into the tray, or pot rotated open)."""

    TYPE: ClassVar[str] = "dose.presented"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    EXAMPLE: ClassVar[dict[str, object]] = dict(_DOSE)


class DoseTaken(DoseRef):
    """The patient took the dose inside its window (from ``opens`` to ``closes``)."""

    TYPE: ClassVar[str] = "dose.taken"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    taken_at: Millis = Field(description="When the patient took the dose, Unix ms UTC.")
    EXAMPLE: ClassVar[dict[str, object]] = {**_DOSE, "taken_at": T + 240_000}


class DoseTakenEarly(DoseRef):
    """The patient took the dose during early access, before the due time."""

    TYPE: ClassVar[str] = "dose.taken_early"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    taken_at: Millis = Field(description="When the patient took the dose (before due), Unix ms UTC.")
    EXAMPLE: ClassVar[dict[str, object]] = {**_DOSE, "taken_at": T - 1_200_000}


class DoseNotTaken(DoseRef):
    """The window closed without the dose being taken.

    ``retained``: the untaken pouch or pot was locked away inside the device (it is not accessible).
    """

    TYPE: ClassVar[str] = "dose.not_taken"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    closed_at: Millis = Field(description="When the window closed (the slot's closes), Unix ms UTC.")
    retained: Flag = Field(
        description="True: the dose was locked away; false: it could not be secured (e.g. tray full)."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {**_DOSE, "closed_at": T + 7_200_000, "retained": True}


class DoseAssisted(DoseRef):
    """A helper released the dose (``cmd.release_dose`` or a staff key on the device)."""

    TYPE: ClassVar[str] = "dose.assisted"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    taken_at: Millis = Field(description="When the dose was taken with help, Unix ms UTC.")
    staff_ref: Ref | None = Field(None, description="Staff badge or the releasing command's id.")
    EXAMPLE: ClassVar[dict[str, object]] = {**_DOSE, "taken_at": T + 5_400_000, "staff_ref": "HT-ARNA-07"}


class NotDispensedReason(StrEnum):
    """Why a due dose could not be presented."""

    EMPTY = "empty"
    JAM = "jam"
    LOCKED = "locked"
    UNREADABLE = "unreadable"
    NO_SCHEDULE = "no_schedule"


class DoseNotDispensed(DoseRef):
    """A dose was due but the device could not present it."""

    TYPE: ClassVar[str] = "dose.not_dispensed"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    reason: NotDispensedReason = Field(description="Why the dose could not be presented.")
    EXAMPLE: ClassVar[dict[str, object]] = {**_DOSE, "reason": "empty"}


class DosePredispensed(Body):
    """Doses dispensed ahead for a trip (``cmd.predispense``); fewer than requested means not enough."""

    TYPE: ClassVar[str] = "dose.predispensed"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    from_: Millis = Field(alias="from", description="Start of the requested range (inclusive), Unix ms UTC.")
    until: Millis = Field(description="End of the requested range (exclusive), Unix ms UTC.")
    slot_ids: list[Ref] = Field(max_length=128, description="Slots whose doses were dispensed, one per dose.")
    requested: Count = Field(description="Doses due in the range, i.e. asked for.")
    dispensed: Count = Field(
        description="Doses dispensed; fewer than requested means not enough were loaded."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {
        "from": T,
        "until": T + 86_400_000,
        "slot_ids": ["s-20261123-0800", "s-20261123-2000"],
        "requested": 4,
        "dispensed": 2,
    }

    @model_validator(mode="after")
    def _counts(self) -> DosePredispensed:
        if self.dispensed > self.requested or len(self.slot_ids) != self.dispensed:
            msg = "dispensed must not exceed requested and must equal the number of slot_ids"
            raise ValueError(msg)
        return self


class RollLoaded(Body):
    """A roll was loaded (roll changed); the device stays locked until ``cmd.roll_verdict`` accepts it."""

    TYPE: ClassVar[str] = "roll.loaded"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    roll_id: Ref = Field(description="The roll's id, as scanned.")
    printed_patient_ref: Ref = Field(description="Patient reference printed on the roll, as scanned.")
    first_intake: Millis | None = Field(
        None, description="Intake time of the roll's first pouch, Unix ms UTC; absent when unknown."
    )
    last_intake: Millis | None = Field(
        None, description="Intake time of the roll's last pouch, Unix ms UTC; absent when unknown."
    )
    pouches: Count | None = Field(None, description="Number of pouches on the roll; absent when unknown.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "roll_id": "R-2026-4711",
        "printed_patient_ref": "PX-93A7F2",
        "first_intake": T,
        "last_intake": T + 13 * 86_400_000,
        "pouches": 28,
    }


class PouchScanned(Body):
    """A pouch was read before cutting; the device presents it only if it is the next due pouch."""

    TYPE: ClassVar[str] = "pouch.scanned"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    roll_id: Ref = Field(description="The roll the pouch is on.")
    pouch_id: Ref = Field(description="The pouch barcode.")
    printed_patient_ref: Ref = Field(description="Patient reference printed on the pouch, as scanned.")
    intake_time: Millis = Field(
        description="Intake time printed on the pouch, Unix ms UTC; must equal the slot's due."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {
        "roll_id": "R-2026-4711",
        "pouch_id": "P-4711-0042",
        "printed_patient_ref": "PX-93A7F2",
        "intake_time": T,
    }


class RollEmpty(Body):
    """The roll has no pouches left."""

    TYPE: ClassVar[str] = "roll.empty"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    roll_id: Ref = Field(description="The roll that has run out.")
    EXAMPLE: ClassVar[dict[str, object]] = {"roll_id": "R-2026-4711"}


class RollAlmostEmpty(Body):
    """Few pouches left on the roll (threshold set by the config)."""

    TYPE: ClassVar[str] = "roll.almost_empty"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    roll_id: Ref = Field(description="The roll running low.")
    doses_left: Count = Field(description="Doses left; reported when this reaches config.almost_empty_doses.")
    until: Millis = Field(description="Due time of the last dose left, Unix ms UTC.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "roll_id": "R-2026-4711",
        "doses_left": 6,
        "until": T + 3 * 86_400_000,
    }


class TrayLoaded(Body):
    """A dose-pot tray was put in (filled by staff or a relative)."""

    TYPE: ClassVar[str] = "tray.loaded"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    tray_id: Ref = Field(description="The tray's id.")
    pots_filled: Annotated[Count, Field(le=64)] = Field(description="Number of filled pots in the tray.")
    EXAMPLE: ClassVar[dict[str, object]] = {"tray_id": "T-88-0301", "pots_filled": 28}


class PotOpened(Body):
    """The carousel opened a pot."""

    TYPE: ClassVar[str] = "pot.opened"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    tray_id: Ref = Field(description="The tray the pot belongs to.")
    pot: Annotated[int, Field(ge=1, le=64, strict=True)] = Field(
        description="Pot number on the carousel, from 1."
    )
    slot_id: Ref | None = Field(None, description="The slot the pot serves; absent when it serves none.")
    EXAMPLE: ClassVar[dict[str, object]] = {"tray_id": "T-88-0301", "pot": 3, "slot_id": "s-20261123-0800"}


class TrayEmpty(Body):
    """Every pot of the tray has been opened."""

    TYPE: ClassVar[str] = "tray.empty"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    tray_id: Ref = Field(description="The tray whose pots have all been opened.")
    EXAMPLE: ClassVar[dict[str, object]] = {"tray_id": "T-88-0301"}


class TrayAlmostEmpty(Body):
    """Few filled pots left."""

    TYPE: ClassVar[str] = "tray.almost_empty"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    tray_id: Ref = Field(description="The tray running low.")
    doses_left: Count = Field(
        description="Filled pots left; reported when this reaches config.almost_empty_doses."
    )
    until: Millis = Field(description="Due time of the last dose left, Unix ms UTC.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "tray_id": "T-88-0301",
        "doses_left": 6,
        "until": T + 3 * 86_400_000,
    }


class Fault(Body):
    """Base of the fault events: a condition was detected. ``detail`` is free text for technicians."""

    CHANNEL: ClassVar[Channel] = Channel.EVENT
    detail: Text | None = Field(None, description="Free text for technicians, never patient-identifying.")
    EXAMPLE: ClassVar[dict[str, object]] = {"detail": "motor current 1.8 A for 2 s"}


def _fault(type_name: str, doc: str) -> type[Fault]:
    return type(
        "Fault" + "".join(part.title() for part in type_name.removeprefix("fault.").split("_")),
        (Fault,),
        {"__doc__": doc, "TYPE": type_name, "__module__": __name__},
    )


FaultJam = _fault("fault.jam", "The roll is stuck or the carousel cannot turn.")
FaultPouchUnreadable = _fault("fault.pouch_unreadable", "A pouch's barcode or print could not be read.")
FaultLidOpen = _fault("fault.lid_open", "The dispenser lid or door is open.")
FaultBreakIn = _fault("fault.break_in", "Forced opening of the medication compartment.")
FaultTilted = _fault("fault.tilted", "The dispenser is tilted or has fallen over.")
FaultMainsLost = _fault("fault.mains_lost", "Mains power lost; running on battery.")
FaultMainsRestored = _fault("fault.mains_restored", "Mains power is back.")
FaultBatteryLow = _fault("fault.battery_low", "Battery low (about a day left without mains).")
FaultBatteryDead = _fault("fault.battery_dead", "Battery exhausted; the device is about to shut down.")
FaultTrayFull = _fault("fault.tray_full", "The untaken-dose tray is full; no more doses can be retained.")
FaultClockLost = _fault("fault.clock_lost", "The real-time clock lost time; the device needs cmd.set_time.")
FaultTechnical = _fault("fault.technical", "Any other technical fault (detail says which).")

FAULT_TYPES: tuple[type[Fault], ...] = (
    FaultJam,
    FaultPouchUnreadable,
    FaultLidOpen,
    FaultBreakIn,
    FaultTilted,
    FaultMainsLost,
    FaultMainsRestored,
    FaultBatteryLow,
    FaultBatteryDead,
    FaultTrayFull,
    FaultClockLost,
    FaultTechnical,
)
_CLEARABLE = sorted(f.TYPE for f in FAULT_TYPES if f is not FaultMainsRestored)


class FaultCleared(Body):
    """A fault condition ended (lid closed, jam cleared, device upright again)."""

    TYPE: ClassVar[str] = "fault.cleared"
    CHANNEL: ClassVar[Channel] = Channel.EVENT
    fault: Annotated[str, Field(json_schema_extra={"enum": _CLEARABLE})] = Field(
        description="Message type of the fault that ended."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {"fault": "fault.lid_open"}

    @model_validator(mode="after")
    def _known(self) -> FaultCleared:
        if self.fault not in _CLEARABLE:
            msg = f"fault must be one of {', '.join(_CLEARABLE)}"
            raise ValueError(msg)
        return self


class CommandAck(Body):
    """A command was carried out. The envelope's ``corr_id`` is the command's ``msg_id``."""

    TYPE: ClassVar[str] = "cmd.ack"
    REQUIRES_CORR_ID: ClassVar[bool] = True
    CHANNEL: ClassVar[Channel] = Channel.ACK
    command: Annotated[str, StringConstraints(pattern=r"^cmd\.[a-z_]{2,30}$")] = Field(
        description="Type of the command carried out."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {"command": "cmd.identify"}


NackReason = Literal[
    "E_MALFORMED",
    "E_SCHEMA",
    "E_TOO_LARGE",
    "E_VERSION",
    "E_UNKNOWN_TYPE",
    "E_TOPIC",
    "E_SIGNATURE",
    "E_UNKNOWN_KEY",
    "E_REPLAY",
    "E_SKEW",
    "E_EXPIRED",
    "E_STALE_VERSION",
    "E_NOT_SUPPORTED",
    "E_INVALID_STATE",
]
"""Every ``ErrorCode`` plus two command outcomes: not supported by this device, not possible now."""


class CommandNack(Body):
    """A command was refused and not acted on; ``corr_id`` is its ``msg_id`` when it could be read."""

    TYPE: ClassVar[str] = "cmd.nack"
    CHANNEL: ClassVar[Channel] = Channel.ACK
    command: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="Type of the refused message (a cmd.* type or config), if it could be read."
    )
    reason: NackReason = Field(
        description="Error code of the failed check, or E_NOT_SUPPORTED or E_INVALID_STATE."
    )
    field: Annotated[str, StringConstraints(max_length=120)] | None = Field(
        None,
        description="Dotted path of the offending member, e.g. body.slots.3.due; absent: the whole message.",
    )
    detail: Text | None = Field(None, description="Free text for technicians, never patient-identifying.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "command": "cmd.unlock",
        "reason": "E_SIGNATURE",
        "field": "sig.value",
        "detail": "signature does not verify with the hub key",
    }


class ScheduleApplied(Body):
    """The device applied the retained config of this version."""

    TYPE: ClassVar[str] = "schedule.applied"
    CHANNEL: ClassVar[Channel] = Channel.ACK
    version: Count = Field(description="Version of the config applied.")
    slots: Count = Field(description="Slots now held.")
    EXAMPLE: ClassVar[dict[str, object]] = {"version": 13, "slots": 56}


class ScheduleRejected(Body):
    """The device refused a config and keeps the one it held."""

    TYPE: ClassVar[str] = "schedule.rejected"
    CHANNEL: ClassVar[Channel] = Channel.ACK
    version: Count = Field(description="Version of the config refused.")
    reason: NackReason = Field(
        description="Error code of the failed check, or E_NOT_SUPPORTED or E_INVALID_STATE."
    )
    field: Annotated[str, StringConstraints(max_length=120)] | None = Field(
        None,
        description="Dotted path of the offending member, e.g. body.slots.3.due; absent: the whole message.",
    )
    detail: Text | None = Field(None, description="Free text for technicians, never patient-identifying.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "version": 13,
        "reason": "E_NOT_SUPPORTED",
        "field": "body.slots.3.pot",
        "detail": "a multidose dispenser has no pots",
    }


UPLINK_BODIES: tuple[type[Body], ...] = (
    Birth,
    Death,
    State,
    Heartbeat,
    DoseReminder,
    DosePresented,
    DoseTaken,
    DoseTakenEarly,
    DoseNotTaken,
    DoseAssisted,
    DoseNotDispensed,
    DosePredispensed,
    RollLoaded,
    PouchScanned,
    RollEmpty,
    RollAlmostEmpty,
    TrayLoaded,
    PotOpened,
    TrayEmpty,
    TrayAlmostEmpty,
    *FAULT_TYPES,
    FaultCleared,
    CommandAck,
    CommandNack,
    ScheduleApplied,
    ScheduleRejected,
)
