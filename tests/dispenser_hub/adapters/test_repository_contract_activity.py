"""Repository contract, part 2: events, dead letters, commands, alarms and their log, audit, time, races.

The same backends as part 1 (``test_repository_contract.py``): memory, SQLite, PostgreSQL. Orders are part
of the contract: services page through these lists and the console shows them as they come.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.db._activity import SqlEventRepository
from dispenser_hub.adapters.db._alarms import SqlAlarmRepository
from dispenser_hub.adapters.db._devices import SqlBindingRepository
from dispenser_hub.domain.model import (
    AlarmAction,
    AlarmLogEntry,
    AlarmStatus,
    AuditEntry,
    CommandStatus,
    DeadLetter,
    Presence,
)
from dispenser_hub.ports import ConflictError, NotFoundError
from tests.support.storage import (
    BACKENDS,
    SQL_BACKENDS,
    T0,
    Backend,
    alarm,
    binding,
    command,
    device,
    event,
    migrated_sqlite_template,
    open_backend,
    patient,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

OSLO_WINTER = timezone(timedelta(hours=1))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, sqlite_template)


def _with_devices(backend: Backend, *numbers: int) -> None:
    with backend.uow_factory() as uow:
        for number in numbers:
            uow.devices.add(device(number))
        uow.commit()


# -- events ----------------------------------------------------------------------------------------------


def test_an_event_is_stored_once_per_device_and_message_id(backend: Backend) -> None:
    _with_devices(backend, 17, 18)
    with backend.uow_factory() as uow:
        stored = uow.events.add(event("RM3-000017", "m1", corr_id="c-1"))
        assert stored is not None
        assert stored.id is not None
        assert uow.events.add(event("RM3-000017", "m1", type_="dose.missed")) is None
        assert uow.events.add(event("RM3-000018", "m1")) is not None  # same id, other device: stored
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.events.add(event("RM3-000099", "m1"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.events.add(event("RM3-000017", "m1")) is None
        assert uow.events.exists("RM3-000017", "m1")
        assert not uow.events.exists("RM3-000017", "m2")
        assert uow.events.select(device_id="RM3-000017") == [stored]
        assert uow.events.count() == 2


def test_events_added_in_one_batch_come_back_in_order_with_duplicates_as_none(backend: Backend) -> None:
    _with_devices(backend, 17, 18)
    with backend.uow_factory() as uow:
        earlier = uow.events.add(event("RM3-000017", "m0"))
        uow.commit()
    batch = [
        event("RM3-000017", "m1", seq=1),
        event("RM3-000017", "m0"),  # stored before
        event("RM3-000018", "m1", seq=1),  # same msg_id, other device
        event("RM3-000017", "m1", seq=9, type_="heartbeat"),  # the batch's own duplicate
        event("RM3-000017", "m2", seq=2, body={"ø": [1, None]}),
    ]
    with backend.uow_factory() as uow:
        results = uow.events.add_many(batch)
        assert [r is not None for r in results] == [True, False, True, False, True]
        assert uow.events.add_many([]) == []
        uow.commit()
    stored = [r for r in results if r is not None]
    assert [(r.device_id, r.msg_id, r.seq) for r in stored] == [
        ("RM3-000017", "m1", 1),
        ("RM3-000018", "m1", 1),
        ("RM3-000017", "m2", 2),
    ]
    with backend.uow_factory() as uow:
        assert uow.events.select() == [*reversed(stored), earlier]  # ids in batch order
        assert uow.events.count() == 4


def test_a_batch_of_events_with_an_unknown_device_stores_nothing(backend: Backend) -> None:
    _with_devices(backend, 17)
    with backend.uow_factory() as uow:
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.events.add_many([event("RM3-000017", "m1"), event("RM3-000099", "m1")])
        assert uow.events.count() == 0


def test_events_newest_first_filtered_by_device_and_type(backend: Backend) -> None:
    _with_devices(backend, 17, 18)
    with backend.uow_factory() as uow:
        kinds = ["dose.taken", "heartbeat", "dose.missed", "heartbeat", "dose.taken"]
        mine = [
            uow.events.add(event("RM3-000017", f"a{n}", type_=kind, seq=n)) for n, kind in enumerate(kinds)
        ]
        theirs = uow.events.add(event("RM3-000018", "b0", type_="heartbeat"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.events.select() == [theirs, *reversed(mine)]
        assert uow.events.select(device_id="RM3-000017", offset=1, limit=2) == [mine[3], mine[2]]
        doses = uow.events.select(device_id="RM3-000017", types=["dose.taken", "dose.missed"])
        assert doses == [mine[4], mine[2], mine[0]]
        assert uow.events.select(types=["heartbeat"]) == [theirs, mine[3], mine[1]]
        assert uow.events.count(device_id="RM3-000017") == 5
        assert uow.events.count(device_id="RM3-000099") == 0


def test_an_event_body_is_stored_as_json_and_copied(backend: Backend) -> None:
    _with_devices(backend, 17)
    body: dict[str, object] = {"nested": {"list": [1, 2.5, "three", None, True]}, "ø": "æå"}
    with backend.uow_factory() as uow:
        stored = uow.events.add(event("RM3-000017", "m1", body=body))
        body["nested"] = "changed after add"
        uow.commit()
    with backend.uow_factory() as uow:
        (loaded,) = uow.events.select()
    assert loaded == stored
    assert loaded.body == {"nested": {"list": [1, 2.5, "three", None, True]}, "ø": "æå"}
    with backend.uow_factory() as uow, pytest.raises(ValueError, match="not a JSON object"):
        uow.events.add(event("RM3-000017", "m2", body={"when": T0}))


# -- dead letters ----------------------------------------------------------------------------------------


def test_dead_letters_keep_bytes_and_count_per_device_since(backend: Backend) -> None:
    def letter(minutes: int, device_id: str | None, raw: bytes = b"\x00\xff{not json") -> DeadLetter:
        at = T0 + timedelta(minutes=minutes)
        return DeadLetter(
            at, "dsp/v1/X/up/event", "E_SIGNATURE", "bad signature", raw, 4096, device_id, "sig"
        )

    with backend.uow_factory() as uow:
        late = uow.dead_letters.add(letter(10, "RM3-000017"))  # devices need not exist
        early = uow.dead_letters.add(letter(0, "RM3-000017", raw=b""))
        anonymous = uow.dead_letters.add(letter(5, None))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.dead_letters.select() == [late, anonymous, early]
        assert uow.dead_letters.select(device_id="RM3-000017", offset=1) == [early]
        assert uow.dead_letters.select()[0].raw == b"\x00\xff{not json"
        assert uow.dead_letters.count_since("RM3-000017", T0) == 2
        assert uow.dead_letters.count_since("RM3-000017", T0 + timedelta(minutes=10)) == 1
        assert uow.dead_letters.count_since("RM3-000017", T0 + timedelta(minutes=11)) == 0


# -- commands --------------------------------------------------------------------------------------------


def test_commands_by_message_id(backend: Backend) -> None:
    _with_devices(backend, 17)
    with backend.uow_factory() as uow:
        stored = uow.commands.add(command("RM3-000017", "c1"))
        with pytest.raises(ConflictError, match=r"^command c1 is already stored$"):
            uow.commands.add(command("RM3-000017", "c1"))
        with pytest.raises(NotFoundError, match=r"^device RM3-000099 does not exist$"):
            uow.commands.add(command("RM3-000099", "c2"))
        sent = replace(
            stored, status=CommandStatus.SENT, attempts=1, sent_at=T0, next_attempt_at=T0 + timedelta(1)
        )
        assert uow.commands.update(sent) == sent
        with pytest.raises(NotFoundError, match=r"^command c9 does not exist$"):
            uow.commands.update(command("RM3-000017", "c9"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.commands.get("c1") == sent
        assert uow.commands.get("c9") is None


def test_due_commands_are_pending_or_sent_and_earliest_first(backend: Backend) -> None:
    _with_devices(backend, 17)
    minute = timedelta(minutes=1)
    with backend.uow_factory() as uow:
        later = uow.commands.add(command("RM3-000017", "later", next_attempt_at=T0 - minute))
        resend = uow.commands.add(
            command("RM3-000017", "resend", status=CommandStatus.SENT, next_attempt_at=T0)
        )
        first = uow.commands.add(command("RM3-000017", "first", next_attempt_at=T0 - 2 * minute))
        tie = uow.commands.add(command("RM3-000017", "tie", next_attempt_at=T0 - minute))
        uow.commands.add(command("RM3-000017", "future", next_attempt_at=T0 + minute))
        uow.commands.add(command("RM3-000017", "unscheduled", next_attempt_at=None))
        for status in (CommandStatus.ACKED, CommandStatus.NACKED, CommandStatus.EXPIRED):
            uow.commands.add(command("RM3-000017", status.value, status=status, next_attempt_at=T0 - minute))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.commands.due(T0) == [first, later, tie, resend]
        assert uow.commands.due(T0, limit=2) == [first, later]
        assert uow.commands.due(T0 - 3 * minute) == []
        assert [c.msg_id for c in uow.commands.select(limit=3)] == ["expired", "nacked", "acked"]
        assert uow.commands.select(device_id="RM3-000017", offset=5) == [tie, first, resend, later]
        assert uow.commands.select(device_id="RM3-000099") == []


# -- alarms and their log --------------------------------------------------------------------------------


def test_one_open_alarm_per_dedup_key(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        jam = uow.alarms.add(alarm())
        assert jam.dedup_key == "device:RM3-000017:fault.jam"
        with pytest.raises(
            ConflictError, match=r"^an open alarm with key device:RM3-000017:fault.jam already"
        ):
            uow.alarms.add(alarm())
        acknowledged = uow.alarms.update(
            replace(jam, status=AlarmStatus.ACKNOWLEDGED, acknowledged_by="kari")
        )
        with pytest.raises(ConflictError, match="already exists"):  # acknowledged is still open
            uow.alarms.add(alarm())
        other = uow.alarms.add(alarm(kind="fault.lid"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.alarms.get(jam.id or 0) == acknowledged
        assert uow.alarms.open_by_key("device:RM3-000017:fault.jam") == acknowledged
        assert uow.alarms.open_by_key("device:RM3-000017:fault.lid") == other
        assert uow.alarms.open_by_key("device:RM3-000017:no_contact") is None
        assert uow.alarms.get(999) is None


def test_a_dedup_key_is_free_again_once_its_alarm_is_resolved(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        first = uow.alarms.add(alarm())
        resolved = replace(
            first, status=AlarmStatus.RESOLVED, resolved_at=T0 + timedelta(hours=1), resolution="ok"
        )
        uow.alarms.update(resolved)
        assert uow.alarms.open_by_key(first.dedup_key) is None
        second = uow.alarms.add(
            alarm(raised_at=T0 + timedelta(hours=2), last_raised_at=T0 + timedelta(hours=2))
        )
        with pytest.raises(ConflictError, match="already exists"):  # re-opening the old one
            uow.alarms.update(replace(resolved, status=AlarmStatus.ACTIVE))
        with pytest.raises(NotFoundError, match=r"^alarm 999 does not exist$"):
            uow.alarms.update(replace(first, id=999))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.alarms.open_by_key(first.dedup_key) == second
        assert uow.alarms.get(first.id or 0) == resolved
        repeated = uow.alarms.update(replace(second, count=2, last_raised_at=T0 + timedelta(hours=3)))
        assert uow.alarms.open_by_key(first.dedup_key) == repeated


def test_alarms_newest_first_with_filters(backend: Backend) -> None:
    hour = timedelta(hours=1)
    with backend.uow_factory() as uow:
        old = uow.alarms.add(alarm("RM3-000017", "fault.jam", last_raised_at=T0))
        new = uow.alarms.add(alarm("RM3-000018", "fault.jam", last_raised_at=T0 + 2 * hour))
        mid = uow.alarms.add(alarm("RM3-000017", "fault.lid", last_raised_at=T0 + hour))
        gone = uow.alarms.add(alarm("RM3-000017", "no_contact", last_raised_at=T0 + 3 * hour))
        gone = uow.alarms.update(replace(gone, status=AlarmStatus.RESOLVED))
        seen = uow.alarms.update(replace(mid, status=AlarmStatus.ACKNOWLEDGED))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.alarms.select() == [gone, new, seen, old]
        assert uow.alarms.select(open_only=True) == [new, seen, old]
        assert uow.alarms.select(status=AlarmStatus.ACKNOWLEDGED) == [seen]
        assert uow.alarms.select(device_id="RM3-000017", open_only=True) == [seen, old]
        assert uow.alarms.select(offset=1, limit=2) == [new, seen]


def test_the_alarm_log_is_append_only_history(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        jam = uow.alarms.add(alarm()).id or 0
        other = uow.alarms.add(alarm(kind="fault.lid")).id or 0
        entries = [
            uow.alarms.log(AlarmLogEntry(jam, T0, AlarmAction.RAISED, "system")),
            uow.alarms.log(
                AlarmLogEntry(jam, T0 + timedelta(minutes=5), AlarmAction.ACKNOWLEDGED, "kari", "on it")
            ),
        ]
        uow.alarms.log(AlarmLogEntry(other, T0, AlarmAction.RAISED, "system"))
        with pytest.raises(NotFoundError, match=r"^alarm 999 does not exist$"):
            uow.alarms.log(AlarmLogEntry(999, T0, AlarmAction.RAISED, "system"))
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.alarms.history(jam) == entries
        assert uow.alarms.history(999) == []


# -- audit -----------------------------------------------------------------------------------------------


def test_audit_entries_newest_first_by_subject(backend: Backend) -> None:
    with backend.uow_factory() as uow:
        entries = [
            uow.audit.add(AuditEntry(T0, "operator:kari", "device.register", "device:RM3-000017")),
            uow.audit.add(
                AuditEntry(T0, "operator:kari", "binding.create", "patient:1", "device RM3-000017")
            ),
            uow.audit.add(AuditEntry(T0, "system", "device.enroll", "device:RM3-000017")),
        ]
        uow.commit()
    with backend.uow_factory() as uow:
        assert uow.audit.select() == entries[::-1]
        assert uow.audit.select(subject="device:RM3-000017") == [entries[2], entries[0]]
        assert uow.audit.select(offset=1, limit=1) == [entries[1]]


# -- time ------------------------------------------------------------------------------------------------


def test_times_come_back_as_the_same_instants_in_utc(backend: Backend) -> None:
    local = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=OSLO_WINTER)
    with backend.uow_factory() as uow:
        uow.devices.add(device(17, registered_at=local, presence=Presence(online=True, last_seen_at=local)))
        uow.alarms.add(alarm(raised_at=local, last_raised_at=local))
        uow.commit()
    with backend.uow_factory() as uow:
        stored = uow.devices.get("RM3-000017")
        (stored_alarm,) = uow.alarms.select()
        silent = uow.devices.silent_since(datetime(2026, 11, 23, 8, 0, 1, tzinfo=OSLO_WINTER))
    assert stored is not None
    for value in (stored.registered_at, stored.presence.last_seen_at, stored_alarm.raised_at):
        assert value == local
        assert value is not None
        assert value.tzinfo is UTC
        assert value.hour == 7
        assert value.microsecond == 123456
    assert [d.device_id for d in silent] == ["RM3-000017"]


def test_naive_times_are_refused(backend: Backend) -> None:
    naive = datetime(2026, 11, 23, 8, 0)  # noqa: DTZ001 - the point of the test
    with backend.uow_factory() as uow:
        with pytest.raises(ValueError, match=r"Device\.registered_at is a naive datetime"):
            uow.devices.add(device(17, registered_at=naive))
        with pytest.raises(ValueError, match=r"Presence\.last_seen_at is a naive datetime"):
            uow.devices.add(device(17, presence=Presence(last_seen_at=naive)))
        with pytest.raises(ValueError, match="now is a naive datetime"):
            uow.commands.due(naive)


# -- races past the checks (SQL) -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_a_race_past_the_checks_gets_the_same_errors(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_devices(backend, 17)
    with backend.uow_factory() as uow:
        kari = uow.patients.add(patient(1)).id or 0
        ola = uow.patients.add(patient(2)).id or 0
        uow.bindings.add(binding("RM3-000017", kari))
        uow.alarms.add(alarm())
        uow.events.add(event("RM3-000017", "m1"))
        uow.commit()
    # As if another transaction had committed between our check and our write:
    monkeypatch.setattr(SqlBindingRepository, "_check", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(SqlAlarmRepository, "_check_open_key", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(SqlEventRepository, "exists", lambda *_args, **_kwargs: False)
    with backend.uow_factory() as uow:
        assert uow.events.add(event("RM3-000017", "m1")) is None  # ON CONFLICT DO NOTHING: still usable
        with pytest.raises(ConflictError, match=r"^device RM3-000017 already has an active binding$"):
            uow.bindings.add(binding("RM3-000017", ola))
    with backend.uow_factory() as uow, pytest.raises(ConflictError, match=r"^an open alarm with key device:"):
        uow.alarms.add(alarm())
    with backend.uow_factory() as uow:
        assert uow.events.count() == 1
