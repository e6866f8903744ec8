"""Receiver rules that need memory: duplicates and per-boot sequence numbers.

Rules (a receiver applies them after the stateless checks of ``codec``, in this order):

1. **Duplicate** (CloudEvents' rule): a message whose (``device``, ``msg_id``) was already accepted is a
   duplicate. It is acknowledged and ignored, never an error: QoS 1 redelivers. Receivers remember
   message ids for at least ``MAX_AGE_MS``, the age beyond which ``codec`` refuses a message anyway.
2. **Sequence**: ``seq`` counts every uplink message of one boot from 0 (the first birth), across all
   uplink channels. ``death`` is exempt (its Last Will was composed at connect time). For a known boot:

   - ``seq`` = highest + 1: in order;
   - ``seq`` > highest + 1: accepted, and the skipped numbers are *missing*: the receiver sends
     ``cmd.resync`` with the boot id and the missing range; the device resends what it still buffers;
   - ``seq`` <= highest and missing: a late arrival filling the gap, accepted;
   - ``seq`` <= highest and not missing: **replay** (``E_REPLAY``), refused: that number was already
     used by another message id.

   A boot seen for the first time is accepted at any ``seq`` (``first`` at 0; ``joined`` above 0, with
   the numbers below it missing, so that a resync from 0 is accepted). Recent boots stay tracked, so
   that events buffered before a reboot and replayed after it are still checked.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from firmware_protocol.errors import ReplayError

SEQUENCE_EXEMPT: frozenset[str] = frozenset({"death", "prov.request"})
"""Types outside the sequence: a Last Will carries the sequence number current at connect time, and an
enrollment request comes before the device's first boot as an enrolled device."""


class SeqStatus(StrEnum):
    """What a sequence number means for the receiver."""

    IN_ORDER = "in_order"
    FIRST = "first"
    """First message of a boot seen, with ``seq`` 0."""
    JOINED = "joined"
    """First message of a boot seen, with ``seq`` above 0 (the receiver started late, or missed some)."""
    GAP = "gap"
    """Accepted; ``missing`` lists the numbers skipped: ask for a resync."""
    LATE_FILL = "late_fill"
    """Accepted; it fills a gap."""
    EXEMPT = "exempt"


@dataclass(frozen=True, slots=True)
class SeqResult:
    """The verdict on one sequence number."""

    status: SeqStatus
    missing: tuple[tuple[int, int], ...] = ()
    """Inclusive ranges of numbers still missing in this boot, lowest first."""


@dataclass(slots=True)
class _Boot:
    highest: int
    missing: set[int] = field(default_factory=set)


class SequenceTracker:
    """Sequence state for one device: its recent boots, with bounded memory."""

    MAX_BOOTS = 8
    MAX_MISSING = 1024
    """Gaps wider than this are not tracked number by number; the oldest missing numbers are dropped."""

    def __init__(self) -> None:
        """Start with no boot seen."""
        self._boots: OrderedDict[str, _Boot] = OrderedDict()

    def observe(self, boot_id: str, seq: int, message_type: str = "") -> SeqResult:
        """Record ``seq`` of ``boot_id``; raise ``ReplayError`` for a reused number."""
        if message_type in SEQUENCE_EXEMPT:
            return SeqResult(SeqStatus.EXEMPT)
        boot = self._boots.get(boot_id)
        if boot is None:
            self._boots[boot_id] = _Boot(seq)
            if len(self._boots) > self.MAX_BOOTS:
                self._boots.popitem(last=False)
            if seq == 0:
                return SeqResult(SeqStatus.FIRST)
            first = self._boots[boot_id]
            first.missing.update(range(max(0, seq - self.MAX_MISSING), seq))
            return SeqResult(SeqStatus.JOINED, self._ranges(first))
        self._boots.move_to_end(boot_id)
        if seq == boot.highest + 1:
            boot.highest = seq
            return SeqResult(SeqStatus.IN_ORDER, self._ranges(boot))
        if seq > boot.highest:
            boot.missing.update(range(max(boot.highest + 1, seq - self.MAX_MISSING), seq))
            boot.highest = seq
            if len(boot.missing) > self.MAX_MISSING:
                boot.missing = set(sorted(boot.missing)[-self.MAX_MISSING :])
            return SeqResult(SeqStatus.GAP, self._ranges(boot))
        if seq in boot.missing:
            boot.missing.discard(seq)
            return SeqResult(SeqStatus.LATE_FILL, self._ranges(boot))
        raise ReplayError(
            f"sequence number {seq} of boot {boot_id} was already used (highest seen {boot.highest})",
            field="seq",
        )

    @staticmethod
    def _ranges(boot: _Boot) -> tuple[tuple[int, int], ...]:
        ranges: list[tuple[int, int]] = []
        for number in sorted(boot.missing):
            if ranges and ranges[-1][1] == number - 1:
                ranges[-1] = (ranges[-1][0], number)
            else:
                ranges.append((number, number))
        return tuple(ranges)


class DuplicateFilter:
    """Remembers (device, message id) pairs, the most recent ``capacity`` of them.

    In-memory and bounded, for the inspector, the simulator and tests; the hub keeps its ids in its
    database for ``MAX_AGE_MS``.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        """Remember at most ``capacity`` ids."""
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def seen(self, device_id: str, msg_id: str) -> bool:
        """Return whether the pair was accepted before (a duplicate to acknowledge and ignore)."""
        key = (device_id, msg_id)
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def remember(self, device_id: str, msg_id: str) -> None:
        """Record an accepted message; call only after every other check passed.

        A refused message is not remembered, so its redelivery is refused again rather than taken for a
        duplicate of something accepted.
        """
        self._seen[device_id, msg_id] = None
        self._seen.move_to_end((device_id, msg_id))
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
