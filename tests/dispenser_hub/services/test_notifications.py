"""The notification dispatcher over the memory store, with a real HTTP SMS gateway and a local receiver."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.clock import ManualClock, SystemClock
from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.adapters.notify.console import ConsoleChannel
from dispenser_hub.adapters.notify.sms import HttpSmsGateway
from dispenser_hub.domain.model import Notification, NotificationStatus
from dispenser_hub.ports import Delivery
from dispenser_hub.services import notifications
from dispenser_hub.services.notifications import (
    CLAIM,
    NotificationSender,
    retry_delay,
)
from tests.support.receivers import HttpReceiver

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dispenser_hub.ports import NotificationChannel

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
NUMBER = "+4799999999"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


@pytest.fixture
def gateway(receiver: HttpReceiver) -> Iterator[HttpSmsGateway]:
    with HttpSmsGateway(f"{receiver.url}/send", token=None, sender="Responssenter", timeout_s=2) as channel:
        yield channel


def add(
    store: MemoryStore, key: str, *, channel: str = "sms", address: str = NUMBER, alarm_id: int | None = None
) -> None:
    with store() as uow:
        stored = uow.notifications.add(
            Notification(
                key=key,
                channel=channel,
                address=address,
                recipient="relative",
                subject="Alarm",
                text="Dispenseren melder feil. Ring responssenteret.",
                created_at=T0,
                next_attempt_at=T0,
                alarm_id=alarm_id,
            )
        )
        assert stored is not None
        uow.commit()


def stored(store: MemoryStore, key: str) -> Notification:
    with store() as uow:
        notification = uow.notifications.by_key(key)
    assert notification is not None
    return notification


def sender(
    store: MemoryStore, clock: ManualClock, gateway: HttpSmsGateway, *, max_attempts: int = 8
) -> NotificationSender:
    channels: dict[str, NotificationChannel] = {"sms": gateway, "console": ConsoleChannel()}
    return NotificationSender(store, clock, channels, max_attempts=max_attempts)


def test_backoff_doubles_from_30_seconds_up_to_15_minutes() -> None:
    delays = [retry_delay(attempts) for attempts in range(1, 9)]
    assert [delay.total_seconds() for delay in delays] == [30, 60, 120, 240, 480, 900, 900, 900]


def test_sent_exactly_once_with_the_key_as_idempotency_key(
    receiver: HttpReceiver, gateway: HttpSmsGateway
) -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "esc:1:0:0:contact:3")
    dispatcher = sender(store, clock, gateway)
    assert dispatcher.send_due() == 1
    [request] = receiver.requests
    assert request.headers["idempotency-key"] == "esc:1:0:0:contact:3"
    notification = stored(store, "esc:1:0:0:contact:3")
    assert notification.status is NotificationStatus.SENT
    assert (notification.sent_at, notification.attempts, notification.last_error) == (T0, 1, None)
    clock.advance(timedelta(hours=1))
    assert dispatcher.send_due() == 0
    assert len(receiver.requests) == 1


def test_a_503_is_retried_after_the_backoff_then_sent(
    receiver: HttpReceiver, gateway: HttpSmsGateway
) -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "k-503")
    dispatcher = sender(store, clock, gateway)
    receiver.responder = lambda _request: 503
    assert dispatcher.send_due() == 0
    waiting = stored(store, "k-503")
    assert waiting.status is NotificationStatus.PENDING
    assert (waiting.attempts, waiting.last_error) == (1, "HTTP 503")
    assert waiting.next_attempt_at == T0 + timedelta(seconds=30)

    receiver.responder = lambda _request: 200
    clock.advance(timedelta(seconds=29))
    assert dispatcher.send_due() == 0  # not due yet
    assert len(receiver.requests) == 1
    clock.advance(timedelta(seconds=1))
    assert dispatcher.send_due() == 1
    done = stored(store, "k-503")
    assert (done.status, done.attempts, done.sent_at) == (
        NotificationStatus.SENT,
        2,
        T0 + timedelta(seconds=30),
    )
    assert [request.headers["idempotency-key"] for request in receiver.requests] == ["k-503", "k-503"]


def test_a_400_fails_at_once_without_retry(receiver: HttpReceiver, gateway: HttpSmsGateway) -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "k-400")
    dispatcher = sender(store, clock, gateway)
    receiver.responder = lambda _request: 400
    assert dispatcher.send_due() == 0
    failed = stored(store, "k-400")
    assert (failed.status, failed.attempts, failed.last_error) == (NotificationStatus.FAILED, 1, "HTTP 400")
    clock.advance(timedelta(hours=2))
    assert dispatcher.send_due() == 0
    assert len(receiver.requests) == 1


def test_fails_after_max_attempts(receiver: HttpReceiver, gateway: HttpSmsGateway) -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "k-down")
    dispatcher = sender(store, clock, gateway, max_attempts=3)
    receiver.responder = lambda _request: 502
    for _ in range(5):
        dispatcher.send_due()
        clock.advance(timedelta(minutes=15))
    failed = stored(store, "k-down")
    assert (failed.status, failed.attempts, failed.last_error) == (NotificationStatus.FAILED, 3, "HTTP 502")
    assert len(receiver.requests) == 3


def test_an_unconfigured_channel_fails_without_an_attempt(
    receiver: HttpReceiver, gateway: HttpSmsGateway
) -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "k-mail", channel="email", address="someone@example.org")
    assert sender(store, clock, gateway).send_due() == 0
    failed = stored(store, "k-mail")
    assert failed.status is NotificationStatus.FAILED
    assert (failed.attempts, failed.last_error) == (0, "channel email is not configured")
    assert receiver.requests == []


def test_console_notifications_are_marked_sent(receiver: HttpReceiver, gateway: HttpSmsGateway) -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "k-console", channel="console", address="operator")
    assert sender(store, clock, gateway).send_due() == 1
    assert stored(store, "k-console").status is NotificationStatus.SENT
    assert receiver.requests == []


def test_only_due_notifications_in_rounds_of_at_most_limit(
    receiver: HttpReceiver, gateway: HttpSmsGateway
) -> None:
    store, clock = MemoryStore(), ManualClock(T0 - timedelta(minutes=1))
    add(store, "a")
    add(store, "b")
    add(store, "c")
    dispatcher = sender(store, clock, gateway)
    assert dispatcher.send_due() == 0  # not due before T0
    clock.advance(timedelta(minutes=1))
    assert dispatcher.send_due(limit=2) == 3  # two rounds: nothing due is left for the next tick
    assert dispatcher.send_due(limit=2) == 0
    assert sorted(request.headers["idempotency-key"] for request in receiver.requests) == ["a", "b", "c"]


class Probe:
    """A channel that looks at the database while it sends: no transaction may hold it."""

    name = "sms"

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.seen: list[NotificationStatus] = []

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        del address, subject, text
        with self.store() as uow:  # claimed: still pending, due only after the claim
            notification = uow.notifications.by_key(key)
            assert notification is not None
            self.seen.append(notification.status)
            earliest = uow.notifications.next_due()
            assert earliest is not None
            assert earliest >= notification.created_at + CLAIM  # not due before the claim ends
        return Delivery(ok=True)


def test_a_round_claims_then_sends_outside_its_transactions_then_records() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "a")
    probe = Probe(store)
    assert NotificationSender(store, clock, {"sms": probe}).send_due() == 1
    assert probe.seen == [NotificationStatus.PENDING]
    assert stored(store, "a").status is NotificationStatus.SENT


def test_a_crash_after_sending_sends_again_once_the_claim_runs_out() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "a")

    class Crashing(Probe):
        def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
            del address, subject, text, key
            raise KeyboardInterrupt  # the process dies after the gateway took it

    with pytest.raises(KeyboardInterrupt):
        NotificationSender(store, clock, {"sms": Crashing(store)}).send_due()
    probe = Probe(store)
    again = NotificationSender(store, clock, {"sms": probe})
    assert again.send_due() == 0  # claimed: not yet
    clock.advance(timedelta(minutes=2))
    assert again.send_due() == 1  # at least once: the key lets the receiver drop the repeat


def test_recording_an_outcome_keeps_a_link_used_while_the_message_was_out() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    add(store, "a")

    class UsedMeanwhile(Probe):
        def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
            del address, subject, text
            with self.store() as uow:  # the recipient clicks the link of an earlier copy
                current = uow.notifications.by_key(key)
                assert current is not None
                uow.notifications.update(dataclasses.replace(current, acknowledged_at=T0))
                uow.commit()
            return Delivery(ok=True)

    NotificationSender(store, clock, {"sms": UsedMeanwhile(store)}).send_due()
    assert (stored(store, "a").status, stored(store, "a").acknowledged_at) == (NotificationStatus.SENT, T0)


def test_a_slow_channel_releases_the_rest_of_its_round(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifications, "SEND_BUDGET_S", -1.0)  # a round sends one, releases the rest
    store, clock = MemoryStore(), ManualClock(T0)
    for key in ("a", "b", "c"):
        add(store, key)
    probe = Probe(store)
    assert NotificationSender(store, clock, {"sms": probe}).send_due(limit=3) == 3
    assert [stored(store, key).status for key in ("a", "b", "c")] == [NotificationStatus.SENT] * 3


class Stamped:
    """A channel that records when (on ``clock``) each key was handed to it."""

    name = "sms"

    def __init__(self, clock: SystemClock) -> None:
        self.clock = clock
        self.at: dict[str, datetime] = {}

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        del address, subject, text
        self.at[key] = self.clock.now()
        return Delivery(ok=True)


def _add_due(store: MemoryStore, key: str, due: datetime) -> None:
    with store() as uow:
        uow.notifications.add(
            Notification(
                key, "sms", NUMBER, "relative", "Alarm", "GUL 3.3", created_at=due, next_attempt_at=due
            )
        )
        uow.commit()


def test_ahead_claims_what_falls_due_soon_and_sends_each_at_its_time_not_before() -> None:
    store, clock = MemoryStore(), SystemClock()
    start = clock.now()
    soon, later, beyond = (
        start + timedelta(seconds=0.3),
        start + timedelta(seconds=0.5),
        start + timedelta(hours=1),
    )
    for key, due in (("soon", soon), ("later", later), ("beyond", beyond)):
        _add_due(store, key, due)
    channel = Stamped(clock)
    sender = NotificationSender(store, clock, {"sms": channel}, ahead=timedelta(seconds=1))
    assert sender.send_due() == 2  # claimed both at once, each sent when due
    assert soon <= channel.at["soon"] < soon + timedelta(seconds=0.5)
    assert later <= channel.at["later"] < later + timedelta(seconds=0.5)
    assert stored(store, "beyond").status is NotificationStatus.PENDING
    pause = sender.seconds_to_next(at_most=7200)  # until an "ahead" before the next one
    assert 3590 < pause <= 3599
    with pytest.raises(ValueError, match="ahead must be"):
        NotificationSender(store, clock, {}, ahead=timedelta(minutes=1))


def test_a_slow_channel_hands_back_every_row_it_did_not_send(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifications, "SEND_BUDGET_S", -1.0)  # each round sends one, hands the rest back
    store, clock = MemoryStore(), ManualClock(T0)
    keys = ["a", "b", "c", "d", "e"]
    for key in keys:
        add(store, key)
    channel = Stamped(SystemClock())
    sender = NotificationSender(store, clock, {"sms": channel})
    assert sender.send_due(limit=2) == 5  # five rounds of one, the rest (later chunks too) handed back
    assert sorted(channel.at) == keys
    assert [stored(store, key).attempts for key in keys] == [1] * 5
    with pytest.raises(ValueError, match="limit must be at least 1"):
        sender.send_due(limit=0)


def test_an_acknowledgement_while_a_row_is_held_stops_it() -> None:
    store, clock = MemoryStore(), SystemClock()
    due = clock.now() + timedelta(seconds=0.5)
    _add_due(store, "held", due)
    channel = Stamped(clock)
    sender = NotificationSender(store, clock, {"sms": channel}, ahead=timedelta(seconds=1))
    worker = threading.Thread(target=sender.send_due)
    worker.start()
    time.sleep(0.2)  # claimed, waiting for its time
    with store() as uow:
        held = uow.notifications.by_key("held")
        assert held is not None
        assert uow.notifications.cancel([held.id or 0]) == 1  # what an acknowledgement does
        uow.commit()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert channel.at == {}
    assert stored(store, "held").status is NotificationStatus.CANCELLED


def test_a_clock_that_stands_still_makes_the_round_hand_its_rows_back() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    due = T0 + timedelta(seconds=0.5)
    _add_due(store, "later", due)
    sender = NotificationSender(store, clock, {"sms": Stamped(SystemClock())}, ahead=timedelta(seconds=1))
    started = time.monotonic()
    worker = threading.Thread(target=sender.send_due)
    worker.start()
    time.sleep(0.2)
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 10
    later = stored(store, "later")
    assert (later.status, later.attempts, later.next_attempt_at) == (NotificationStatus.PENDING, 0, due)
