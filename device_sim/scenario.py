"""Declarative simulation scenarios in YAML, validated with errors that name the file, line and column.

A scenario file::

    name: demo
    seed: 42
    start: 2026-11-23            # ISO date (midnight) or datetime; naive values are Europe/Oslo wall clock
    duration: 3d                 # elapsed time: 90m, 12h, 3d, 1d12h (a day is 24 h, also across DST changes)
    speed: 600                   # optional default for the CLI (simulated seconds per real second)
    population:
      - count: 3
        family: multidose_roll   # or dose_pot
        doses: ["08:00", "14:00", "20:00"]   # Europe/Oslo wall-clock times, every day
        window: {opens_before: 60m, closes_after: 120m}   # optional, these are the defaults
        reminders: {notice_before: 15m, sound_after: 5m, repeat_every: 10m, repeat_max: 6}  # optional
        behaviour: {model: forgetful, miss_probability: {evening: 0.3}}   # see device_sim.patient
        faults: default          # none | default | {scale, rates_per_day, durations, ...} (device_sim.faults)
        id_prefix: BRG-RM-       # optional; default RM3- (multidose_roll) or DP5- (dose_pot)
    timeline:
      - at: day 2 08:00          # day N of the scenario (from 1) at a Europe/Oslo time; or an ISO datetime
        device: 2                # or patient: 2 (same numbering), devices: [1, 3], devices: all
        action: network_down
        for: 2h

Devices are numbered 1.. across the whole population in file order; device N's id is ``RM3-00000N`` or
``DP5-00000N`` by family (``id_prefix`` + the six-digit number if given), and its patient is patient N.

Timeline actions and their parameters (``TimelineAction.params`` keys after resolution):

==================  =========================================  ==========================================
action              file parameters                            ``params``
==================  =========================================  ==========================================
``network_down``    ``for`` (duration)                         ``for_ms``
``reboot``          -                                          -
``fault``           ``kind`` (``ports.FaultKind``), ``for``     ``kind`` (FaultKind), ``for_ms`` (0: instant)
``mains_loss``      ``for``                                    ``for_ms``
``miss_doses``      ``until`` (time), ``which``                ``until_ms``, ``bands`` (tuple of DayBand)
``away``            ``until``, ``reason`` (travel|hospital)    ``until_ms``, ``reason`` (AbsenceReason)
``load_wrong_roll`` - (multidose_roll devices only)            -
``load_roll``       - (multidose_roll devices only)            -
``load_tray``       - (dose_pot devices only)                  -
``hostile``         ``kind`` (``HostileKind``), ``count``      ``kind`` (HostileKind), ``count``
==================  =========================================  ==========================================

``which`` is ``all`` (default), one band or a list of ``morning``, ``midday``, ``evening``, ``night``
(``patient.DayBand``). ``away`` and ``miss_doses`` are already applied to ``DeviceSpec.patient`` (as
``patient.with_overlays``); they stay in the timeline so the device can record them in the truth log.

Rules:

- Dose windows default to opening 60 minutes before due (early access: carousel products allow hours, consumer
  devices 30 minutes; an hour lets a patient take a morning dose at breakfast) and closing 120 minutes after
  due (pouch robots notify after 45 or 75 minutes and a dispenser alarms at half its window, so a 2-hour
  window puts the first alarm at one hour, after those reminders had their chance).
- Daylight saving follows ``device_sim.timespec``: a timeline time inside the spring-forward gap (e.g.
  ``day 2 02:30`` on the last Sunday of March) is an error naming its line; daily dose times in the gap move
  forward by the gap on that day; a fall-back time that occurs twice means its first occurrence.
- Seeds: device N's seed is the first 8 bytes (big-endian) of SHA-256 of ``"dispenser-sim:{seed}:{N}"``,
  so a device's behaviour does not depend on the rest of the population, and ``DeviceSpec.rng(purpose)``
  derives independent streams (``"patient"``, ``"faults"``, ...) from it the same way.
- Errors: every problem is reported as ``file:line:col: path: message`` (line and column 1-based, the
  position of the offending key or list item; paths index lists from 0), all problems at once, sorted by line.
  Duplicate keys, unknown keys, wrong types, YAML syntax errors and inconsistencies (a target beyond the
  population, a roll loaded into a dose-pot device, a time outside the scenario) are all refused.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from device_sim.faults import FaultsSpec, faults_from_spec
from device_sim.patient import (
    Absence,
    AbsenceReason,
    AdherentSpec,
    BehaviourSpec,
    DayBand,
    ScriptedMiss,
    patient_from_spec,
    with_overlays,
)
from device_sim.ports import FaultKind, FaultModel, PatientModel
from device_sim.timespec import (
    ClockTime,
    DurationMs,
    NonexistentLocalTimeError,
    local_date,
    local_ms,
    parse_clock,
    parse_instant,
)
from firmware_protocol.messages import Family

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from yaml.error import Mark

__all__ = [
    "ActionKind",
    "DeviceSpec",
    "DoseTime",
    "Family",
    "Group",
    "HostileKind",
    "Problem",
    "ReminderSettings",
    "Scenario",
    "ScenarioError",
    "ScheduledAction",
    "TimelineAction",
    "Window",
    "derive_seed",
    "load_scenario",
    "load_shipped",
    "parse_scenario",
    "shipped_scenario_names",
]

PathKey = tuple[str | int, ...]


# --- errors ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ScenarioError(ValueError):
    """A scenario file is invalid; ``problems`` says where and why (``str()`` lists them, one a line)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.column)))
        super().__init__("\n".join(str(p) for p in self.problems))


def _format_path(path: PathKey) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# --- YAML with positions --------------------------------------------------------------------------

_SEXAGESIMAL_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Composer:
    """Turns a YAML node tree into plain data, recording the mark of every key and list item."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[PathKey, Mark] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, mark: Mark, path: PathKey, message: str) -> None:
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, _format_path(path), message))

    def convert(self, node: yaml.Node, path: PathKey) -> object:
        if isinstance(node, yaml.MappingNode):
            result: dict[str, object] = {}
            first_seen: dict[str, Mark] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problem(key_node.start_mark, path, "keys must be plain names")
                    continue
                key = str(key_node.value)
                if key in first_seen:
                    first = first_seen[key].line + 1
                    self.problem(
                        key_node.start_mark, (*path, key), f"duplicate key (first given on line {first})"
                    )
                    continue
                first_seen[key] = key_node.start_mark
                self.marks[(*path, key)] = key_node.start_mark
                result[key] = self.convert(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            items: list[object] = []
            for index, item in enumerate(node.value):
                self.marks[(*path, index)] = item.start_mark
                items.append(self.convert(item, (*path, index)))
            return items
        # Scalars: YAML 1.1 reads 20:00 as the base-60 integer 1200 and 2026-11-23 as a date; keep such text.
        if (node.tag in _SEXAGESIMAL_TAGS and ":" in node.value) or node.tag == _TIMESTAMP_TAG:
            return str(node.value)
        return self._constructor.construct_object(node)


def _load_yaml(text: str, file: str) -> tuple[object, dict[PathKey, Mark]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context or 'invalid YAML'}"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise ScenarioError([Problem(file, line, column, "", message)]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, 1, 1, "", f"YAML error: {exc}")]) from None
    if root is None:
        raise ScenarioError([Problem(file, 1, 1, "", "the file is empty")])
    composer = _Composer(file)
    composer.marks[()] = root.start_mark
    data = composer.convert(root, ())
    if composer.problems:
        raise ScenarioError(composer.problems)
    if not isinstance(data, dict):
        raise ScenarioError(
            [Problem(file, 1, 1, "", "a scenario must be a mapping (name: ..., population: ...)")]
        )
    return data, composer.marks


def _locate(loc: Sequence[str | int], data: object, *, keep_last: bool) -> PathKey:
    """The part of a pydantic ``loc`` that exists in ``data`` (union tags and the like dropped)."""
    path: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        found, child = _child(current, part)
        if found:
            current = child
            path.append(part)
        elif keep_last and position == len(loc) - 1:
            path.append(part)
    return tuple(path)


def _child(container: object, part: str | int) -> tuple[bool, object]:
    if isinstance(container, dict) and isinstance(part, str) and part in container:
        return True, container[part]
    if isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container):
        return True, container[part]
    return False, None


def _nearest_mark(path: PathKey, marks: Mapping[PathKey, Mark]) -> Mark:
    for end in range(len(path), -1, -1):
        mark = marks.get(path[:end])
        if mark is not None:
            return mark
    return marks[()]


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


# --- the file's schema ----------------------------------------------------------------------------


DEFAULT_ID_PREFIX: Mapping[Family, str] = {Family.MULTIDOSE_ROLL: "RM3-", Family.DOSE_POT: "DP5-"}


class HostileKind(StrEnum):
    """Hostile or broken uplink traffic a device can be told to send."""

    REPLAY = "replay"
    FORGED_SIGNATURE = "forged_signature"
    OTHER_DEVICE_ID = "other_device_id"
    GARBAGE = "garbage"
    OVERSIZED = "oversized"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"


class ActionKind(StrEnum):
    """Timeline actions (see the module docstring for their parameters)."""

    NETWORK_DOWN = "network_down"
    REBOOT = "reboot"
    FAULT = "fault"
    MAINS_LOSS = "mains_loss"
    MISS_DOSES = "miss_doses"
    AWAY = "away"
    LOAD_WRONG_ROLL = "load_wrong_roll"
    LOAD_ROLL = "load_roll"
    LOAD_TRAY = "load_tray"
    HOSTILE = "hostile"


_DAY_TIME = re.compile(r"day\s+(-?\d+)\s+(\S+)")


@dataclass(frozen=True, slots=True)
class TimeRef:
    """A timeline time as written: ``day`` N at ``clock`` (Europe/Oslo), or an ISO ``iso`` instant."""

    text: str
    day: int | None = None
    clock: time | None = None


def _time_ref(value: object) -> TimeRef:
    if not isinstance(value, str):
        raise ValueError(f"expected a time like 'day 2 08:00' or an ISO datetime, not {value!r}")  # noqa: TRY004
    text = value.strip()
    match = _DAY_TIME.fullmatch(text)
    if match is not None:
        day = int(match[1])
        if day < 1:
            raise ValueError(f"{text!r}: scenario days are counted from 1 (day 1 is the start date)")
        return TimeRef(text, day, parse_clock(match[2]))
    if text.startswith("day"):
        raise ValueError(f"{text!r} is not of the form 'day N HH:MM'")
    parse_instant(text, strict=False)  # the format; DST and range are checked against the scenario
    return TimeRef(text)


When = Annotated[TimeRef, BeforeValidator(_time_ref)]
Count = Annotated[int, Field(ge=1, le=100_000, strict=True)]


def _targets(value: object) -> object:
    if value == "all":
        return value
    if not isinstance(value, list) or not value:
        raise ValueError("expected 'all' or a non-empty list of device numbers like [1, 2]")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise ValueError("device numbers are whole numbers from 1")
    return value


def _bands(value: object) -> object:
    items = value if isinstance(value, list) else [value]
    allowed = {"all", *DayBand}
    if not items or not all(isinstance(v, str) and v in allowed for v in items):
        names = ", ".join(["all", *DayBand])
        raise ValueError(f"expected one of {names}, or a list of them")
    return items


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class _Entry(_Strict):
    at: When
    device: Count | None = None
    patient: Count | None = None
    devices: Annotated[Literal["all"] | list[int], BeforeValidator(_targets)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _Entry:
        given = [name for name in ("device", "patient", "devices") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one target: device: N, patient: N, devices: [N, ...] or devices: all"
            )
        return self


class _NetworkDown(_Entry):
    action: Literal["network_down"]
    for_: DurationMs = Field(alias="for", gt=0)


class _Reboot(_Entry):
    action: Literal["reboot"]


class _Fault(_Entry):
    action: Literal["fault"]
    kind: FaultKind
    for_: DurationMs = Field(0, alias="for", ge=0)


class _MainsLoss(_Entry):
    action: Literal["mains_loss"]
    for_: DurationMs = Field(alias="for", gt=0)


class _MissDoses(_Entry):
    action: Literal["miss_doses"]
    until: When
    which: Annotated[list[str], BeforeValidator(_bands)] = Field(default_factory=lambda: ["all"])


class _Away(_Entry):
    action: Literal["away"]
    until: When
    reason: AbsenceReason = AbsenceReason.TRAVEL


class _LoadWrongRoll(_Entry):
    action: Literal["load_wrong_roll"]


class _LoadRoll(_Entry):
    action: Literal["load_roll"]


class _LoadTray(_Entry):
    action: Literal["load_tray"]


class _Hostile(_Entry):
    action: Literal["hostile"]
    kind: HostileKind
    count: Count = 1


TimelineEntry = Annotated[
    _NetworkDown
    | _Reboot
    | _Fault
    | _MainsLoss
    | _MissDoses
    | _Away
    | _LoadWrongRoll
    | _LoadRoll
    | _LoadTray
    | _Hostile,
    Field(discriminator="action"),
]


class _Window(_Strict):
    opens_before: DurationMs = Field(60 * 60_000, ge=0, le=24 * 3_600_000)
    closes_after: DurationMs = Field(120 * 60_000, gt=0, le=24 * 3_600_000)


class _Reminders(_Strict):
    notice_before: DurationMs = Field(15 * 60_000, ge=0, le=14_400_000)
    sound_after: DurationMs = Field(5 * 60_000, ge=0, le=14_400_000)
    repeat_every: DurationMs = Field(10 * 60_000, ge=60_000, le=14_400_000)
    repeat_max: Annotated[int, Field(ge=0, le=20, strict=True)] = 6


def _faults(value: object) -> object:
    if value == "none":
        return {"defaults": False}
    if value == "default":
        return {}
    if isinstance(value, str):
        raise ValueError(f"expected 'none', 'default' or a mapping of settings, not {value!r}")  # noqa: TRY004
    return value


class _Group(_Strict):
    count: Count
    family: Family
    doses: list[ClockTime] = Field(min_length=1, max_length=12)
    window: _Window = _Window()
    reminders: _Reminders = _Reminders()
    behaviour: BehaviourSpec = AdherentSpec(model="adherent")
    faults: Annotated[FaultsSpec, BeforeValidator(_faults)] = FaultsSpec()
    id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$")] | None = None

    @model_validator(mode="after")
    def _unique_doses(self) -> _Group:
        if len(set(self.doses)) != len(self.doses):
            raise ValueError("doses: each time of day may be given once")
        return self


class _File(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: str | None = None
    seed: Annotated[int, Field(ge=0, strict=True)]
    start: Annotated[str, Field(min_length=1)]
    duration: DurationMs = Field(gt=0, le=366 * 86_400_000)
    speed: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)] | None = None
    population: list[_Group] = Field(min_length=1)
    timeline: list[TimelineEntry] = Field(default_factory=list)


# --- the resolved scenario ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A dose is accessible from ``opens_before_ms`` before due to ``closes_after_ms`` after due."""

    opens_before_ms: int = 60 * 60_000
    closes_after_ms: int = 120 * 60_000


@dataclass(frozen=True, slots=True)
class ReminderSettings:
    """The local reminder ladder, field for field ``firmware_protocol`` ``Reminders``."""

    notice_before_s: int = 900
    sound_after_s: int = 300
    repeat_every_s: int = 600
    repeat_max: int = 6


@dataclass(frozen=True, slots=True)
class TimelineAction:
    """A scripted event for one device at ``at_ms``; ``params`` by kind as in the module docstring."""

    kind: ActionKind
    at_ms: int
    params: Mapping[str, object] = field(default_factory=dict)
    line: int = 0
    """The line of the scenario file the action comes from (0: not from a file)."""


@dataclass(frozen=True, slots=True)
class DoseTime:
    """One dose of a device's plan: due at ``due_ms``, accessible ``[opens_ms, closes_ms)``."""

    slot_id: str
    """``s-YYYYMMDD-HHMM`` from the planned Europe/Oslo date and wall-clock time."""
    due_ms: int
    opens_ms: int
    closes_ms: int


def derive_seed(*parts: object) -> int:
    """The first 8 bytes (big-endian) of SHA-256 of ``"dispenser-sim:" + ":".join(parts)``."""
    text = "dispenser-sim:" + ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Everything one simulated dispenser needs: identity, plan, patient, faults and its timeline."""

    index: int
    """1-based number in the whole population (also the patient's number)."""
    device_id: str
    patient_ref: str
    """``patient-00000N``: a stand-in for the patient's identity (never a real national id number)."""
    family: Family
    seed: int
    """``derive_seed(scenario_seed, index)``."""
    patient: PatientModel
    faults: FaultModel
    dose_times: tuple[time, ...]
    """Daily Europe/Oslo wall-clock due times, sorted."""
    window: Window
    reminders: ReminderSettings
    timeline: tuple[TimelineAction, ...]
    """Sorted by ``at_ms`` (file order among equal times)."""
    start_ms: int
    end_ms: int

    def rng(self, purpose: str) -> random.Random:
        """An independent random stream for ``purpose`` (``"patient"``, ``"faults"``, ...)."""
        return random.Random(derive_seed(self.seed, purpose))

    def doses(self, from_ms: int | None = None, until_ms: int | None = None) -> list[DoseTime]:
        """The doses due in ``[from_ms, until_ms)`` (default: the scenario's span), in due order."""
        low = self.start_ms if from_ms is None else from_ms
        high = self.end_ms if until_ms is None else until_ms
        result: list[DoseTime] = []
        day = local_date(low) - timedelta(days=1)
        while True:
            for clock in self.dose_times:
                due = local_ms(day, clock, strict=False)
                if low <= due < high:
                    slot = f"s-{day:%Y%m%d}-{clock:%H%M}"
                    opens, closes = due - self.window.opens_before_ms, due + self.window.closes_after_ms
                    result.append(DoseTime(slot, due, opens, closes))
            if local_ms(day, time(0), strict=False) >= high:
                return result
            day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Group:
    """One ``population:`` entry, resolved: devices ``first_index`` .. ``first_index + count - 1``."""

    first_index: int
    count: int
    family: Family
    dose_times: tuple[time, ...]
    window: Window
    reminders: ReminderSettings
    behaviour: BehaviourSpec
    faults: FaultsSpec
    id_prefix: str


@dataclass(frozen=True, slots=True)
class ScheduledAction:
    """A timeline entry, resolved: the action and the device numbers it applies to."""

    action: TimelineAction
    targets: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario: ``devices()`` expands it to one ``DeviceSpec`` per device."""

    name: str
    seed: int
    start_ms: int
    end_ms: int
    groups: tuple[Group, ...]
    timeline: tuple[ScheduledAction, ...]
    speed: float | None = None
    description: str | None = None
    source: str = "<string>"

    @property
    def size(self) -> int:
        """The number of devices."""
        return sum(g.count for g in self.groups)

    def devices(self) -> list[DeviceSpec]:
        """Every device of the population, in numbering order."""
        return [self.device(index) for index in range(1, self.size + 1)]

    def device(self, index: int) -> DeviceSpec:
        """Device number ``index`` (1-based)."""
        group = next((g for g in self.groups if g.first_index <= index < g.first_index + g.count), None)
        if group is None:
            raise IndexError(f"the scenario has devices 1 to {self.size}, not {index}")
        actions = sorted(
            (s.action for s in self.timeline if index in s.targets), key=lambda a: a.at_ms
        )  # sorted() is stable: file order among equal times
        absences = tuple(
            Absence(a.at_ms, _int(a.params["until_ms"]), AbsenceReason(str(a.params["reason"])))
            for a in actions
            if a.kind is ActionKind.AWAY
        )
        misses = tuple(
            ScriptedMiss(a.at_ms, _int(a.params["until_ms"]), frozenset(_bands_of(a.params["bands"])))
            for a in actions
            if a.kind is ActionKind.MISS_DOSES
        )
        return DeviceSpec(
            index=index,
            device_id=f"{group.id_prefix}{index:06d}",
            patient_ref=f"patient-{index:06d}",
            family=group.family,
            seed=derive_seed(self.seed, index),
            patient=with_overlays(patient_from_spec(group.behaviour), absences=absences, misses=misses),
            faults=faults_from_spec(group.faults),
            dose_times=group.dose_times,
            window=group.window,
            reminders=group.reminders,
            timeline=tuple(actions),
            start_ms=self.start_ms,
            end_ms=self.end_ms,
        )


def _int(value: object) -> int:
    assert isinstance(value, int)  # noqa: S101 - built by _resolve
    return value


def _bands_of(value: object) -> tuple[DayBand, ...]:
    assert isinstance(value, tuple)  # noqa: S101 - built by _resolve
    return tuple(DayBand(v) for v in value)


# --- loading --------------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (``ScenarioError`` naming lines if it is invalid)."""
    path = Path(path)
    return parse_scenario(path.read_text(encoding="utf-8"), file=path.name)


def shipped_scenario_names() -> list[str]:
    """The scenarios shipped in ``device_sim/scenarios`` (names without ``.yaml``)."""
    folder = resources.files("device_sim") / "scenarios"
    return sorted(e.name.removesuffix(".yaml") for e in folder.iterdir() if e.name.endswith(".yaml"))


def load_shipped(name: str) -> Scenario:
    """A shipped scenario by name, e.g. ``load_shipped("demo")``."""
    entry = resources.files("device_sim") / "scenarios" / f"{name}.yaml"
    if not entry.is_file():
        raise FileNotFoundError(
            f"no shipped scenario {name!r}; there are {', '.join(shipped_scenario_names())}"
        )
    return parse_scenario(entry.read_text(encoding="utf-8"), file=f"{name}.yaml")


def parse_scenario(text: str, *, file: str = "<string>") -> Scenario:
    """Validate scenario text; ``file`` is the name used in error messages."""
    data, marks = _load_yaml(text, file)
    try:
        spec = _File.model_validate(data)
    except ValidationError as exc:
        problems: list[Problem] = []
        seen: set[tuple[int, int, str]] = set()
        for error in exc.errors():
            path = _locate(error["loc"], data, keep_last=error["type"] == "missing")
            if error["type"] == "union_tag_invalid":  # point at the `model:` / `action:` key itself
                path = (*path, str(error.get("ctx", {}).get("discriminator", "")).strip("'"))
            mark = _nearest_mark(path, marks)
            problem = Problem(file, mark.line + 1, mark.column + 1, _format_path(path), _message(error))
            if (problem.line, problem.column, problem.message) not in seen:
                seen.add((problem.line, problem.column, problem.message))
                problems.append(problem)
        raise ScenarioError(problems) from None
    return _Resolver(spec, marks, file).resolve()


class _Resolver:
    """Checks what the schema cannot (times against the scenario, targets against the population)."""

    def __init__(self, spec: _File, marks: Mapping[PathKey, Mark], file: str) -> None:
        self.spec = spec
        self.marks = marks
        self.file = file
        self.problems: list[Problem] = []

    def fail(self, path: PathKey, message: str) -> None:
        mark = _nearest_mark(path, self.marks)
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, _format_path(path), message))

    def resolve(self) -> Scenario:
        spec = self.spec
        try:
            start_ms = parse_instant(spec.start, strict=True)
        except ValueError as exc:
            self.fail(("start",), str(exc))
            raise ScenarioError(self.problems) from None
        end_ms = start_ms + spec.duration
        groups: list[Group] = []
        first = 1
        for g in spec.population:
            groups.append(
                Group(
                    first_index=first,
                    count=g.count,
                    family=g.family,
                    dose_times=tuple(sorted(g.doses)),
                    window=Window(g.window.opens_before, g.window.closes_after),
                    reminders=ReminderSettings(
                        g.reminders.notice_before // 1000,
                        g.reminders.sound_after // 1000,
                        g.reminders.repeat_every // 1000,
                        g.reminders.repeat_max,
                    ),
                    behaviour=g.behaviour,
                    faults=g.faults,
                    id_prefix=g.id_prefix if g.id_prefix is not None else DEFAULT_ID_PREFIX[g.family],
                )
            )
            first += g.count
        families = {i: g.family for g in groups for i in range(g.first_index, g.first_index + g.count)}
        timeline = [
            scheduled
            for i, entry in enumerate(spec.timeline)
            if (scheduled := self._action(i, entry, start_ms, end_ms, families)) is not None
        ]
        if self.problems:
            raise ScenarioError(self.problems)
        return Scenario(
            name=spec.name,
            seed=spec.seed,
            start_ms=start_ms,
            end_ms=end_ms,
            groups=tuple(groups),
            timeline=tuple(timeline),
            speed=spec.speed,
            description=spec.description,
            source=self.file,
        )

    def _instant(self, ref: TimeRef, path: PathKey, start_ms: int, end_ms: int) -> int | None:
        try:
            if ref.day is None:
                ms = parse_instant(ref.text, strict=True)
            else:
                assert ref.clock is not None  # noqa: S101 - set together with day
                day: date = local_date(start_ms) + timedelta(days=ref.day - 1)
                ms = local_ms(day, ref.clock, strict=True)
        except NonexistentLocalTimeError as exc:
            self.fail(path, f"{ref.text!r}: {exc}")
            return None
        if not start_ms <= ms <= end_ms:
            self.fail(path, f"{ref.text!r} is outside the scenario (it runs {self._span(start_ms, end_ms)})")
            return None
        return ms

    def _span(self, start_ms: int, end_ms: int) -> str:
        from device_sim.timespec import iso_utc  # noqa: PLC0415 - only for this message

        return f"{iso_utc(start_ms)} to {iso_utc(end_ms)}"

    def _action(
        self, i: int, entry: TimelineEntry, start_ms: int, end_ms: int, families: Mapping[int, Family]
    ) -> ScheduledAction | None:
        base: PathKey = ("timeline", i)
        before = len(self.problems)
        at_ms = self._instant(entry.at, (*base, "at"), start_ms, end_ms)
        targets = self._targets(base, entry, families)
        params = self._params(base, entry, at_ms, start_ms, end_ms)
        if len(self.problems) > before or at_ms is None:
            return None
        line = _nearest_mark(base, self.marks).line + 1
        return ScheduledAction(TimelineAction(ActionKind(entry.action), at_ms, params, line), targets)

    def _targets(
        self, base: PathKey, entry: TimelineEntry, families: Mapping[int, Family]
    ) -> tuple[int, ...]:
        size = len(families)
        if entry.devices == "all":
            targets = tuple(range(1, size + 1))
            paths: list[PathKey] = [(*base, "devices")] * size
        elif entry.devices is not None:
            targets = tuple(entry.devices)
            paths = [(*base, "devices", j) for j in range(len(targets))]
        else:
            key = "device" if entry.device is not None else "patient"
            number = entry.device if entry.device is not None else entry.patient
            targets, paths = (number or 0,), [(*base, key)]
        for number, path in zip(targets, paths, strict=True):
            if number > size:
                self.fail(path, f"there is no device {number}: the population has devices 1 to {size}")
        needs = _NEEDS_FAMILY.get(entry.action)
        wrong = [(n, p) for n, p in zip(targets, paths, strict=True) if families.get(n, needs) is not needs]
        if needs is not None and entry.devices == "all" and wrong:
            self.fail(
                (*base, "devices"), f"{entry.action} needs {needs.value} devices; not every device is one"
            )
        elif needs is not None:
            for number, path in wrong:
                is_a = families[number].value
                self.fail(path, f"{entry.action} needs a {needs.value} device; device {number} is {is_a}")
        return targets

    def _params(
        self, base: PathKey, entry: TimelineEntry, at_ms: int | None, start_ms: int, end_ms: int
    ) -> dict[str, object]:
        params: dict[str, object] = {}
        match entry:
            case _NetworkDown() | _MainsLoss():
                params["for_ms"] = entry.for_
            case _Fault():
                params.update(kind=entry.kind, for_ms=entry.for_)
            case _Hostile():
                params.update(kind=entry.kind, count=entry.count)
            case _MissDoses() | _Away():
                until = self._instant(entry.until, (*base, "until"), start_ms, end_ms)
                if until is not None and at_ms is not None and until <= at_ms:
                    self.fail((*base, "until"), "must be after 'at'")
                params["until_ms"] = until
                if isinstance(entry, _MissDoses):
                    bands = set(DayBand) if "all" in entry.which else {DayBand(b) for b in entry.which}
                    params["bands"] = tuple(b for b in DayBand if b in bands)
                else:
                    params["reason"] = entry.reason
            case _:
                pass
        return params


_NEEDS_FAMILY: Mapping[str, Family] = {
    "load_wrong_roll": Family.MULTIDOSE_ROLL,
    "load_roll": Family.MULTIDOSE_ROLL,
    "load_tray": Family.DOSE_POT,
}
