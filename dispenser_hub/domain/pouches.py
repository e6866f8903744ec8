"""What a pharmacy packs in a multidose roll, and whether a scanned pouch may be given.

The pharmacy's manifest of a roll (``RollManifest``) lists one ``Pouch`` per intake time, each with its
``DrugLine``s, and is printed with the patient reference and the time; the dispenser reads (scans) each
pouch before cutting it off the roll. Manifest rules: a valid roll id, pouch ids and printed reference
(protocol ``Ref``s: they travel in messages), a valid national id number, at least one pouch, unique pouch
ids, strictly increasing intake times in whole milliseconds (the wire's precision), at least one drug
line per pouch, positive quantities. ``ManifestError`` names the field. A roll in a dispenser (loads, the
roll verdict) is in ``rolls``.

Pouch rules (``judge_pouch``), checked in this order; the first that fails refuses the pouch:

1. **The dispenser has an accepted roll, for its bound patient, and the pouch is on it.** No active load
   in this device, no bound patient, a load accepted for another patient than the one bound now (the
   device was rebound and the load was not ended), or a scanned roll id that is not the accepted roll:
   the pouch is not the accepted roll's. Checked here even though ``judge_roll`` checked the roll, so that
   a pouch can never reach a patient through stale state the caller forgot to end.
2. **The accepted roll's manifest names the bound patient** (by national id number): the same invariant
   again, at the last moment before a dose is given.
3. **The pouch id is on the manifest, and the patient reference and intake time printed on the pouch are
   the manifest's.** A pouch id the roll does not have is a foreign pouch spliced in; a different printed
   reference or time is another patient's pouch or a misprint. Either way: do not give it.
4. **Not dispensed before** (per roll: the caller passes the pouch ids already dispensed from this roll).
   A pouch that comes round twice (the roll rewound, a duplicate barcode) must not be given twice.
5. **It is the next due pouch**: its intake time is the time of the next due slot. No due slot (``None``)
   means nothing may be dispensed now. A pouch out of order means the roll is not where the schedule
   expects it (a pouch skipped or not cut), and giving it would give a dose at the wrong time.

Every refusal raises the wrong-roll alarm (``WRONG_ROLL``, VKP 3.5). Decision on VKP 3.16 "pouch
unreadable": the hub only ever sees pouches the device *could* read (an unreadable barcode reaches the hub
as the device's ``fault.pouch_unreadable``, which raises 3.16 through the device alarms), and a pouch that
reads but does not fit cannot be told apart from a foreign one, so the hub's refusals are all "do not give
it", i.e. 3.5. The out-of-order case (rule 5) also maps to 3.5: DOMAIN.md has no closer code (3.14 "roll
stuck" was considered, but an out-of-order pouch need not be a stuck roll). ``POUCH_UNREADABLE`` stays in
the vocabulary for the service that raises 3.16 from the device fault.

Details are shown on the device and to operators: roll and pouch ids only, never patient data. Pure:
callers pass every fact; nothing here reads a clock or storage.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.national_id import InvalidNationalIdError, NationalId
from firmware_protocol.codes import EVENT_MAPPINGS, HUB_CONDITIONS

if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet
    from decimal import Decimal

    from dispenser_hub.domain.rolls import BoundPatient, RollLoad
    from firmware_protocol.messages import PouchScanned

REF_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
"""Roll ids, pouch ids and printed patient references: the protocol's ``Ref`` (they travel in messages)."""
MAX_DETAIL: Final = 200
"""The protocol's ``Text`` limit: ``RollVerdict.detail`` and what a device can show."""
WRONG_ROLL: Final = "wrong_roll"
"""Alarm kind of a refused roll or pouch (the hub condition of VKP 3.5)."""
POUCH_UNREADABLE: Final = "pouch_unreadable"
"""Alarm kind of a pouch the device could not read (VKP 3.16, from the device's fault)."""
ALARM_VKP: Final[dict[str, str | None]] = {
    WRONG_ROLL: HUB_CONDITIONS[WRONG_ROLL].vkp,
    POUCH_UNREADABLE: EVENT_MAPPINGS[f"fault.{POUCH_UNREADABLE}"].vkp,
}
"""The VKP alert code of each alarm kind."""
DIGEST_FORMAT: Final = "dispenser-hub/roll-manifest/1"
"""Names the canonical form hashed by ``RollManifest.content_digest`` (changing the form changes this)."""
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_REF = re.compile(REF_PATTERN)
_MS: Final = timedelta(milliseconds=1)


class ManifestError(ValueError):
    """A manifest, pouch, drug line or roll load that breaks a rule; ``field`` names where, the message what.

    Importers prefix ``field`` with their own position (file line, pouch number) so the error names the
    line and the field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_utc(field: str, value: datetime) -> None:
    """``value`` must be timezone-aware UTC in whole milliseconds (the wire's precision)."""
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ManifestError(field, "must be timezone-aware UTC")
    if value.microsecond % 1000:
        raise ManifestError(field, "must be whole milliseconds (times travel as Unix milliseconds)")


def check_ref(field: str, value: str) -> None:
    """``value`` must be a protocol ``Ref``: 1-64 letters, digits and ``._:/-``, starting alphanumeric."""
    if not _REF.fullmatch(value):
        msg = "must be 1-64 characters: letters, digits and ._:/- (starting with a letter or digit)"
        raise ManifestError(field, msg)


def check_text(field: str, value: str) -> None:
    """``value`` must be non-blank text."""
    if not value.strip():
        raise ManifestError(field, "must not be empty")


def to_ms(value: datetime) -> int:
    """Unix milliseconds of an aware time (exact, no float rounding)."""
    return (value - EPOCH) // _MS


def from_ms(value: int) -> datetime:
    """The aware UTC time of Unix milliseconds."""
    return EPOCH + value * _MS


def canonical_text(value: str) -> str:
    """Text as it enters a digest: Unicode NFC, outer whitespace removed."""
    return unicodedata.normalize("NFC", value).strip()


def fit_detail(text: str) -> str:
    """``text`` cut to ``MAX_DETAIL`` characters (a last resort: details are written to fit)."""
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


@dataclass(frozen=True, slots=True)
class DrugLine:
    """One drug in a pouch: ``quantity`` units (tablets, may be a fraction) of ``name`` ``strength``."""

    name: str
    strength: str
    quantity: Decimal
    as_needed: bool = False
    """Taken only when needed ("ved behov"), not on a fixed time."""

    def __post_init__(self) -> None:
        """Name and strength are given; the quantity is a finite positive decimal."""
        check_text("name", self.name)
        check_text("strength", self.strength)
        if not self.quantity.is_finite() or self.quantity <= 0:
            raise ManifestError("quantity", "must be a positive number")

    def canonical(self) -> dict[str, object]:
        """The line as it enters the manifest digest (``RollManifest.content_digest``)."""
        return {
            "name": canonical_text(self.name),
            "strength": canonical_text(self.strength),
            "quantity": format(self.quantity.normalize(), "f"),
            "as_needed": self.as_needed,
        }


@dataclass(frozen=True, slots=True)
class Pouch:
    """One pouch of a manifest: its barcode, its intake time and the drugs in it."""

    pouch_id: str
    intake_at: datetime
    drugs: tuple[DrugLine, ...]

    def __post_init__(self) -> None:
        """A protocol-safe id, an aware UTC time, at least one drug line."""
        check_ref("pouch_id", self.pouch_id)
        check_utc("intake_at", self.intake_at)
        if not self.drugs:
            raise ManifestError("drugs", "a pouch holds at least one drug line")

    def canonical(self) -> dict[str, object]:
        """The pouch as it enters the manifest digest; drug lines sorted (their order means nothing)."""
        lines = sorted(
            (line.canonical() for line in self.drugs), key=lambda line: json.dumps(line, sort_keys=True)
        )
        return {"pouch_id": self.pouch_id, "intake_at": to_ms(self.intake_at), "drugs": lines}


def check_national_id(field: str, value: str) -> None:
    """``value`` must be a valid national id number (the error never shows it)."""
    try:
        NationalId(value)
    except InvalidNationalIdError as error:  # its message never contains the number
        raise ManifestError(field, str(error)) from error


@dataclass(frozen=True, slots=True)
class RollManifest:
    """The pharmacy's description of one roll: whose it is and every pouch, in intake order."""

    roll_id: str
    patient_national_id: str
    printed_patient_ref: str
    pharmacy: str
    packed_at: datetime
    pouches: tuple[Pouch, ...]

    def __post_init__(self) -> None:
        """Valid ids and times; at least one pouch; unique pouch ids; strictly increasing intake times."""
        check_ref("roll_id", self.roll_id)
        check_national_id("patient_national_id", self.patient_national_id)
        check_ref("printed_patient_ref", self.printed_patient_ref)
        check_text("pharmacy", self.pharmacy)
        check_utc("packed_at", self.packed_at)
        if not self.pouches:
            raise ManifestError("pouches", "a roll has at least one pouch")
        seen: set[str] = set()
        for number, pouch in enumerate(self.pouches):
            if pouch.pouch_id in seen:
                raise ManifestError(f"pouches[{number}].pouch_id", f"pouch id {pouch.pouch_id} is repeated")
            seen.add(pouch.pouch_id)
            if number and pouch.intake_at <= self.pouches[number - 1].intake_at:
                msg = (
                    f"intake times must strictly increase: pouch {pouch.pouch_id} "
                    f"({pouch.intake_at.isoformat()}) is not after the pouch before it"
                )
                raise ManifestError(f"pouches[{number}].intake_at", msg)

    def __repr__(self) -> str:
        """Without the national id number and the printed patient reference."""
        return (
            f"RollManifest(roll_id={self.roll_id!r}, pharmacy={self.pharmacy!r}, pouches={len(self.pouches)})"
        )

    @property
    def first_intake(self) -> datetime:
        """Intake time of the first pouch."""
        return self.pouches[0].intake_at

    @property
    def last_intake(self) -> datetime:
        """Intake time of the last pouch."""
        return self.pouches[-1].intake_at

    @property
    def max_spacing(self) -> timedelta:
        """The largest time between consecutive pouches (zero for a single pouch)."""
        times = [pouch.intake_at for pouch in self.pouches]
        return max((b - a for a, b in itertools.pairwise(times)), default=timedelta(0))

    def pouch(self, pouch_id: str) -> Pouch | None:
        """The pouch with this barcode, if the roll has it."""
        return next((pouch for pouch in self.pouches if pouch.pouch_id == pouch_id), None)

    def content_digest(self) -> str:
        """SHA-256 (hex) of the manifest's canonical form: equal for the same manifest imported twice.

        Canonical form: compact JSON with sorted keys (UTF-8) of every field, times as Unix milliseconds,
        texts NFC-normalised and stripped, quantities as plain decimals without trailing zeros, drug lines
        of a pouch sorted. So formatting differences (``1.0`` vs ``1``, line order within a pouch) do not
        make a conflict, while any change of patient, pouch, time or contents does.
        """
        form = {
            "format": DIGEST_FORMAT,
            "roll_id": self.roll_id,
            "patient_national_id": self.patient_national_id,
            "printed_patient_ref": self.printed_patient_ref,
            "pharmacy": canonical_text(self.pharmacy),
            "packed_at": to_ms(self.packed_at),
            "pouches": [pouch.canonical() for pouch in self.pouches],
        }
        text = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PouchScan:
    """What the device read from a pouch before cutting it (``pouch.scanned``)."""

    roll_id: str
    pouch_id: str
    printed_patient_ref: str
    intake_time: datetime

    @classmethod
    def from_message(cls, body: PouchScanned) -> PouchScan:
        """The scan in a ``pouch.scanned`` body."""
        return cls(body.roll_id, body.pouch_id, body.printed_patient_ref, from_ms(body.intake_time))


@dataclass(frozen=True, slots=True)
class PouchDecision:
    """Whether the scanned pouch may be given; a refusal names the alarm kind and says why."""

    ok: bool
    alarm_kind: str | None
    detail: str

    def __post_init__(self) -> None:
        """A refusal has an alarm kind, an accepted pouch none; the detail fits the protocol's text."""
        if self.ok == (self.alarm_kind is not None):
            msg = "a refused pouch needs an alarm kind, an accepted one has none"
            raise ValueError(msg)
        if self.alarm_kind is not None and self.alarm_kind not in ALARM_VKP:
            msg = f"unknown alarm kind {self.alarm_kind!r}"
            raise ValueError(msg)
        if len(self.detail) > MAX_DETAIL:
            msg = f"detail must be at most {MAX_DETAIL} characters"
            raise ValueError(msg)

    @property
    def vkp_code(self) -> str | None:
        """The VKP alert code of the alarm a refusal raises."""
        return None if self.alarm_kind is None else ALARM_VKP[self.alarm_kind]


def _refuse(detail: str) -> PouchDecision:
    return PouchDecision(ok=False, alarm_kind=WRONG_ROLL, detail=fit_detail(detail))


def judge_pouch(  # noqa: PLR0911 - one return per rule of the module docstring, in its order
    *,
    device_id: str,
    patient: BoundPatient | None,
    load: RollLoad | None,
    manifest: RollManifest | None,
    scan: PouchScan,
    dispensed: AbstractSet[str],
    next_due_at: datetime | None,
) -> PouchDecision:
    """May the pouch ``scan`` read be given? (the rules of the module docstring, in order).

    ``load`` is the device's active accepted roll (``None`` when there is none) and ``manifest`` its
    manifest; ``dispensed`` the pouch ids already dispensed from that roll; ``next_due_at`` the due time of
    the next due slot, or ``None`` when none is due. ``ValueError`` if the facts contradict each other
    (a load of another device, a manifest of another roll).
    """
    if load is not None and load.device_id != device_id:
        msg = f"the load passed is in dispenser {load.device_id}, not {device_id}"
        raise ValueError(msg)
    if load is not None and manifest is not None and manifest.roll_id != load.roll_id:
        msg = f"the manifest passed is of roll {manifest.roll_id}, not of the loaded roll {load.roll_id}"
        raise ValueError(msg)
    if load is None or not load.active:
        return _refuse("No accepted roll in this dispenser: do not give the pouch. Load the patient's roll.")
    if patient is None or load.patient_id != patient.patient_id:
        return _refuse(f"Roll {load.roll_id} was accepted for an earlier binding: do not give the pouch.")
    if scan.roll_id != load.roll_id:
        return _refuse(f"Pouch is from roll {scan.roll_id}, not the accepted roll {load.roll_id}.")
    if manifest is None or manifest.patient_national_id != patient.national_id:
        return _refuse(f"Roll {load.roll_id} has no manifest for the bound patient: do not give the pouch.")
    packed = manifest.pouch(scan.pouch_id)
    if packed is None:
        return _refuse(f"Pouch {scan.pouch_id} is not on roll {load.roll_id}: do not give it.")
    if scan.printed_patient_ref != manifest.printed_patient_ref or scan.intake_time != packed.intake_at:
        return _refuse(
            f"Pouch {scan.pouch_id} does not match its manifest (patient or time): do not give it."
        )
    if scan.pouch_id in dispensed:
        return _refuse(f"Pouch {scan.pouch_id} was dispensed before: do not give it again.")
    if next_due_at is None or scan.intake_time != next_due_at:
        return _refuse(f"Pouch {scan.pouch_id} is not the next due pouch: do not give it now.")
    return PouchDecision(ok=True, alarm_kind=None, detail=f"Pouch {scan.pouch_id} is the next due pouch.")
