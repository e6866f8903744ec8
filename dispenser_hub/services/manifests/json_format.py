"""The JSON roll manifest format (``docs/roll-manifest-format.md``): strict, every problem with its path.

A document is an object with ``format`` and ``version`` and either one manifest's members beside them or
``manifests``, a list of manifest objects. Unknown members, duplicate members, wrong types and missing
members are all reported, each with its JSON path and line:column (found by ``jsontext.Locator``).
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Final, TypeGuard, TypeVar

from dispenser_hub.services.manifests.drafts import DrugDraft, Got, PouchDraft, RollDraft, assemble
from dispenser_hub.services.manifests.fields import (
    DESCRIPTIONS,
    MAX_DRUG_LINES,
    decode_text,
    read_national_id,
    read_quantity,
    read_ref,
    read_text,
    read_time,
    too_many_drug_lines,
)
from dispenser_hub.services.manifests.jsontext import (
    JsonSyntaxError,
    Locator,
    Members,
    Number,
    describe,
    display,
    load,
)
from dispenser_hub.services.manifests.problems import Problems, StopReadingError, Where, shown

if TYPE_CHECKING:
    from collections.abc import Callable
    from decimal import Decimal

    from dispenser_hub.domain.pouches import RollManifest
    from dispenser_hub.services.manifests.jsontext import Path

FORMAT: Final = "dispenser-hub/roll-manifest"
VERSION: Final = 1
HEADER_MEMBERS: Final = ("format", "version")
ROLL_MEMBERS: Final = (
    "roll_id",
    "patient_national_id",
    "printed_patient_ref",
    "pharmacy",
    "packed_at",
    "pouches",
)
POUCH_MEMBERS: Final = ("pouch_id", "intake_at", "drugs")
DRUG_MEMBERS: Final = ("name", "strength", "quantity", "as_needed")
_SURROGATE = re.compile("[\ud800-\udfff]")
T = TypeVar("T")
Found = dict[str, tuple["Path", object]]
"""The known members of an object: name -> (its path, its value)."""


def read_json(data: bytes, problems: Problems, *, max_pouches: int) -> list[RollManifest]:
    """The manifests of a JSON document; problems are recorded in ``problems``."""
    text = decode_text(data, problems, file_kind="JSON")
    problems.text = text
    try:
        root = load(text)
    except JsonSyntaxError as error:
        raise problems.stop(Where("", offset=error.offset), f"not valid JSON: {error.message}") from None
    problems.locator = Locator(text)
    return _Reader(problems, max_pouches).document(root)


class _Reader:
    def __init__(self, problems: Problems, max_pouches: int) -> None:
        self.problems = problems
        self.max_pouches = max_pouches
        self.pouch_count = 0

    def document(self, root: object) -> list[RollManifest]:
        if not isinstance(root, Members):
            msg = f'the document must be an object {{"format": "{FORMAT}", "version": {VERSION}, ...}}'
            raise self.problems.stop(self.at(()), f"{msg}, not {describe(root)}")
        self.header(root)
        found = self.members(root, (), (*HEADER_MEMBERS, "manifests", *ROLL_MEMBERS))
        rolls: list[RollDraft] = []
        if "manifests" not in found:
            rolls.append(self.roll((), found))
        else:
            for name in ROLL_MEMBERS:
                if name in found:
                    self.problems.add(
                        self.at(found[name][0], at_name=True),
                        'a document holds either one manifest (its members beside "format") or a '
                        '"manifests" list, not both: move this into a manifest of the list',
                    )
            path, value = found["manifests"]
            items = self.list_of(path, value, "a list of manifests [{...}, ...]", "add at least one manifest")
            for number, item in enumerate(items):
                item_path = (*path, number)
                if self.typed(item, item_path, "a manifest object {...}"):
                    rolls.append(self.roll(item_path, self.members(item, item_path, ROLL_MEMBERS)))
        return assemble(rolls, self.problems)

    def header(self, root: Members) -> None:
        """Stop at a missing or other ``format`` or ``version``: the rest would only be noise."""
        found: Found = {
            name: (((name, 0),), value) for name, value in reversed(root) if name in HEADER_MEMBERS
        }
        before = len(self.problems)
        kind = self.required((), found, "format")
        if kind is not None and kind[1] != FORMAT:
            value = shown(kind[1]) if type(kind[1]) is str else describe(kind[1])
            msg = f'is {value}, not "{FORMAT}": this is not a roll manifest of this hub'
            self.problems.add(self.at(kind[0]), msg)
        version = self.required((), found, "version")
        if version is not None and not (isinstance(version[1], Number) and version[1] == str(VERSION)):
            message = (
                f"is {version[1]}: this hub reads version {VERSION}"
                if isinstance(version[1], Number)
                else f"must be the number {VERSION}, not {describe(version[1])}"
            )
            self.problems.add(self.at(version[0]), message)
        if len(self.problems) > before:
            raise StopReadingError

    def roll(self, path: Path, found: Found) -> RollDraft:
        problems = self.problems
        draft = RollDraft(
            roll_id=self.text(path, found, "roll_id", lambda t, w: read_ref(t, w, problems, "roll id")),
            patient_national_id=self.text(
                path, found, "patient_national_id", lambda t, w: read_national_id(t, w, problems)
            ),
            printed_patient_ref=self.text(
                path,
                found,
                "printed_patient_ref",
                lambda t, w: read_ref(t, w, problems, "printed patient reference"),
            ),
            pharmacy=self.text(path, found, "pharmacy", lambda t, w: read_text(t, w, problems)),
            packed_at=self.text(
                path, found, "packed_at", lambda t, w: read_time(t, w, problems, local=False)
            ),
            where=self.at(path),
        )
        pouches = self.required(path, found, "pouches")
        if pouches is not None:
            items = self.list_of(
                pouches[0], pouches[1], "a list of pouches [{...}, ...]", "a roll has at least one pouch"
            )
            for number, item in enumerate(items):
                pouch = self.pouch((*pouches[0], number), item)
                if pouch is not None:
                    draft.pouches.append(pouch)
        return draft

    def pouch(self, path: Path, item: object) -> PouchDraft | None:
        self.pouch_count += 1
        if self.pouch_count > self.max_pouches:
            msg = f"more than {self.max_pouches} pouches in one file: split the manifests over several files"
            raise self.problems.stop(self.at(path), msg)
        if not self.typed(item, path, 'a pouch object {"pouch_id": ..., ...}'):
            return None
        found = self.members(item, path, POUCH_MEMBERS)
        problems = self.problems
        draft = PouchDraft(
            pouch_id=self.text(path, found, "pouch_id", lambda t, w: read_ref(t, w, problems, "pouch id")),
            intake_at=self.text(path, found, "intake_at", lambda t, w: read_time(t, w, problems, local=True)),
            where=self.at(path),
        )
        drugs = self.required(path, found, "drugs")
        if drugs is not None:
            items = self.list_of(
                drugs[0],
                drugs[1],
                "a list of drug lines [{...}, ...]",
                "a pouch holds at least one drug line",
            )
            if len(items) > MAX_DRUG_LINES:
                where = self.at((*drugs[0], MAX_DRUG_LINES))
                raise problems.stop(where, too_many_drug_lines(display(path)))
            for number, drug in enumerate(items):
                line = self.drug((*drugs[0], number), drug)
                if line is not None:
                    draft.drugs.append(line)
        return draft

    def drug(self, path: Path, item: object) -> DrugDraft | None:
        if not self.typed(item, path, 'a drug line object {"name": ..., ...}'):
            return None
        found = self.members(item, path, DRUG_MEMBERS)
        problems = self.problems
        quantity: Got[Decimal] = Got(None, self.at((*path, ("quantity", 0))))
        given = self.required(path, found, "quantity")
        if given is not None:
            where = self.at(given[0])
            if isinstance(given[1], Number) or type(given[1]) is str:  # not Constant (NaN)
                text = self.clean(given[1], where)
                value = None if text is None else read_quantity(text, where, problems, decimal_comma=False)
                quantity = Got(value, where)
            else:
                msg = f'must be a number (1, 0.5) or a decimal string ("0.5"), not {describe(given[1])}'
                problems.add(where, msg)
        as_needed: Got[bool] = Got(value=False, where=self.at((*path, ("as_needed", 0))))
        if "as_needed" in found:
            flag_path, flag = found["as_needed"]
            if isinstance(flag, bool):
                as_needed = Got(flag, self.at(flag_path))
            else:
                as_needed = Got(None, self.at(flag_path))
                problems.add(self.at(flag_path), f"must be true or false, not {describe(flag)}")
        return DrugDraft(
            name=self.text(path, found, "name", lambda t, w: read_text(t, w, problems)),
            strength=self.text(path, found, "strength", lambda t, w: read_text(t, w, problems)),
            quantity=quantity,
            as_needed=as_needed,
        )

    # --- members and types ----------------------------------------------------------------------

    def members(self, node: Members, path: Path, known: tuple[str, ...]) -> Found:
        """The known members of ``node``; duplicates and unknown names reported (and left out)."""
        found: Found = {}
        seen: dict[str, int] = {}
        for name, value in node:
            occurrence = seen.get(name, 0)
            seen[name] = occurrence + 1
            member = (*path, (name, occurrence))
            if occurrence:
                line = self.problems.line_of(self.at((*path, (name, 0)), at_name=True))
                self.problems.add(
                    self.at(member, at_name=True), f"is given twice (first on line {line}): remove one"
                )
            elif name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f'did you mean "{close[0]}"?' if close else f"the members here are {', '.join(known)}"
                where = Where(display((*path, (shown(name)[1:-1], 0))), path=member, at_name=True)
                self.problems.add(where, f"unknown member: remove it ({hint})")
            else:
                found[name] = (member, value)
        return found

    def required(self, path: Path, found: Found, name: str) -> tuple[Path, object] | None:
        """A required member's path and value, or ``None`` with a "missing" problem at its object."""
        if name not in found:
            where = Where(display((*path, (name, 0))), path=path)  # placed at the object
            self.problems.add(where, f'is missing: add "{name}", {DESCRIPTIONS[name]}')
            return None
        return found[name]

    def text(self, path: Path, found: Found, name: str, read: Callable[[str, Where], T | None]) -> Got[T]:
        """What ``read`` makes of a required string member (``None`` if missing or not a string)."""
        member = self.required(path, found, name)
        if member is None:
            return Got(None, self.at((*path, (name, 0))))
        where = self.at(member[0])
        if type(member[1]) is not str:
            hint = ": put the 11 digits in quotes" if name == "patient_national_id" else ""
            self.problems.add(where, f"must be a string, not {describe(member[1])}{hint}")
            return Got(None, where)
        text = self.clean(member[1], where)
        return Got(None if text is None else read(text, where), where)

    def clean(self, text: str, where: Where) -> str | None:
        """``text`` unless it holds half a UTF-16 character (a lone surrogate escape), which is not text."""
        if _SURROGATE.search(text):
            msg = "holds a \\u escape of half a character (a lone surrogate), which is not text: fix it"
            self.problems.add(where, msg)
            return None
        return text

    def typed(self, value: object, path: Path, what: str) -> TypeGuard[Members]:
        """Whether ``value`` is an object; otherwise a problem naming ``what`` it should be."""
        if isinstance(value, Members):
            return True
        self.problems.add(self.at(path), f"must be {what}, not {describe(value)}")
        return False

    def list_of(self, path: Path, value: object, what: str, if_empty: str) -> list[object]:
        """The items of a list that must not be empty (none, with a problem, if it is not a list)."""
        if isinstance(value, Members) or not isinstance(value, list):
            self.problems.add(self.at(path), f"must be {what}, not {describe(value)}")
            return []
        if not value:
            self.problems.add(self.at(path), f"is empty: {if_empty}")
        return value

    @staticmethod
    def at(path: Path, *, at_name: bool = False) -> Where:
        return Where("", path=path, at_name=at_name)
