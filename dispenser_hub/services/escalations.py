"""Escalation: a newly raised alarm's policy becomes deadlines, and each due step becomes notifications.

Rules (the policies and the step plan are ``domain.escalation``; texts and codes ``domain.notices``):

- **Snapshot at raise.** When an alarm opens, ``alarm_records.raise_alarm`` schedules an
  ``escalation.plan`` deadline due at once in the same transaction; its handler (``on_plan``) chooses the
  policy and plans it: a patient's alarm (a missed dose, a refill) follows the patient's responsibility level
  (``default_policy``), a dispenser's fault its kind and severity (``device_fault_policy``); other alarms
  (security, for instance) are for operators in the console only. Each planned step is a deadline
  (``escalation.step``, keyed ``esc:<alarm>:<step>:<repeat>``) carrying its target: the plan *is* the
  snapshot, so editing a policy later changes no alarm in flight. A patient's pauses (hospital, travel)
  are silences for the patient's alarms; non-urgent steps move out of quiet hours (22:00-07:00).
- **A step, when due** (``on_step``): nothing if the alarm is no longer active (acknowledged or resolved:
  acknowledgement stops the chain). Otherwise one notification per recipient, keyed by the step and the
  recipient, so no step ever notifies anyone twice: the relative by SMS (the first contact with a phone,
  by priority), the response centre and the home-care team in the console. A step that cannot reach its
  target (no relative with a phone) goes to the response centre instead, saying so.
- **Acknowledged** (``on_acknowledged``): the notifications not sent yet are cancelled, and the pending
  steps' deadlines too.
- SMS texts carry no patient data: the alarm kind, its VKP code, the dispenser id and a reply code that
  acknowledges the alarm (``notices.render_sms``).

Known limits, in the closing note: rosters are not stored yet, so "home care on call" reaches the team in
the console rather than the person on duty; named persons likewise.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.escalation import (
    Silence,
    Snapshot,
    Target,
    default_policy,
    device_fault_policy,
    is_urgent,
    plan_steps,
)
from dispenser_hub.domain.model import (
    AlarmStatus,
    Deadline,
    Notification,
    NotificationStatus,
    SubjectKind,
)
from dispenser_hub.domain.notices import render_sms, reply_code
from dispenser_hub.domain.supply import QuietHours

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.escalation import Policy
    from dispenser_hub.domain.model import Alarm
    from dispenser_hub.ports import UnitOfWork

STEP: Final = "escalation.step"
"""Deadline kind of an escalation step."""
RESPONSE_CENTRE: Final = "response-centre"
"""The console address of the response centre's operators."""
SILENCE_LOOKBACK: Final = timedelta(days=1)


class Escalations:
    """Plans alarms' escalation and carries out its steps (see the module rules)."""

    def __init__(self, secret: bytes, *, quiet: QuietHours | None = None) -> None:
        """``secret`` signs reply codes (at least 16 bytes); ``quiet``: the quiet hours (22:00-07:00)."""
        self._secret = secret
        self._quiet = quiet or QuietHours()

    def on_plan(self, uow: UnitOfWork, deadline: Deadline, now: datetime) -> None:
        """The ``escalation.plan`` deadline handler: plan the alarm if it is still active."""
        alarm = uow.alarms.get(int(str(deadline.payload["alarm_id"])))
        if alarm is not None and alarm.status is AlarmStatus.ACTIVE:
            self.plan(uow, alarm, now)

    def plan(self, uow: UnitOfWork, alarm: Alarm, now: datetime) -> int:
        """Schedule the steps of a newly raised ``alarm``; returns how many."""
        policy, silences = self._policy(uow, alarm, now)
        if policy is None or alarm.id is None:
            return 0
        urgent = is_urgent(alarm.kind, alarm.severity)
        start = alarm.raised_at if alarm.count == 1 else alarm.last_raised_at
        steps = plan_steps(
            Snapshot.of(alarm, policy), start, silences=silences, quiet=self._quiet, urgent=urgent
        )
        for step in steps:
            uow.deadlines.schedule(
                Deadline(
                    key=f"{step.key}:{alarm.count}",  # a repeat that escalates again gets its own steps
                    kind=STEP,
                    due_at=step.at,
                    created_at=now,
                    payload={
                        "alarm_id": alarm.id,
                        "policy": policy.name,
                        "target": step.target.value,
                        "person": step.person,
                    },
                )
            )
        return len(steps)

    def _policy(self, uow: UnitOfWork, alarm: Alarm, now: datetime) -> tuple[Policy | None, list[Silence]]:
        if alarm.subject_kind is SubjectKind.DEVICE:
            return device_fault_policy(alarm.kind, alarm.severity), []
        if alarm.subject_kind is not SubjectKind.PATIENT or alarm.patient_id is None:
            return None, []
        patient = uow.patients.get(alarm.patient_id)
        if patient is None:
            return None, []
        silences = [
            Silence(pause.start, pause.end, pause.reason, record.created_by)
            for record in uow.schedules.pauses(alarm.patient_id, ending_after=now - SILENCE_LOOKBACK)
            if (pause := record.effective()) is not None
        ]
        return default_policy(patient.responsibility), silences

    def on_step(self, uow: UnitOfWork, deadline: Deadline, now: datetime) -> None:
        """The ``escalation.step`` deadline handler (see the module rules)."""
        alarm = uow.alarms.get(int(str(deadline.payload["alarm_id"])))
        if alarm is None or alarm.status is not AlarmStatus.ACTIVE or alarm.id is None:
            return  # acknowledged or resolved: the chain stops
        target = Target(str(deadline.payload["target"]))
        code = reply_code(self._secret, alarm.id, deadline.key)
        sms = render_sms(
            alarm.kind, alarm.vkp_code, alarm.severity, device_ref=alarm.device_id or "-", ack_code=code
        )
        for channel, address, recipient, note in self._recipients(uow, alarm, target, deadline):
            uow.notifications.add(
                Notification(
                    key=f"{deadline.key}:{recipient}",
                    channel=channel,
                    address=address,
                    recipient=recipient,
                    subject=f"{alarm.kind} {alarm.vkp_code or ''}".strip(),
                    text=sms if channel == "sms" else f"{sms}{note}",
                    created_at=now,
                    next_attempt_at=now,
                    alarm_id=alarm.id,
                    step_key=deadline.key,
                )
            )

    @staticmethod
    def _recipients(
        uow: UnitOfWork, alarm: Alarm, target: Target, deadline: Deadline
    ) -> list[tuple[str, str, str, str]]:
        """(channel, address, recipient, note) for ``target``; the response centre when none is reachable."""
        if target is Target.RELATIVE and alarm.patient_id is not None:
            contacts = [c for c in uow.contacts.for_patient(alarm.patient_id) if c.phone]
            if contacts and contacts[0].phone is not None and contacts[0].id is not None:
                return [("sms", contacts[0].phone, f"contact:{contacts[0].id}", "")]
            note = " (no relative with a phone to notify)"
            return [("console", RESPONSE_CENTRE, RESPONSE_CENTRE, note)]
        if target is Target.HOME_CARE_ON_CALL and alarm.patient_id is not None:
            patient = uow.patients.get(alarm.patient_id)
            if patient is not None and patient.team_id is not None:
                team = f"team:{patient.team_id}"
                return [("console", team, team, "")]
            return [("console", RESPONSE_CENTRE, RESPONSE_CENTRE, " (the patient has no home-care team)")]
        if target is Target.NAMED_PERSON and deadline.payload.get("person"):
            person = f"person:{deadline.payload['person']}"
            return [("console", person, person, "")]
        return [("console", RESPONSE_CENTRE, RESPONSE_CENTRE, "")]

    @staticmethod
    def on_acknowledged(uow: UnitOfWork, alarm: Alarm, now: datetime) -> int:
        """Cancel what the alarm has not sent yet; returns how many notifications were cancelled."""
        if alarm.id is None:
            return 0
        cancelled = 0
        for notification in uow.notifications.for_alarm(alarm.id):
            if notification.status is NotificationStatus.PENDING:
                uow.notifications.update(
                    dataclasses.replace(notification, status=NotificationStatus.CANCELLED, last_error=None)
                )
                cancelled += 1
        for deadline in uow.deadlines.pending(kind=STEP, limit=1000):
            if deadline.payload.get("alarm_id") == alarm.id:
                uow.deadlines.cancel(deadline.key, now)
        return cancelled
