"""Schedules on the device: each bound dispenser's ``config`` built from its patient's doses and pushed.

Rules:

- **What a device offers.** A multidose dispenser: every pouch of the roll accepted in it (its active
  load), dispensed or not (the device knows what it cut; time removes passed slots). A dose-pot
  dispenser: the unopened pots of the tray it last reported loaded, while that tray passes the tray
  check (``dosett.judge_tray_loaded`` against the tray's latest fill and the bound patient, re-checked at
  every build, so a refill for someone else or a rebinding takes the pots away at once). Windows and
  reminders are the patient's ``DoseSettings`` (defaults: ``schedules.DoseWindow()``); doses in the
  patient's pauses are cancelled (``Config.paused_until``).
  Slots from ``now`` to ``now + horizon`` (at most 256, the protocol's limit).
- **When a new version is sent.** ``refresh`` builds the config and compares it with the one last sent:
  a change of settings, or of a slot still open in the old config (a roll change, a pause, new window
  settings), is a new version at once; otherwise a new version only extends the horizon, once the old
  config covers less than half of it (so a device gets a few configs a week, not one per dose). A new
  version is a ``config`` command in the outbox (signed, retained on ``down/config``, retried until the
  device answers); the previous one, if unanswered, is superseded.
- **Answers.** ``schedule.applied`` (or a ``birth``/``state`` holding the version) records the applied
  version and finishes the command; ``schedule.rejected`` records the reason and finishes it as refused.
- **No schedule (VKP 3.8).** A bound dispenser in service has "no schedule" when its config offers no dose
  and no pause is in force, when it refused the latest version, or when it has not applied the latest
  version within ``apply_grace`` of its sending. The alarm deduplicates, and is resolved by the system once
  the device holds the latest version with doses (or a pause) in it. ``sweep`` (a timer) refreshes every
  bound device and checks this. A config that offers nothing because the dispenser reported its roll or
  tray empty raises no "no schedule" alarm: the open "roll empty"/"tray empty" alarm already says what to do
  (one cause, one alarm: alarm fatigue).

Nothing here reads a clock: callers pass ``now``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from dispenser_hub.domain.alarms import SYSTEM_ACTOR
from dispenser_hub.domain.dosett import judge_tray_loaded, pot_doses
from dispenser_hub.domain.model import (
    CommandStatus,
    DeviceSchedule,
    DeviceStatus,
    SubjectKind,
)
from dispenser_hub.domain.pouches import from_ms, to_ms
from dispenser_hub.domain.schedules import (
    NO_SCHEDULE,
    DoseWindow,
    PlannedDose,
    Schedule,
    derive_schedule,
    paused_until,
    to_wire_slots,
)
from dispenser_hub.domain.supply import SupplySource
from dispenser_hub.services.alarm_records import device_condition, end_alarm, raise_alarm
from dispenser_hub.services.doses import DoseService
from dispenser_hub.services.downlink import enqueue
from dispenser_hub.services.supply import SupplyService
from firmware_protocol.messages import Config, Family, TrayLoaded

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dispenser_hub.domain.model import Device, FillRecord
    from dispenser_hub.domain.schedules import Pause
    from dispenser_hub.ports import Clock, UnitOfWork, UnitOfWorkFactory

HORIZON = timedelta(days=7)
APPLY_GRACE = timedelta(minutes=30)
CONFIG_TTL = timedelta(days=14)
"""How long the outbox re-sends an unanswered config (the retained copy stays on the broker anyway)."""
ALMOST_EMPTY_AHEAD = timedelta(hours=72)
"""``almost_empty_doses``: the doses of this long ahead (DOMAIN.md: warn about 72 hours before)."""
PAGE = 500
_Source = tuple[SupplySource, str, datetime, int]
"""A supply: roll or tray, its id, when it runs out, doses left."""


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """What the hub tells every device apart from its doses (from the hub's settings)."""

    locale: str = "nb-NO"
    volume: int = 6
    heartbeat_s: int = 300


@dataclass(frozen=True, slots=True)
class Refresh:
    """What ``refresh`` did: the schedule state, whether it sent a new version, the no-schedule reason."""

    state: DeviceSchedule | None
    sent: bool
    problem: str | None


def _digest(config: dict[str, Any]) -> str:
    content = {key: value for key, value in config.items() if key != "version"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


_NOT_COMPARED = frozenset({"version", "slots", "almost_empty_doses"})
"""``almost_empty_doses`` follows the doses of the next 72 hours and shifts with every dose: it goes out with
the next version sent for another reason, not as a version of its own."""


def _settings_part(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in _NOT_COMPARED}


def dose_window(uow: UnitOfWork, patient_id: int | None) -> DoseWindow:
    """The patient's dose window and reminders: their ``DoseSettings``, else the defaults."""
    stored = None if patient_id is None else uow.schedules.settings(patient_id)
    return stored.window if stored is not None else DoseWindow()


def needs_new_version(old: dict[str, Any], new: dict[str, Any], *, now: datetime, horizon: timedelta) -> bool:
    """Whether ``new`` must replace ``old`` on the device (see the module rules)."""
    if _settings_part(old) != _settings_part(new):
        return True
    now_ms = to_ms(now)
    old_open = [slot for slot in old["slots"] if slot["closes"] > now_ms]
    old_end = max((slot["due"] for slot in old["slots"]), default=None)
    if old_end is None:
        return bool(new["slots"])
    if [slot for slot in new["slots"] if slot["due"] <= old_end] != old_open:
        return True
    reaches_further = any(slot["due"] > old_end for slot in new["slots"])
    return reaches_further and from_ms(old_end) < now + horizon / 2


class ScheduleService:
    """Builds, sends and checks device schedules (see the module rules)."""

    def __init__(
        self,
        settings: DeviceSettings | None = None,
        *,
        horizon: timedelta = HORIZON,
        apply_grace: timedelta = APPLY_GRACE,
        supply: SupplyService | None = None,
    ) -> None:
        """Schedules ``horizon`` ahead; a device gets ``apply_grace`` to apply a new version.

        ``supply`` keeps the patient's supply forecast in step with what the dispenser holds.
        """
        self.settings = settings or DeviceSettings()
        self.horizon = horizon
        self.apply_grace = apply_grace
        self.supply = supply or SupplyService()
        self.doses = DoseService()

    # -- building and sending ------------------------------------------------------------------------------

    def build(
        self, uow: UnitOfWork, device: Device, now: datetime, *, horizon: timedelta | None = None
    ) -> tuple[Schedule, list[Pause], str | None]:
        """The schedule at ``now`` (``horizon`` ahead), the patient's pauses, the accepted roll id."""
        binding = uow.bindings.active_for_device(device.device_id)
        if binding is None:
            return Schedule(()), [], None
        patient_id = binding.patient_id
        window = dose_window(uow, patient_id)
        pauses = [
            pause
            for record in uow.schedules.pauses(patient_id, ending_after=now - window.late)
            if (pause := record.effective()) is not None
        ]
        doses: list[PlannedDose] = []
        roll_id = None
        if device.family is Family.MULTIDOSE_ROLL:
            load = uow.rolls.active_load_for_device(device.device_id)
            manifest = None if load is None else uow.rolls.manifest(load.roll_id)
            if load is not None and manifest is not None and load.patient_id == patient_id:
                roll_id = manifest.roll_id
                doses = [PlannedDose(due=p.intake_at, pouch_id=p.pouch_id) for p in manifest.pouches]
        else:
            record = self.accepted_fill(uow, device, now)
            if record is not None and record.id is not None:
                opened = uow.dosett.opened(record.id)
                doses = [PlannedDose(due=due, pot=pot) for _, due, pot in pot_doses(record.fill, opened)]
        schedule = derive_schedule(doses, window, pauses, now=now, horizon=horizon or self.horizon)
        return schedule, pauses, roll_id

    @staticmethod
    def accepted_fill(uow: UnitOfWork, device: Device, now: datetime) -> FillRecord | None:
        """The fill of the tray the dose-pot ``device`` last reported loaded, if the tray passes the check."""
        binding = uow.bindings.active_for_device(device.device_id)
        if binding is None:
            return None
        loaded = uow.events.select(device_id=device.device_id, types=[TrayLoaded.TYPE], limit=1)
        if not loaded:
            return None
        tray_id, pots = str(loaded[0].body["tray_id"]), loaded[0].body["pots_filled"]
        record = uow.dosett.latest_fill_of_tray(tray_id)
        if record is None or not isinstance(pots, int):
            return None
        decision = judge_tray_loaded(
            record.fill, bound_patient_id=binding.patient_id, tray_id=tray_id, pots_filled=pots, now=now
        )
        return record if decision.accept else None

    def config_body(
        self, uow: UnitOfWork, device: Device, now: datetime, *, version: int
    ) -> tuple[Config, Schedule, list[Pause]]:
        """The ``config`` the device should hold at ``now``, as version ``version``."""
        schedule, pauses, roll_id = self.build(uow, device, now)
        binding = uow.bindings.active_for_device(device.device_id)
        window = dose_window(uow, None if binding is None else binding.patient_id)
        soon = now + ALMOST_EMPTY_AHEAD
        almost_empty = min(64, max(1, sum(1 for slot in schedule.slots if slot.due < soon)))
        until = paused_until(pauses, now)
        config = Config(
            version=version,
            timezone="Europe/Oslo",
            locale=self.settings.locale,  # type: ignore[arg-type] # validated by Config
            volume=self.settings.volume,
            heartbeat_s=self.settings.heartbeat_s,
            almost_empty_doses=almost_empty,
            reminders=window.reminders(),
            roll_id=roll_id,
            paused_until=None if until is None else to_ms(until),
            slots=to_wire_slots(schedule),
        )
        return config, schedule, pauses

    def refresh(self, uow: UnitOfWork, device: Device, now: datetime, *, force: bool = False) -> Refresh:
        """Rebuild the device's config; send a new version when needed (module rules); check 3.8."""
        now = now.astimezone(UTC)
        old = uow.schedules.device_schedule(device.device_id)
        version = (old.version if old else 0) + 1
        config, schedule, pauses = self.config_body(uow, device, now, version=version)
        body = config.model_dump(mode="json", by_alias=True, exclude_none=True)
        sent = False
        state = old
        if old is None or force or needs_new_version(old.config, body, now=now, horizon=self.horizon):
            if old is not None and old.command_msg_id is not None:
                self._supersede(uow, old.command_msg_id, version, now)
            command = enqueue(
                uow, device.device_id, config, by=SYSTEM_ACTOR, now=now, expires_at=now + CONFIG_TTL
            )
            state = uow.schedules.put_device_schedule(
                DeviceSchedule(
                    device_id=device.device_id,
                    version=version,
                    digest=_digest(body),
                    config=body,
                    built_at=now,
                    command_msg_id=command.msg_id,
                    slots=len(schedule.slots),
                    first_due=schedule.slots[0].due if schedule.slots else None,
                    last_due=schedule.slots[-1].due if schedule.slots else None,
                    applied_version=old.applied_version if old else None,
                    applied_at=old.applied_at if old else None,
                    rejected_version=old.rejected_version if old else None,
                    rejected_reason=old.rejected_reason if old else None,
                )
            )
            sent = True
        self._update_supply(uow, device, now)
        binding = uow.bindings.active_for_device(device.device_id)
        self.doses.sync(uow, device, None if binding is None else binding.patient_id, schedule, now)
        offers = bool(schedule.slots) or paused_until(pauses, now) is not None
        return Refresh(state, sent, self.check(uow, device, state, offers=offers, now=now))

    def _update_supply(self, uow: UnitOfWork, device: Device, now: datetime) -> None:
        """The bound patient's supply: the roll or tray in the dispenser (see ``services.supply``)."""
        binding = uow.bindings.active_for_device(device.device_id)
        if binding is None:
            return
        source = self._tray_supply(uow, device, now) if device.family is Family.DOSE_POT else None
        if device.family is Family.MULTIDOSE_ROLL:
            source = self._roll_supply(uow, device, binding.patient_id)
        if source is not None:
            kind, source_id, runs_out_at, left = source
            self.supply.set_source(
                uow,
                binding.patient_id,
                source=kind,
                source_id=source_id,
                runs_out_at=runs_out_at,
                doses_left=left,
                now=now,
            )

    def _tray_supply(self, uow: UnitOfWork, device: Device, now: datetime) -> _Source | None:
        record = self.accepted_fill(uow, device, now)
        if record is None or record.id is None:
            return None
        fill = record.fill
        return "tray", fill.tray_id, fill.last_due, fill.doses_left(uow.dosett.opened(record.id))

    @staticmethod
    def _roll_supply(uow: UnitOfWork, device: Device, patient_id: int) -> _Source | None:
        """The roll in the dispenser, reaching to the last intake of the rolls packed after it.

        Their manifests are imported, so the next roll is on its way: no refill warning while it is.
        """
        load = uow.rolls.active_load_for_device(device.device_id)
        manifest = None if load is None else uow.rolls.manifest(load.roll_id)
        patient = uow.patients.get(patient_id)
        if load is None or manifest is None or patient is None or load.patient_id != patient_id:
            return None
        later = [
            m
            for m in uow.rolls.manifests_for_patient(patient.national_id)
            if m.first_intake > manifest.first_intake and not uow.rolls.was_withdrawn(m.roll_id)
        ]
        left = len(manifest.pouches) - len(uow.rolls.dispensed(load.roll_id))
        left += sum(len(m.pouches) for m in later)
        runs_out_at = max([manifest.last_intake, *(m.last_intake for m in later)])
        return "roll", load.roll_id, runs_out_at, left

    @staticmethod
    def _supersede(uow: UnitOfWork, msg_id: str, version: int, now: datetime) -> None:
        command = uow.commands.get(msg_id)
        if command is not None and command.status in {CommandStatus.PENDING, CommandStatus.SENT}:
            uow.commands.update(
                dataclasses.replace(
                    command,
                    status=CommandStatus.SUPERSEDED,
                    finished_at=now,
                    next_attempt_at=None,
                    result=f"superseded by config version {version}",
                )
            )

    # -- answers -------------------------------------------------------------------------------------------

    def on_applied(self, uow: UnitOfWork, device: Device, version: int, now: datetime) -> None:
        """The device holds config ``version`` (``schedule.applied``, or a birth/state reporting it)."""
        state = uow.schedules.device_schedule(device.device_id)
        if state is None or version > state.version or state.applied_version == version:
            return
        rejected = state.rejected_version == version  # refused once (e.g. clock not set), applied now
        state = uow.schedules.put_device_schedule(
            dataclasses.replace(
                state,
                applied_version=version,
                applied_at=now,
                rejected_version=None if rejected else state.rejected_version,
                rejected_reason=None if rejected else state.rejected_reason,
            )
        )
        if version == state.version:
            self._finish(
                uow, state.command_msg_id, CommandStatus.ACKED, f"applied ({state.slots} slots)", now
            )
            self.check(uow, device, state, offers=None, now=now)

    def on_rejected(self, uow: UnitOfWork, device: Device, version: int, reason: str, now: datetime) -> None:
        """The device refused config ``version`` and keeps the one it held."""
        state = uow.schedules.device_schedule(device.device_id)
        if state is None:
            return
        state = uow.schedules.put_device_schedule(
            dataclasses.replace(state, rejected_version=version, rejected_reason=reason[:200])
        )
        if version == state.version:
            self._finish(uow, state.command_msg_id, CommandStatus.NACKED, reason[:200], now)
            self.check(uow, device, state, offers=None, now=now)

    @staticmethod
    def _finish(
        uow: UnitOfWork, msg_id: str | None, status: CommandStatus, result: str, now: datetime
    ) -> None:
        command = uow.commands.get(msg_id) if msg_id else None
        if command is None or command.status not in {CommandStatus.PENDING, CommandStatus.SENT}:
            return
        uow.commands.update(
            dataclasses.replace(command, status=status, finished_at=now, next_attempt_at=None, result=result)
        )

    # -- no schedule (3.8) ---------------------------------------------------------------------------------

    def problem(self, state: DeviceSchedule | None, *, offers: bool | None, now: datetime) -> str | None:
        """Why the device has no valid schedule, or ``None`` (see the module rules)."""
        if state is None:
            return "no schedule has been built for the dispenser yet"
        if self._offers_nothing(state, offers=offers):
            return f"schedule version {state.version} offers no dose (no roll or tray accepted, or all used)"
        if state.rejected_version == state.version:
            return f"the dispenser refused schedule version {state.version}: {state.rejected_reason}"
        if state.applied_version != state.version and now - state.built_at >= self.apply_grace:
            minutes = int(self.apply_grace.total_seconds() // 60)
            return f"the dispenser has not applied schedule version {state.version} within {minutes} minutes"
        return None

    @staticmethod
    def _offers_nothing(state: DeviceSchedule, *, offers: bool | None) -> bool:
        return offers is False or (offers is None and state.slots == 0 and "paused_until" not in state.config)

    def check(
        self,
        uow: UnitOfWork,
        device: Device,
        state: DeviceSchedule | None,
        *,
        offers: bool | None,
        now: datetime,
    ) -> str | None:
        """Raise or end the device's "no schedule" alarm; returns the reason, if any."""
        key = f"{SubjectKind.DEVICE.value}:{device.device_id}:{NO_SCHEDULE}"
        binding = uow.bindings.active_for_device(device.device_id)
        in_service = device.status in {DeviceStatus.ENROLLED, DeviceStatus.ACTIVE}
        problem = self.problem(state, offers=offers, now=now) if binding and in_service else None
        if problem is None:
            settled = state is not None and state.applied_version == state.version
            if settled or binding is None or not in_service:
                end_alarm(uow, key, "the dispenser holds a valid schedule" if settled else "not in use", now)
            return None
        if (
            state is not None
            and self._offers_nothing(state, offers=offers)
            and _reported_empty(uow, device.device_id)
        ):
            return problem  # the empty roll or tray's own alarm is open: one cause, one alarm
        condition = device_condition(
            NO_SCHEDULE, device.device_id, binding.patient_id if binding else None, problem
        )
        current = uow.alarms.open_by_key(key)
        if current is None or current.detail != problem:  # a sweep does not count the same reason again
            raise_alarm(uow, condition, now)
        return problem


EMPTY_KINDS: Final = ("roll.empty", "tray.empty")


def _reported_empty(uow: UnitOfWork, device_id: str) -> bool:
    """Whether the dispenser's own "roll empty" or "tray empty" alarm is open."""
    return any(
        uow.alarms.open_by_key(f"{SubjectKind.DEVICE.value}:{device_id}:{kind}") for kind in EMPTY_KINDS
    )


class ScheduleSweep:
    """The timer's side: refresh every bound device's schedule and check "no schedule"."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, service: ScheduleService) -> None:
        """Refresh through ``service`` at ``clock``'s time."""
        self._uow_factory = uow_factory
        self._clock = clock
        self.service = service

    def sweep(self) -> int:
        """Refresh every device in service that is bound; returns how many got a new version."""
        now = self._clock.now().astimezone(UTC)
        sent = 0
        with self._uow_factory() as uow:
            for device in _in_service(uow):
                if uow.bindings.active_for_device(device.device_id) is None:
                    continue
                sent += self.service.refresh(uow, device, now).sent
            uow.commit()
        return sent


def _in_service(uow: UnitOfWork) -> Iterator[Device]:
    for status in (DeviceStatus.ENROLLED, DeviceStatus.ACTIVE):
        offset = 0
        while page := uow.devices.select(status=status, offset=offset, limit=PAGE):
            yield from page
            offset += PAGE
