"""Models of schedules: a patient's dose window and reminders, pauses, and the schedule a device holds.

Durations are whole **seconds** (``..._s``, as the protocol's ``Reminders``): the hub stores them in whole
seconds and allows values that are not whole minutes, so minutes would not show every stored value.
"""

from datetime import timedelta
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, Field, model_validator

from dispenser_hub.domain.model import DeviceSchedule, DoseSettings, PauseRecord
from dispenser_hub.domain.schedules import DoseWindow
from dispenser_hub.web.schemas.common import Input, Public, Reason, Timestamp, stored

MAX_DURATION_S = 86_400
"""The most seconds any duration input may hold (the window's own limits are lower and give a 400)."""

DURATIONS = ("early", "late", "notice_before", "sound_after", "repeat_every")
"""The ``DoseWindow`` fields that are durations; the API names them with ``_s``."""

Seconds = Annotated[int, Field(ge=0, le=MAX_DURATION_S)]


def _seconds(value: timedelta) -> int:
    return int(value.total_seconds())


class DoseSettingsRequest(Input):
    """New values for some of the patient's window and reminder fields; null or left out: unchanged."""

    early_s: Seconds | None = Field(
        None, description="Seconds before due the dose may be taken: 0 to 21600 (6 h).", examples=[3600]
    )
    late_s: Seconds | None = Field(
        None, description="Seconds after due the window closes: 300 (5 min) to 18000 (5 h).", examples=[7200]
    )
    notice_before_s: Seconds | None = Field(
        None, description="Seconds before due the device gives notice: 0 to 14400 (4 h).", examples=[900]
    )
    sound_after_s: Seconds | None = Field(
        None,
        description="Seconds after due the device sounds: 0 to 14400, and shorter than late_s.",
        examples=[300],
    )
    repeat_every_s: Seconds | None = Field(
        None, description="Seconds between repeated sounds: 60 to 14400 (4 h).", examples=[600]
    )
    repeat_max: int | None = Field(
        None, ge=0, le=1000, description="How many times the sound repeats: 0 to 20.", examples=[6]
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if not self.changes():
            raise ValueError("give at least one field to change (early_s, late_s, ..., repeat_max)")
        return self

    def changes(self) -> dict[str, timedelta | int]:
        """The values to set, by ``DoseWindow`` field name (durations as ``timedelta``)."""
        values: dict[str, timedelta | int] = {}
        for name in DURATIONS:
            seconds = getattr(self, f"{name}_s")
            if seconds is not None:
                values[name] = timedelta(seconds=seconds)
        if self.repeat_max is not None:
            values["repeat_max"] = self.repeat_max
        return values


class DoseSettingsPublic(Public):
    """The patient's window and reminders in force, in whole seconds; the defaults when none were set."""

    patient_id: int
    early_s: int = Field(description="The dose may be taken this many seconds before it is due.")
    late_s: int = Field(description="The window closes this many seconds after due.")
    notice_before_s: int = Field(description="The device gives notice this many seconds before due.")
    sound_after_s: int = Field(description="The device sounds this many seconds after due.")
    repeat_every_s: int = Field(description="Seconds between repeated sounds.")
    repeat_max: int = Field(description="How many times the sound repeats.")
    default: bool = Field(description="True when nothing was set for the patient: the hub's defaults.")
    updated_at: Timestamp | None = Field(description="When the settings were last set; null by default.")
    updated_by: str | None = Field(description="Who last set them; null by default.")

    @classmethod
    def of(cls, patient_id: int, window: DoseWindow, record: DoseSettings | None) -> Self:
        """From the window in force and the stored record, if any."""
        return cls(
            patient_id=patient_id,
            early_s=_seconds(window.early),
            late_s=_seconds(window.late),
            notice_before_s=_seconds(window.notice_before),
            sound_after_s=_seconds(window.sound_after),
            repeat_every_s=_seconds(window.repeat_every),
            repeat_max=window.repeat_max,
            default=record is None,
            updated_at=None if record is None else record.updated_at,
            updated_by=None if record is None else record.updated_by,
        )


class PauseCreate(Input):
    """No doses from ``start`` to ``end`` (end excluded): the patient is in hospital, travelling..."""

    start: AwareDatetime = Field(
        description="When the pause begins; ISO 8601 with an offset.", examples=["2026-11-24T08:00:00+01:00"]
    )
    end: AwareDatetime = Field(
        description="When it ends (excluded): after start and in the future.",
        examples=["2026-11-30T12:00:00+01:00"],
    )
    reason: Reason = Field(examples=["hospital"])


class PausePublic(Public):
    """A pause of a patient's doses, who entered it, and who ended it early, if anyone."""

    id: int
    patient_id: int
    start: Timestamp
    end: Timestamp = Field(description="The planned end (excluded).")
    reason: str
    created_at: Timestamp
    created_by: str
    ended_at: Timestamp | None = Field(description="When an operator ended the pause early; null if not.")
    ended_by: str | None
    effective_end: Timestamp | None = Field(
        description="When the pause stops: end, or ended_at if earlier; null if it was ended before it began."
    )

    @classmethod
    def of(cls, record: PauseRecord) -> Self:
        """From the record."""
        effective = record.effective()
        return cls(
            id=stored(record.id),
            patient_id=record.patient_id,
            start=record.pause.start,
            end=record.pause.end,
            reason=record.pause.reason,
            created_at=record.created_at,
            created_by=record.created_by,
            ended_at=record.ended_at,
            ended_by=record.ended_by,
            effective_end=None if effective is None else effective.end,
        )


class PauseList(Public):
    """Every pause of a patient, by start."""

    items: list[PausePublic]


class DeviceSchedulePublic(Public):
    """The schedule (``config``) the hub last built for a device, what the device answered, what is wrong."""

    device_id: str
    version: int | None = Field(description="The config version last built; null if none was built.")
    applied_version: int | None = Field(description="The version the device last reported applied.")
    applied_at: Timestamp | None
    rejected_version: int | None = Field(description="The version the device last refused.")
    rejected_reason: str | None
    built_at: Timestamp | None = Field(description="When the last version was built.")
    command_msg_id: str | None = Field(description="The outbox command that carries the last version.")
    slots: int = Field(description="Dose slots in the last version.")
    first_due: Timestamp | None = Field(description="Due time of its first slot.")
    last_due: Timestamp | None = Field(description="Due time of its last slot.")
    problem: str | None = Field(
        description="Why the bound device has no valid schedule (the no-schedule alarm's reason); null if it "
        "has one or is not bound."
    )
    config: dict[str, Any] | None = Field(description="The config body as sent; null if none was built.")

    @classmethod
    def of(cls, device_id: str, state: DeviceSchedule | None, problem: str | None) -> Self:
        """From the stored state (``None``: nothing built) and the problem, if any."""
        if state is None:
            return cls(
                device_id=device_id,
                version=None,
                applied_version=None,
                applied_at=None,
                rejected_version=None,
                rejected_reason=None,
                built_at=None,
                command_msg_id=None,
                slots=0,
                first_due=None,
                last_due=None,
                problem=problem,
                config=None,
            )
        return cls(
            device_id=device_id,
            version=state.version,
            applied_version=state.applied_version,
            applied_at=state.applied_at,
            rejected_version=state.rejected_version,
            rejected_reason=state.rejected_reason,
            built_at=state.built_at,
            command_msg_id=state.command_msg_id,
            slots=state.slots,
            first_due=state.first_due,
            last_due=state.last_due,
            problem=problem,
            config=dict(state.config),
        )


class TripCreate(Input):
    """A trip: the doses due from ``from`` to ``until`` (excluded) are given out now."""

    from_: AwareDatetime = Field(
        alias="from",
        description="Start of the trip; ISO 8601 with an offset.",
        examples=["2026-11-24T08:00:00+01:00"],
    )
    until: AwareDatetime = Field(
        description="End of the trip (excluded): after from, in the future, at most 28 days later.",
        examples=["2026-11-27T20:00:00+01:00"],
    )


class TripPublic(Public):
    """The pre-dispense sent: its command, the doses due in the trip, and whether the supply covers it."""

    command_msg_id: str = Field(
        description="The `cmd.predispense` in the outbox (see the device's commands)."
    )
    doses: int = Field(
        description="Doses due in the trip, as the hub counts them from the dispenser's supply."
    )
    enough: bool = Field(
        description="False: the supply ends before the trip; 'not enough doses' (3.15) raised."
    )
    detail: str
