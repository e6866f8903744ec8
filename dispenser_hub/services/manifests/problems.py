"""Problems found in a manifest file, collected (all of them, up to a limit) and raised together."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from dispenser_hub.services.manifests.jsontext import display

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dispenser_hub.services.manifests.jsontext import Locator, Path

MAX_PROBLEMS: Final = 100
"""A file with more problems is reported with the first ones only (hostile or entirely wrong input)."""
_SHOWN_CHARS: Final = 40
_NATIONAL_ID_LIKE = re.compile(r"(?<!\d)(\d{6}) ?\d{5}(?!\d)")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest file and what to do about it.

    ``line`` is 1-based (``None``: the file as a whole); ``column`` the 1-based character column (JSON only;
    in CSV the column is named by ``field``); ``field`` the JSON path (``manifests[0].pouches[3].intake_at``)
    or the CSV column name, empty when the problem is not about one field.
    """

    line: int | None
    column: int | None
    field: str
    message: str

    def format(self, filename: str) -> str:
        """``manifest.csv:12: quantity: "abc" is not a number ...``; JSON: ``file:line:column: path: ...``."""
        where = filename
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ManifestImportError(ValueError):
    """A manifest file that cannot be imported; ``problems`` lists every problem found, by position.

    ``str()`` is ``format()``: one line per problem. Messages never contain a full national id number.
    """

    def __init__(self, filename: str, problems: Sequence[Problem], *, truncated: bool = False) -> None:
        self.filename = filename
        self.problems: tuple[Problem, ...] = tuple(
            sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
        )
        self.truncated = truncated
        """True when reading stopped at ``MAX_PROBLEMS`` problems: there may be more."""
        super().__init__(self.format())

    def format(self) -> str:
        """One line per problem, in file order."""
        lines = [problem.format(self.filename) for problem in self.problems]
        if self.truncated:
            lines.append(
                f"{self.filename}: stopped after {MAX_PROBLEMS} problems (there may be more): "
                "fix these and import the file again"
            )
        return "\n".join(lines)


@dataclass(slots=True)  # not frozen, nor is Got: building frozen dataclasses is slower, and there are many
class Where:
    """Where a value is: a field (CSV column, JSON path) at a line (CSV), offset or path (JSON).

    ``Problems`` turns a JSON offset or path into a line and column when a problem is reported there.
    """

    field: str
    """CSV column name or JSON path; empty for a JSON ``path`` (the path is displayed when reported)."""
    line: int | None = None
    offset: int | None = None
    """Character offset in the decoded text (JSON syntax errors)."""
    path: Path | None = None
    """JSON path of the value (or, with ``at_name``, of the member whose name is meant)."""
    at_name: bool = False


class StopReadingError(Exception):
    """Reading cannot usefully go on (a syntax error, a limit, too many problems); ``Problems`` holds why."""


class Problems:
    """Collects the problems of one file; JSON readers set ``text`` and ``locator`` to place them."""

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.truncated = False
        self.text = ""
        """The decoded file, when problems are placed by character offset (JSON)."""
        self.locator: Locator | None = None
        """Finds the offsets of JSON paths."""

    def add(self, where: Where, message: str) -> None:
        """Record a problem (national-id-like numbers in ``message`` masked); stop at ``MAX_PROBLEMS``."""
        line, column = self.position(where)
        field = where.field or ("" if where.path is None else display(where.path))
        self.items.append(Problem(line, column, mask_numbers(field), mask_numbers(message)))
        if len(self.items) >= MAX_PROBLEMS:
            self.truncated = True
            raise StopReadingError

    def stop(self, where: Where, message: str) -> StopReadingError:
        """Record a problem after which reading stops: ``raise problems.stop(...)``."""
        self.add(where, message)
        return StopReadingError()

    def position(self, where: Where) -> tuple[int | None, int | None]:
        """The 1-based line and column (column only for an offset or path) of ``where``."""
        offset = where.offset
        if where.path is not None and self.locator is not None:
            offset = self.locator.name(where.path) if where.at_name else self.locator.value(where.path)
        if offset is None:
            return where.line, None
        line = self.text.count("\n", 0, offset) + 1
        return line, offset - self.text.rfind("\n", 0, offset)

    def line_of(self, where: Where) -> int | None:
        """The 1-based line of ``where``."""
        return self.position(where)[0]

    def __len__(self) -> int:
        return len(self.items)


def shown(value: str) -> str:
    """``value`` quoted for a message: JSON-style escapes, cut to 40 characters, national ids masked."""
    cut = value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 1] + "…"
    text = json.dumps(cut, ensure_ascii=False)
    return mask_numbers(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def mask_numbers(text: str) -> str:
    """Every run of 11 digits (or 6 + space + 5) shown as its first six digits and ``*****``."""
    return _NATIONAL_ID_LIKE.sub(lambda match: match[1] + "*****", text)
