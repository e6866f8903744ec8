"""The progress display of ``dispenser-sim run``: the pure formatting and the three modes of the printer."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest

from device_sim.progress import (
    INTERVAL_S,
    ProgressMode,
    ProgressPrinter,
    Rates,
    format_line,
    progress_record,
    rates_between,
    show_progress,
    sim_time,
)
from device_sim.runner import RunStats

WINTER_0800 = 1_795_417_200_000  # 2026-11-23 07:00 UTC = 08:00 CET
SUMMER_0800 = 1_780_207_200_000  # 2026-05-31 06:00 UTC = 08:00 CEST


def stats(
    sim_ms: int = WINTER_0800,
    *,
    sent: int = 0,
    received: int = 0,
    standin_in: int = 0,
    standin_out: int = 0,
    **fleet: int,
) -> RunStats:
    figures: dict[str, object] = {
        "devices": 5,
        "connected": 3,
        "sent": sent,
        "received": received,
        "truths": 0,
        "publish_rate": 0.0,
        "reconnects": 2,
        "errors": 1,
        "failed_devices": 0,
    }
    figures.update(fleet)
    return RunStats(
        sim_ms=sim_ms,
        fleet=figures,
        due=7,
        taken=5,
        missed=1,
        faults=4,
        hostile=6,
        standin_in=standin_in,
        standin_out=standin_out,
    )


def test_sim_time_is_the_oslo_wall_clock_in_winter_and_summer() -> None:
    assert sim_time(WINTER_0800) == "2026-11-23 08:00 CET"
    assert sim_time(SUMMER_0800) == "2026-05-31 08:00 CEST"


def test_format_line_shows_every_figure() -> None:
    line = format_line(stats(), Rates(out_per_s=12.4, in_per_s=2.6))
    assert line == (
        "2026-11-23 08:00 CET  devices 3/5  doses due 7 taken 5 missed 1  faults 4  hostile 6  "
        "msg/s out 12 in 3  reconnects 2  errors 1"
    )
    assert "\n" not in line
    assert "\r" not in line


def test_format_line_treats_missing_or_odd_fleet_figures_as_zero() -> None:
    odd = RunStats(WINTER_0800, {"connected": "many"}, 0, 0, 0, 0, 0, 0, 0)
    assert "devices 0/0" in format_line(odd, Rates())
    assert "reconnects 0  errors 0" in format_line(odd, Rates())


def test_rates_count_devices_and_the_standin_both_ways() -> None:
    before = stats(sent=100, received=40, standin_in=10, standin_out=5)
    after = stats(sent=150, received=70, standin_in=30, standin_out=15)
    rates = rates_between(before, after, 2.0)
    assert rates == Rates(out_per_s=(50 + 10) / 2, in_per_s=(30 + 20) / 2)


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_rates_are_zero_without_a_previous_report_or_elapsed_time(seconds: float) -> None:
    after = stats(sent=10)
    assert rates_between(None, after, 1.0) == Rates(0.0, 0.0)
    assert rates_between(stats(), after, seconds) == Rates(0.0, 0.0)


def test_progress_record_is_the_snapshot_plus_rates_and_final() -> None:
    record = progress_record(stats(sent=3), Rates(1.26, 0.04), final=True)
    assert record["sim_ms"] == WINTER_0800
    assert record["sim_time"] == "2026-11-23T07:00:00.000Z"
    assert (record["devices"], record["connected"], record["sent"]) == (5, 3, 3)
    assert (record["due"], record["taken"], record["missed"], record["faults"], record["hostile"]) == (
        7,
        5,
        1,
        4,
        6,
    )
    assert (record["out_per_s"], record["in_per_s"], record["final"]) == (1.3, 0.0, True)
    assert progress_record(stats(), Rates())["final"] is False
    assert json.loads(json.dumps(record)) == record  # plain JSON data


def test_json_mode_prints_one_object_per_report_and_marks_the_final_one() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, ProgressMode.JSON)
    printer.report(stats(sent=1))
    time.sleep(0.01)
    printer.report(stats(sent=2))
    printer.report(stats(sent=3), final=True)
    lines = out.getvalue().splitlines()
    assert out.getvalue().endswith("\n")
    records = [json.loads(line) for line in lines]
    assert [r["sent"] for r in records] == [1, 2, 3]
    assert [r["final"] for r in records] == [False, False, True]
    assert records[0]["out_per_s"] == 0.0  # no previous report yet
    assert 0 < records[1]["out_per_s"] <= 100  # one message in the 10+ ms since the first report


def test_line_mode_rewrites_one_line_in_place_and_ends_it_when_final() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, ProgressMode.LINE)
    long = stats(reconnects=123_456)
    short = stats()
    printer.report(long)
    first = out.getvalue()
    assert first.startswith("\r")
    assert "\n" not in first
    printer.report(short)
    second = out.getvalue()[len(first) :]
    # The shorter line is padded to the longer one's width, so no stale characters stay on screen.
    assert second == "\r" + format_line(short, Rates()).ljust(len(first) - 1)
    assert len(second) == len(first)
    printer.report(short, final=True)
    assert out.getvalue().endswith("\n")
    assert out.getvalue().count("\n") == 1


def test_log_mode_prints_whole_lines() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, ProgressMode.LOG)
    printer.report(stats())
    printer.report(stats(), final=True)
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""  # every report ends its line
    assert lines[:2] == [format_line(stats(), Rates())] * 2
    assert "\r" not in out.getvalue()


def test_quiet_mode_prints_nothing() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, ProgressMode.QUIET)
    printer.report(stats())
    printer.report(stats(), final=True)
    assert out.getvalue() == ""


def test_intervals_by_mode() -> None:
    assert INTERVAL_S == {ProgressMode.LINE: 1.0, ProgressMode.LOG: 10.0, ProgressMode.JSON: 1.0}


def test_show_progress_reports_at_once_and_then_every_interval_until_cancelled() -> None:
    out = io.StringIO()
    snapshots: list[int] = []

    def snapshot() -> RunStats:
        snapshots.append(len(snapshots))
        return stats(sent=len(snapshots))

    async def scenario() -> None:
        task = asyncio.create_task(show_progress(snapshot, ProgressPrinter(out, ProgressMode.JSON), 0.02))
        await asyncio.sleep(0)
        assert len(snapshots) == 1  # the first report does not wait for the interval
        await asyncio.sleep(0.11)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()

    asyncio.run(scenario())
    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) == len(snapshots) <= 7
    assert all(json.loads(line)["final"] is False for line in lines)


def test_show_progress_in_quiet_mode_returns_at_once() -> None:
    calls: list[int] = []

    def snapshot() -> RunStats:
        calls.append(1)
        return stats()

    asyncio.run(show_progress(snapshot, ProgressPrinter(io.StringIO(), ProgressMode.QUIET), 0.01))
    assert calls == []
