"""Acknowledging an alarm by replying to its SMS, through the hub's real services."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from dispenser_hub.domain.model import AlarmStatus, Contact, NotificationStatus
from dispenser_hub.services.ack import acknowledge_by_reply, notice_secret
from dispenser_hub.settings import Settings
from tests.dispenser_hub.services.test_escalations import SECRET, EscalationRig

if TYPE_CHECKING:
    from pathlib import Path

    from dispenser_hub.domain.model import Alarm

PHONE = "+4791234567"


@pytest.fixture
def rig(tmp_path: Path) -> EscalationRig:
    return EscalationRig(tmp_path)


def _sms_sent(rig: EscalationRig) -> tuple[Alarm, str, int]:
    """A missed dose whose first step texted the relative: the alarm, the SMS's code, the contact id."""
    contact = rig.hub.registry.add_contact(
        Contact(rig.patient_a, "Ola", phone="+47 912 34 567", priority=1), by="op"
    )
    assert contact.id is not None
    alarm = rig.miss_first_dose()
    rig.hub.clock.advance(timedelta(minutes=30))
    rig.timer.tick()
    (sms,) = rig.notifications(alarm)
    assert sms.channel == "sms"
    match = re.search(r"OK ([A-Z0-9]{6})$", sms.text)
    assert match is not None
    return alarm, match.group(1), contact.id


def _reply(rig: EscalationRig, text: str, number: str = PHONE, secret: bytes = SECRET) -> Alarm | None:
    return acknowledge_by_reply(rig.hub.store, rig.hub.registry, secret, from_number=number, text=text)


def test_the_reply_with_the_code_acknowledges_the_alarm_as_the_contact(rig: EscalationRig) -> None:
    alarm, code, contact_id = _sms_sent(rig)
    acknowledged = _reply(rig, f"ok {code.lower()}")
    assert acknowledged is not None
    assert acknowledged.id == alarm.id
    assert acknowledged.status is AlarmStatus.ACKNOWLEDGED
    assert acknowledged.acknowledged_by == f"sms:contact:{contact_id}"
    with rig.hub.store() as uow:
        audit = uow.audit.select(subject=f"alarm:{alarm.id}")
    assert [(entry.actor, entry.action) for entry in audit] == [
        (f"sms:contact:{contact_id}", "alarm.acknowledge")
    ]
    (sms,) = rig.notifications(alarm)
    assert sms.status is NotificationStatus.CANCELLED  # the chain stopped


def test_a_repeated_reply_answers_the_alarm_unchanged(rig: EscalationRig) -> None:
    _, code, _ = _sms_sent(rig)
    first = _reply(rig, f"OK {code}")
    rig.hub.clock.advance(timedelta(minutes=5))
    again = _reply(rig, f"OK {code}")
    assert first is not None
    assert again == first


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("OK 222222", PHONE),  # wrong code
        ("hello", PHONE),  # no code at all
        (None, "+4799999999"),  # the right code from another number
        (None, ""),
    ],
)
def test_anything_else_acknowledges_nothing(rig: EscalationRig, text: str | None, number: str) -> None:
    alarm, code, _ = _sms_sent(rig)
    if code == "222222":  # pragma: no cover - one chance in 2**30
        pytest.skip("the code happens to be the wrong one")
    assert _reply(rig, text or f"OK {code}", number) is None
    with rig.hub.store() as uow:
        stored = uow.alarms.get(alarm.id or 0)
    assert stored is not None
    assert stored.status is AlarmStatus.ACTIVE


def test_another_secret_makes_other_codes(rig: EscalationRig) -> None:
    _, code, _ = _sms_sent(rig)
    assert _reply(rig, f"OK {code}", secret=b"another-secret-of-16-bytes") is None


def test_a_resolved_alarm_is_not_acknowledged_by_a_reply(rig: EscalationRig) -> None:
    alarm, code, _ = _sms_sent(rig)
    assert alarm.id is not None
    rig.hub.registry.resolve_alarm(alarm.id, by="op", resolution="called the patient")
    assert _reply(rig, f"OK {code}") is None


def test_the_notice_secret_comes_from_the_lookup_key() -> None:
    first = Settings(lookup_key=SecretStr("a" * 64))
    second = Settings(lookup_key=SecretStr("b" * 64))
    assert len(notice_secret(first)) == 32
    assert notice_secret(first) == notice_secret(Settings(lookup_key=SecretStr("a" * 64)))
    assert notice_secret(first) != notice_secret(second)
