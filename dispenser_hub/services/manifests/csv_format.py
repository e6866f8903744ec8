"""The CSV roll manifest format (``docs/roll-manifest-format.md``): one row per drug line, for spreadsheets.

Line 1 is the header naming the columns (any order, case and spaces around names ignored); its separator,
``;`` or ``,``, is the file's. The rows of one roll are consecutive and repeat the roll's fields; within
them the rows of one pouch are consecutive, in roll order, and repeat the pouch's fields. Values are trimmed;
quantities may use a decimal comma. Problems name the line (the header is line 1) and the column.
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.national_id import InvalidNationalIdError, NationalId
from dispenser_hub.services.manifests.drafts import DrugDraft, Got, PouchDraft, RollDraft, assemble
from dispenser_hub.services.manifests.fields import (
    DESCRIPTIONS,
    MAX_DRUG_LINES,
    decode_text,
    read_flag,
    read_national_id,
    read_quantity,
    read_ref,
    read_text,
    read_time,
    too_many_drug_lines,
)
from dispenser_hub.services.manifests.problems import Problems, StopReadingError, Where, shown

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dispenser_hub.domain.pouches import RollManifest

COLUMNS: Final = (
    "roll_id",
    "patient_national_id",
    "printed_patient_ref",
    "pharmacy",
    "packed_at",
    "pouch_id",
    "intake_at",
    "drug_name",
    "strength",
    "quantity",
    "as_needed",
)
OPTIONAL: Final = frozenset({"as_needed"})
"""Columns that may be left out (``as_needed``: then no drug line is "as needed")."""
ROLL_COLUMNS: Final = ("patient_national_id", "printed_patient_ref", "pharmacy", "packed_at")
"""Besides ``roll_id``, the columns every row of a roll repeats."""
DELIMITERS: Final = (";", ",")


def read_csv(data: bytes, problems: Problems, *, max_pouches: int) -> list[RollManifest]:
    """The manifests of a CSV file; problems are recorded in ``problems``."""
    text = decode_text(data, problems, file_kind="CSV")
    delimiter = _delimiter(text.partition("\n")[0], problems)
    reader = _Reader(problems, delimiter, max_pouches)
    rows = _rows(text, delimiter, problems)
    header = next(rows, None)
    if header is None:  # pragma: no cover - decode_text refused a blank file
        raise problems.stop(Where(""), "the file is empty")
    reader.header(header[1])
    seen_rows = False
    for line, row in rows:
        if any(cell.strip() for cell in row):
            seen_rows = True
            reader.row(line, row)
    if not seen_rows:
        raise problems.stop(Where("", line=2), "the file has only its header: add one row per drug line")
    return assemble(reader.rolls, problems)


def header_delimiter(line: str) -> str | None:
    """The separator that splits ``line`` into the most known column names (at least two), if any."""
    known = {
        delimiter: sum(cell.strip().strip('"').strip().lower() in COLUMNS for cell in line.split(delimiter))
        for delimiter in DELIMITERS
    }
    best = max(DELIMITERS, key=lambda delimiter: known[delimiter])
    return best if known[best] > 1 else None


def _delimiter(header: str, problems: Problems) -> str:
    delimiter = header_delimiter(header)
    if delimiter is not None:
        return delimiter
    if "\t" in header and sum(name in header.lower() for name in COLUMNS) > 1:
        msg = "the columns are separated by tabs: separate them with ; or , (save the sheet as CSV)"
    else:
        msg = f"line 1 must be the header naming the columns, separated by ; or , ({';'.join(COLUMNS)})"
    raise problems.stop(Where("", line=1), msg)


def _rows(text: str, delimiter: str, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """Each row with the line it starts on (a quoted value may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            msg = f"cannot be read as CSV ({error}): check the quotes from this line on"
            raise problems.stop(Where("", line=line), msg) from None
        yield line, row


@dataclass(slots=True)
class _Roll:
    """A roll being read: its first row's values, and the pouch being read."""

    key: str
    line: int
    values: dict[str, str]
    draft: RollDraft
    pouch_lines: dict[str, int] = field(default_factory=dict)
    pouch: PouchDraft | None = None
    pouch_key: str = ""
    pouch_values: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, problems: Problems, delimiter: str, max_pouches: int) -> None:
        self.problems = problems
        self.delimiter = delimiter
        self.max_pouches = max_pouches
        self.columns: dict[str, int] = {}
        self.width = 0
        self.named = 0
        self.rolls: list[RollDraft] = []
        self.roll_lines: dict[str, int] = {}
        self.current: _Roll | None = None
        self.pouch_count = 0

    def header(self, cells: list[str]) -> None:
        names = [cell.strip().lower() for cell in cells]
        self.width = len(names)  # every row has as many values, empty ones included
        while names and not names[-1]:  # unnamed columns at the end: a spreadsheet's empty columns
            names.pop()
        for position, name in enumerate(names):
            if not name:
                msg = f"column {position + 1} of the header has no name: name it or delete the column"
                self.problems.add(Where("", line=1), msg)
            elif name in self.columns:
                self.problems.add(Where(name, line=1), "is given twice in the header: remove one")
            elif name not in COLUMNS:
                close = difflib.get_close_matches(name, COLUMNS, n=1)
                hint = f'rename it to "{close[0]}"' if close else f"the columns are {', '.join(COLUMNS)}"
                self.problems.add(Where("", line=1), f"unknown column {shown(name)}: {hint}, or remove it")
            else:
                self.columns[name] = position
        self.named = len(names)
        for name in COLUMNS:
            if name not in self.columns and name not in OPTIONAL:
                msg = f"the header has no {name} column: add it ({DESCRIPTIONS[name]})"
                self.problems.add(Where(name, line=1), msg)
        if len(self.problems):
            raise StopReadingError

    def row(self, line: int, row: list[str]) -> None:
        if len(row) != self.width:
            self.problems.add(Where("", line=line), self.width_problem(row))
            return
        if any(cell.strip() for cell in row[self.named :]):
            msg = "has a value in a column without a name in the header: name the column or remove the value"
            self.problems.add(Where("", line=line), msg)
            return
        values = {name: row[position].strip() for name, position in self.columns.items()}
        roll = self.current
        key = values["roll_id"]
        if roll is None or key != roll.key:
            if key in self.roll_lines:
                msg = (
                    f"roll {shown(key)} starts on line {self.roll_lines[key]} and rows of another roll come "
                    "between: keep the rows of a roll together (or correct the roll id)"
                )
                self.problems.add(Where("roll_id", line=line), msg)
                return
            roll = self.start_roll(line, values)
        else:
            self.agree_roll(roll, line, values)
        if roll.pouch is None or values["pouch_id"] != roll.pouch_key:
            if values["pouch_id"] in roll.pouch_lines:
                msg = (
                    f"pouch {shown(values['pouch_id'])} is repeated: it starts on line "
                    f"{roll.pouch_lines[values['pouch_id']]} and rows of other pouches come between; every "
                    "pouch has its own id and its rows are together"
                )
                self.problems.add(Where("pouch_id", line=line), msg)
                return
            self.start_pouch(roll, line, values)
        else:
            self.agree_pouch(roll, line, values)
        if roll.pouch is not None:
            if len(roll.pouch.drugs) == MAX_DRUG_LINES:
                raise self.problems.stop(
                    Where("drug_name", line=line), too_many_drug_lines(shown(roll.pouch_key))
                )
            roll.pouch.drugs.append(self.drug(line, values))

    def width_problem(self, row: list[str]) -> str:
        values = "1 value" if len(row) == 1 else f"{len(row)} values"
        message = f"has {values} but the header has {self.width} columns (empty ones included)"
        other = next(delimiter for delimiter in DELIMITERS if delimiter != self.delimiter)
        if len(row) == 1 and other in row[0]:
            return (
                f'{message}: the values are separated by "{other}" but the header by "{self.delimiter}"; '
                "use one separator in the whole file"
            )
        if self.delimiter == "," and len(row) > self.width:
            return (
                f"{message}: a decimal comma in an unquoted value? Write 0.5, put the value in quotes, "
                "or separate the columns with ;"
            )
        return f"{message}: give a value (possibly empty) for every column"

    def start_roll(self, line: int, values: dict[str, str]) -> _Roll:
        problems = self.problems

        def at(name: str) -> Where:
            return Where(name, line=line)

        draft = RollDraft(
            roll_id=Got(read_ref(values["roll_id"], at("roll_id"), problems, "roll id"), at("roll_id")),
            patient_national_id=Got(
                read_national_id(values["patient_national_id"], at("patient_national_id"), problems),
                at("patient_national_id"),
            ),
            printed_patient_ref=Got(
                read_ref(
                    values["printed_patient_ref"],
                    at("printed_patient_ref"),
                    problems,
                    "printed patient reference",
                ),
                at("printed_patient_ref"),
            ),
            pharmacy=Got(read_text(values["pharmacy"], at("pharmacy"), problems), at("pharmacy")),
            packed_at=Got(
                read_time(values["packed_at"], at("packed_at"), problems, local=False), at("packed_at")
            ),
            where=Where("", line=line),
        )
        self.rolls.append(draft)
        self.roll_lines[values["roll_id"]] = line
        self.current = _Roll(values["roll_id"], line, values, draft)
        return self.current

    def start_pouch(self, roll: _Roll, line: int, values: dict[str, str]) -> None:
        self.pouch_count += 1
        if self.pouch_count > self.max_pouches:
            msg = f"more than {self.max_pouches} pouches in one file: split the manifests over several files"
            raise self.problems.stop(Where("pouch_id", line=line), msg)
        id_at, intake_at = Where("pouch_id", line=line), Where("intake_at", line=line)
        roll.pouch = PouchDraft(
            pouch_id=Got(read_ref(values["pouch_id"], id_at, self.problems, "pouch id"), id_at),
            intake_at=Got(read_time(values["intake_at"], intake_at, self.problems, local=True), intake_at),
            where=Where("", line=line),
        )
        roll.draft.pouches.append(roll.pouch)
        roll.pouch_key = values["pouch_id"]
        roll.pouch_lines[roll.pouch_key] = line
        roll.pouch_values = values

    def agree_roll(self, roll: _Roll, line: int, values: dict[str, str]) -> None:
        for name in ROLL_COLUMNS:
            first, given = roll.values[name], values[name]
            if first == given or _same(name, first, given):
                continue
            if name == "patient_national_id":
                msg = (
                    f"differs from line {roll.line}, the first row of roll {shown(roll.key)}: "
                    "every row of a roll names the same patient"
                )
            else:
                msg = (
                    f"{shown(given)} differs from {shown(first)} on line {roll.line}, the first row of roll "
                    f"{shown(roll.key)}: every row of a roll gives the same {name}"
                )
            self.problems.add(Where(name, line=line), msg)

    def agree_pouch(self, roll: _Roll, line: int, values: dict[str, str]) -> None:
        first, given = roll.pouch_values["intake_at"], values["intake_at"]
        if first == given or _same("intake_at", first, given):
            return
        msg = (
            f"{shown(given)} differs from {shown(first)} on line {roll.pouch_lines[roll.pouch_key]}, "
            f"the first row of pouch {shown(roll.pouch_key)}: every row of a pouch gives the same intake_at "
            "(or is this another pouch with the same id?)"
        )
        self.problems.add(Where("intake_at", line=line), msg)

    def drug(self, line: int, values: dict[str, str]) -> DrugDraft:
        def at(name: str) -> Where:
            return Where(name, line=line)

        as_needed = values.get("as_needed", "")
        return DrugDraft(
            name=Got(read_text(values["drug_name"], at("drug_name"), self.problems), at("drug_name")),
            strength=Got(read_text(values["strength"], at("strength"), self.problems), at("strength")),
            quantity=Got(
                read_quantity(values["quantity"], at("quantity"), self.problems, decimal_comma=True),
                at("quantity"),
            ),
            as_needed=Got(read_flag(as_needed, at("as_needed"), self.problems), at("as_needed")),
        )


def _same(name: str, first: str, given: str) -> bool:
    """Whether two spellings of a field mean the same (a time or national id written differently)."""
    if name == "patient_national_id":
        try:
            return NationalId.parse(first) == NationalId.parse(given)
        except InvalidNationalIdError:
            return False
    if name in {"packed_at", "intake_at"}:
        quiet = Problems()
        first_time = read_time(first, Where(name), quiet, local=name == "intake_at")
        given_time = read_time(given, Where(name), quiet, local=name == "intake_at")
        return first_time is not None and first_time == given_time
    return False
