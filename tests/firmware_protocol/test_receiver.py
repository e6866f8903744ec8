"""Receiver state: per-boot sequence numbers (``SequenceTracker``) and duplicates (``DuplicateFilter``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol import DuplicateFilter, ErrorCode, SeqResult, SeqStatus, SequenceTracker, new_ulid
from firmware_protocol.errors import ReplayError

if TYPE_CHECKING:
    from random import Random

BOOT_A = new_ulid(1_000, b"\xaa" * 10)
BOOT_B = new_ulid(2_000, b"\xbb" * 10)


def test_first_and_in_order() -> None:
    tracker = SequenceTracker()
    assert tracker.observe(BOOT_A, 0, "birth") == SeqResult(SeqStatus.FIRST)
    assert tracker.observe(BOOT_A, 1, "state") == SeqResult(SeqStatus.IN_ORDER)
    assert tracker.observe(BOOT_A, 2) == SeqResult(SeqStatus.IN_ORDER)


def test_joined_above_zero() -> None:
    tracker = SequenceTracker()
    assert tracker.observe(BOOT_A, 41) == SeqResult(SeqStatus.JOINED, ((0, 40),))
    assert tracker.observe(BOOT_A, 42) == SeqResult(SeqStatus.IN_ORDER, ((0, 40),))


def test_joining_far_into_a_boot_tracks_at_most_max_missing() -> None:
    tracker = SequenceTracker()
    far = 5 * SequenceTracker.MAX_MISSING
    assert tracker.observe(BOOT_A, far).missing == ((far - SequenceTracker.MAX_MISSING, far - 1),)


def test_gap_lists_missing_ranges_and_late_fills_close_them() -> None:
    tracker = SequenceTracker()
    tracker.observe(BOOT_A, 0)
    assert tracker.observe(BOOT_A, 4) == SeqResult(SeqStatus.GAP, ((1, 3),))
    assert tracker.observe(BOOT_A, 5) == SeqResult(SeqStatus.IN_ORDER, ((1, 3),))
    assert tracker.observe(BOOT_A, 8) == SeqResult(SeqStatus.GAP, ((1, 3), (6, 7)))
    assert tracker.observe(BOOT_A, 2) == SeqResult(SeqStatus.LATE_FILL, ((1, 1), (3, 3), (6, 7)))
    assert tracker.observe(BOOT_A, 1) == SeqResult(SeqStatus.LATE_FILL, ((3, 3), (6, 7)))
    assert tracker.observe(BOOT_A, 7) == SeqResult(SeqStatus.LATE_FILL, ((3, 3), (6, 6)))
    assert tracker.observe(BOOT_A, 3) == SeqResult(SeqStatus.LATE_FILL, ((6, 6),))
    assert tracker.observe(BOOT_A, 6) == SeqResult(SeqStatus.LATE_FILL, ())
    assert tracker.observe(BOOT_A, 9) == SeqResult(SeqStatus.IN_ORDER, ())


@pytest.mark.parametrize("replayed", [0, 1, 2, 4])
def test_replay_is_refused(replayed: int) -> None:
    tracker = SequenceTracker()
    for seq in (0, 1, 2, 4, 3):
        tracker.observe(BOOT_A, seq)
    with pytest.raises(ReplayError) as info:
        tracker.observe(BOOT_A, replayed, "dose.taken")
    assert (info.value.code, info.value.field) == (ErrorCode.REPLAY, "seq")
    assert str(replayed) in info.value.detail
    assert BOOT_A in info.value.detail


def test_replay_of_a_filled_gap_is_refused() -> None:
    tracker = SequenceTracker()
    tracker.observe(BOOT_A, 0)
    tracker.observe(BOOT_A, 3)
    tracker.observe(BOOT_A, 1)
    with pytest.raises(ReplayError):
        tracker.observe(BOOT_A, 1)
    assert tracker.observe(BOOT_A, 2).status is SeqStatus.LATE_FILL


def test_death_is_exempt() -> None:
    tracker = SequenceTracker()
    tracker.observe(BOOT_A, 0, "birth")
    tracker.observe(BOOT_A, 1)
    assert tracker.observe(BOOT_A, 0, "death") == SeqResult(SeqStatus.EXEMPT)
    assert tracker.observe(BOOT_A, 1, "death") == SeqResult(SeqStatus.EXEMPT)
    assert tracker.observe(BOOT_B, 7, "death") == SeqResult(SeqStatus.EXEMPT)
    assert tracker.observe(BOOT_A, 2).status is SeqStatus.IN_ORDER  # the will did not move the sequence
    assert tracker.observe(BOOT_B, 0).status is SeqStatus.FIRST  # nor start a boot
    assert tracker.observe(BOOT_B, 0, "prov.request") == SeqResult(SeqStatus.EXEMPT)


def test_boots_are_tracked_independently_and_old_boots_still_checked() -> None:
    tracker = SequenceTracker()
    tracker.observe(BOOT_A, 0)
    tracker.observe(BOOT_A, 1)
    tracker.observe(BOOT_A, 3)  # 2 missing when the device reboots
    assert tracker.observe(BOOT_B, 0).status is SeqStatus.FIRST
    assert tracker.observe(BOOT_B, 1).status is SeqStatus.IN_ORDER
    assert tracker.observe(BOOT_A, 2) == SeqResult(SeqStatus.LATE_FILL, ())  # buffered, sent after reboot
    assert tracker.observe(BOOT_A, 4).status is SeqStatus.IN_ORDER
    with pytest.raises(ReplayError):
        tracker.observe(BOOT_A, 3)
    with pytest.raises(ReplayError):
        tracker.observe(BOOT_B, 1)
    assert tracker.observe(BOOT_B, 2).status is SeqStatus.IN_ORDER


def test_at_most_max_boots_are_remembered_least_recently_used_first() -> None:
    tracker = SequenceTracker()
    boots = [new_ulid(10_000 + i, bytes(10)) for i in range(SequenceTracker.MAX_BOOTS + 1)]
    for boot in boots[: SequenceTracker.MAX_BOOTS]:
        tracker.observe(boot, 0)
    tracker.observe(boots[0], 1)  # boot 0 is now the most recently used; boot 1 the least
    tracker.observe(boots[-1], 0)  # one boot too many: boot 1 is forgotten
    assert len(tracker._boots) == SequenceTracker.MAX_BOOTS
    with pytest.raises(ReplayError):
        tracker.observe(boots[0], 1)  # still remembered
    # Forgotten: seen again as a new boot (so an old replay of an evicted boot is not caught).
    assert tracker.observe(boots[1], 0).status is SeqStatus.FIRST


def test_missing_numbers_are_bounded() -> None:
    tracker = SequenceTracker()
    limit = SequenceTracker.MAX_MISSING
    tracker.observe(BOOT_A, 0)
    result = tracker.observe(BOOT_A, 10 * limit)
    assert result.status is SeqStatus.GAP
    assert result.missing == ((9 * limit, 10 * limit - 1),)
    assert len(tracker._boots[BOOT_A].missing) == limit
    result = tracker.observe(BOOT_A, 10 * limit + 5)  # 4 more missing: the oldest 4 are dropped
    assert result.missing == ((9 * limit + 4, 10 * limit - 1), (10 * limit + 1, 10 * limit + 4))
    assert len(tracker._boots[BOOT_A].missing) == limit
    # A number dropped from the missing set can no longer fill the gap: it is taken for a replay.
    with pytest.raises(ReplayError):
        tracker.observe(BOOT_A, 9 * limit)


def test_huge_jumps_stay_bounded() -> None:
    tracker = SequenceTracker()
    tracker.observe(BOOT_A, 0)
    result = tracker.observe(BOOT_A, 2**53 - 1)
    assert result.missing == ((2**53 - 1 - SequenceTracker.MAX_MISSING, 2**53 - 2),)


@given(st.sets(st.integers(0, 200), min_size=1, max_size=60), st.randoms(use_true_random=False), st.data())
def test_any_order_accepts_each_number_once_and_refuses_repeats(
    numbers: set[int], rnd: Random, data: st.DataObject
) -> None:
    order = sorted(numbers)
    rnd.shuffle(order)
    tracker = SequenceTracker()
    accepted: list[int] = []
    for seq in order:
        result = tracker.observe(BOOT_A, seq)
        assert result.status is not SeqStatus.EXEMPT
        accepted.append(seq)
        repeat = data.draw(st.sampled_from(accepted), label="repeat")
        with pytest.raises(ReplayError):
            tracker.observe(BOOT_A, repeat)
    assert sorted(accepted) == sorted(numbers)
    for seq in numbers:
        with pytest.raises(ReplayError):
            tracker.observe(BOOT_A, seq)


def test_numbers_below_the_joining_number_are_accepted_once() -> None:
    tracker = SequenceTracker()
    assert tracker.observe(BOOT_A, 5).status is SeqStatus.JOINED
    for seq in range(5):
        assert tracker.observe(BOOT_A, seq).status is SeqStatus.LATE_FILL


@given(st.permutations(list(range(40))))
def test_a_permutation_from_zero_ends_with_nothing_missing(order: list[int]) -> None:
    tracker = SequenceTracker()
    tracker.observe(BOOT_A, 0)
    results = [tracker.observe(BOOT_A, seq) for seq in order if seq != 0]
    assert results[-1].missing == ()
    assert tracker.observe(BOOT_A, 40).status is SeqStatus.IN_ORDER


# --- duplicates --------------------------------------------------------------------------------------------


def test_duplicate_filter() -> None:
    seen = DuplicateFilter()
    assert not seen.seen("RM3-000017", BOOT_A)
    assert not seen.seen("RM3-000017", BOOT_A)  # asking does not remember: a refused message stays new
    seen.remember("RM3-000017", BOOT_A)
    assert seen.seen("RM3-000017", BOOT_A)
    assert not seen.seen("RM3-000018", BOOT_A)  # per device
    assert not seen.seen("RM3-000017", BOOT_B)
    seen.remember("RM3-000017", BOOT_A)  # remembering twice is harmless
    assert len(seen._seen) == 1


def test_duplicate_filter_evicts_the_least_recently_seen() -> None:
    seen = DuplicateFilter(capacity=3)
    for msg_id in "abc":
        assert not seen.seen("d", msg_id)
        seen.remember("d", msg_id)
    assert seen.seen("d", "a")  # refreshes a
    seen.remember("d", "x")  # evicts b, the least recently seen
    assert len(seen._seen) == 3
    assert seen.seen("d", "a")
    assert seen.seen("d", "c")
    assert seen.seen("d", "x")
    assert not seen.seen("d", "b")  # forgotten, so new again
