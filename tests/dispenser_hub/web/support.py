"""The API over the in-memory store, a real field cipher and a clock the test sets.

A ``Hub`` is a ``TestClient`` that sends alice's token, the store behind it (to arrange records the API
cannot create: alarms, events, dead letters, presence) and the registry; ``make_hub`` builds one.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.exceptions import StarletteDeprecationWarning

from dispenser_hub.adapters.clock import ManualClock
from dispenser_hub.adapters.crypto import FieldCipher, generate_key
from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.domain.alarms import Condition, raise_condition
from dispenser_hub.domain.model import DeviceStatus, SubjectKind
from dispenser_hub.services.registry import Registry
from dispenser_hub.web import ApiContext, create_app

with warnings.catch_warnings():
    # Starlette 1.x warns when its test client runs on httpx instead of httpx2; the dev extras pin httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fastapi import FastAPI
    from httpx import Response

    from dispenser_hub.adapters.memory import MemoryUnitOfWork
    from dispenser_hub.domain.model import Device, Presence

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
ALICE_TOKEN = "alice-0123456789abcdef0123456789abcdef"  # noqa: S105 - a test token, valid nowhere else
BOB_TOKEN = "bob-fedcba9876543210fedcba9876543210"  # noqa: S105 - a test token, valid nowhere else
TOKENS = {ALICE_TOKEN: "alice", BOB_TOKEN: "bob"}
NATIONAL_IDS = ("01019000008", "01019000164", "15075200088", "24128300003", "31129900000")
"""Valid numbers (checksums right); none belongs to a real person one could look up here."""
API = "/api/v1"


@dataclass
class Hub:
    """The API under test and what is behind it."""

    app: FastAPI
    client: TestClient
    store: MemoryStore
    cipher: FieldCipher
    clock: ManualClock
    registry: Registry
    health: dict[str, object] = dataclasses.field(default_factory=dict)

    def uow(self) -> MemoryUnitOfWork:
        """A unit of work on the store (commit to keep what it writes)."""
        return self.store()

    # -- requests -----------------------------------------------------------------------------------------

    def ok(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        """The JSON of a request that must answer ``expected``."""
        response = self.client.request(method, f"{API}{path}", **kwargs)
        assert response.status_code == expected, response.text
        return response.json()

    def fails(self, method: str, path: str, status: int, field: str | None = None, **kwargs: Any) -> Any:
        """The error body of a request that must fail with ``status`` naming ``field``."""
        response = self.client.request(method, f"{API}{path}", **kwargs)
        return error_of(response, status, field)

    # -- arranging records --------------------------------------------------------------------------------

    def team(self, name: str = "Åsane") -> int:
        body = self.ok("POST", "/teams", 201, json={"name": name, "phone": "+47 55 00 00 00"})
        return int(body["id"])

    def patient(self, national_id: str = NATIONAL_IDS[0], **fields: Any) -> dict[str, Any]:
        data = {"name": "Kari Nordmann", "national_id": national_id, "responsibility": "response_centre"}
        body: dict[str, Any] = self.ok("POST", "/patients", 201, json=data | fields)
        return body

    def device(self, device_id: str = "RM3-000017", serial: str | None = None) -> dict[str, Any]:
        data = {
            "device_id": device_id,
            "serial": serial or f"SN-{device_id}",
            "family": "multidose_roll",
            "model": "RollMate 3",
        }
        body: dict[str, Any] = self.ok("POST", "/devices", 201, json=data)
        return body

    def change_device(self, device_id: str, **changes: Any) -> Device:
        """Change a stored device (as enrollment or ingest would)."""
        with self.uow() as uow:
            device = uow.devices.get(device_id)
            assert device is not None
            stored = uow.devices.update(dataclasses.replace(device, **changes))
            uow.commit()
        return stored

    def enrolled_device(self, device_id: str = "RM3-000017") -> str:
        self.device(device_id)
        self.change_device(device_id, status=DeviceStatus.ENROLLED, enrolled_at=self.clock.now())
        return device_id

    def set_presence(self, device_id: str, presence: Presence) -> None:
        self.change_device(device_id, presence=presence)

    def alarm(self, device_id: str, kind: str = "no_contact", severity: int = 2) -> int:
        """Raise an alarm about a device as the hub would (with its log entry)."""
        condition = Condition(
            kind, SubjectKind.DEVICE, device_id, severity, f"{kind} on {device_id}", "3.10", device_id
        )
        now = self.clock.now()
        with self.uow() as uow:
            change = raise_condition(condition, uow.alarms.open_by_key(condition.dedup_key), now)
            stored = uow.alarms.add(change.alarm)
            assert stored.id is not None
            uow.alarms.log(change.log_entry(stored.id, now))
            uow.commit()
        return stored.id


def error_of(response: Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The ``error`` member of an error answer, checked: status, schema, field."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "field", "problems"}
    assert isinstance(error["code"], str)
    assert error["message"]
    assert error["field"] == field, error
    return error


def make_hub(tokens: dict[str, str] | None = None) -> Iterator[Hub]:
    """Build the API over a fresh store."""
    clock = ManualClock(T0)
    store = MemoryStore()
    cipher = FieldCipher.from_settings(f"k1:{generate_key()}", generate_key())
    registry = Registry(store, cipher, clock)
    health: dict[str, object] = {}
    api = ApiContext(
        uow_factory=store,
        registry=registry,
        clock=clock,
        tokens=TOKENS if tokens is None else tokens,
        version="9.8.7",
        health=lambda: health,
    )
    app = create_app(api)
    with TestClient(app, headers={"Authorization": f"Bearer {ALICE_TOKEN}"}) as client:
        yield Hub(app, client, store, cipher, clock, registry, health)
