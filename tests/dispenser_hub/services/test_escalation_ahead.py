"""A step's notifications are stored ``PREPARE_AHEAD`` before its time and go out at that time.

Also what that changes elsewhere: an acknowledgement in between cancels them, a hub that was down across
repeats, or repeats that quiet hours moved to one time, send the latest only, and moving on brings a step
already stored forward.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.domain.escalation import Step, Target
from dispenser_hub.domain.model import Contact, NotificationStatus
from dispenser_hub.domain.wallclock import OSLO, oslo_instant
from dispenser_hub.ports import Delivery
from dispenser_hub.services.escalations import PREPARE_AHEAD
from dispenser_hub.services.notifications import NotificationSender
from dispenser_hub.services.routing import RESPONSE_CENTRE
from tests.dispenser_hub.services.test_routing import ALL_DAY, Refusing, RoutingRig

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from pathlib import Path

    from dispenser_hub.domain.model import Alarm
    from dispenser_hub.ports import NotificationChannel

MINUTES_AHEAD = int(PREPARE_AHEAD / timedelta(minutes=1))


class Recorder:
    """A channel that accepts and records when (hub clock) each key went out."""

    def __init__(self, rig: RoutingRig, name: str) -> None:
        self.name = name
        self.rig = rig
        self.sent: dict[str, datetime] = {}

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        del address, subject, text
        self.sent[key] = self.rig.hub.clock.now()
        return Delivery(ok=True)

    def times(self, alarm: Alarm) -> list[datetime]:
        """When the alarm's notifications went out (other alarms of the rig have their own)."""
        return [at for key, at in self.sent.items() if key.startswith(f"esc:{alarm.id}:")]


@pytest.fixture
def rig(tmp_path: Path) -> RoutingRig:
    rig = RoutingRig(tmp_path, rota=ALL_DAY)
    rig.hub.registry.add_contact(Contact(rig.patient_a, "Ola", phone="+4791234567"), by="op")
    return rig


def _sender(rig: RoutingRig, channels: Mapping[str, NotificationChannel]) -> NotificationSender:
    return NotificationSender(rig.hub.store, rig.hub.clock, channels, move_on=rig.escalations.move_on)


def _raised(alarm: Alarm) -> datetime:
    return alarm.last_raised_at


def test_a_steps_notifications_are_stored_ahead_and_go_out_at_its_time(rig: RoutingRig) -> None:
    rig.policy(Step(timedelta(minutes=30), Target.RELATIVE))
    sms = Recorder(rig, "sms")
    sender = _sender(rig, {"sms": sms})
    alarm = rig.miss_first_dose()
    step_at = _raised(alarm) + timedelta(minutes=30)
    rig.step(30 - MINUTES_AHEAD - 1)
    assert rig.notifications(alarm) == []  # not yet: the step's deadline is due 2 min before it
    rig.step(1)
    (stored,) = rig.notifications(alarm)
    assert (stored.status, stored.next_attempt_at) == (NotificationStatus.PENDING, step_at)
    assert "+4791234567" in stored.address
    assert sender.send_due() == 0  # stored, not due
    assert sender.seconds_to_next(3600) == PREPARE_AHEAD.total_seconds()
    assert sender.seconds_to_next(1.0) == 1.0
    rig.hub.clock.advance(PREPARE_AHEAD)
    assert sender.seconds_to_next(1.0) == 0
    assert sender.send_due() == 1
    assert sms.times(alarm) == [step_at]
    assert sender.seconds_to_next(1.0) == 1.0  # nothing pending


def test_an_acknowledgement_after_the_step_was_stored_cancels_it(rig: RoutingRig) -> None:
    rig.policy(Step(timedelta(minutes=30), Target.RELATIVE))
    sms = Recorder(rig, "sms")
    alarm = rig.miss_first_dose()
    rig.step(30 - MINUTES_AHEAD)
    assert alarm.id is not None
    rig.hub.registry.acknowledge_alarm(alarm.id, by="operator:kari")
    rig.step(MINUTES_AHEAD)
    assert _sender(rig, {"sms": sms}).send_due() == 0
    assert [n.status for n in rig.notifications(alarm)] == [NotificationStatus.CANCELLED]
    assert sms.times(alarm) == []


def test_a_hub_down_after_storing_a_repeat_sends_only_the_latest_repeat(rig: RoutingRig) -> None:
    every = timedelta(minutes=30)
    rig.policy(Step(timedelta(minutes=30), Target.RESPONSE_CENTRE, repeat_every=every, repeat_max=3))
    alarm = rig.miss_first_dose()
    rig.step(30 - MINUTES_AHEAD)  # repeat 0 stored, due at 30 min; then the hub is down until 95 min
    rig.step(95 - 30 + MINUTES_AHEAD)
    console = Recorder(rig, "console")
    _sender(rig, {"console": console}).send_due()
    by_repeat = {n.step_key.split(":")[3]: n.status for n in rig.notifications(alarm) if n.step_key}
    assert by_repeat == {"0": NotificationStatus.CANCELLED, "2": NotificationStatus.SENT}
    assert console.times(alarm) == [_raised(alarm) + timedelta(minutes=95)]


def test_moving_on_brings_a_stored_step_forward(rig: RoutingRig) -> None:
    rig.policy(
        Step(timedelta(minutes=30), Target.RELATIVE), Step(timedelta(minutes=32), Target.RESPONSE_CENTRE)
    )
    console = Recorder(rig, "console")
    sender = _sender(rig, {"sms": Refusing(), "console": console})
    alarm = rig.miss_first_dose()
    rig.step(30)  # both steps stored: the relative's due now, the response centre's at 32 min
    assert [n.channel for n in rig.notifications(alarm)] == ["sms", "console"]
    sender.send_due()  # refused once: retried in 30 s
    rig.hub.clock.advance(timedelta(seconds=30))
    sender.send_due()  # refused twice: the channel is failing, the response centre's step comes now
    sender.send_due()
    assert console.times(alarm) == [_raised(alarm) + timedelta(minutes=30, seconds=30)]
    sms, note = rig.notifications(alarm)
    assert (sms.status, sms.attempts) == (NotificationStatus.PENDING, 2)  # still retried
    assert (note.address, note.status) == (RESPONSE_CENTRE, NotificationStatus.SENT)


def test_repeats_moved_to_one_time_by_quiet_hours_send_once(rig: RoutingRig) -> None:
    every = timedelta(minutes=30)
    rig.policy(Step(timedelta(minutes=30), Target.RESPONSE_CENTRE, repeat_every=every, repeat_max=2))
    alarm, evening = rig.refill_at(time(21, 59))  # planned: 22:29, 22:59 and 23:29, all moved to 07:00
    morning = oslo_instant(evening.astimezone(OSLO).date() + timedelta(days=1), time(7, 0))
    rig.hub.clock.advance(morning - PREPARE_AHEAD - rig.hub.clock.now())
    rig.timer.tick()
    rig.step(MINUTES_AHEAD)
    console = Recorder(rig, "console")
    _sender(rig, {"console": console}).send_due()
    assert [n.step_key.split(":")[3] for n in rig.notifications(alarm) if n.step_key] == ["2"]
    assert console.times(alarm) == [morning]
