"""Storage backends for the repository contract tests, and small builders of valid records.

``open_backend(name, request, sqlite_template)`` gives a ``Backend`` for ``"memory"`` (``MemoryStore``),
``"sqlite"`` (a file in the test's ``tmp_path``, copied from a template database migrated once per session
with ``migrate.upgrade``) or ``"postgresql"`` (a fresh schema from the ``postgres_url`` fixture, migrated with
``migrate.upgrade``). SQL backends protect patient identifiers with a real ``FieldCipher`` under fixed test
keys, so a test can look at raw rows and see ciphertext. ``BACKENDS`` are the pytest params (PostgreSQL marked
``requires_service``: skipped without a server locally, a failure under ``CI=true``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from dispenser_hub.adapters.crypto.fields import FieldCipher
from dispenser_hub.adapters.db import SqlUnitOfWorkFactory, create_engine_for, migrate
from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.domain.model import (
    Alarm,
    Binding,
    Command,
    Device,
    DeviceEvent,
    Patient,
    Responsibility,
    SubjectKind,
)
from dispenser_hub.domain.pouches import DrugLine, Pouch, RollManifest
from dispenser_hub.domain.rolls import RollLoad, start_load
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from dispenser_hub.ports import UnitOfWorkFactory

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
"""08:00 in Oslo on a Monday in November: the tests' "now"."""

NATIONAL_IDS = ("01819010001", "05928510052", "12899010041")
"""Valid synthetic national id numbers (Skatteetaten's test series: never a real person)."""

SQL_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.requires_service("postgresql")),
]
BACKENDS = [pytest.param("memory", id="memory"), *SQL_BACKENDS]


def field_cipher() -> FieldCipher:
    """A ``FieldCipher`` with fixed keys (AES-GCM tokens, HMAC lookup hashes): never plaintext at rest."""
    return FieldCipher({"test": bytes(range(32))}, "test", lookup_key=bytes(range(100, 132)))


@dataclass
class Backend:
    """A storage implementation under test."""

    name: str
    uow_factory: UnitOfWorkFactory
    engine: Engine | None = None
    """The SQL engine (``None`` for the memory store), to look at raw rows."""

    def raw_rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of a literal SQL query, as the database stores them."""
        if self.engine is None:
            msg = "the memory store has no rows at rest"
            raise AssertionError(msg)
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(query))]


def migrated_sqlite_template(directory: Path) -> Path:
    """A SQLite database file migrated to head with ``migrate.upgrade`` (copy it for each test)."""
    path = directory / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def open_backend(name: str, request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    """Yield the backend ``name`` with empty, migrated storage; dispose of it afterwards."""
    if name == "memory":
        yield Backend(name, MemoryStore())
        return
    if name == "sqlite":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        database = tmp_path / "db" / "hub.db"
        database.parent.mkdir()
        shutil.copyfile(sqlite_template, database)
        url = f"sqlite:///{database}"
    else:
        url = request.getfixturevalue("postgres_url")
        migrate.upgrade(url)
    engine = create_engine_for(url)
    try:
        yield Backend(name, SqlUnitOfWorkFactory(engine, field_cipher()), engine)
    finally:
        engine.dispose()


# -- records ---------------------------------------------------------------------------------------------


def device(number: int = 17, **changes: Any) -> Device:
    """A registered multidose-roll dispenser ``RM3-0000NN``."""
    values: dict[str, Any] = {
        "device_id": f"RM3-{number:06d}",
        "serial": f"SN-{number:06d}",
        "family": Family.MULTIDOSE_ROLL,
        "model": "RollMed 3",
        "registered_at": T0,
    }
    return Device(**(values | changes))


def patient(number: int = 1, **changes: Any) -> Patient:
    """A patient with an 11-digit national id number derived from ``number``."""
    values: dict[str, Any] = {
        "name": f"Patient {number}",
        "national_id": f"{number:011d}",
        "responsibility": Responsibility.HOME_CARE,
        "phone": f"+47 400{number:05d}",
        "created_at": T0,
    }
    return Patient(**(values | changes))


def binding(device_id: str, patient_id: int, *, at: datetime = T0, **changes: Any) -> Binding:
    """An active binding made by an operator."""
    values: dict[str, Any] = {"bound_at": at, "bound_by": "operator:kari", "reason": "installation"}
    return Binding(device_id=device_id, patient_id=patient_id, **(values | changes))


def event(
    device_id: str, msg_id: str, *, type_: str = "dose.taken", seq: int = 1, **changes: Any
) -> DeviceEvent:
    """An accepted uplink event with a small JSON body."""
    values: dict[str, Any] = {
        "boot_id": "boot-1",
        "device_ts": T0,
        "received_at": T0 + timedelta(seconds=1),
        "body": {"slot_id": "s-20261123-0800", "pouch_id": "P-4711-0042", "n": seq, "ok": True, "x": None},
    }
    return DeviceEvent(device_id=device_id, msg_id=msg_id, type=type_, seq=seq, **(values | changes))


def command(device_id: str, msg_id: str, **changes: Any) -> Command:
    """A pending downlink command due at ``T0``."""
    values: dict[str, Any] = {
        "type": "schedule.set",
        "body": {"version": 3, "slots": [{"at": "08:00"}, {"at": "20:00"}]},
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=1),
        "created_by": "system",
        "corr_id": f"up-{msg_id}",
        "next_attempt_at": T0,
    }
    return Command(msg_id=msg_id, device_id=device_id, **(values | changes))


def alarm(subject_id: str = "RM3-000017", kind: str = "fault.jam", **changes: Any) -> Alarm:
    """An active device alarm raised at ``T0``."""
    values: dict[str, Any] = {
        "subject_kind": SubjectKind.DEVICE,
        "vkp_code": "D12",
        "severity": 2,
        "raised_at": T0,
        "last_raised_at": T0,
        "detail": "the pouch feeder is jammed",
        "device_id": subject_id,
    }
    return Alarm(kind=kind, subject_id=subject_id, **(values | changes))


def roll_manifest(
    roll_id: str = "R-4711",
    *,
    national_id: str = NATIONAL_IDS[0],
    first_intake: datetime = T0 + timedelta(hours=1),
    pouches: int = 4,
    spacing: timedelta = timedelta(hours=12),
    **changes: Any,
) -> RollManifest:
    """A manifest of ``pouches`` pouches ``spacing`` apart, each with a fixed and an as-needed drug line."""
    made = tuple(
        Pouch(
            f"{roll_id}-P{number:03d}",
            first_intake + number * spacing,
            (
                DrugLine("Paracetamol", "500 mg", Decimal("1.0")),
                DrugLine("Furosemid", "40 mg", Decimal("0.5"), as_needed=number % 2 == 1),
            ),
        )
        for number in range(pouches)
    )
    values: dict[str, Any] = {
        "printed_patient_ref": "PX-0001",
        "pharmacy": "Apotek 1 Bergen",
        "packed_at": T0 - timedelta(days=2),
        "pouches": made,
    }
    return RollManifest(roll_id=roll_id, patient_national_id=national_id, **(values | changes))


def roll_load(
    manifest: RollManifest, device_id: str, patient_id: int, *, at: datetime = T0, **changes: Any
) -> RollLoad:
    """The active load of ``manifest``'s roll accepted in ``device_id`` at ``at`` (``start_load``)."""
    return replace(start_load(manifest, device_id=device_id, patient_id=patient_id, now=at), **changes)
