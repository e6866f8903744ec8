"""Downlink message bodies: hub to device, signed with the hub key.

A device acts on a downlink message only after verifying the hub's signature, checking that the
envelope's ``device`` is its own id, and (commands) that ``expires`` has not passed or (config) that
``version`` is newer than the one it holds. Otherwise it answers ``cmd.nack`` or ``schedule.rejected``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from firmware_protocol.messages.common import (
    Body,
    Count,
    Flag,
    MessageId,
    Millis,
    Part,
    PotIndex,
    Ref,
    Seq,
    Text,
)
from firmware_protocol.messages.uplink import T
from firmware_protocol.topics import Channel

_HOUR = 3_600_000


class Reminders(Part):
    """The device's local reminder ladder for every slot (as the best dispensers do it)."""

    notice_before_s: Annotated[Count, Field(le=14_400)] = Field(
        description="Quiet notice this long before the due time; 0: none."
    )
    sound_after_s: Annotated[Count, Field(le=14_400)] = Field(
        description="Light at the due time; rising sound after this."
    )
    repeat_every_s: Annotated[Count, Field(ge=60, le=14_400)] = Field(
        description="Seconds between repeats of the sound."
    )
    repeat_max: Annotated[Count, Field(le=20)] = Field(description="Most repeats per dose.")


class Slot(Part):
    """One dose the device must offer: accessible from ``opens``, due at ``due``, closed at ``closes``.

    Rule: ``opens <= due < closes``. After ``closes`` an untaken dose is reported ``dose.not_taken`` and
    locked away. Multidose slots name the expected ``pouch_id``; dose-pot slots name the ``pot``.
    """

    slot_id: Ref = Field(description="The slot's id, unique in the config; dose events name it.")
    due: Millis = Field(description="When the dose is due, Unix ms UTC.")
    opens: Millis = Field(description="From when the dose is accessible, Unix ms UTC; at most due.")
    closes: Millis = Field(
        description="When the window closes, Unix ms UTC; after due. An untaken dose is then locked away."
    )
    pouch_id: Ref | None = Field(None, description="Multidose: the expected pouch barcode.")
    pot: PotIndex | None = Field(None, description="Dose-pot: the pot number.")

    @model_validator(mode="after")
    def _window(self) -> Slot:
        if not self.opens <= self.due < self.closes:
            msg = "the window must satisfy opens <= due < closes"
            raise ValueError(msg)
        if self.pouch_id is not None and self.pot is not None:
            msg = "a slot names a pouch_id (multidose) or a pot (dose-pot), not both"
            raise ValueError(msg)
        return self


class Config(Body):
    """The desired configuration and schedule, retained on ``down/config`` (a device shadow's 'desired').

    ``version`` increases with every change; a device applies a config only if its version is newer than
    the one it holds, then answers ``schedule.applied``. Slots are absolute UTC instants computed by the hub
    from Europe/Oslo wall-clock plans, so the device never does time-zone or daylight-saving arithmetic.
    """

    TYPE: ClassVar[str] = "config"
    CHANNEL: ClassVar[Channel] = Channel.CONFIG
    version: Annotated[Seq, Field(ge=1)] = Field(
        description="Config version, from 1, increased with every change."
    )
    timezone: Literal["Europe/Oslo"] = Field(description="For the display only.")
    locale: Literal["nb-NO", "en-GB"] = Field(description="Language of the device's texts and voice.")
    volume: Annotated[Count, Field(le=10)] = Field(description="Loudness of reminders, 0 to 10.")
    heartbeat_s: Annotated[Count, Field(ge=30, le=3_600)] = Field(description="Seconds between heartbeats.")
    almost_empty_doses: Annotated[Count, Field(le=64)] = Field(
        description="Report almost empty at this many doses left."
    )
    reminders: Reminders = Field(description="The reminder ladder for every slot.")
    roll_id: Ref | None = Field(None, description="Multidose: the accepted roll.")
    paused_until: Millis | None = Field(None, description="No doses offered before this (hospital, travel).")
    slots: list[Slot] = Field(max_length=256, description="The doses to offer, sorted by due time.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "version": 13,
        "timezone": "Europe/Oslo",
        "locale": "nb-NO",
        "volume": 6,
        "heartbeat_s": 300,
        "almost_empty_doses": 6,
        "reminders": {"notice_before_s": 900, "sound_after_s": 300, "repeat_every_s": 600, "repeat_max": 6},
        "roll_id": "R-2026-4711",
        "slots": [
            {
                "slot_id": "s-20261123-0800",
                "due": T,
                "opens": T - _HOUR,
                "closes": T + 2 * _HOUR,
                "pouch_id": "P-4711-0042",
            },
            {
                "slot_id": "s-20261123-2000",
                "due": T + 12 * _HOUR,
                "opens": T + 11 * _HOUR,
                "closes": T + 14 * _HOUR,
                "pouch_id": "P-4711-0043",
            },
        ],
    }

    @model_validator(mode="after")
    def _slots(self) -> Config:
        ids = [slot.slot_id for slot in self.slots]
        if len(set(ids)) != len(ids):
            msg = "slot_id values must be unique"
            raise ValueError(msg)
        if any(a.due > b.due for a, b in zip(self.slots, self.slots[1:], strict=False)):
            msg = "slots must be sorted by due time"
            raise ValueError(msg)
        return self


class Command(Body):
    """Base of every command: refused with ``E_EXPIRED`` after ``expires`` (device clock permitting)."""

    CHANNEL: ClassVar[Channel] = Channel.CMD
    expires: Millis = Field(
        description="Act only until this time, Unix ms UTC; later: E_EXPIRED (not for cmd.set_time)."
    )


_EXPIRES = T + 600_000


class VerdictReason(StrEnum):
    """Why a roll was refused; each names what an operator must do."""

    NO_MANIFEST = "no_manifest"
    """The pharmacy's manifest for this roll has not been imported."""
    WRONG_PATIENT = "wrong_patient"
    """The roll belongs to another patient than the one bound to this dispenser."""
    ALREADY_ACTIVE = "already_active"
    """The roll is active in another dispenser."""
    OUT_OF_DATE = "out_of_date"
    """The roll's intake times are over."""
    GAP_OR_OVERLAP = "gap_or_overlap"
    """The roll does not join the previous roll."""
    OTHER = "other"


class RollVerdict(Command):
    """Accept or refuse a loaded roll. A refused roll keeps the device locked."""

    TYPE: ClassVar[str] = "cmd.roll_verdict"
    roll_id: Ref = Field(description="The roll judged, as in roll.loaded.")
    accept: Flag = Field(description="True: the roll may be used; false: the device stays locked.")
    reason: VerdictReason | None = Field(None, description="Required when accept is false.")
    detail: Text | None = Field(None, description="What the person loading should do; shown on the device.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "expires": _EXPIRES,
        "roll_id": "R-2026-0815",
        "accept": False,
        "reason": "wrong_patient",
        "detail": "Roll belongs to another patient. Remove it and call the pharmacy.",
    }

    @model_validator(mode="after")
    def _reason(self) -> RollVerdict:
        if not self.accept and self.reason is None:
            msg = "a refusal needs a reason"
            raise ValueError(msg)
        return self


class Lock(Command):
    """Lock the dispenser: no dose is presented until unlocked."""

    TYPE: ClassVar[str] = "cmd.lock"
    reason: Text | None = Field(None, description="Why the device is locked, for people.")
    EXAMPLE: ClassVar[dict[str, object]] = {"expires": _EXPIRES, "reason": "roll under investigation"}


class Unlock(Command):
    """Unlock the dispenser."""

    TYPE: ClassVar[str] = "cmd.unlock"
    EXAMPLE: ClassVar[dict[str, object]] = {"expires": _EXPIRES}


class ReleaseDose(Command):
    """Present a slot's dose now (assisted dispense, e.g. a nurse on the phone or at the door)."""

    TYPE: ClassVar[str] = "cmd.release_dose"
    slot_id: Ref = Field(description="The slot whose dose to present.")
    staff_ref: Ref | None = Field(None, description="Staff badge reference of the person releasing the dose.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "expires": _EXPIRES,
        "slot_id": "s-20261123-0800",
        "staff_ref": "RS-OP-3",
    }


class PauseReason(StrEnum):
    """Why dosing is paused."""

    HOSPITAL = "hospital"
    TRAVEL = "travel"
    OTHER = "other"


class Pause(Command):
    """Stop offering doses (and reminding) until ``until`` or ``cmd.resume``."""

    TYPE: ClassVar[str] = "cmd.pause"
    reason: PauseReason = Field(description="Why dosing is paused.")
    until: Millis | None = Field(None, description="End of the pause, Unix ms UTC; absent: until cmd.resume.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "expires": _EXPIRES,
        "reason": "hospital",
        "until": T + 72 * _HOUR,
    }


class Resume(Command):
    """End a pause."""

    TYPE: ClassVar[str] = "cmd.resume"
    EXAMPLE: ClassVar[dict[str, object]] = {"expires": _EXPIRES}


class Predispense(Command):
    """Dispense every slot due in ``[from, until)`` now, for a trip; answered by ``dose.predispensed``."""

    TYPE: ClassVar[str] = "cmd.predispense"
    from_: Millis = Field(alias="from", description="Start of the range (inclusive), Unix ms UTC.")
    until: Millis = Field(description="End of the range (exclusive), Unix ms UTC; after from.")
    EXAMPLE: ClassVar[dict[str, object]] = {"expires": _EXPIRES, "from": T, "until": T + 48 * _HOUR}

    @model_validator(mode="after")
    def _range(self) -> Predispense:
        if self.until <= self.from_:
            msg = "until must be after from"
            raise ValueError(msg)
        return self


class SetTime(Command):
    """Set the device clock to ``now`` (sent when a birth shows an unsynced or skewed clock)."""

    TYPE: ClassVar[str] = "cmd.set_time"
    now: Millis = Field(description="The current time to set the clock to, Unix ms UTC.")
    EXAMPLE: ClassVar[dict[str, object]] = {"expires": _EXPIRES, "now": T}


class Resync(Command):
    """Send a fresh birth and state; with a range, also resend ``from_seq``..``to_seq`` of ``boot_id``.

    The range is inclusive and names one boot. Messages no longer buffered cannot be resent: the device
    answers ``cmd.nack`` with ``E_INVALID_STATE`` and says which in ``detail``.
    """

    TYPE: ClassVar[str] = "cmd.resync"
    boot_id: MessageId | None = Field(
        None, description="Boot whose messages to resend; with from_seq and to_seq, or all absent."
    )
    from_seq: Seq | None = Field(None, description="First seq to resend (inclusive).")
    to_seq: Seq | None = Field(None, description="Last seq to resend (inclusive); not below from_seq.")
    EXAMPLE: ClassVar[dict[str, object]] = {
        "expires": _EXPIRES,
        "boot_id": "01KAQ5ZJ0G8R8W6Y4M2N3P5Q7R",
        "from_seq": 41,
        "to_seq": 43,
    }

    @model_validator(mode="after")
    def _range(self) -> Resync:
        given = (self.boot_id is not None, self.from_seq is not None, self.to_seq is not None)
        if any(given) and not all(given):
            msg = "boot_id, from_seq and to_seq go together: give all three or none"
            raise ValueError(msg)
        if self.from_seq is not None and self.to_seq is not None and self.from_seq > self.to_seq:
            msg = "from_seq must not be greater than to_seq"
            raise ValueError(msg)
        return self


class Identify(Command):
    """Beep and blink so a visitor can find the right device."""

    TYPE: ClassVar[str] = "cmd.identify"
    seconds: Annotated[Count, Field(ge=1, le=300)] = Field(
        description="How long to beep and blink, in seconds."
    )
    EXAMPLE: ClassVar[dict[str, object]] = {"expires": _EXPIRES, "seconds": 30}


DOWNLINK_BODIES: tuple[type[Body], ...] = (
    Config,
    RollVerdict,
    Lock,
    Unlock,
    ReleaseDose,
    Pause,
    Resume,
    Predispense,
    SetTime,
    Resync,
    Identify,
)
