"""Rules every storage adapter (``adapters.memory``, ``adapters.db``) applies the same way.

The contract test suite runs one set of tests over every implementation of the repositories in
``dispenser_hub.ports``; the pieces here keep them from drifting apart:

* **Uniqueness rules and their messages.** A ``ConflictError`` names the rule and the record in words an
  operator understands ("device RM3-000017 already has an active binding"). Messages never contain a
  national id number, a phone number or a name (no patient data in logs); patients are named by storage id.
* **Missing records.** ``NotFoundError`` for an update of a record that does not exist, and for a new record
  that refers to one that does not exist (a contact of an unknown patient).
* **Normalised values.** Every datetime must be timezone-aware and is stored as UTC (a naive datetime is a
  bug: ``ValueError``); JSON bodies are stored as a JSON copy, so a caller that mutates its dict afterwards
  does not change the stored event, and a body that is not JSON fails before it is stored.
* **Pages.** ``offset`` and ``limit`` must not be negative (SQLite would read a negative limit as "no limit").
* **A notification's outcome** (``NotificationRepository.record``, ``model.SendOutcome``): only the outcome
  columns change, and only on a row still ``PENDING``, or on any row when the outcome is ``SENT``
  (``outcome_applies``).
* **Derived unique keys.** An open alarm holds its dedup key in ``open_key``, an active binding its device and
  patient in ``active_device_id``/``active_patient_id``, an active roll load its device and roll in
  ``active_device_id``/``active_roll_id``; closed ones hold ``None``, which never collides.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from dispenser_hub.domain.model import NotificationStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

    from _typeshed import DataclassInstance

    from dispenser_hub.domain.model import Alarm, Binding, SendOutcome
    from dispenser_hub.domain.rolls import RollLoad

R = TypeVar("R", bound="DataclassInstance")


# -- messages --------------------------------------------------------------------------------------------


def team_name_taken(name: str) -> str:
    """A care team's name is unique."""
    return f"care team {name!r} already exists"


def national_id_taken() -> str:
    """A patient's national id number is unique (the message does not repeat it)."""
    return "a patient with this national id number is already registered"


def device_id_taken(device_id: str) -> str:
    """A device's protocol id is unique."""
    return f"device {device_id} is already registered"


def serial_taken(serial: str) -> str:
    """A device's serial number is unique."""
    return f"serial number {serial} is already registered to another device"


def enrollment_code_taken(device_id: str) -> str:
    """An enrollment code (its keyed hash) is stored once."""
    return f"this enrollment code (for device {device_id}) is already stored"


def device_already_bound(device_id: str) -> str:
    """One active binding per device."""
    return f"device {device_id} already has an active binding"


def patient_already_bound(patient_id: int) -> str:
    """One active binding per patient."""
    return f"patient {patient_id} already has an active binding"


def command_taken(msg_id: str) -> str:
    """A command's message id is unique."""
    return f"command {msg_id} is already stored"


def alarm_already_open(dedup_key: str) -> str:
    """One open alarm per dedup key."""
    return f"an open alarm with key {dedup_key} already exists"


def deadline_key_taken(key: str) -> str:
    """A deadline's key is unique (an update that would repeat one)."""
    return f"a deadline with key {key} already exists"


def notification_key_taken(key: str) -> str:
    """A notification's key is unique (an update that would repeat one)."""
    return f"a notification with key {key} already exists"


def manifest_conflict(roll_id: str) -> str:
    """A roll id has one manifest: other content under a known roll id (the message names no patient)."""
    return f"roll {roll_id} already has a different manifest"


def device_has_active_roll(device_id: str) -> str:
    """One active roll load per device."""
    return f"device {device_id} already has an active roll"


def roll_already_active(roll_id: str) -> str:
    """One active load per roll."""
    return f"roll {roll_id} is already active in a dispenser"


def missing_pouch(roll_id: str, pouch_id: str) -> str:
    """The message of ``NotFoundError`` for a pouch its roll's manifest does not list."""
    return f"pouch {pouch_id} is not on the manifest of roll {roll_id}"


def missing(what: str, key: object) -> str:
    """The message of ``NotFoundError``: ``"device RM3-000017 does not exist"``."""
    return f"{what} {key} does not exist"


def no_id(what: str) -> str:
    """The message of ``NotFoundError`` for an update of a record that was never stored."""
    return f"this {what} has no storage id: add it before updating it"


# -- derived keys ----------------------------------------------------------------------------------------


def alarm_open_key(alarm: Alarm) -> str | None:
    """The alarm's dedup key while it is open, ``None`` once resolved (unique among open alarms)."""
    return alarm.dedup_key if alarm.open else None


def binding_active_device(binding: Binding) -> str | None:
    """The bound device while the binding is active, else ``None`` (unique among active bindings)."""
    return binding.device_id if binding.active else None


def binding_active_patient(binding: Binding) -> int | None:
    """The bound patient while the binding is active, else ``None`` (unique among active bindings)."""
    return binding.patient_id if binding.active else None


def load_active_device(load: RollLoad) -> str | None:
    """The load's device while the load is active, else ``None`` (unique among active loads)."""
    return load.device_id if load.active else None


def load_active_roll(load: RollLoad) -> str | None:
    """The load's roll while the load is active, else ``None`` (unique among active loads)."""
    return load.roll_id if load.active else None


# -- values ----------------------------------------------------------------------------------------------


def aware_utc(value: datetime, where: str) -> datetime:
    """``value`` in UTC; ``ValueError`` naming ``where`` if it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{where} is a naive datetime; every time is timezone-aware (UTC inside)"
        raise ValueError(msg)
    return value.astimezone(UTC)


def json_copy(value: dict[str, Any], where: str) -> dict[str, Any]:
    """A deep copy of a JSON object through its JSON text; ``ValueError`` if it is not JSON."""
    try:
        copied: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        msg = f"{where} is not a JSON object: {exc}"
        raise ValueError(msg) from None
    return copied


def normalise(record: R) -> R:
    """``record`` with every datetime in UTC (naive: ``ValueError``) and every dict a JSON copy.

    Nested records (``Device.presence``) are normalised too. A record already in that form is returned
    as it is, apart from its dicts (ingest normalises every device and event it writes).
    """
    changes: dict[str, object] = {}
    for spec in fields(record):
        value = getattr(record, spec.name)
        if isinstance(value, datetime):
            if value.tzinfo is not UTC:
                changes[spec.name] = aware_utc(value, f"{type(record).__name__}.{spec.name}")
        elif isinstance(value, dict):
            changes[spec.name] = json_copy(value, f"{type(record).__name__}.{spec.name}")
        elif is_dataclass(value) and not isinstance(value, type):
            nested = normalise(value)
            if nested is not value:
                changes[spec.name] = nested
    return replace(record, **changes) if changes else record


def check_distinct(values: Sequence[object], name: str) -> None:
    """``ValueError`` if a value occurs twice in ``values`` (one batch write names each record once)."""
    seen: set[object] = set()
    for value in values:
        if value in seen:
            msg = f"{name} {value} occurs twice in one batch"
            raise ValueError(msg)
        seen.add(value)


def with_id(record: R, new_id: int) -> R:
    """``record`` with its new storage id."""
    return replace(record, id=new_id)


def check_page(offset: int, limit: int) -> None:
    """``ValueError`` for a negative offset or limit."""
    if offset < 0 or limit < 0:
        msg = f"offset and limit must not be negative (got offset={offset}, limit={limit})"
        raise ValueError(msg)


def outcome_applies(current: NotificationStatus, outcome: SendOutcome) -> bool:
    """Whether an attempt's ``outcome`` is stored over a row in status ``current`` (see the module rules)."""
    return current is NotificationStatus.PENDING or outcome.status is NotificationStatus.SENT


OUTCOME_COLUMNS = ("status", "attempts", "sent_at", "next_attempt_at", "last_error")
"""The columns an attempt's outcome writes (``NotificationRepository.record``; ``model.SendOutcome``)."""
