"""The memory store's own transaction rules (the shared ones are in the repository contract suite).

Each unit of work reads a snapshot; a writer that committed after another writer's snapshot was taken makes
that other writer's commit fail, instead of silently overwriting it.
"""

from __future__ import annotations

import threading

import pytest

from dispenser_hub.adapters.memory import MemoryStore
from dispenser_hub.ports import ConflictError
from tests.support.storage import device


def test_a_unit_of_work_reads_its_snapshot_until_it_ends() -> None:
    store = MemoryStore()
    with store() as reader:
        assert reader.devices.get("RM3-000017") is None
        with store() as writer:
            writer.devices.add(device(17))
            assert reader.devices.get("RM3-000017") is None  # not committed
            writer.commit()
        assert reader.devices.get("RM3-000017") is None  # committed after the snapshot
        reader.commit()  # nothing written: fine
        assert reader.devices.get("RM3-000017") == device(17)


def test_the_second_of_two_concurrent_writers_is_refused() -> None:
    store = MemoryStore()
    with store() as first, store() as second:
        first.devices.add(device(1))
        second.devices.add(device(2))
        first.commit()
        with pytest.raises(ConflictError, match="another unit of work committed since this one began"):
            second.commit()
    with store() as uow:
        assert [d.device_id for d in uow.devices.select()] == ["RM3-000001"]


def test_writers_in_threads_one_at_a_time_lose_nothing() -> None:
    store = MemoryStore()
    lock = threading.Lock()  # "one writer at a time", as the service's single writer guarantees

    def register(start: int) -> None:
        for number in range(start, start + 50):
            with lock, store() as uow:
                uow.devices.add(device(number))
                uow.commit()

    threads = [threading.Thread(target=register, args=(start,)) for start in (0, 100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with store() as uow:
        assert len(uow.devices.select(limit=1000)) == 150
