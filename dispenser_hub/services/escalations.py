"""Escalation: a newly raised alarm's policy becomes deadlines, and each due step becomes notifications.

Rules (the policies and the step plan are ``domain.escalation``; texts and codes ``domain.notices``):

- **Snapshot at raise.** When an alarm opens, ``alarm_records.raise_alarm`` schedules an
  ``escalation.plan`` deadline due at once in the same transaction; its handler (``on_plan``) chooses the
  policy and plans it: a patient's alarm (a missed dose, a refill) follows the patient's responsibility level
  (``default_policy``), a dispenser's fault its kind and severity (``device_fault_policy``); other alarms
  (security, for instance) are for operators in the console only. Each planned step is a deadline
  (``escalation.step``, keyed ``esc:<alarm>:<step>:<repeat>:<count>``, ``count`` the alarm's raise count
  when the chain was planned) carrying its target: the plan *is* the
  snapshot, so editing a policy later changes no alarm in flight. A patient's pauses (hospital, travel)
  are silences for the patient's alarms; non-urgent steps move out of quiet hours (22:00-07:00).
- **A step, shortly before its time** (``on_step``; the deadline is due ``PREPARE_AHEAD`` before the step,
  whose time is in the payload, ``step_time``): nothing if the alarm is no longer active (acknowledged or
  resolved: acknowledgement stops the chain). A repeat whose next repeat's time has come too (the hub was
  down across both), or is its own (quiet hours or a pause moved both there), is skipped: the latest one
  speaks for it (``domain.escalation.next_due``'s rule), and a late repeat cancels the notifications of
  earlier ones that were stored but never tried. Otherwise
  one notification per recipient (``routing.recipients``, for the step's time: the relative, the response
  centre, the person on call then, a named person), keyed by the step and the recipient, so no step ever
  notifies anyone twice, and due at the step's time. So at that time only the sender's claim stands between
  the step and the messages (BENCHMARKS.md: 10,000 steps of one instant), and an acknowledgement in
  between cancels them like any unsent notification. A step prepared late is due at once. Cancelling and
  bringing forward are conditional writes (``notifications.cancel``, ``bring_forward``), so a message a
  sender recorded as sent, or claimed, meanwhile is never turned back.
- **Texts** carry no patient data: the alarm kind, its VKP code, the dispenser id and how to acknowledge.
  An SMS carries a reply code (``notices.render_sms``; the reply must come from the number it went to); an
  e-mail the reply code and a one-time link (``notices.render_email``, ``ack_link``), a webhook a JSON body
  with the link; the console shows the SMS text and why it went to the console, if it was rerouted.
- **Per-patient policy**: a patient's own policy (``uow.escalation.policy``) replaces the default of their
  responsibility level; device faults follow their kind (``device_fault_policy``).
- **Acknowledged** (``on_acknowledged``): the notifications not sent yet are cancelled, and the pending
  steps' deadlines too.
- **Moving on** (``move_on``): when a notification of a step cannot be delivered (its channel keeps
  failing), the alarm's next step is brought forward to now (a non-urgent one to the end of quiet hours at
  the earliest): its stored notifications if it was prepared (they keep the recipients chosen for the
  step's time, at most ``PREPARE_AHEAD`` later), else its deadline. So the chain does not wait on a dead
  channel; if there is no later step, the response centre's console gets the step instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.escalation import (
    CONSOLE_ONLY_KINDS,
    MAX_REPEATS,
    MAX_STEPS,
    Silence,
    Snapshot,
    Target,
    default_policy,
    device_fault_policy,
    is_urgent,
    plan_steps,
)
from dispenser_hub.domain.escalation import step_key as planned_key
from dispenser_hub.domain.model import (
    AlarmStatus,
    Deadline,
    Notification,
    NotificationStatus,
    SubjectKind,
)
from dispenser_hub.domain.notices import (
    NoticeError,
    issue_token,
    new_nonce,
    render_email,
    render_sms,
    reply_code,
)
from dispenser_hub.domain.supply import QuietHours
from dispenser_hub.services.routing import (
    CONSOLE,
    EMAIL,
    RESPONSE_CENTRE,
    SMS,
    Recipient,
    centre,
    recipients,
)

if TYPE_CHECKING:
    from dispenser_hub.domain.escalation import Policy
    from dispenser_hub.domain.model import Alarm
    from dispenser_hub.ports import UnitOfWork

_log = logging.getLogger(__name__)
STEP: Final = "escalation.step"
"""Deadline kind of an escalation step."""
PREPARE_AHEAD: Final = timedelta(minutes=2)
"""A step's deadline falls due this long before the step: its notifications are stored, due at the step's
time, so the sender alone stands between the step's time and the messages (see the module rules)."""
SILENCE_LOOKBACK: Final = timedelta(days=1)
LINK_VALID: Final = timedelta(days=7)
"""How long an acknowledgement link works (an alarm open longer is acknowledged in the console)."""
ACK_PATH: Final = "/ack/"
NO_DEVICE: Final = "n/a"


def pending_steps(uow: UnitOfWork, alarm: Alarm) -> list[Deadline]:
    """The alarm's current chain's pending step deadlines, by due time.

    Found by their keys (``esc:<alarm>:<step>:<repeat>:<count>``; steps and repeats are numbered from 0
    without gaps), a few indexed reads, with no scan and no dependence on a database's string collation.
    Only the current chain (``count``) can have pending steps: an earlier one was cancelled when it was
    acknowledged, which is what started the current one.
    """
    found: list[Deadline] = []
    alarm_id = alarm.id
    if alarm_id is None:  # pragma: no cover - a stored alarm has an id
        return found
    for index in range(MAX_STEPS):
        if uow.deadlines.get(_chain_key(planned_key(alarm_id, index, 0), alarm.count)) is None:
            break
        for repeat in range(MAX_REPEATS + 1):
            deadline = uow.deadlines.get(_chain_key(planned_key(alarm_id, index, repeat), alarm.count))
            if deadline is None:
                break
            if deadline.pending:
                found.append(deadline)
    return sorted(found, key=lambda d: (d.due_at, d.key))


class Escalations:
    """Plans alarms' escalation and carries out its steps (see the module rules)."""

    def __init__(
        self,
        secret: bytes,
        *,
        quiet: QuietHours | None = None,
        link_base: str | None = "http://127.0.0.1:8000",
        centre_webhook: str | None = None,
    ) -> None:
        """Plan and notify with these settings.

        Args: ``secret`` signs reply codes and links (at least 16 bytes); ``quiet``: the quiet hours
        (22:00-07:00); ``link_base``: the hub's address for links (``None``: no links);
        ``centre_webhook``: the response centre's alarm system (``Settings.response_centre_webhook_url``).
        """
        self._secret = secret
        self._quiet = quiet or QuietHours()
        self._link_base = link_base.rstrip("/") if link_base else None
        self._centre_webhook = centre_webhook

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
                    key=_chain_key(step.key, alarm.count),  # a repeat that escalates again gets its own
                    kind=STEP,
                    due_at=step.at - PREPARE_AHEAD,
                    created_at=now,
                    payload={
                        "alarm_id": alarm.id,
                        "policy": policy.name,
                        "target": step.target.value,
                        "person": step.person,
                        "at": step.at.isoformat(),
                    },
                )
            )
        return len(steps)

    def _policy(self, uow: UnitOfWork, alarm: Alarm, now: datetime) -> tuple[Policy | None, list[Silence]]:
        if alarm.kind in CONSOLE_ONLY_KINDS:
            return None, []
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
        own = uow.escalation.policy(alarm.patient_id)
        return (own.policy if own is not None else default_policy(patient.responsibility)), silences

    def on_step(self, uow: UnitOfWork, deadline: Deadline, now: datetime) -> None:
        """The ``escalation.step`` deadline handler (see the module rules)."""
        alarm = uow.alarms.get(int(str(deadline.payload["alarm_id"])))
        if alarm is None or alarm.status is not AlarmStatus.ACTIVE or alarm.id is None:
            return  # acknowledged or resolved: the chain stops
        if _superseded(uow, deadline, now):
            return  # a hub that was down sends a step's latest due repeat only
        at = step_time(deadline)
        if at <= now:  # late: earlier repeats stored but never tried are spoken for by this one
            _cancel_earlier_untried(uow, alarm, deadline.key)
        goes_out = max(at, now)
        target = Target(str(deadline.payload["target"]))
        person = deadline.payload.get("person")
        found = recipients(
            uow,
            alarm,
            target,
            person=str(person) if person else None,
            at=goes_out,
            centre_webhook=self._centre_webhook,
        )
        for recipient in found:
            try:
                self._notify(uow, alarm, deadline.key, recipient, now, at=goes_out)
            except NoticeError as error:  # one recipient's bad data does not silence the others
                _log.warning(
                    "alarm %s step %s: %s cannot be notified: %s",
                    alarm.id,
                    deadline.key,
                    recipient.recipient,
                    error,
                )
                note = f" ({recipient.channel} to {recipient.recipient} could not be written: {error.field})"
                self._notify(uow, alarm, deadline.key, centre(note), now, at=goes_out)

    def _notify(
        self,
        uow: UnitOfWork,
        alarm: Alarm,
        step_key: str,
        recipient: Recipient,
        now: datetime,
        *,
        at: datetime,
    ) -> None:
        """Store the notification of one step to one recipient, due ``at`` (its links valid from then)."""
        subject, text = self.message(alarm, step_key, recipient, at)
        uow.notifications.add(
            Notification(
                key=f"{step_key}:{recipient.recipient}:{recipient.channel}",
                channel=recipient.channel,
                address=recipient.address,
                recipient=recipient.recipient,
                subject=subject,
                text=text,
                created_at=now,
                next_attempt_at=at,
                alarm_id=alarm.id,
                step_key=step_key,
            )
        )

    def message(self, alarm: Alarm, step_key: str, recipient: Recipient, now: datetime) -> tuple[str, str]:
        """(subject, text) of one notification (see the module rules on texts)."""
        if alarm.id is None:  # pragma: no cover - stored alarms have ids
            msg = "an alarm must be stored before it is notified"
            raise ValueError(msg)
        code = reply_code(self._secret, alarm.id, step_key)
        device = alarm.device_id or NO_DEVICE
        sms = render_sms(alarm.kind, alarm.vkp_code, alarm.severity, device_ref=device, ack_code=code)
        subject = f"{alarm.kind} {alarm.vkp_code or ''}".strip()
        if recipient.channel == SMS:
            return subject, sms
        if recipient.channel == CONSOLE:
            return subject, f"{sms}{recipient.note}"
        link = self.ack_link(alarm.id, step_key, recipient.recipient, now)
        if recipient.channel == EMAIL:
            return render_email(
                alarm.kind, alarm.vkp_code, alarm.severity, device_ref=device, ack_code=code, ack_url=link
            )
        body = {
            "alarm_id": alarm.id,
            "kind": alarm.kind,
            "vkp_code": alarm.vkp_code,
            "severity": alarm.severity,
            "device_id": alarm.device_id,
            "raised_at": alarm.raised_at.isoformat(),
            "step": step_key,
            "ack_url": link,
            "ack_code": code,
        }
        return subject, json.dumps(body, sort_keys=True)

    def ack_link(self, alarm_id: int, step_key: str, recipient: str, now: datetime) -> str | None:
        """A one-time link that acknowledges the alarm as ``recipient`` (``web.routes.ack`` checks it)."""
        if self._link_base is None:
            return None
        token = issue_token(
            self._secret,
            alarm_id=alarm_id,
            step_key=step_key,
            recipient_ref=recipient,
            expires_at=now + LINK_VALID,
            nonce=new_nonce(),
        )
        return f"{self._link_base}{ACK_PATH}{token}"

    def move_on(self, uow: UnitOfWork, alarm_id: int, failed: Notification, now: datetime) -> bool:
        """Bring the alarm's next pending step forward to ``now``; without one, tell the response centre.

        Returns whether a later step was brought forward. Nothing happens for an alarm no longer active.
        """
        alarm = uow.alarms.get(alarm_id)
        if alarm is None or alarm.status is not AlarmStatus.ACTIVE or alarm.id is None:
            return False
        soonest = now if is_urgent(alarm.kind, alarm.severity) else self._quiet.next_allowed(now)
        stored = _stored_ahead(uow, alarm.id, now, but=failed.step_key)
        steps = pending_steps(uow, alarm)
        if stored and (not steps or stored[0].next_attempt_at <= step_time(steps[0])):
            first = stored[0]
            if soonest < first.next_attempt_at:
                ids = [n.id for n in stored if n.step_key == first.step_key and n.id is not None]
                uow.notifications.bring_forward(ids, due_at=first.next_attempt_at, to=soonest)
            return True
        if steps:
            following = steps[0]
            if soonest < step_time(following):  # a non-urgent step stays out of quiet hours
                payload = {**following.payload, "at": soonest.isoformat()}
                uow.deadlines.update(dataclasses.replace(following, due_at=soonest, payload=payload))
            return True
        if failed.step_key is not None and failed.recipient != RESPONSE_CENTRE:
            note = f" ({failed.channel} to {failed.recipient} failed: {failed.last_error or 'not delivered'})"
            self._notify(uow, alarm, failed.step_key, centre(note), now, at=now)
        return False

    @staticmethod
    def on_acknowledged(uow: UnitOfWork, alarm: Alarm, now: datetime) -> int:
        """Cancel what the alarm has not sent yet; returns how many notifications were cancelled."""
        if alarm.id is None:
            return 0
        for deadline in pending_steps(uow, alarm):  # first: a step firing now is waited for (PostgreSQL)
            uow.deadlines.cancel(deadline.key, now)
        pending = [
            notification.id
            for notification in uow.notifications.for_alarm(alarm.id)
            if notification.status is NotificationStatus.PENDING and notification.id is not None
        ]
        return uow.notifications.cancel(pending)  # a row the sender recorded as sent meanwhile stays so


def _chain_key(planned_key: str, count: int) -> str:
    """A step deadline's key: the planned step's key and the alarm's count when its chain was planned."""
    return f"{planned_key}:{count}"


def step_time(deadline: Deadline) -> datetime:
    """When a step deadline's notifications go out (``PREPARE_AHEAD`` after the deadline, as planned).

    A deadline stored before steps were prepared ahead has no ``at``: its own due time is the step's.
    """
    at = deadline.payload.get("at")
    return datetime.fromisoformat(at) if isinstance(at, str) else deadline.due_at


def _parts(key: str) -> tuple[int, int, int, int] | None:
    """(alarm, step, repeat, count) of a step deadline's key ``esc:<alarm>:<step>:<repeat>:<count>``."""
    parts = key.split(":")
    if len(parts) != 5 or not all(part.isdigit() for part in parts[1:]):  # noqa: PLR2004 - the key's parts
        return None
    alarm_id, index, repeat, count = (int(part) for part in parts[1:])
    return alarm_id, index, repeat, count


def _superseded(uow: UnitOfWork, deadline: Deadline, now: datetime) -> bool:
    """Whether the next repeat of this step is due by this one's time or now, whichever is later.

    Its time has come too (the hub was down across both), or both are at the same time (quiet hours or a
    pause moved them there): the latest one speaks for both.
    """
    parts = _parts(deadline.key)
    if parts is None:
        return False
    alarm_id, index, repeat, count = parts
    following = uow.deadlines.get(_chain_key(planned_key(alarm_id, index, repeat + 1), count))
    if following is None or not following.pending:
        return False
    return step_time(following) <= max(step_time(deadline), now)  # quiet hours may put both at one time


def _cancel_earlier_untried(uow: UnitOfWork, alarm: Alarm, key: str) -> None:
    """Cancel the pending, never tried notifications of this step's earlier repeats (same chain)."""
    parts = _parts(key)
    if parts is None or parts[2] == 0 or alarm.id is None:
        return
    alarm_id, index, repeat, count = parts
    earlier: list[int] = []
    for notification in uow.notifications.for_alarm(alarm.id):
        step = _parts(notification.step_key or "")
        if (
            step is not None
            and (step[0], step[1], step[3]) == (alarm_id, index, count)
            and step[2] < repeat
            and notification.id is not None
        ):
            earlier.append(notification.id)
    uow.notifications.cancel(earlier, untried_only=True)


def _stored_ahead(uow: UnitOfWork, alarm_id: int, now: datetime, *, but: str | None) -> list[Notification]:
    """The alarm's notifications of later steps, stored ahead and not tried yet, earliest first.

    Not those of the step ``but`` (a retry of an earlier step is not a later step), and not one a sender
    has claimed (its due time is then no longer its step's time): a step the sender holds, in the second
    before its time, goes out anyway, and moving on brings the one after it forward.
    """
    candidates = [
        notification
        for notification in uow.notifications.for_alarm(alarm_id)
        if notification.status is NotificationStatus.PENDING
        and notification.attempts == 0
        and notification.step_key not in {None, but}
        and notification.next_attempt_at > now
    ]
    times: dict[str, datetime | None] = {}
    for key in {str(n.step_key) for n in candidates}:
        deadline = uow.deadlines.get(key)
        times[key] = None if deadline is None else step_time(deadline)
    ahead = [n for n in candidates if times[str(n.step_key)] == n.next_attempt_at]
    return sorted(ahead, key=lambda n: (n.next_attempt_at, n.step_key or "", n.id or 0))
