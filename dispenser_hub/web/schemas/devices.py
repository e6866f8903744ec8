"""Models of devices: registration, presence, enrollment codes, events and bindings."""

from typing import Any, Self

from pydantic import Field

from dispenser_hub.domain.model import Binding, Device, DeviceEvent, DeviceStatus, Presence
from dispenser_hub.web.schemas.common import Input, Page, Public, Reason, RecordId, Timestamp, stored
from firmware_protocol.messages import Family


class DeviceRegister(Input):
    """A new dispenser, known by its protocol id and serial number."""

    device_id: str = Field(
        max_length=64,
        description="Protocol id used in MQTT topics: letters, digits and '-', 4-32 characters.",
        examples=["RM3-000017"],
    )
    serial: str = Field(min_length=1, max_length=64, description="Serial number on the device's label.")
    family: Family = Field(description="multidose_roll (pouch rolls) or dose_pot (carousel).")
    model: str = Field(min_length=1, max_length=64, description="Maker's model name.")


class RetireRequest(Input):
    """Why a device is taken out of service."""

    reason: Reason = Field(examples=["broken display, replaced by RM3-000018"])


class PresencePublic(Public):
    """What the hub knows of the device's connection and the state it last reported."""

    online: bool
    since: Timestamp | None = Field(description="When ``online`` last changed.")
    last_seen_at: Timestamp | None = Field(description="Time of the last valid message (hub clock).")
    battery_pct: int | None
    on_mains: bool | None
    schedule_version: int | None = Field(description="The schedule (config) version the device holds.")
    capabilities: list[str]
    supply_doses_left: int | None = Field(description="Scheduled doses still in the device.")
    supply_until: Timestamp | None = Field(description="Due time of the last dose in the device.")
    firmware: str | None

    @classmethod
    def of(cls, presence: Presence) -> Self:
        """From the record."""
        return cls(
            online=presence.online,
            since=presence.since,
            last_seen_at=presence.last_seen_at,
            battery_pct=presence.battery_pct,
            on_mains=presence.on_mains,
            schedule_version=presence.schedule_version,
            capabilities=list(presence.capabilities),
            supply_doses_left=presence.supply_doses_left,
            supply_until=presence.supply_until,
            firmware=presence.firmware,
        )


class DevicePublic(Public):
    """A dispenser with its presence and the patient it is bound to."""

    device_id: str
    serial: str
    family: Family
    model: str
    status: DeviceStatus
    firmware: str | None
    kid: str | None = Field(description="Id of the device's registered signing key; null until enrolled.")
    certificate_serial: int | None
    registered_at: Timestamp | None
    enrolled_at: Timestamp | None
    retired_at: Timestamp | None
    bound_patient_id: int | None = Field(description="The patient of the active binding, if any.")
    presence: PresencePublic

    @classmethod
    def of(cls, device: Device, binding: Binding | None) -> Self:
        """From the record and its active binding."""
        return cls(
            device_id=device.device_id,
            serial=device.serial,
            family=device.family,
            model=device.model,
            status=device.status,
            firmware=device.firmware,
            kid=device.kid,
            certificate_serial=device.certificate_serial,
            registered_at=device.registered_at,
            enrolled_at=device.enrolled_at,
            retired_at=device.retired_at,
            bound_patient_id=None if binding is None else binding.patient_id,
            presence=PresencePublic.of(device.presence),
        )


class DevicePage(Page):
    """A page of devices, in registration order."""

    items: list[DevicePublic]


class EnrollmentCodePublic(Public):
    """A one-time enrollment code. Shown once: only its keyed hash is stored, it cannot be shown again."""

    code: str = Field(description="Type into the device; case and hyphens do not matter.")
    device_id: str
    expires_at: Timestamp


class DeviceRegistered(Public):
    """The registered device and its first enrollment code (shown once)."""

    device: DevicePublic
    enrollment_code: EnrollmentCodePublic


class EventPublic(Public):
    """An accepted device message."""

    id: int
    msg_id: str
    type: str
    boot_id: str
    seq: int
    device_ts: Timestamp = Field(description="The device's timestamp.")
    received_at: Timestamp = Field(description="When the hub received it.")
    corr_id: str | None
    body: dict[str, Any]

    @classmethod
    def of(cls, event: DeviceEvent) -> Self:
        """From the record."""
        return cls(
            id=stored(event.id),
            msg_id=event.msg_id,
            type=event.type,
            boot_id=event.boot_id,
            seq=event.seq,
            device_ts=event.device_ts,
            received_at=event.received_at,
            corr_id=event.corr_id,
            body=event.body,
        )


class EventPage(Page):
    """A page of a device's events, newest first."""

    items: list[EventPublic]


# -- bindings ------------------------------------------------------------------------------------------------


class BindingCreate(Input):
    """Bind the device to a patient (both must be free)."""

    patient_id: RecordId
    reason: Reason = Field(examples=["new dispenser installed"])


class UnbindRequest(Input):
    """Why the device's binding ends."""

    reason: Reason = Field(examples=["patient moved to a nursing home"])


class BindingPublic(Public):
    """A device-patient binding, with who and why at both ends."""

    id: int
    device_id: str
    patient_id: int
    active: bool
    bound_at: Timestamp
    bound_by: str
    reason: str
    unbound_at: Timestamp | None
    unbound_by: str | None
    unbind_reason: str | None

    @classmethod
    def of(cls, binding: Binding) -> Self:
        """From the record."""
        return cls(
            id=stored(binding.id),
            device_id=binding.device_id,
            patient_id=binding.patient_id,
            active=binding.active,
            bound_at=binding.bound_at,
            bound_by=binding.bound_by,
            reason=binding.reason,
            unbound_at=binding.unbound_at,
            unbound_by=binding.unbound_by,
            unbind_reason=binding.unbind_reason,
        )


class BindingList(Public):
    """Every binding of a device, oldest first."""

    items: list[BindingPublic]
