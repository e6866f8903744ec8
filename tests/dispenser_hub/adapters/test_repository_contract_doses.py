"""Repository contract, part 7: doses and the notification outbox.

The same backends as part 1 (``test_repository_contract.py``): memory, SQLite, PostgreSQL. A dose is one
record per (device, slot): putting it again replaces it and keeps its id; its device and patient must exist.
Lists come by due time, then id. A notification is unique by its key (adding it again stores nothing and
gives ``None``); the sender's ``claim`` takes pending notifications due at or before "now", earliest
first, and on PostgreSQL two senders never get the same rows (``SKIP LOCKED``); ``record``, ``cancel`` and
``bring_forward`` change only rows their rule allows. The address is encrypted at rest on the SQL
backends. Every time comes back as the same instant in UTC, and nothing is kept without a commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from dispenser_hub.domain.doses import Dose, DoseState
from dispenser_hub.domain.model import Notification, NotificationStatus, SendOutcome
from dispenser_hub.ports import NotFoundError
from tests.support.storage import (
    BACKENDS,
    SQL_BACKENDS,
    T0,
    Backend,
    alarm,
    device,
    field_cipher,
    migrated_sqlite_template,
    open_backend,
    patient,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE = timezone(timedelta(hours=-5, minutes=-30))
ZULU = timezone(timedelta(0), "Z")
"""UTC, but not ``datetime.UTC`` itself: a dose only takes zero-offset times; they come back as ``UTC``."""
D17 = "RM3-000017"
D18 = "RM3-000018"
PHONE = "+4791234567"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


@pytest.fixture(params=[p for p in BACKENDS if p.id == "postgresql"])
def postgresql(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


def _registry(backend: Backend) -> tuple[int, int]:
    """Dispensers RM3-000017 and RM3-000018 and two patients (their ids)."""
    with backend.uow_factory() as uow:
        uow.devices.add(device(17))
        uow.devices.add(device(18))
        kari = uow.patients.add(patient(1)).id or 0
        ola = uow.patients.add(patient(2)).id or 0
        uow.commit()
    return kari, ola


def _dose(patient_id: int, slot_id: str, due: datetime = T0, *, device_id: str = D17, **changes: Any) -> Dose:
    values: dict[str, Any] = {"opens": due - 30 * MINUTE, "closes": due + HOUR, "pouch_id": f"P-{slot_id}"}
    return Dose(device_id=device_id, patient_id=patient_id, slot_id=slot_id, due=due, **(values | changes))


def _put(backend: Backend, *doses: Dose) -> list[Dose]:
    with backend.uow_factory() as uow:
        stored = [uow.doses.put(dose) for dose in doses]
        uow.commit()
    return stored


def _notification(key: str, next_attempt_at: datetime = T0, **changes: Any) -> Notification:
    values: dict[str, Any] = {
        "channel": "sms",
        "address": PHONE,
        "recipient": "contact:7",
        "subject": "Dose not taken",
        "text": "A dose was not confirmed taken. Open the console for details.",
        "created_at": T0 - HOUR,
    }
    return Notification(key=key, next_attempt_at=next_attempt_at, **(values | changes))


def _add(backend: Backend, *notifications: Notification) -> list[Notification]:
    with backend.uow_factory() as uow:
        stored = [uow.notifications.add(notification) for notification in notifications]
        uow.commit()
    assert all(notification is not None for notification in stored)
    return [notification for notification in stored if notification is not None]


def _alarm_ids(backend: Backend) -> tuple[int, int]:
    with backend.uow_factory() as uow:
        first = uow.alarms.add(alarm(D17, "fault.jam")).id or 0
        second = uow.alarms.add(alarm(D17, "power.low")).id or 0
        uow.commit()
    return first, second


# -- doses -----------------------------------------------------------------------------------------------


def test_a_dose_round_trips_exactly(backend: Backend) -> None:
    kari, _ = _registry(backend)
    due = (T0 + timedelta(microseconds=7)).astimezone(ZULU)
    record = _dose(
        kari,
        "s-20261123-0800",
        due,
        opens=(T0 - 30 * MINUTE).astimezone(ZULU),
        closes=T0 + HOUR,
        state=DoseState.MISSED,
        taken_at=(T0 + 2 * HOUR).astimezone(ZULU),
        outcome_at=T0 + HOUR,
        reason="no_confirmation",
        reminders=3,
        corrected_at=T0 + 3 * HOUR,
        skipped_by="nurse:åse",
    )
    with backend.uow_factory() as uow:
        assert uow.doses.get(D17, "s-20261123-0800") is None
        added = uow.doses.put(record)
        uow.commit()
    assert added.id is not None
    assert added == replace(record, id=added.id)
    assert added.due == T0 + timedelta(microseconds=7)
    for value in (added.due, added.opens, added.closes, added.taken_at, added.outcome_at, added.corrected_at):
        assert value is not None
        assert value.tzinfo is UTC
    with backend.uow_factory() as uow:
        stored = uow.doses.get(D17, "s-20261123-0800")
        assert uow.doses.get(D18, "s-20261123-0800") is None
        assert uow.doses.get(D17, "other") is None
    assert stored == added
    assert stored is not None
    assert stored.state is DoseState.MISSED
    assert stored.due.tzinfo is UTC
    assert stored.taken_at is not None
    assert stored.taken_at.tzinfo is UTC


def test_a_dose_pot_dose_round_trips_with_its_defaults(backend: Backend) -> None:
    kari, _ = _registry(backend)
    (added,) = _put(backend, _dose(kari, "pot-1", pouch_id=None, pot=5))
    assert added.state is DoseState.SCHEDULED
    with backend.uow_factory() as uow:
        stored = uow.doses.get(D17, "pot-1")
    assert stored == added
    assert stored is not None
    assert (stored.pot, stored.pouch_id, stored.reminders, stored.reason) == (5, None, 0, None)


def test_putting_a_dose_again_replaces_it_and_keeps_its_id(backend: Backend) -> None:
    kari, _ = _registry(backend)
    first, other = _put(backend, _dose(kari, "s-1"), _dose(kari, "s-1", device_id=D18))
    assert first.id != other.id
    with backend.uow_factory() as uow:
        # Read it first: a row the session loaded earlier must not come back stale after the put.
        assert uow.doses.get(D17, "s-1") == first
        assert uow.doses.for_device(D17) == [first]
        reminded = uow.doses.put(replace(first, state=DoseState.REMINDED, reminders=1))
        assert reminded == replace(first, state=DoseState.REMINDED, reminders=1)
        assert uow.doses.get(D17, "s-1") == reminded
        assert uow.doses.for_device(D17) == [reminded]
        # An id the caller gives does not matter: the key decides.
        taken = uow.doses.put(replace(first, id=None, state=DoseState.TAKEN, taken_at=T0, outcome_at=T0))
        uow.commit()
    assert taken.id == first.id
    assert taken.state is DoseState.TAKEN
    with backend.uow_factory() as uow:
        assert uow.doses.get(D17, "s-1") == taken
        assert uow.doses.get(D18, "s-1") == other
        assert uow.doses.for_patient(kari) == [taken, other]


def test_a_dose_needs_its_device_and_its_patient(backend: Backend) -> None:
    kari, _ = _registry(backend)
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.doses.put(_dose(kari, "s-1", device_id="RM3-000099"))
        with pytest.raises(NotFoundError, match=r"^patient 999 does not exist$"):
            uow.doses.put(_dose(999, "s-1"))
        # Device first (like every other reference check).
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.doses.put(_dose(999, "s-1", device_id="RM3-000099"))
        # The unit of work stays usable.
        stored = uow.doses.put(_dose(kari, "s-1"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.doses.for_device(D17) == [stored]


def test_doses_come_by_due_time_then_id(backend: Backend) -> None:
    kari, ola = _registry(backend)
    late, tie_b, early, tie_a, ola_dose, other_device = _put(
        backend,
        _dose(kari, "late", T0 + 2 * HOUR),
        _dose(kari, "tie-b", T0),
        _dose(kari, "early", T0 - timedelta(days=1)),
        _dose(kari, "tie-a", T0),
        _dose(ola, "ola", T0 - HOUR),
        _dose(kari, "d18", T0 + HOUR, device_id=D18),
    )
    with backend.uow_factory() as uow:
        # Ties on due: by id (tie-b was put before tie-a).
        assert uow.doses.for_device(D17) == [early, ola_dose, tie_b, tie_a, late]
        assert uow.doses.for_device(D17, limit=2) == [early, ola_dose]
        assert uow.doses.for_device(D17, limit=0) == []
        assert uow.doses.for_device(D18) == [other_device]
        assert uow.doses.for_device("RM3-000099") == []
        assert uow.doses.for_patient(kari) == [early, tie_b, tie_a, other_device, late]
        assert uow.doses.for_patient(kari, limit=3) == [early, tie_b, tie_a]
        assert uow.doses.for_patient(ola) == [ola_dose]
        assert uow.doses.for_patient(999) == []
        with pytest.raises(ValueError, match="must not be negative"):
            uow.doses.for_device(D17, limit=-1)
        with pytest.raises(ValueError, match="must not be negative"):
            uow.doses.for_patient(kari, limit=-1)


def test_since_and_until_filter_by_due_time(backend: Backend) -> None:
    kari, _ = _registry(backend)
    before, at_t0, after, last = _put(
        backend,
        _dose(kari, "before", T0 - timedelta(microseconds=1)),
        _dose(kari, "at-t0", T0),
        _dose(kari, "after", T0 + HOUR),
        _dose(kari, "last", T0 + 2 * HOUR),
    )
    since = T0.astimezone(MINUS_FIVE)
    until = (T0 + 2 * HOUR).astimezone(PLUS_TWO)
    with backend.uow_factory() as uow:
        # since: due at or after; until: due before.
        assert uow.doses.for_device(D17, since=since) == [at_t0, after, last]
        assert uow.doses.for_device(D17, since=T0 + 3 * HOUR) == []
        assert uow.doses.for_patient(kari, since=since) == [at_t0, after, last]
        assert uow.doses.for_patient(kari, until=until) == [before, at_t0, after]
        assert uow.doses.for_patient(kari, since=since, until=until) == [at_t0, after]
        assert uow.doses.for_patient(kari, since=since, until=since) == []
        assert uow.doses.for_patient(kari, since=since, until=until, limit=1) == [at_t0]
        with pytest.raises(ValueError, match="naive"):
            uow.doses.for_device(D17, since=T0.replace(tzinfo=None))
        with pytest.raises(ValueError, match="naive"):
            uow.doses.for_patient(kari, until=T0.replace(tzinfo=None))


def test_in_states_gives_the_patients_doses_in_those_states_by_due_time(backend: Backend) -> None:
    kari, ola = _registry(backend)
    missed_late, due_now, unknown, taken, missed_early, ola_missed = _put(
        backend,
        _dose(kari, "missed-late", T0 + HOUR, state=DoseState.MISSED, reason="not_taken", outcome_at=T0),
        _dose(kari, "due", T0, state=DoseState.DUE),
        _dose(kari, "unknown", T0 - HOUR, state=DoseState.UNKNOWN, reason="device_silent"),
        _dose(kari, "taken", T0 - 2 * HOUR, state=DoseState.TAKEN, taken_at=T0),
        _dose(kari, "missed-early", T0 - 3 * HOUR, state=DoseState.MISSED, reason="no_confirmation"),
        _dose(ola, "ola-missed", T0, state=DoseState.MISSED, device_id=D18),
    )
    with backend.uow_factory() as uow:
        assert uow.doses.in_states(kari, [DoseState.MISSED]) == [missed_early, missed_late]
        # Members or their string values, in any collection.
        assert uow.doses.in_states(kari, {"missed", DoseState.UNKNOWN}) == [
            missed_early,
            unknown,
            missed_late,
        ]
        assert uow.doses.in_states(kari, ("due", "taken")) == [taken, due_now]
        assert uow.doses.in_states(kari, frozenset({DoseState.SCHEDULED})) == []
        assert uow.doses.in_states(kari, []) == []
        assert uow.doses.in_states(ola, ["missed"]) == [ola_missed]
        assert uow.doses.in_states(999, ["missed"]) == []
        with pytest.raises(ValueError, match="not_a_state"):
            uow.doses.in_states(kari, ["not_a_state"])


def test_no_dose_is_kept_without_a_commit(backend: Backend) -> None:
    kari, _ = _registry(backend)
    (kept,) = _put(backend, _dose(kari, "kept"))
    with backend.uow_factory() as uow:
        uow.doses.put(_dose(kari, "dropped"))
        uow.doses.put(replace(kept, state=DoseState.DUE))
        assert uow.doses.get(D17, "dropped") is not None
    with backend.uow_factory() as uow:
        uow.doses.put(replace(kept, state=DoseState.CANCELLED, reason="plan change"))
        uow.rollback()
        assert uow.doses.get(D17, "dropped") is None
        assert uow.doses.get(D17, "kept") == kept
        assert uow.doses.for_patient(kari) == [kept]


# -- notifications ---------------------------------------------------------------------------------------


def test_a_notification_round_trips_exactly(backend: Backend) -> None:
    first_alarm, _ = _alarm_ids(backend)
    record = _notification(
        "esc:1:step-1:0:contact:7",
        (T0 + timedelta(microseconds=7)).astimezone(PLUS_TWO),
        created_at=T0.astimezone(MINUS_FIVE),
        alarm_id=first_alarm,
        step_key="step-1",
        subject="Dose «ikke tatt» 💊",
    )
    with backend.uow_factory() as uow:
        assert uow.notifications.by_key(record.key) is None
        added = uow.notifications.add(record)
        uow.commit()
    assert added is not None
    assert added.id is not None
    assert added == replace(record, id=added.id)
    assert added.status is NotificationStatus.PENDING
    assert added.next_attempt_at.tzinfo is UTC
    assert added.created_at.tzinfo is UTC
    with backend.uow_factory() as uow:
        by_id = uow.notifications.get(added.id)
        by_key = uow.notifications.by_key(record.key)
        assert uow.notifications.get(999) is None
        assert uow.notifications.by_key("esc:other") is None
    assert by_id == by_key == added
    assert by_id is not None
    assert by_id.address == PHONE
    assert by_id.next_attempt_at == T0 + timedelta(microseconds=7)
    assert by_id.next_attempt_at.tzinfo is UTC
    assert by_id.created_at == T0
    assert by_id.created_at.tzinfo is UTC
    assert by_id.status is NotificationStatus.PENDING


def test_a_key_already_stored_gives_none_and_stores_nothing(backend: Backend) -> None:
    (first,) = _add(backend, _notification("esc:1:0"))
    with backend.uow_factory() as uow:
        assert uow.notifications.add(_notification("esc:1:0", T0 + HOUR, address="other@example.org")) is None
        second = uow.notifications.add(_notification("esc:1:1"))
        assert uow.notifications.add(_notification("esc:1:1", channel="email")) is None
        uow.commit()
    assert second is not None
    assert second.id not in {None, first.id}
    with backend.uow_factory() as uow:
        assert uow.notifications.by_key("esc:1:0") == first
        assert uow.notifications.by_key("esc:1:1") == second
        claimed = uow.notifications.claim(T0 + timedelta(days=1), until=T0 + HOUR)
        assert claimed == [first, second]  # as they were: due when they were


def test_a_notification_needs_its_alarm(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^alarm 999 does not exist$"):
            uow.notifications.add(_notification("k", alarm_id=999))
        with pytest.raises(ValueError, match="naive"):
            uow.notifications.add(_notification("k", T0.replace(tzinfo=None)))
        stored = uow.notifications.add(_notification("k"))
        uow.commit()
    assert stored is not None
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^alarm 999 does not exist$"):
            uow.notifications.update(replace(stored, alarm_id=999))
        assert uow.notifications.get(stored.id or 0) == stored


def test_update_replaces_the_notification_with_its_id(backend: Backend) -> None:
    first, second = _add(backend, _notification("first"), _notification("second", T0 + MINUTE))
    with backend.uow_factory() as uow:
        assert uow.notifications.get(first.id or 0) == first  # loaded in this session before the update
        changed = replace(
            first,
            status=NotificationStatus.SENT,
            attempts=2,
            sent_at=(T0 + 3 * MINUTE).astimezone(MINUS_FIVE),
            last_error="gateway timeout «503»",
            next_attempt_at=(T0 + 2 * MINUTE).astimezone(PLUS_TWO),
            acknowledged_at=T0 + 4 * MINUTE,
            address="+4799999999",
        )
        updated = uow.notifications.update(changed)
        assert uow.notifications.get(first.id or 0) == updated
        uow.commit()
    assert updated == replace(changed, sent_at=T0 + 3 * MINUTE, next_attempt_at=T0 + 2 * MINUTE)
    assert updated.sent_at is not None
    assert updated.sent_at.tzinfo is UTC
    assert updated.status is NotificationStatus.SENT
    with backend.uow_factory() as uow:
        assert uow.notifications.by_key("first") == updated
        assert uow.notifications.get(second.id or 0) == second
        with pytest.raises(NotFoundError, match=r"^notification 999 does not exist$"):
            uow.notifications.update(replace(first, id=999))
        with pytest.raises(NotFoundError, match="no storage id"):
            uow.notifications.update(_notification("never-stored"))
        assert uow.notifications.by_key("never-stored") is None


def test_claim_takes_pending_notifications_due_at_now_earliest_first(backend: Backend) -> None:
    late, tie_b, early, tie_a, future, boundary, sent, failed, cancelled = _add(
        backend,
        _notification("late", T0 - MINUTE),
        _notification("tie-b", T0 - 2 * MINUTE),
        _notification("early", T0 - 10 * MINUTE),
        _notification("tie-a", T0 - 2 * MINUTE),
        _notification("future", T0 + timedelta(microseconds=1)),
        _notification("boundary", T0),
        _notification("sent", T0 - 20 * MINUTE),
        _notification("failed", T0 - 20 * MINUTE),
        _notification("cancelled", T0 - 20 * MINUTE),
    )
    with backend.uow_factory() as uow:
        uow.notifications.update(replace(sent, status=NotificationStatus.SENT, sent_at=T0))
        uow.notifications.update(replace(failed, status=NotificationStatus.FAILED, attempts=5))
        uow.notifications.update(replace(cancelled, status=NotificationStatus.CANCELLED))
        uow.commit()
    until = T0 + 2 * MINUTE

    def claim(now: datetime, limit: int = 100) -> list[str]:
        """The keys claimed at ``now``, in a transaction that is rolled back (nothing claimed stays so)."""
        with backend.uow_factory() as uow:
            claimed = uow.notifications.claim(now, until=until.astimezone(PLUS_TWO), limit=limit)
            assert all(n.next_attempt_at < until and n.next_attempt_at.tzinfo is UTC for n in claimed)
            return [notification.key for notification in claimed]

    # Ties on next_attempt_at: by id (tie-b was added before tie-a).
    expected = ["early", "tie-b", "tie-a", "late", "boundary"]
    assert claim(T0) == expected
    assert claim(T0.astimezone(MINUS_FIVE)) == expected
    assert claim(T0, limit=2) == ["early", "tie-b"]
    assert claim(T0, limit=0) == []
    assert claim(T0 - timedelta(microseconds=1)) == ["early", "tie-b", "tie-a", "late"]
    assert claim(T0 - 11 * MINUTE) == []
    assert claim(T0 + timedelta(microseconds=1)) == [*expected, "future"]
    with backend.uow_factory() as uow:
        assert uow.notifications.next_due() == early.next_attempt_at
        with pytest.raises(ValueError, match="naive"):
            uow.notifications.claim(T0.replace(tzinfo=None), until=until)
        with pytest.raises(ValueError, match="naive"):
            uow.notifications.claim(T0, until=until.replace(tzinfo=None))
        with pytest.raises(ValueError, match="must not be negative"):
            uow.notifications.claim(T0, until=until, limit=-1)
        claimed = uow.notifications.claim(T0, until=until, limit=2)
        uow.commit()
    assert claimed == [early, tie_b]
    with backend.uow_factory() as uow:  # claimed: not due again before ``until``
        assert [n.key for n in uow.notifications.claim(T0, until=until)] == ["tie-a", "late", "boundary"]
        assert uow.notifications.get(early.id or 0) == replace(early, next_attempt_at=until)
        assert uow.notifications.next_due() == future.next_attempt_at
    assert (late, tie_a, future, boundary) == _stored(backend, late, tie_a, future, boundary)


def test_next_due_is_the_earliest_pending_notification(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        assert uow.notifications.next_due() is None
    first, second = _add(backend, _notification("first", T0 + HOUR), _notification("second", T0 + MINUTE))
    with backend.uow_factory() as uow:
        assert uow.notifications.next_due() == T0 + MINUTE
        uow.notifications.update(replace(second, status=NotificationStatus.CANCELLED))
        assert uow.notifications.next_due() == T0 + HOUR
        uow.notifications.update(replace(first, status=NotificationStatus.SENT))
        assert uow.notifications.next_due() is None


def test_record_stores_the_outcome_columns_only_and_never_over_a_cancelled_row(backend: Backend) -> None:
    sent, retried, cancelled, went_out, gone = _add(
        backend, *(_notification(key) for key in ("sent", "retried", "cancelled", "went-out", "gone"))
    )
    with backend.uow_factory() as uow:  # meanwhile: a link used, two rows cancelled by an acknowledgement
        uow.notifications.update(replace(sent, acknowledged_at=T0 + MINUTE))
        uow.notifications.update(replace(cancelled, status=NotificationStatus.CANCELLED))
        uow.notifications.update(replace(went_out, status=NotificationStatus.CANCELLED))
        uow.commit()
    sent_at = (T0 + 2 * MINUTE).astimezone(PLUS_TWO)
    outcomes = [
        SendOutcome(sent.id or 0, NotificationStatus.SENT, 1, T0 + 2 * MINUTE, sent_at=sent_at),
        SendOutcome(retried.id or 0, NotificationStatus.PENDING, 1, T0 + 3 * MINUTE, last_error="HTTP 503"),
        SendOutcome(cancelled.id or 0, NotificationStatus.PENDING, 1, T0 + 3 * MINUTE, last_error="HTTP 503"),
        SendOutcome(went_out.id or 0, NotificationStatus.SENT, 1, T0, sent_at=T0),
        SendOutcome(999, NotificationStatus.SENT, 1, T0, sent_at=T0),  # no such row
    ]
    with backend.uow_factory() as uow:
        stored = uow.notifications.record(outcomes)
        assert uow.notifications.record([]) == []
        uow.commit()
    assert stored == [outcomes[0], outcomes[1], outcomes[3]]
    now_sent, now_retried, now_cancelled, now_went_out, now_gone = _stored(
        backend, sent, retried, cancelled, went_out, gone
    )
    assert now_sent == replace(
        sent,
        status=NotificationStatus.SENT,
        attempts=1,
        sent_at=T0 + 2 * MINUTE,
        next_attempt_at=T0 + 2 * MINUTE,
        acknowledged_at=T0 + MINUTE,  # the link used meanwhile stays used
    )
    assert now_sent.sent_at is not None
    assert now_sent.sent_at.tzinfo is UTC
    assert now_retried == replace(retried, attempts=1, next_attempt_at=T0 + 3 * MINUTE, last_error="HTTP 503")
    assert now_cancelled == replace(cancelled, status=NotificationStatus.CANCELLED)
    assert now_went_out.status is NotificationStatus.SENT  # cancelled too late: the message went out
    assert now_gone == gone


def _stored(backend: Backend, *notifications: Notification) -> tuple[Notification, ...]:
    """The notifications as stored now, by id."""
    found: list[Notification] = []
    with backend.uow_factory() as uow:
        for notification in notifications:
            current = uow.notifications.get(notification.id or 0)
            assert current is not None
            found.append(current)
    return tuple(found)


def test_for_alarm_gives_the_alarms_notifications_oldest_first(backend: Backend) -> None:
    first_alarm, second_alarm = _alarm_ids(backend)
    newer, tie_b, older, tie_a, other, unrelated = _add(
        backend,
        _notification("newer", created_at=T0, alarm_id=first_alarm),
        _notification("tie-b", created_at=T0 - HOUR, alarm_id=first_alarm),
        _notification("older", created_at=T0 - 2 * HOUR, alarm_id=first_alarm),
        _notification("tie-a", created_at=T0 - HOUR, alarm_id=first_alarm),
        _notification("other", alarm_id=second_alarm),
        _notification("unrelated"),
    )
    assert unrelated.alarm_id is None
    with backend.uow_factory() as uow:
        assert uow.notifications.for_alarm(first_alarm) == [older, tie_b, tie_a, newer]
        assert uow.notifications.for_alarm(second_alarm) == [other]
        assert uow.notifications.for_alarm(999) == []


def test_no_notification_is_kept_without_a_commit(backend: Backend) -> None:
    (kept,) = _add(backend, _notification("kept"))
    with backend.uow_factory() as uow:
        assert uow.notifications.add(_notification("dropped")) is not None
        uow.notifications.update(replace(kept, status=NotificationStatus.SENT))
        assert uow.notifications.by_key("dropped") is not None
    with backend.uow_factory() as uow:
        uow.notifications.update(replace(kept, attempts=3))
        uow.rollback()
        assert uow.notifications.by_key("dropped") is None
        assert uow.notifications.by_key("kept") == kept
        assert uow.notifications.next_due() == kept.next_attempt_at
        # The key was never kept: it can be added now.
        assert uow.notifications.add(_notification("dropped")) is not None


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_the_address_is_encrypted_at_rest(backend: Backend) -> None:
    (stored,) = _add(backend, _notification("esc:1:0", address="kari.nordmann@example.org"))
    with backend.uow_factory() as uow:
        uow.notifications.update(replace(stored, address=PHONE))
        uow.notifications.add(_notification("esc:1:1", address="ola.nordmann@example.org"))
        uow.commit()
    raw = repr(backend.raw_rows("SELECT * FROM notification"))
    for plaintext in ("kari.nordmann", "ola.nordmann", "91234567"):
        assert plaintext not in raw
    assert "esc:1:0" in raw  # the test does look at the rows
    rows = backend.raw_rows("SELECT key, address_enc FROM notification ORDER BY id")
    cipher = field_cipher()  # a token bound to the column's context
    assert [(key, cipher.decrypt(token, context="notification.address")) for key, token in rows] == [
        ("esc:1:0", PHONE),
        ("esc:1:1", "ola.nordmann@example.org"),
    ]
    with backend.uow_factory() as uow:
        by_key = uow.notifications.by_key("esc:1:1")
        assert by_key is not None
        assert by_key.address == "ola.nordmann@example.org"


# -- PostgreSQL: two senders -----------------------------------------------------------------------------


def test_two_senders_never_claim_the_same_notifications(postgresql: Backend) -> None:
    stored = _add(postgresql, *(_notification(f"n{number}", T0 - number * MINUTE) for number in range(5)))
    earliest_first = [n.key for n in reversed(stored)]
    until = T0 + 2 * MINUTE
    with postgresql.uow_factory() as first, postgresql.uow_factory() as second:
        taken = first.notifications.claim(T0, until=until, limit=2)
        rest = second.notifications.claim(T0, until=until)
        assert [n.key for n in taken] == earliest_first[:2]
        assert [n.key for n in rest] == earliest_first[2:]
        # The first sender sends its rows; the second, holding its own, finds nothing more to claim.
        first.notifications.record(
            [SendOutcome(n.id or 0, NotificationStatus.SENT, 1, T0, sent_at=T0) for n in taken]
        )
        first.commit()
        assert second.notifications.claim(T0, until=until) == []
        second.rollback()
    with postgresql.uow_factory() as uow:
        assert [n.key for n in uow.notifications.claim(T0, until=until)] == earliest_first[2:]


def test_cancel_changes_pending_rows_only_and_untried_only_if_asked(backend: Backend) -> None:
    pending, tried, sent, gone = _add(
        backend, *(_notification(key) for key in ("pending", "tried", "sent", "g"))
    )
    with backend.uow_factory() as uow:
        uow.notifications.update(replace(tried, attempts=1, last_error="HTTP 503"))
        uow.notifications.update(replace(sent, status=NotificationStatus.SENT, attempts=1, sent_at=T0))
        uow.commit()
    ids = [n.id or 0 for n in (pending, tried, sent)] + [999]
    with backend.uow_factory() as uow:
        assert uow.notifications.cancel(ids, untried_only=True) == 1
        assert uow.notifications.cancel([]) == 0
        uow.commit()
    assert _stored(backend, pending)[0].status is NotificationStatus.CANCELLED
    assert _stored(backend, tried)[0] == replace(tried, attempts=1, last_error="HTTP 503")
    with backend.uow_factory() as uow:
        assert uow.notifications.cancel([*ids, tried.id or 0]) == 1  # the tried one; sent stays sent
        uow.commit()
    now_pending, now_tried, now_sent, now_gone = _stored(backend, pending, tried, sent, gone)
    assert [n.status for n in (now_pending, now_tried, now_sent, now_gone)] == [
        NotificationStatus.CANCELLED,
        NotificationStatus.CANCELLED,
        NotificationStatus.SENT,
        NotificationStatus.PENDING,
    ]
    assert now_tried.last_error == "HTTP 503"  # only the status changes


def test_bring_forward_moves_untried_rows_still_due_when_expected(backend: Backend) -> None:
    later = T0 + 30 * MINUTE
    stored_ahead, claimed, tried, other_time = _add(
        backend,
        _notification("ahead", later),
        _notification("claimed", later),
        _notification("tried", later),
        _notification("other", later + MINUTE),
    )
    with backend.uow_factory() as uow:
        uow.notifications.update(replace(claimed, next_attempt_at=T0 + 2 * MINUTE))  # a sender holds it
        uow.notifications.update(replace(tried, attempts=1))
        uow.commit()
    ids = [n.id or 0 for n in (stored_ahead, claimed, tried, other_time)]
    with backend.uow_factory() as uow:
        with pytest.raises(ValueError, match="naive"):
            uow.notifications.bring_forward(ids, due_at=later.replace(tzinfo=None), to=T0)
        moved = uow.notifications.bring_forward(ids, due_at=later.astimezone(MINUS_FIVE), to=T0 + MINUTE)
        uow.commit()
    assert moved == 1
    now_ahead, now_claimed, now_tried, now_other = _stored(backend, stored_ahead, claimed, tried, other_time)
    assert now_ahead == replace(stored_ahead, next_attempt_at=T0 + MINUTE)
    assert now_claimed.next_attempt_at == T0 + 2 * MINUTE
    assert (now_tried.next_attempt_at, now_other.next_attempt_at) == (later, later + MINUTE)


def test_pending_of_gives_the_ids_still_pending_in_order(backend: Backend) -> None:
    first, second, third = _add(backend, *(_notification(key) for key in ("first", "second", "third")))
    with backend.uow_factory() as uow:
        uow.notifications.cancel([second.id or 0])
        uow.commit()
    with backend.uow_factory() as uow:
        ids = [third.id or 0, second.id or 0, first.id or 0, 999, first.id or 0]
        assert uow.notifications.pending_of(ids) == sorted([first.id or 0, third.id or 0])
        assert uow.notifications.pending_of([]) == []
