"""Who an escalation step reaches, and over which channels: from targets to people.

Rules (a step's target is ``domain.escalation.Target``):

- **Relative**: the patient's first contact (by priority) with a phone number, by SMS; without any phone,
  the first contact with an e-mail address, by e-mail. Nobody reachable: the response centre's console,
  saying so.
- **Response centre**: its operators' console; and, when the centre's own alarm system is configured
  (``response_centre_webhook_url``), a signed webhook to it as well.
- **Home care on call**: the patient's home-care team's roster (``domain.rosters.TeamRoster.on_call``) at
  the step's time: the primary on-call person by SMS (phone) and e-mail (if they have one), plus the team's
  console. Nobody on call (a gap in the rota, no roster, no phone or e-mail) or no team: the team's console
  and the response centre's console, saying why, so a person still sees it.
- **Named person**: a staff ``ref`` of the patient's team roster, by SMS and/or e-mail; unknown: the response
  centre's console, saying so.

Recipients are references, never names (``contact:7``, ``staff:3:nurse-1``, ``team:3``, ``response-centre``):
notification keys and logs carry them, and a notification is keyed by step and recipient, so each person
gets a step once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.escalation import Target

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Alarm, Patient
    from dispenser_hub.domain.rosters import StaffMember
    from dispenser_hub.ports import UnitOfWork

RESPONSE_CENTRE: Final = "response-centre"
"""The console address (and recipient reference) of the response centre's operators."""
SMS: Final = "sms"
EMAIL: Final = "email"
WEBHOOK: Final = "webhook"
CONSOLE: Final = "console"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One message: ``channel`` to ``address`` for ``recipient`` (a reference); ``note`` for people."""

    channel: str
    address: str
    recipient: str
    note: str = ""


def centre(note: str = "") -> Recipient:
    """The response centre's console, with ``note`` saying why a message went there instead."""
    return Recipient(CONSOLE, RESPONSE_CENTRE, RESPONSE_CENTRE, note)


def recipients(
    uow: UnitOfWork,
    alarm: Alarm,
    target: Target,
    *,
    person: str | None,
    at: datetime,
    centre_webhook: str | None = None,
) -> list[Recipient]:
    """The messages a step for ``target`` sends about ``alarm`` at ``at`` (see the module rules)."""
    patient = uow.patients.get(alarm.patient_id) if alarm.patient_id is not None else None
    if target is Target.RELATIVE and patient is not None and patient.id is not None:
        return _relative(uow, patient.id)
    if target is Target.HOME_CARE_ON_CALL and patient is not None:
        return _on_call(uow, patient, at)
    if target is Target.NAMED_PERSON and patient is not None and person:
        return _named(uow, patient, person)
    if target is not Target.RESPONSE_CENTRE:
        return [centre(f" (no {target.value.replace('_', ' ')} to notify for this alarm)")]
    found = [centre()]
    if centre_webhook is not None:
        found.append(Recipient(WEBHOOK, centre_webhook, RESPONSE_CENTRE))
    return found


def _relative(uow: UnitOfWork, patient_id: int) -> list[Recipient]:
    contacts = uow.contacts.for_patient(patient_id)
    for contact in contacts:
        if contact.phone and contact.id is not None:
            return [Recipient(SMS, contact.phone, f"contact:{contact.id}")]
    for contact in contacts:
        if contact.email and contact.id is not None:
            return [Recipient(EMAIL, contact.email, f"contact:{contact.id}")]
    return [centre(" (no relative with a phone or e-mail to notify)")]


def _staff(team_id: int, member: StaffMember) -> list[Recipient]:
    reference = f"staff:{team_id}:{member.ref}"
    found = [Recipient(SMS, member.phone, reference)] if member.phone else []
    if member.email:
        found.append(Recipient(EMAIL, member.email, reference))
    return found


def _on_call(uow: UnitOfWork, patient: Patient, at: datetime) -> list[Recipient]:
    if patient.team_id is None:
        return [centre(" (the patient has no home-care team)")]
    team = f"team:{patient.team_id}"
    console = Recipient(CONSOLE, team, team)
    record = uow.escalation.roster(patient.team_id)
    if record is None:
        return [console, centre(" (the home-care team has no on-call roster)")]
    on_call = record.roster.on_call(at)
    if not on_call:
        return [console, centre(" (nobody on call in the home-care team's rota now)")]
    return [*_staff(patient.team_id, on_call[0]), console]


def _named(uow: UnitOfWork, patient: Patient, person: str) -> list[Recipient]:
    record = uow.escalation.roster(patient.team_id) if patient.team_id is not None else None
    member = record.roster.member(person) if record is not None else None
    if record is None or member is None:
        return [centre(f" (named person {person} is not on the home-care team's roster)")]
    return _staff(record.team_id, member)
