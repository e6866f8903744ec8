"""Field types and the base class shared by every message body."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.types import Strict

from firmware_protocol.canonical import MAX_SAFE_INT
from firmware_protocol.ids import DEVICE_ID_PATTERN, KEY_ID_PATTERN, MESSAGE_ID_PATTERN
from firmware_protocol.topics import Channel

Millis = Annotated[int, Strict(), Field(ge=0, le=MAX_SAFE_INT, description="Unix time in milliseconds, UTC.")]
"""A point in time: integer milliseconds since 1970-01-01T00:00:00Z (no leap seconds)."""
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_SAFE_INT)]
"""A non-negative integer; fields add tighter upper bounds where they have one."""
Seq = Annotated[int, Strict(), Field(ge=0, le=MAX_SAFE_INT)]
Percent = Annotated[int, Strict(), Field(ge=0, le=100)]
Flag = Annotated[bool, Strict()]
Text = Annotated[str, StringConstraints(max_length=200)]
"""Free text for people (never patient-identifying on device messages)."""
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")]
"""An identifier printed or assigned by someone else: roll ids, pouch barcodes, tray ids, slot ids."""
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
MessageId = Annotated[str, StringConstraints(pattern=MESSAGE_ID_PATTERN)]
KeyId = Annotated[str, StringConstraints(pattern=KEY_ID_PATTERN)]
VERSION_PATTERN = r"^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$"
"""A protocol version ``<major>.<minor>``, plain decimal without leading zeros."""
VersionString = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
PotIndex = Annotated[int, Strict(), Field(ge=1, le=64, description="Pot number on the carousel, from 1.")]


class Family(StrEnum):
    """The two dispenser families."""

    MULTIDOSE_ROLL = "multidose_roll"
    """Pharmacy-packed roll of pouches, one pouch per intake time."""
    DOSE_POT = "dose_pot"
    """Carousel tray of pots filled from a dosett plan."""


class Part(BaseModel):
    """Base of every object on the wire: frozen, unknown members kept for the codec's version check."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Body(Part):
    """Base of every message body.

    ``TYPE`` is the envelope's ``type`` for this body, ``CHANNEL`` the one channel it travels on.
    Unknown members are kept (``extra="allow"``) so that a receiver can ignore fields from a newer minor
    version; the codec rejects them for messages that claim this receiver's minor version or an older one.
    """

    TYPE: ClassVar[str]
    CHANNEL: ClassVar[Channel]
    REQUIRES_CORR_ID: ClassVar[bool] = False
    """Whether the envelope must carry ``corr_id`` (answers to a command or request)."""
    EXAMPLE: ClassVar[dict[str, object]]
    """A realistic body used in PROTOCOL.md, the AsyncAPI document and the test vectors."""


class DoseRef(Body):
    """Fields every dose event carries: which slot of the held schedule it is about."""

    slot_id: Ref = Field(description="The slot's id from the held config.")
    due: Millis = Field(description="The slot's due time, as held by the device.")
    pouch_id: Ref | None = Field(None, description="Multidose: the pouch barcode.")
    pot: PotIndex | None = Field(None, description="Dose-pot: the pot number.")

    @model_validator(mode="after")
    def _one_container(self) -> Self:
        if self.pouch_id is not None and self.pot is not None:
            msg = "a dose is in a pouch (multidose) or a pot (dose-pot), not both"
            raise ValueError(msg)
        return self


class Supply(Part):
    """How long the loaded medication lasts."""

    doses_left: Count = Field(description="Scheduled doses still in the device.")
    until: Millis | None = Field(None, description="Due time of the last dose in the device.")
