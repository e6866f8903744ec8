"""The ``dispenser-sim`` command line: argument errors, ``scenarios``, ``check``, and real runs.

Most tests call ``device_sim.cli.main`` in-process; one runs the installed console script against the test
broker the way a user would, and one runs its ``--help``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from device_sim.cli import main
from device_sim.scenario import shipped_scenario_names
from tests.support.broker import free_tcp_port

if TYPE_CHECKING:
    from tests.conftest import BrokerFactory

pytestmark = pytest.mark.timeout(60)

CONSOLE_SCRIPT = Path(sys.executable).with_name("dispenser-sim")
DEMO_START_MS = 1_795_413_600_000  # 2026-11-23 07:00 CET, the demo scenario's start

VALID = """\
name: two-devices
description: A roll and a pot for a day.
seed: 3
start: 2026-11-23
duration: 1d
population:
  - count: 1
    family: multidose_roll
    doses: ["08:00", "20:00"]
  - count: 1
    family: dose_pot
    doses: ["09:00"]
timeline:
  - at: day 1 12:00
    device: 2
    action: network_down
    for: 1h
"""

INVALID = """\
name: broken
seed: 3
start: 2026-11-23
duration: 1d
population:
  - count: 1
    family: multidose_roll
    doses: ["08:00"]
    behaviour: {model: sleepy}
  - count: 1
    family: dose_pot
    doses: ["25:00"]
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``main(argv)``: the exit code (argparse's ``SystemExit`` too), stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result: tuple[int, str, str], *phrases: str) -> None:
    code, out, err = result
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert out == ""
    assert err.startswith(("dispenser-sim run: ", "usage: dispenser-sim run", "dispenser-sim check: "))
    for phrase in phrases:
        assert phrase in err


@pytest.fixture(autouse=True)
def _no_real_broker_by_accident(monkeypatch: pytest.MonkeyPatch) -> None:
    """If an argument error slipped through, the run would fail fast on a closed port, not use port 1883."""
    monkeypatch.setattr("device_sim.cli.DEFAULT_BROKER", f"mqtt://127.0.0.1:{free_tcp_port()}")
    monkeypatch.setattr("device_sim.runner.STANDIN_READY_TIMEOUT_S", 1.0)  # 10 s by default


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    """A truth file path inside the test's folder (never the default ``var/sim/truth.jsonl``)."""
    return tmp_path / "truth.jsonl"


# -- argument errors: exit code 2, one clear message, no traceback ----------------------------------------


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("http://127.0.0.1:1883", "must start with mqtt:// or mqtts://"),
        ("mqtt://", "has no host"),
        ("mqtt://127.0.0.1:port", "has an invalid port"),
    ],
)
def test_bad_broker_url(capsys: pytest.CaptureFixture[str], truth: Path, url: str, phrase: str) -> None:
    assert_usage_error(cli(capsys, "run", "--broker", url, "--truth", str(truth)), url, phrase)
    assert not truth.exists()  # nothing was started or written


@pytest.mark.parametrize(
    ("mix", "phrase"),
    [
        ("roll=50,tablet=50", "'tablet=50': expected NAME=PERCENT with NAME one of roll, pot"),
        ("roll=half", "'roll=half': expected NAME=PERCENT"),
        ("roll", "'roll': expected NAME=PERCENT"),
        ("roll=0,pot=0", "the shares must not all be 0"),
    ],
)
def test_bad_family_mix(capsys: pytest.CaptureFixture[str], truth: Path, mix: str, phrase: str) -> None:
    result = cli(capsys, "run", "--devices", "3", "--families", mix, "--truth", str(truth))
    assert_usage_error(result, "argument --families", phrase)


def test_bad_behaviour_mix_names_the_models(capsys: pytest.CaptureFixture[str], truth: Path) -> None:
    result = cli(capsys, "run", "--devices", "3", "--behaviour", "sleepy=1", "--truth", str(truth))
    assert_usage_error(result, "argument --behaviour", "adherent, late, forgetful, confused, early")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--speed", "0"),
        ("--speed", "-60"),
        ("--speed", "nan"),
        ("--speed", "inf"),
        ("--speed", "fast"),
        ("--devices", "0"),
        ("--devices", "2.5"),
        ("--connect-rate", "nan"),
        ("--duration", "forever"),
        ("--start", "next monday"),
        ("--clock-spec", "soon"),
        ("--clock-spec", "1795417200000@1795417000000x0"),
        ("--clock-spec", "1795417200000@1795417000000xnan"),
    ],
)
def test_bad_values(capsys: pytest.CaptureFixture[str], truth: Path, option: str, value: str) -> None:
    result = cli(capsys, "run", option, value, "--truth", str(truth))
    assert_usage_error(result, f"argument {option}")


def test_scenario_and_devices_together(capsys: pytest.CaptureFixture[str], truth: Path) -> None:
    result = cli(capsys, "run", "--scenario", "demo", "--devices", "5", "--truth", str(truth))
    assert_usage_error(result, "give either --scenario or --devices, not both")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--start", "2026-11-23"), ("--families", "roll=1"), ("--behaviour", "late=1")],
)
def test_population_options_with_a_scenario(
    capsys: pytest.CaptureFixture[str], truth: Path, option: str, value: str
) -> None:
    result = cli(capsys, "run", "--scenario", "demo", option, value, "--truth", str(truth))
    assert_usage_error(result, f"{option} applies to --devices; a scenario file sets it itself")


def test_unknown_shipped_scenario_lists_the_shipped_ones(
    capsys: pytest.CaptureFixture[str], truth: Path
) -> None:
    result = cli(capsys, "run", "--scenario", "no-such-scenario", "--truth", str(truth))
    assert_usage_error(
        result,
        "--scenario no-such-scenario: no such file and no shipped scenario of that name",
        ", ".join(shipped_scenario_names()),
    )


def test_scenario_file_with_errors_names_file_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, truth: Path
) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(INVALID, encoding="utf-8")
    result = cli(capsys, "run", "--scenario", str(scenario), "--truth", str(truth))
    assert_usage_error(result, f"{scenario}:9:17: population[0].behaviour.model", f"{scenario}:12:13:")


def test_scenario_file_that_is_not_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, truth: Path
) -> None:
    scenario = tmp_path / "binary.yaml"
    scenario.write_bytes(b"\xdb\xff\x00\x01 not yaml")
    result = cli(capsys, "run", "--scenario", str(scenario), "--truth", str(truth))
    assert_usage_error(result, f"cannot read {scenario}: not a UTF-8 text file")


@pytest.mark.parametrize("option", ["--cafile", "--cert"])
def test_missing_tls_file_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, truth: Path, option: str
) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    result = cli(
        capsys, "run", "--broker", "mqtts://127.0.0.1:8883", option, str(missing), "--truth", str(truth)
    )
    assert_usage_error(result, f"{option} {missing}: cannot read it: No such file or directory")


def test_tls_file_that_is_not_a_certificate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, truth: Path
) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    result = cli(
        capsys, "run", "--broker", "mqtts://127.0.0.1:8883", "--cafile", str(garbage), "--truth", str(truth)
    )
    assert_usage_error(result, f"TLS files (--cafile {garbage}):")


def test_tls_key_without_certificate(capsys: pytest.CaptureFixture[str], tmp_path: Path, truth: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("a key\n", encoding="utf-8")
    result = cli(
        capsys, "run", "--broker", "mqtts://127.0.0.1:8883", "--key", str(key), "--truth", str(truth)
    )
    assert_usage_error(result, "--key is the private key of --cert; give --cert too")


def test_tls_files_need_an_mqtts_broker(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, truth: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x\n", encoding="utf-8")
    result = cli(
        capsys, "run", "--broker", "mqtt://127.0.0.1:1883", "--cafile", str(ca), "--truth", str(truth)
    )
    assert_usage_error(result, "use mqtts:// for a TLS connection")


@pytest.mark.parametrize("target", ["under-a-file", "a-folder"])
def test_output_files_that_cannot_be_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str
) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("", encoding="utf-8")
    path = blocker / "truth.jsonl" if target == "under-a-file" else tmp_path
    result = cli(capsys, "run", "--truth", str(path), "--broker", f"mqtt://127.0.0.1:{free_tcp_port()}")
    assert_usage_error(result, f"--truth {path}: cannot write it")
    keys = blocker / "keys.json"
    result = cli(capsys, "run", "--truth", str(tmp_path / "t.jsonl"), "--keys-out", str(keys))
    assert_usage_error(result, f"--keys-out {keys}: cannot write it")


# -- scenarios and check ---------------------------------------------------------------------------------


def test_scenarios_lists_every_shipped_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "scenarios")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == shipped_scenario_names()
    demo = next(line for line in lines if line.startswith("demo "))
    assert "9 devices" in demo
    assert "Mixed fleet of nine dispensers" in demo


def test_check_a_valid_file_prints_a_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    scenario = tmp_path / "good.yaml"
    scenario.write_text(VALID, encoding="utf-8")
    code, out, err = cli(capsys, "check", str(scenario))
    assert (code, err) == (0, "")
    summary = "two-devices: 2 devices in 2 groups, 1 timeline actions, 1 days from 2026-11-23 00:00 CET"
    assert out == f"{scenario}: ok: {summary}\n"


def test_check_an_invalid_file_names_every_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(INVALID, encoding="utf-8")
    code, out, err = cli(capsys, "check", str(scenario))
    assert code == 1
    assert "Traceback" not in out + err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{scenario}:9:17: population[0].behaviour.model: ")
    assert "'sleepy'" in lines[0]
    assert (
        lines[1] == f"{scenario}:12:13: population[1].doses[0]: '25:00' is not a time of day (00:00 to 23:59)"
    )


def test_check_a_missing_or_binary_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert_usage_error(
        cli(capsys, "check", str(missing)), f"cannot read {missing}: No such file or directory"
    )
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert_usage_error(cli(capsys, "check", str(binary)), "not a UTF-8 text file")


# -- help --------------------------------------------------------------------------------------------------

RUN_OPTIONS = (
    "--scenario",
    "--devices",
    "--families",
    "--behaviour",
    "--seed",
    "--start",
    "--duration",
    "--speed",
    "--clock-spec",
    "--broker",
    "--cafile",
    "--cert",
    "--key",
    "--connect-rate",
    "--no-standin",
    "--truth",
    "--keys-out",
    "--json",
    "--quiet",
)
RUN_GROUPS = ("what to simulate:", "time:", "broker:", "output:")


def test_run_help_shows_every_option_group_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0
    for group in RUN_GROUPS:
        assert f"\n{group}\n" in out
    for option in RUN_OPTIONS:
        assert option in out
    usage = out.split("\n\n", 1)[0]
    assert set(re.findall(r"--[a-z][a-z-]*", usage)) == set(RUN_OPTIONS)  # the list above is complete


def test_without_a_command_main_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys)
    assert code == 0
    assert out.startswith("usage: dispenser-sim")


def test_console_script_help_names_every_command() -> None:
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dispenser-sim")
    assert "\ncommands:\n" in result.stdout
    for command, phrase in [
        ("run", "run simulated dispensers against an MQTT broker"),
        ("scenarios", "list the shipped scenarios"),
        ("check", "validate a scenario file"),
    ]:
        assert command in result.stdout
        assert phrase in result.stdout


# -- runs -------------------------------------------------------------------------------------------------


def test_no_broker_exits_1_naming_the_broker(capsys: pytest.CaptureFixture[str], truth: Path) -> None:
    # The stand-in waits 1 s for the broker here (see the autouse fixture), 10 s by default.
    url = f"mqtt://127.0.0.1:{free_tcp_port()}"  # a closed port
    began = time.monotonic()
    code, out, err = cli(capsys, "run", "--scenario", "demo", "--broker", url, "--truth", str(truth))
    assert time.monotonic() - began < 5
    assert code == 1
    assert "Traceback" not in err
    assert f"dispenser-sim: no connection to the broker at {url} within 1 s" in err
    assert "Connection refused" in err or "ConnectionRefusedError" in err
    assert out == ""  # no progress without a run


def test_ctrl_c_while_waiting_for_the_broker_exits_at_once() -> None:
    url = f"mqtt://127.0.0.1:{free_tcp_port()}"  # a closed port: the stand-in would wait 10 s
    with subprocess.Popen(
        [str(CONSOLE_SCRIPT), "run", "--scenario", "demo", "--broker", url, "--truth", os.devnull],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        header = process.stderr.readline()  # written just before the run connects
        assert header.startswith("dispenser-sim: demo: 9 devices on"), header
        time.sleep(0.5)  # the signal handlers are installed right after the header
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert time.monotonic() - began < 3
    assert process.returncode == 1, err
    assert f"dispenser-sim: stopped while waiting for the broker at {url}" in err
    assert "Traceback" not in err
    assert out == ""


def test_console_script_runs_the_demo_against_the_broker(
    fresh_mqtt_broker: BrokerFactory, tmp_path: Path
) -> None:
    broker = fresh_mqtt_broker()  # the demo's device ids and sessions meet nothing left by other tests
    truth = tmp_path / "out" / "truth.jsonl"
    keys = tmp_path / "out" / "keys.json"
    argv = [
        str(CONSOLE_SCRIPT),
        "run",
        "--scenario",
        "demo",
        "--duration",
        "2h",
        "--speed",
        "3600",
        "--json",
        "--broker",
        broker.url,
        "--truth",
        str(truth),
        "--keys-out",
        str(keys),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=45, check=False)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) >= 2  # one at once, one per second, and the final one
    assert [r["final"] for r in records] == [False] * (len(records) - 1) + [True]
    final = records[-1]
    end_ms = DEMO_START_MS + 2 * 3_600_000
    assert final["sim_ms"] >= end_ms
    assert (final["devices"], final["connected"], final["failed_devices"]) == (9, 9, 0), result.stderr
    assert final["sent"] > 0
    assert final["standin_out"] >= 9  # a config each, at least
    assert final["truths"] > 0
    err = result.stderr
    assert f"dispenser-sim: demo: 9 devices on {broker.url}, stand-in hub; from 2026-11-23 07:00 CET" in err
    assert "dispenser-sim: scenario end reached at 2026-11-23 09:" in err  # plus a moment of simulated time
    assert "Traceback" not in err
    lines = truth.read_text(encoding="utf-8").splitlines()
    assert lines
    assert f"ground truth: {len(lines)} records in {truth}" in err
    parsed = [json.loads(line) for line in lines]
    assert {"device.online", "schedule.applied", "roll.loaded", "roll.verdict"} <= {r["kind"] for r in parsed}
    assert min(r["ts"] for r in parsed) >= DEMO_START_MS
    assert max(r["ts"] for r in parsed) < end_ms + 3_600_000  # the devices stop a moment after the end
    key_file = json.loads(keys.read_text(encoding="utf-8"))
    assert len(key_file["hub"]) == 1
    assert len(key_file["devices"]) == 9
