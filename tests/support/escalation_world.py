"""A small world for the escalation end-to-end tests: a home-care patient, their relative, their team's nurse.

``scenario`` writes a one-dispenser scenario (a multidose roll dispenser, ``device_sim``) with a timeline the
test chooses; ``set_up_world`` does the office work on the hub's storage as operators would (the demo's
patient, binding and manifests from ``demo_pharmacy.set_up_office``; then a home-care team, the patient moved
to it with the home-care responsibility level, a relative with a phone number, and the team's roster with
one nurse on call around the clock). ``Channels`` runs the real receivers (an SMS gateway and the response
centre's alarm system as HTTP servers, an SMTP server without TLS) and stamps every arrival with the
simulated time; ``HubChild`` is ``tests.support.hub_process.HubProcess`` with ``serve --clock SPEC``.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from datetime import time, timedelta
from typing import TYPE_CHECKING, Generic, SupportsIndex, TypeVar

from pydantic import SecretStr

from device_sim.scenario import parse_scenario
from dispenser_hub.demo_pharmacy import set_up_office, synthetic_national_id
from dispenser_hub.domain.model import CareTeam, Contact, Responsibility, RosterRecord
from dispenser_hub.domain.rosters import StaffMember, TeamRoster, WeeklyShift
from tests.support import hub_process
from tests.support.hub_process import HubProcess
from tests.support.receivers import HttpReceiver, SmtpReceiver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime
    from email.message import EmailMessage
    from pathlib import Path
    from types import TracebackType

    from aiosmtpd.smtp import Envelope

    from device_sim.scenario import Scenario
    from dispenser_hub.ports import UnitOfWorkFactory
    from dispenser_hub.services.registry import Registry
    from tests.support.receivers import Request

RELATIVE_PHONE = "+4790000001"
NURSE_PHONE = "+4791111111"
NURSE_EMAIL = "nina.nurse@kommune.test"
NURSE_REF = "nurse-1"
SENDER = "hub@kommune.test"
WEBHOOK_SECRET = "webhook-secret-for-the-tests-0123456789"  # noqa: S105 - a test value, not a secret
_T = TypeVar("_T")


def scenario(*, start: str, doses: Iterable[str], timeline: str = "", name: str = "escalation") -> Scenario:
    """One multidose roll dispenser, an adherent patient, no random faults; ``timeline``: YAML list items."""
    times = ", ".join(f'"{at}"' for at in doses)
    text = f"""
name: {name}
seed: 5
start: {start}
duration: 2d
population:
  - count: 1
    family: multidose_roll
    doses: [{times}]
    behaviour: {{model: adherent}}
    faults: none
"""
    if timeline:
        text += "timeline:\n" + timeline
    return parse_scenario(text, file=f"<{name}>")


@dataclass(frozen=True)
class World:
    """What ``set_up_world`` registered."""

    device_id: str
    patient_id: int
    patient_name: str
    national_id: str
    team_id: int
    contact_id: int

    @property
    def relative(self) -> str:
        """The relative's recipient reference."""
        return f"contact:{self.contact_id}"

    @property
    def nurse(self) -> str:
        """The on-call nurse's recipient reference."""
        return f"staff:{self.team_id}:{NURSE_REF}"


def on_call_all_week(team_id: int) -> TeamRoster:
    """The team's roster: one nurse on call every day from midnight to midnight (Europe/Oslo)."""
    team = str(team_id)
    staff = (StaffMember(NURSE_REF, "Nina Nurse", phone=NURSE_PHONE, email=NURSE_EMAIL),)
    rota = tuple(
        WeeklyShift(team, NURSE_REF, NURSE_REF, weekday, time(0, 0), timedelta(hours=24))
        for weekday in range(7)
    )
    return TeamRoster(team, staff, rota)


def set_up_world(
    built_from: Scenario, registry: Registry, uow_factory: UnitOfWorkFactory, *, now: datetime
) -> World:
    """The office work (see the module doc) for the scenario's single dispenser."""
    (spec,) = built_from.devices()
    office = set_up_office(built_from, registry, uow_factory, now=now)
    patient_id = office.patients[spec.device_id]
    team = registry.add_team(CareTeam("Hjemmesykepleien Testdistrikt"), by="test")
    assert team.id is not None
    contact = registry.add_contact(
        Contact(patient_id, "Rita Relative", phone=RELATIVE_PHONE, relation="daughter"), by="test"
    )
    assert contact.id is not None
    with uow_factory() as uow:
        patient = uow.patients.get(patient_id)
        assert patient is not None
        patient = uow.patients.update(
            dataclasses.replace(patient, responsibility=Responsibility.HOME_CARE, team_id=team.id)
        )
        uow.escalation.put_roster(RosterRecord(team.id, on_call_all_week(team.id), now, "test"))
        uow.commit()
    return World(
        spec.device_id,
        patient_id,
        patient.name,
        synthetic_national_id(spec.index),
        team.id,
        contact.id,
    )


class Stamped(list[_T], Generic[_T]):
    """A list that records when (``now_ms()``, simulated) each item was appended: a receiver's arrivals."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        super().__init__()
        self._now_ms = now_ms
        self.at_ms: list[int] = []

    def append(self, item: _T, /) -> None:
        self.at_ms.append(self._now_ms())
        super().append(item)

    def stamped(self, index: SupportsIndex) -> tuple[int, _T]:
        return self.at_ms[index], self[index]


class Channels:
    """The real receivers (see the module doc); ``settings`` point a hub at them."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self.sms = HttpReceiver()
        self.centre = HttpReceiver()
        self.smtp = SmtpReceiver(None)
        self.sms_requests: Stamped[Request] = Stamped(now_ms)
        self.centre_requests: Stamped[Request] = Stamped(now_ms)
        self.mails: Stamped[tuple[Envelope, EmailMessage]] = Stamped(now_ms)
        self.sms.requests = self.sms_requests
        self.centre.requests = self.centre_requests
        self.smtp.handler.messages = self.mails

    def settings(self) -> dict[str, object]:
        """``Settings`` fields for the three channels and the response centre's webhook."""
        return {
            "sms_gateway_url": f"{self.sms.url}/send",
            "smtp_host": "127.0.0.1",
            "smtp_port": self.smtp.port,
            "smtp_sender": SENDER,
            "smtp_starttls": False,
            "webhook_secret": SecretStr(WEBHOOK_SECRET),
            "response_centre_webhook_url": f"{self.centre.url}/alarms",
        }

    def environment(self) -> dict[str, str]:
        """The same as ``DISPENSER_*`` variables."""
        return {
            "DISPENSER_SMS_GATEWAY_URL": f"{self.sms.url}/send",
            "DISPENSER_SMTP_HOST": "127.0.0.1",
            "DISPENSER_SMTP_PORT": str(self.smtp.port),
            "DISPENSER_SMTP_SENDER": SENDER,
            "DISPENSER_SMTP_STARTTLS": "false",
            "DISPENSER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DISPENSER_RESPONSE_CENTRE_WEBHOOK_URL": f"{self.centre.url}/alarms",
        }

    def __enter__(self) -> Channels:
        self.sms.__enter__()
        self.centre.__enter__()
        self.smtp.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.smtp.__exit__(exc_type, exc, tb)
        self.centre.__exit__(exc_type, exc, tb)
        self.sms.__exit__(exc_type, exc, tb)


class HubChild(HubProcess):
    """``HubProcess`` whose instances run ``dispenser-hub serve --clock <spec>`` (a shared simulated time)."""

    def __init__(self, settings: Mapping[str, str], log_dir: Path, *, clock_spec: str) -> None:
        super().__init__(settings, log_dir)
        self.clock_spec = clock_spec

    def start(self) -> None:
        """Start a new instance (the previous one must have ended) on the simulated clock."""
        if self._process is not None and self._process.poll() is None:
            msg = "a hub instance is still running"
            raise RuntimeError(msg)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = self._log_dir / f"hub-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "dispenser_hub.cli", "serve", "--clock", self.clock_spec],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._log_dir,
            )
        hub_process._live.add(self._process)
