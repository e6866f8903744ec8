"""The ground-truth log: what really happened in a simulation, one JSON object per line (JSON Lines).

Tests and benchmarks compare the hub's conclusions (alarms, dose statuses, device health) with this log.
Every line is ``{"ts": <Unix ms>, "time": "<ISO 8601 UTC, ms>Z", "device_id": ..., "kind": ...,
"data": {...}}``; ``ts`` is simulated time. Devices write the records (``ports.Truth``) through a shared
``TruthLog``.

Record kinds (``TruthKind``) and their ``data``:

- ``dose.due``: a dose's due time was reached. ``slot_id``, ``due_ms``, ``opens_ms``, ``closes_ms``.
- ``dose.presented``: the dose was made accessible (pouch cut, pot opened). ``slot_id``.
- ``dose.taken``: the patient took it. ``slot_id``, ``taken_at`` (Unix ms), ``early`` (before due),
  ``late`` (see ``is_late``), optionally ``presses`` (presses before taking).
- ``dose.missed``: the window closed without a take. ``slot_id``, ``reason`` (``ignored``, ``away``,
  ``scripted``, ``not_dispensed:<reason>``, ...).
- ``dose.cancelled``: the dose was not offered because dosing was paused (hospital, travel registered by the
  hub) or the plan changed. ``slot_id``, ``reason``.
- ``device.online`` / ``device.offline``: the MQTT session came up or went down (``reason`` for offline).
- ``network.down`` / ``network.up``: a simulated network outage began or ended. ``until_ms`` on down.
- ``fault.raised`` / ``fault.cleared``: a fault began or ended. ``fault`` (``ports.FaultKind`` value or a
  protocol fault code), ``duration_ms`` on raised if known.
- ``roll.loaded``: a multidose roll was loaded. ``roll_id``, ``wrong_patient`` (bool: printed for another
  patient, which the hub must refuse), ``pouches``.
- ``tray.loaded``: a dose-pot tray was refilled. ``pots``.
- ``hostile.sent``: the device sent hostile or broken traffic on purpose. ``kind``
  (``scenario.HostileKind`` value), ``count``.
- ``clock.drift``: the device clock jumped. ``amount_ms`` (positive: ahead).
- ``reboot``: the device restarted. ``reason``.

Devices may add more keys to ``data``; readers ignore what they do not know. ``summarize`` counts records
per kind and doses per device: ``due``, ``taken``, ``taken_late``, ``missed``, ``cancelled``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Self

from device_sim.ports import Truth
from device_sim.timespec import iso_utc

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType


class TruthKind(StrEnum):
    """The documented record kinds (see the module docstring for their data)."""

    DOSE_DUE = "dose.due"
    DOSE_PRESENTED = "dose.presented"
    DOSE_TAKEN = "dose.taken"
    DOSE_MISSED = "dose.missed"
    DOSE_CANCELLED = "dose.cancelled"
    DEVICE_ONLINE = "device.online"
    DEVICE_OFFLINE = "device.offline"
    NETWORK_DOWN = "network.down"
    NETWORK_UP = "network.up"
    FAULT_RAISED = "fault.raised"
    FAULT_CLEARED = "fault.cleared"
    ROLL_LOADED = "roll.loaded"
    TRAY_LOADED = "tray.loaded"
    HOSTILE_SENT = "hostile.sent"
    CLOCK_DRIFT = "clock.drift"
    REBOOT = "reboot"


def is_late(taken_at_ms: int, due_ms: int, closes_ms: int) -> bool:
    """A take is late after half the time from due to close: when dispensers and the hub start to alarm."""
    return taken_at_ms > due_ms + (closes_ms - due_ms) // 2


def to_json(record: Truth) -> str:
    """One record as its JSON line (without the newline)."""
    line = {
        "ts": record.ts,
        "time": iso_utc(record.ts),
        "device_id": record.device_id,
        "kind": record.kind,
        "data": record.data,
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=_plain)


def _plain(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class TruthLog:
    """Appends ``Truth`` records to a JSON Lines file; safe to share between threads; flushes every write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")
        self.written = 0

    def write(self, record: Truth) -> None:
        """Append one record and flush it."""
        self.write_all((record,))

    def write_all(self, records: Iterable[Truth]) -> None:
        """Append records in order (together, not interleaved with other threads' writes) and flush."""
        lines = "".join(to_json(r) + "\n" for r in records)
        if not lines:
            return
        with self._lock:
            self._file.write(lines)
            self._file.flush()
            self.written += lines.count("\n")

    def close(self) -> None:
        """Flush and close the file (further writes fail)."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_truth(path: str | Path) -> list[Truth]:
    """Every record of a truth log, in file order (blank lines skipped; ``ValueError`` names a bad line)."""
    records: list[Truth] = []
    with Path(path).open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                data = raw.get("data", {})
                if not isinstance(data, dict):
                    raise TypeError("data is not an object")  # noqa: TRY301 - reported with the line below
                records.append(Truth(int(raw["ts"]), str(raw["device_id"]), str(raw["kind"]), data))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a truth record ({exc})") from None
    return records


@dataclass(slots=True)
class DoseCounts:
    """Dose outcomes of one device."""

    due: int = 0
    taken: int = 0
    taken_late: int = 0
    """Included in ``taken``."""
    missed: int = 0
    cancelled: int = 0


@dataclass(slots=True)
class TruthSummary:
    """Records per kind, and dose outcomes per device."""

    kinds: Counter[str] = field(default_factory=Counter)
    doses: dict[str, DoseCounts] = field(default_factory=dict)

    @property
    def totals(self) -> DoseCounts:
        """Dose outcomes over all devices."""
        total = DoseCounts()
        for counts in self.doses.values():
            total.due += counts.due
            total.taken += counts.taken
            total.taken_late += counts.taken_late
            total.missed += counts.missed
            total.cancelled += counts.cancelled
        return total


def summarize(records: Iterable[Truth]) -> TruthSummary:
    """Count records per kind and dose outcomes per device."""
    summary = TruthSummary()
    for record in records:
        summary.kinds[record.kind] += 1
        if not record.kind.startswith("dose."):
            continue
        counts = summary.doses.setdefault(record.device_id, DoseCounts())
        match record.kind:
            case TruthKind.DOSE_DUE:
                counts.due += 1
            case TruthKind.DOSE_TAKEN:
                counts.taken += 1
                counts.taken_late += bool(record.data.get("late"))
            case TruthKind.DOSE_MISSED:
                counts.missed += 1
            case TruthKind.DOSE_CANCELLED:
                counts.cancelled += 1
            case _:
                pass
    return summary
