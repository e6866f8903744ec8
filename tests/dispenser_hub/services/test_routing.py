"""Escalation steps reach people: the nurse on call, a named person, by SMS, e-mail and webhook links.

Also: acknowledging by a one-time link, a patient's own policy, and a channel that keeps failing (its alarm,
and the escalation moving on to the next step at once).
"""

from __future__ import annotations

import dataclasses
from datetime import time, timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.alarms import Condition
from dispenser_hub.domain.escalation import Policy, Step, Target
from dispenser_hub.domain.model import (
    AlarmStatus,
    CareTeam,
    Contact,
    NotificationStatus,
    PolicyRecord,
    RosterRecord,
    SubjectKind,
)
from dispenser_hub.domain.rosters import StaffMember, TeamRoster, WeeklyShift
from dispenser_hub.domain.wallclock import OSLO, oslo_instant
from dispenser_hub.ports import Delivery
from dispenser_hub.services.ack import LinkOutcome, acknowledge_by_link, link_target
from dispenser_hub.services.alarm_records import PLAN_ESCALATION, device_condition, raise_alarm
from dispenser_hub.services.deadlines import DeadlineTimer
from dispenser_hub.services.doses import CLOSE
from dispenser_hub.services.escalations import STEP, Escalations, step_time
from dispenser_hub.services.notifications import CHANNEL_FAILING, NotificationSender
from dispenser_hub.services.routing import RESPONSE_CENTRE
from dispenser_hub.services.schedules import ScheduleService
from tests.dispenser_hub.services.test_escalations import MINUTE, SECRET, EscalationRig
from tests.dispenser_hub.services.test_rolls import D1, HOUR, NID_A

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from dispenser_hub.domain.model import Alarm, Notification

NURSE = StaffMember("nurse-1", "Åse", phone="+4791111111", email="ase@kommune.no")
DAY_NURSE = StaffMember("nurse-2", "Per", phone="+4792222222")


class RoutingRig(EscalationRig):
    """The escalation rig with patient A in a home-care team that has a roster, and A's own policy."""

    def __init__(self, tmp_path: Path, *, rota: tuple[tuple[str, int, time, int], ...]) -> None:
        super().__init__(tmp_path)
        self.escalations = Escalations(SECRET, link_base="https://hub.example.no")
        handlers = {
            CLOSE: ScheduleService().doses.on_close,
            PLAN_ESCALATION: self.escalations.on_plan,
            STEP: self.escalations.on_step,
        }
        self.timer = DeadlineTimer(self.hub.store, self.hub.clock, handlers, holder="test")
        with self.hub.store() as uow:
            team = uow.teams.add(CareTeam("Sone Nord"))
            assert team.id is not None
            self.team_id = team.id
            patient = uow.patients.get(self.patient_a)
            assert patient is not None
            uow.patients.update(dataclasses.replace(patient, team_id=team.id))
            shifts = tuple(
                WeeklyShift(str(team.id), ref, ref, weekday, start, timedelta(hours=hours))
                for ref, weekday, start, hours in rota
            )
            roster = TeamRoster(str(team.id), (NURSE, DAY_NURSE), shifts)
            uow.escalation.put_roster(RosterRecord(team.id, roster, self.hub.clock.now(), "op"))
            uow.commit()

    def policy(self, *steps: Step) -> None:
        with self.hub.store() as uow:
            record = PolicyRecord(self.patient_a, Policy("own", steps), self.hub.clock.now(), "op")
            uow.escalation.put_policy(record)
            uow.commit()

    def alarm_status(self, alarm: Alarm) -> AlarmStatus:
        with self.hub.store() as uow:
            current = uow.alarms.get(alarm.id or 0)
        assert current is not None
        return current.status

    def step(self, minutes: int) -> None:
        self.hub.clock.advance(minutes * MINUTE)
        self.timer.tick()

    def refill_at(self, wall: time) -> tuple[Alarm, datetime]:
        """A refill alarm (non-urgent) raised and planned today at ``wall`` Oslo time; (alarm, that time)."""
        at = oslo_instant(self.hub.clock.now().astimezone(OSLO).date(), wall)
        self.hub.clock.advance(at - self.hub.clock.now())
        refill = Condition(
            "refill_needed",
            SubjectKind.PATIENT,
            str(self.patient_a),
            1,
            "supply ends",
            "3.25",
            D1,
            self.patient_a,
        )
        with self.hub.store() as uow:
            alarm = raise_alarm(uow, refill, at)
            uow.commit()
        self.timer.tick()
        return alarm, at


ALL_DAY = tuple(("nurse-1", day, time(0, 0), 24) for day in range(7))


@pytest.fixture
def rig(tmp_path: Path) -> RoutingRig:
    return RoutingRig(tmp_path, rota=ALL_DAY)


def _sent(rig: RoutingRig, alarm: Alarm) -> list[tuple[str, str, str]]:
    return [(n.channel, n.address, n.recipient) for n in rig.notifications(alarm)]


def test_home_care_on_call_reaches_the_nurse_on_duty_by_sms_and_e_mail(rig: RoutingRig) -> None:
    rig.policy(Step(timedelta(minutes=30), Target.HOME_CARE_ON_CALL))
    alarm = rig.miss_first_dose()
    rig.step(30)
    staff = f"staff:{rig.team_id}:nurse-1"
    assert _sent(rig, alarm) == [
        ("sms", NURSE.phone, staff),
        ("email", NURSE.email, staff),
        ("console", f"team:{rig.team_id}", f"team:{rig.team_id}"),
    ]
    sms, email, _ = rig.notifications(alarm)
    for text in (sms.text, email.text, email.subject):
        assert "Kari" not in text
        assert NID_A not in text
        assert "Åse" not in text
    assert "https://hub.example.no/ack/" in email.text


def test_a_gap_in_the_rota_reaches_the_team_and_the_response_centre(tmp_path: Path) -> None:
    rig = RoutingRig(tmp_path, rota=(("nurse-2", 5, time(7, 0), 1),))  # Saturdays 07-08 only
    rig.policy(Step(timedelta(minutes=30), Target.HOME_CARE_ON_CALL))
    alarm = rig.miss_first_dose()
    rig.step(30)
    assert _sent(rig, alarm) == [
        ("console", f"team:{rig.team_id}", f"team:{rig.team_id}"),
        ("console", RESPONSE_CENTRE, RESPONSE_CENTRE),
    ]
    assert "nobody on call" in rig.notifications(alarm)[1].text


def test_a_named_person_and_an_unknown_one(rig: RoutingRig) -> None:
    rig.policy(
        Step(timedelta(minutes=10), Target.NAMED_PERSON, person="nurse-2"),
        Step(timedelta(minutes=20), Target.NAMED_PERSON, person="nurse-9"),
    )
    alarm = rig.miss_first_dose()
    rig.step(10)
    assert _sent(rig, alarm) == [("sms", DAY_NURSE.phone, f"staff:{rig.team_id}:nurse-2")]
    rig.step(10)
    assert _sent(rig, alarm)[1] == ("console", RESPONSE_CENTRE, RESPONSE_CENTRE)
    assert "nurse-9 is not on the home-care team's roster" in rig.notifications(alarm)[1].text


def test_a_relative_without_a_phone_gets_an_e_mail(rig: RoutingRig) -> None:
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", email="ola@example.no"), by="op")
    rig.policy(Step(timedelta(minutes=30), Target.RELATIVE))
    alarm = rig.miss_first_dose()
    rig.step(30)
    ((channel, address, recipient),) = _sent(rig, alarm)
    assert (channel, address, recipient.startswith("contact:")) == ("email", "ola@example.no", True)


def _link(notification: Notification) -> str:
    (line,) = [word for word in notification.text.split() if "/ack/" in word]
    return line.rsplit("/ack/", 1)[1].rstrip(".")


def test_a_one_time_link_acknowledges_the_alarm_once(rig: RoutingRig) -> None:
    rig.policy(
        Step(timedelta(minutes=30), Target.HOME_CARE_ON_CALL),
        Step(timedelta(minutes=60), Target.RESPONSE_CENTRE),
    )
    alarm = rig.miss_first_dose()
    rig.step(30)
    email = next(n for n in rig.notifications(alarm) if n.channel == "email")
    token = _link(email)
    now = rig.hub.clock.now()
    looked = link_target(rig.hub.store, SECRET, token, now)
    assert (looked.outcome, rig.alarm_status(alarm)) == (LinkOutcome.READY, AlarmStatus.ACTIVE)  # GET: no act
    used = acknowledge_by_link(rig.hub.store, rig.hub.registry, SECRET, token, now)
    assert used.outcome is LinkOutcome.ACKNOWLEDGED
    assert used.alarm is not None
    assert used.alarm.acknowledged_by == f"link:staff:{rig.team_id}:nurse-1"
    again = acknowledge_by_link(rig.hub.store, rig.hub.registry, SECRET, token, now)
    assert again.outcome is LinkOutcome.USED
    rig.step(60)
    assert len(rig.notifications(alarm)) == 3  # the response centre's step never came
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (
        acknowledge_by_link(rig.hub.store, rig.hub.registry, SECRET, forged, now).outcome
        is LinkOutcome.INVALID
    )
    expired = rig.hub.clock.now() + timedelta(days=8)
    assert link_target(rig.hub.store, SECRET, token, expired).outcome is LinkOutcome.INVALID


class Refusing:
    """A channel whose provider is down (every attempt: try again later)."""

    name = "sms"

    def __init__(self) -> None:
        self.ok = False

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        del address, subject, text, key
        return Delivery(ok=self.ok, retry=True, detail="gateway answered 503")


def test_a_failing_channel_raises_its_alarm_and_the_escalation_moves_on(rig: RoutingRig) -> None:
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", phone="+4791234567"), by="op")
    rig.policy(
        Step(timedelta(minutes=30), Target.RELATIVE), Step(timedelta(minutes=60), Target.RESPONSE_CENTRE)
    )
    channel = Refusing()
    sender = NotificationSender(
        rig.hub.store, rig.hub.clock, {"sms": channel}, move_on=rig.escalations.move_on
    )
    alarm = rig.miss_first_dose()
    rig.step(30)
    sender.send_due()  # first attempt refused: wait and retry
    rig.hub.clock.advance(timedelta(seconds=30))
    sender.send_due()  # second: the channel is failing, and the response centre is next at once
    rig.timer.tick()
    assert [n.channel for n in rig.notifications(alarm)] == ["sms", "console"]
    with rig.hub.store() as uow:
        (failing,) = [a for a in uow.alarms.select(open_only=True) if a.kind == CHANNEL_FAILING]
        pending = [d for d in uow.deadlines.pending(kind=STEP) if d.payload.get("alarm_id") == alarm.id]
    assert (failing.subject_kind, failing.subject_id) == (SubjectKind.CHANNEL, "sms")
    assert pending == []
    channel.ok = True
    rig.hub.clock.advance(timedelta(minutes=1))
    sender.send_due()
    (sms,) = [n for n in rig.notifications(alarm) if n.channel == "sms"]
    assert sms.status is NotificationStatus.SENT  # the retry still went out, once
    with rig.hub.store() as uow:
        assert uow.alarms.get(failing.id or 0) is not None
        assert [a.kind for a in uow.alarms.select(open_only=True) if a.kind == CHANNEL_FAILING] == []


def test_the_last_step_failing_reaches_the_response_centre(rig: RoutingRig) -> None:
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", phone="+4791234567"), by="op")
    rig.policy(Step(timedelta(minutes=30), Target.RELATIVE))
    sender = NotificationSender(rig.hub.store, rig.hub.clock, {}, move_on=rig.escalations.move_on)
    alarm = rig.miss_first_dose()
    rig.step(30)
    sender.send_due()  # no SMS channel configured: failed at once
    sms, note = rig.notifications(alarm)
    assert (sms.status, note.address) == (NotificationStatus.FAILED, RESPONSE_CENTRE)
    assert "sms to contact:" in note.text
    assert "not configured" in note.text


def test_a_dispensers_goodbye_calls_nobody_its_no_contact_does(rig: RoutingRig) -> None:
    now = rig.hub.clock.now()
    with rig.hub.store() as uow:
        death = raise_alarm(uow, device_condition("death", D1, rig.patient_a, "connection lost"), now)
        silent = raise_alarm(uow, device_condition("no_contact", D1, rig.patient_a, "silent 1 h"), now)
        uow.commit()
    rig.timer.tick()
    rig.step(30)
    rig.step(30)
    assert rig.notifications(death) == []  # shown in the console, escalated by no_contact only
    assert [n.address for n in rig.notifications(silent)] == [
        RESPONSE_CENTRE,
        RESPONSE_CENTRE,
        RESPONSE_CENTRE,
    ]


def test_a_hub_that_was_down_sends_only_a_steps_latest_due_repeat(rig: RoutingRig) -> None:
    every = timedelta(minutes=30)
    rig.policy(Step(timedelta(minutes=30), Target.RESPONSE_CENTRE, repeat_every=every, repeat_max=3))
    alarm = rig.miss_first_dose()
    rig.step(95)  # down from the raise until after the third repeat was due (30, 60 and 90 min)
    assert [n.step_key.split(":")[3] for n in rig.notifications(alarm) if n.step_key] == ["2"]
    rig.step(30)
    assert [n.step_key.split(":")[3] for n in rig.notifications(alarm) if n.step_key] == ["2", "3"]


def test_a_recipient_that_cannot_be_written_goes_to_the_console_and_the_others_still_go(
    tmp_path: Path,
) -> None:
    rig = RoutingRig(tmp_path, rota=ALL_DAY)
    rig.escalations = Escalations(SECRET, link_base="http://hub.lan")  # no link can be made with that
    handlers = {
        CLOSE: ScheduleService().doses.on_close,
        PLAN_ESCALATION: rig.escalations.on_plan,
        STEP: rig.escalations.on_step,
    }
    rig.timer = DeadlineTimer(rig.hub.store, rig.hub.clock, handlers, holder="test")
    rig.policy(Step(timedelta(minutes=30), Target.HOME_CARE_ON_CALL))
    alarm = rig.miss_first_dose()
    rig.step(30)
    sent = rig.notifications(alarm)
    assert [(n.channel, n.address) for n in sent] == [
        ("sms", NURSE.phone),
        ("console", RESPONSE_CENTRE),
        ("console", f"team:{rig.team_id}"),
    ]
    assert "email to staff:" in sent[1].text
    assert "ack_url" in sent[1].text


def test_a_new_missed_dose_spends_the_earlier_chains_links(rig: RoutingRig) -> None:
    rig.policy(Step(timedelta(minutes=30), Target.HOME_CARE_ON_CALL))
    alarm = rig.miss_first_dose()
    rig.step(30)
    email = next(n for n in rig.notifications(alarm) if n.channel == "email")
    token = _link(email)
    assert alarm.id is not None
    rig.hub.registry.acknowledge_alarm(alarm.id, by="operator:kari")  # in the console, not by the link
    rig.hub.clock.advance(12 * HOUR)  # the next pouch's window closes unconfirmed too
    rig.timer.tick()
    assert rig.alarm_status(alarm) is AlarmStatus.ACTIVE
    old = acknowledge_by_link(rig.hub.store, rig.hub.registry, SECRET, token, rig.hub.clock.now())
    assert old.outcome is LinkOutcome.USED  # yesterday's link does not take today's dose on
    assert rig.alarm_status(alarm) is AlarmStatus.ACTIVE


def test_moving_on_keeps_a_non_urgent_step_out_of_quiet_hours(rig: RoutingRig) -> None:
    rig.policy(Step(timedelta(0), Target.RELATIVE), Step(timedelta(minutes=60), Target.RESPONSE_CENTRE))
    alarm, evening = rig.refill_at(time(21, 30))  # the relative now, the centre at 22:30, moved to 07:00
    night = evening + timedelta(minutes=45)  # 22:15: the relative's SMS keeps failing
    with rig.hub.store() as uow:
        (failed,) = rig.notifications(alarm)
        assert rig.escalations.move_on(uow, alarm.id or 0, failed, night)
        (following,) = [d for d in uow.deadlines.pending(kind=STEP) if d.payload.get("alarm_id") == alarm.id]
    assert step_time(following) == oslo_instant(
        evening.astimezone(OSLO).date() + timedelta(days=1), time(7, 0)
    )
