"""Pieces every router uses: the authenticated router, path parameters, record lookups."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from dispenser_hub.domain.model import Device, Patient
from dispenser_hub.ports import Clock, UnitOfWork
from dispenser_hub.services.registry import NotFound
from dispenser_hub.web.deps import operator
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.schemas.common import MAX_ID

DeviceIdPath = Annotated[
    str, Path(min_length=1, max_length=64, description="The device's protocol id, e.g. RM3-000017.")
]
PatientIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The patient's id.")]
AlarmIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The alarm's id.")]


def operator_router(tag: str) -> APIRouter:
    """A router whose every route needs an operator token (documented 401)."""
    return APIRouter(tags=[tag], dependencies=[Depends(operator)], responses=error_responses(401))


def utc_now(clock: Clock) -> datetime:
    """The clock's time in UTC."""
    return clock.now().astimezone(UTC)


def get_device(uow: UnitOfWork, device_id: str) -> Device:
    """The device, or ``NotFound`` (404) naming ``device_id``."""
    device = uow.devices.get(device_id)
    if device is None:
        raise NotFound(f"there is no device {device_id}", field="device_id")
    return device


def get_patient(uow: UnitOfWork, patient_id: int) -> Patient:
    """The patient, or ``NotFound`` (404) naming ``patient_id``."""
    patient = uow.patients.get(patient_id)
    if patient is None:
        raise NotFound(f"there is no patient {patient_id}", field="patient_id")
    return patient
