"""The ground-truth log: JSON Lines round trip, thread safety, summary."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import pytest

from device_sim.ports import FaultKind, Truth
from device_sim.truth import TruthKind, TruthLog, is_late, read_truth, summarize

if TYPE_CHECKING:
    from pathlib import Path

T = 1_795_417_200_000  # 2026-11-23T07:00:00Z


def test_records_round_trip_with_iso_time(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    records = [
        Truth(T, "RM3-000001", "dose.due", {"slot_id": "s-1", "due_ms": T}),
        Truth(T + 1, "RM3-000001", "fault.raised", {"fault": FaultKind.TILT, "bands": ("a", "b")}),
    ]
    with TruthLog(path) as log:
        log.write(records[0])
        log.write_all(records[1:])
        assert log.written == 2
        first = json.loads(path.read_text().splitlines()[0])  # flushed before close
    assert first == {
        "ts": T,
        "time": "2026-11-23T07:00:00.000Z",
        "device_id": "RM3-000001",
        "kind": "dose.due",
        "data": {"slot_id": "s-1", "due_ms": T},
    }
    back = read_truth(path)
    assert back[0] == records[0]
    assert back[1].data == {"fault": "tilt", "bands": ["a", "b"]}


def test_appends_from_many_threads_stay_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    log = TruthLog(path)

    def work(n: int) -> None:
        for i in range(200):
            log.write(Truth(T + i, f"DP5-{n:06d}", "dose.due", {"pad": "x" * 500}))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert len(read_truth(path)) == 1_600


def test_read_truth_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    path.write_text('{"ts": 1, "device_id": "a", "kind": "reboot"}\n\nnot json\n')
    with pytest.raises(ValueError, match=r"truth.jsonl:3: not a truth record"):
        read_truth(path)


def test_summary_counts_kinds_and_doses() -> None:
    records = [
        Truth(T, "A", TruthKind.DOSE_DUE),
        Truth(T, "A", TruthKind.DOSE_TAKEN, {"late": False}),
        Truth(T, "A", TruthKind.DOSE_DUE),
        Truth(T, "A", TruthKind.DOSE_TAKEN, {"late": True}),
        Truth(T, "B", TruthKind.DOSE_DUE),
        Truth(T, "B", TruthKind.DOSE_MISSED),
        Truth(T, "B", TruthKind.DOSE_CANCELLED),
        Truth(T, "B", TruthKind.NETWORK_DOWN),
    ]
    summary = summarize(records)
    assert summary.kinds["dose.due"] == 3
    assert summary.kinds["network.down"] == 1
    assert (summary.doses["A"].due, summary.doses["A"].taken, summary.doses["A"].taken_late) == (2, 2, 1)
    assert (summary.doses["B"].missed, summary.doses["B"].cancelled) == (1, 1)
    assert summary.totals.due == 3


def test_late_is_after_half_the_window() -> None:
    assert not is_late(T + 60 * 60_000, T, T + 120 * 60_000)
    assert is_late(T + 60 * 60_000 + 1, T, T + 120 * 60_000)
