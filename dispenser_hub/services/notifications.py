"""The notification dispatcher: sends due rows of the notification outbox through the channels.

Rules:

- **A notification is a row before it is a message** (whoever decides to notify adds it to
  ``uow.notifications`` in its own transaction, possibly due later: an escalation step's notifications are
  stored shortly before the step's time). ``NotificationSender.send_due``, called from the sender's loop
  (which sleeps until the next row is due, ``seconds_to_next``, or is woken by a deadline tick that fired
  something), sends every pending row whose ``next_attempt_at`` has come, in rounds until none is left,
  claiming and recording ``limit`` rows at a time (``ROUND``, 500), one call at a time (a lock, as
  ``downlink.CommandSender``): a second caller waits, then finds nothing left to send.
- **Claimed a moment ahead** (``ahead``; the hub: ``AHEAD``, 1 s): a round claims what falls due within
  ``ahead`` (up to ``HOLD`` rows: a mass of escalation steps due at one instant), then hands each to its
  channel at its due time, never before, and records every ``limit``. So reading, decrypting and building
  the rows happens before the due moment, and at it only the channel calls and the recorded outcomes
  remain. After waiting for a held row's time the round asks which of the rest are still pending, so an
  acknowledgement meanwhile stops them (``pending_of``); if the clock has not reached that time a second
  after ``ahead`` (it stands still or went back), the round hands the rest back. A stepped clock
  (``sim_driver``) uses ``0``: only what is due now. The price: a message claimed ahead and not yet sent
  when the hub dies goes out when the claim runs out (``CLAIM``), not at its time; after a failure the
  round hands back what it had not yet sent, if the store allows.
- **No transaction is open while a channel talks to the network**: a round *claims* its rows in short
  transactions of ``limit`` rows (``claim``: their ``next_attempt_at`` moves ``CLAIM`` ahead, so no other
  sender picks them), hands them to the channels with no database lock held (a slow SMS gateway does not
  stall ingest or the deadline timer), then records the outcomes ``limit`` at a time in short transactions
  (``record``): only the outcome columns, so a link used meanwhile stays used. A row cancelled meanwhile
  (its alarm acknowledged) stays cancelled unless the channel had already accepted it. A round that has
  sent for ``SEND_BUDGET_S`` (a slow gateway) releases the rest of its claim at once rather than let it
  run out mid-round.
- **Outcome of an attempt** (``ports.Delivery``; a ``model.SendOutcome``):

  - accepted (``ok``): ``SENT``, with ``sent_at`` and the attempt counted (``last_error`` keeps the failure
    before, if there was one);
  - refused but worth another try (``retry``: timeout, 5xx, 429, SMTP 4xx...): stays ``PENDING``, with
    ``next_attempt_at`` after a back-off of 30 s, 1 min, 2 min, ... at most 15 min (``retry_delay``) and
    ``last_error`` the channel's ``detail``; after ``max_attempts`` attempts (8 by default, about 45
    minutes) it is ``FAILED``;
  - refused for good (other 4xx, a malformed address or text, a refused login): ``FAILED`` at once;
  - no channel configured under the row's ``channel``: ``FAILED`` at once with ``last_error`` "channel
    <name> is not configured", without an attempt (a channel that is not there will not come by waiting).

  A finished row (``SENT`` or ``FAILED``) keeps in ``next_attempt_at`` the time of its last attempt.
  ``last_error`` and the logs hold only the channel's ``detail``, never the text or the address.
- **Never twice, as far as the hub can tell**: ``claim`` only takes ``PENDING`` rows (a database store
  skips rows another transaction holds), and a ``SENT`` row is never picked again. What the hub
  cannot promise: if it crashes (or the database fails) after a channel accepted a message but before the
  outcome was recorded, the row is still ``PENDING`` and is sent once more when its claim runs out
  (``CLAIM`` later). At-least-once is the honest guarantee; every channel carries the notification ``key``
  for that case (``Idempotency-Key`` header of the SMS gateway and of webhooks, the e-mail ``Message-ID``
  derived from it), so a receiver can drop the repeat. Outcomes are recorded every ``limit`` messages
  (``ROUND``, 500), so the window is that many.
- **The console channel** (``ConsoleChannel``, ``console``) has nothing to hand over: the operator console
  and the API show a console notification once it is ``SENT``, so "delivering" it is marking it sent, and
  it always succeeds.
- **A channel that keeps failing** (a notification refused for good, or not accepted ``MOVE_ON_AFTER``
  times): the channel's alarm (``channel_condition``: kind ``notify.channel_failing`` on the channel, for
  operators in the console) is raised or counted, and the notification's escalation moves on
  (``move_on``, ``Escalations.move_on``: the alarm's next step now, or the response centre), once per
  notification. The next notification the channel accepts resolves the channel's alarm.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from dispenser_hub.domain.alarms import Condition
from dispenser_hub.domain.model import NotificationStatus, SendOutcome, SubjectKind
from dispenser_hub.services.alarm_records import end_alarm, raise_alarm
from dispenser_hub.services.routing import CONSOLE

if TYPE_CHECKING:
    from collections.abc import Mapping

    from dispenser_hub.domain.model import Notification
    from dispenser_hub.ports import Clock, NotificationChannel, UnitOfWork, UnitOfWorkFactory

FIRST_RETRY: Final = timedelta(seconds=30)
MAX_RETRY: Final = timedelta(minutes=15)
DEFAULT_MAX_ATTEMPTS: Final = 8
ROUND: Final = 500
"""Notifications claimed and recorded at a time (after a crash, sent again: the at-least-once window)."""
CLAIM: Final = timedelta(minutes=2)
"""How long a round's claim on its rows lasts (a crash between sending and recording: sent again after)."""
SEND_BUDGET_S: Final = 30.0
"""A round stops handing rows to channels after this long and releases the rest (well inside ``CLAIM``)."""
MOVE_ON_AFTER: Final = 2
"""Attempts not accepted after which a notification's escalation moves on (it keeps being retried)."""
CHANNEL_FAILING: Final = "notify.channel_failing"
AHEAD: Final = timedelta(seconds=1)
"""The hub's sender claims what falls due within this, then sends each at its time (module rules)."""
MAX_AHEAD: Final = timedelta(seconds=10)
HOLD: Final = 20 * ROUND
"""Most notifications one round claims ahead and holds (a mass of them due at one instant)."""
WAIT_STEP_S: Final = 0.005
WAIT_SLACK_S: Final = 1.0
"""How much longer than ``ahead`` (wall time) a round waits for its clock to reach a held row's time."""
IDLE_PAUSE_S: Final = 0.05
"""The sender loop's pause when a notification is due but could not be claimed (``seconds_to_next``)."""

log = logging.getLogger(__name__)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 30 s doubling, at most 15 min."""
    factor: int = 2 ** max(0, attempts - 1)
    return min(MAX_RETRY, FIRST_RETRY * factor)


class MoveOn(Protocol):
    """``Escalations.move_on``: the escalation of an alarm whose notification could not be delivered."""

    def __call__(self, uow: UnitOfWork, alarm_id: int, failed: Notification, now: datetime) -> object:
        """Move the alarm's escalation on, in ``uow``."""
        ...


def channel_condition(channel: str, detail: str) -> Condition:
    """The alarm of a channel that keeps failing (yellow, for operators; ``detail``: the channel's error)."""
    return Condition(
        kind=CHANNEL_FAILING,
        subject_kind=SubjectKind.CHANNEL,
        subject_id=channel,
        severity=2,
        detail=f"notifications over {channel} are not delivered: {detail}"[:500],
    )


def not_configured(channel: str) -> str:
    """The ``last_error`` of a notification for a channel nobody configured."""
    return f"channel {channel} is not configured"


class NotificationSender:
    """Sends due notifications from the outbox through ``channels`` (call ``send_due`` from a timer).

    Args:
        uow_factory: The store.
        clock: The hub's time.
        channels: The configured channels by name (``adapters.notify.factory.channels_from_settings``).
        max_attempts: Attempts before a notification that keeps failing (``retry``) is ``FAILED``.
        move_on: Called (in the round's transaction) with the alarm id of a notification that could not be
            delivered (``Escalations.move_on``); ``None``: the escalation waits for its next step.
        ahead: Claim what falls due this soon and send each at its time (``AHEAD`` in the hub; at most
            ``MAX_AHEAD``). ``0`` (the default, for stepped clocks): only what is due now.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        channels: Mapping[str, NotificationChannel],
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        move_on: MoveOn | None = None,
        ahead: timedelta = timedelta(0),
    ) -> None:
        if max_attempts < 1:
            msg = "max_attempts must be at least 1"
            raise ValueError(msg)
        self._uow_factory = uow_factory
        self._clock = clock
        self._channels = dict(channels)
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        self._move_on = move_on
        if not timedelta(0) <= ahead <= MAX_AHEAD:
            msg = f"ahead must be 0-{MAX_AHEAD.total_seconds():.0f} s"
            raise ValueError(msg)
        self._ahead = ahead
        self._healthy: set[str] = set()
        """Channels that accepted a notification since the start, with no failure after it."""
        self._next_due: datetime | None = None
        """The earliest pending notification's due time, as the last round left the outbox."""
        self._idle = False
        """Whether the last round claimed nothing."""

    def send_due(self, limit: int = ROUND) -> int:
        """Send every due notification, claimed and recorded ``limit`` at a time; how many were accepted.

        One call at a time: a second caller waits, then finds nothing left to send.
        """
        if limit < 1:
            msg = "limit must be at least 1"
            raise ValueError(msg)
        with self._lock:
            sent = 0
            while True:
                more, accepted = self._round(limit)
                sent += accepted
                if not more:
                    return sent

    def _round(self, limit: int) -> tuple[bool, int]:
        """Claim what is due by ``ahead`` from now, send each at its time, record every ``limit`` rows.

        Returns (whether more may be due, how many channels accepted). See the module rules.
        """
        now = self._clock.now().astimezone(UTC)
        held = self._claim(now, limit)
        self._idle = not held
        run = _Run(held, stamp=now, patience=time.monotonic() + self._ahead.total_seconds() + WAIT_SLACK_S)
        accepted, stop = 0, None
        try:
            while run.position < len(held) and stop is None:
                attempted, outcomes, stop = self._send_chunk(run, limit)
                unsent: list[Notification] = held[run.position :] if stop is not None else []
                accepted += self._record(attempted, outcomes, unsent, run.stamp)
        except Exception:
            self._release(held[run.position :])  # not yet handed to a channel: due again at once
            raise
        if stop is not None:
            return stop == "budget", accepted  # a stalled clock: the loop tries again later
        return len(held) >= HOLD, accepted

    def _send_chunk(self, run: _Run, limit: int) -> tuple[list[Notification], list[SendOutcome], str | None]:
        """Hand the next ``limit`` held rows to their channels, each at its time (see the module rules).

        Returns the rows attempted, their outcomes, and why it stopped early (``"budget"``: a slow channel,
        ``"clock"``: it stands still), if it did.
        """
        first = run.position
        chunk = run.held[first : first + limit]
        live = {notification.id for notification in chunk}
        attempted: list[Notification] = []
        outcomes: list[SendOutcome] = []
        for notification in chunk:
            if (outcomes or first) and time.monotonic() - run.started > SEND_BUDGET_S:
                return attempted, outcomes, "budget"  # the rest is released, before its claim runs out
            if notification.next_attempt_at > run.stamp:  # claimed ahead: wait for its time
                reached = self._wait_until(notification.next_attempt_at, run.patience)
                if reached is None:
                    return attempted, outcomes, "clock"
                run.stamp = reached
                live = self._still_pending(chunk[run.position - first :])  # acknowledged meanwhile?
            run.position += 1
            if notification.id in live:
                attempted.append(notification)
                outcomes.append(self._attempt(notification, run.stamp))
        return attempted, outcomes, None

    def _claim(self, now: datetime, limit: int) -> list[Notification]:
        """What falls due by ``now + ahead`` (at most ``HOLD``), claimed ``limit`` per transaction."""
        held: list[Notification] = []
        while len(held) < HOLD:
            with self._uow_factory() as uow:
                claimed = uow.notifications.claim(now + self._ahead, until=now + CLAIM, limit=limit)
                if not claimed and not held:
                    self._next_due = uow.notifications.next_due()
                uow.commit()
            held += claimed
            if len(claimed) < limit:
                break
        return held

    def _still_pending(self, rows: list[Notification]) -> set[int | None]:
        """The ids of ``rows`` still pending (an acknowledgement cancels rows the sender may be holding)."""
        with self._uow_factory() as uow:
            return set(uow.notifications.pending_of([stored_id(row) for row in rows]))

    def _record(
        self,
        attempted: list[Notification],
        outcomes: list[SendOutcome],
        unsent: list[Notification],
        now: datetime,
    ) -> int:
        """Record a chunk's outcomes and hand ``unsent`` back (due as before); how many were accepted."""
        with self._uow_factory() as uow:
            stored = uow.notifications.record(outcomes + [_released(n) for n in unsent])
            before = {notification.id: notification for notification in attempted}
            for after in stored:
                if after.id in before:
                    self._follow_up(uow, before[after.id], after, now)
            self._next_due = uow.notifications.next_due()
            uow.commit()
        return sum(after.status is NotificationStatus.SENT for after in stored)

    def _release(self, rows: list[Notification]) -> None:
        """Hand ``rows`` back unsent after a failure, if the store allows (else their claim runs out)."""
        if not rows:
            return
        try:
            with self._uow_factory() as uow:
                uow.notifications.record([_released(row) for row in rows])
                uow.commit()
        except Exception:  # noqa: BLE001 - the round's own failure is what is raised
            log.warning(
                "could not hand %d claimed notifications back; they are due when the claim ends", len(rows)
            )

    def _wait_until(self, due: datetime, patience: float) -> datetime | None:
        """Sleep until the hub's clock reaches ``due`` (short steps: a simulated clock may run faster).

        ``None`` if it has not by ``patience`` (``time.monotonic``): a clock that stands still or went back.
        """
        while (now := self._clock.now()) < due:
            if time.monotonic() > patience:
                return None
            time.sleep(min(WAIT_STEP_S, (due - now).total_seconds()))
        return now.astimezone(UTC)

    def seconds_to_next(self, at_most: float) -> float:
        """The sender loop's sleep: until ``ahead`` before the next notification's time, at most ``at_most``.

        From the earliest pending notification seen by the last round (no transaction of its own: whoever
        adds one due sooner wakes the loop, as a deadline tick that fired something does). ``0`` if one is
        due; ``at_most`` if nothing is pending; ``IDLE_PAUSE_S`` if one is due but the last round could
        claim nothing (another sender holds it, PostgreSQL). Seconds of the hub's clock (a simulated clock
        running faster makes the sleep longer than needed; ``at_most`` bounds it).
        """
        earliest = self._next_due
        if earliest is None:
            return at_most
        pause = (earliest - self._ahead - self._clock.now()).total_seconds()
        if pause <= 0 and self._idle:
            return min(at_most, IDLE_PAUSE_S)
        return min(at_most, max(0.0, pause))

    def _follow_up(self, uow: UnitOfWork, before: Notification, after: SendOutcome, now: datetime) -> None:
        """The channel's alarm and the escalation after an attempt (see the module rules)."""
        channel = before.channel
        if after.status is NotificationStatus.SENT:
            if channel not in self._healthy:  # also clears an alarm left from before a restart
                end_alarm(uow, channel_condition(channel, "").dedup_key, "a notification went through", now)
                self._healthy.add(channel)
            return
        undeliverable = after.status is NotificationStatus.FAILED or after.attempts >= MOVE_ON_AFTER
        if not undeliverable or before.attempts >= MOVE_ON_AFTER or channel == CONSOLE:
            return  # still worth waiting for, or moved on already
        self._healthy.discard(channel)
        raise_alarm(uow, channel_condition(channel, after.last_error or "not delivered"), now)
        if before.alarm_id is not None and self._move_on is not None:
            self._move_on(uow, before.alarm_id, after.applied_to(before), now)

    def _attempt(self, notification: Notification, now: datetime) -> SendOutcome:
        """The outcome of one attempt (see the module rules)."""
        row_id = stored_id(notification)
        channel = self._channels.get(notification.channel)
        if channel is None:
            log.warning("notification %s: %s", row_id, not_configured(notification.channel))
            return SendOutcome(
                row_id,
                NotificationStatus.FAILED,
                notification.attempts,
                now,
                last_error=not_configured(notification.channel),
            )
        delivery = channel.send(
            notification.address, notification.subject, notification.text, key=notification.key
        )
        attempts = notification.attempts + 1
        if delivery.ok:  # the last failure before it stays on record
            return SendOutcome(
                row_id,
                NotificationStatus.SENT,
                attempts,
                now,
                sent_at=now,
                last_error=notification.last_error,
            )
        if delivery.retry and attempts < self._max_attempts:
            log.info(
                "notification %s over %s not accepted (attempt %d): %s; trying again",
                notification.id,
                notification.channel,
                attempts,
                delivery.detail,
            )
            return SendOutcome(
                row_id,
                NotificationStatus.PENDING,
                attempts,
                now + retry_delay(attempts),
                last_error=delivery.detail,
            )
        log.warning(
            "notification %s over %s failed after %d attempt(s): %s",
            notification.id,
            notification.channel,
            attempts,
            delivery.detail,
        )
        return SendOutcome(row_id, NotificationStatus.FAILED, attempts, now, last_error=delivery.detail)


@dataclasses.dataclass
class _Run:
    """A round's progress through the rows it holds."""

    held: list[Notification]
    stamp: datetime
    """The hub's time the round has reached (the outcomes' time)."""
    patience: float
    """``time.monotonic()`` after which a clock that has not reached a held row's time is given up on."""
    position: int = 0
    """Rows handed to a channel, or skipped as cancelled, so far."""
    started: float = dataclasses.field(default_factory=time.monotonic)


def stored_id(notification: Notification) -> int:
    """The id of a notification read from the outbox."""
    if notification.id is None:  # pragma: no cover - the outbox gives stored rows
        msg = "a claimed notification has an id"
        raise ValueError(msg)
    return notification.id


def _released(unsent: Notification) -> SendOutcome:
    """A claimed notification handed back unsent, due when it was (its other columns as they were)."""
    return SendOutcome(
        stored_id(unsent),
        NotificationStatus.PENDING,
        unsent.attempts,
        unsent.next_attempt_at,
        sent_at=unsent.sent_at,
        last_error=unsent.last_error,
    )
