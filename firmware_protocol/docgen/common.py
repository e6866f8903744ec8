"""Paths of the generated files and helpers shared by the generators: JSON, Markdown, docstrings, channels."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_protocol.messages import ALL_BODIES, MESSAGE_TYPES, Body
from firmware_protocol.topics import PREFIX, Channel

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    from firmware_protocol.canonical import JsonObject

PACKAGE = Path("firmware_protocol")
ASYNCAPI_PATH = PACKAGE / "asyncapi.json"
SCHEMAS_DIR = PACKAGE / "schemas"
VECTORS_DIR = PACKAGE / "vectors"
PROTOCOL_MD = PACKAGE / "PROTOCOL.md"
GENERATED_DIRS = (SCHEMAS_DIR, VECTORS_DIR)
"""Directories that hold only generated files: anything else in them is stale."""
COMMAND = "python -m firmware_protocol.docgen"


def dump_json(value: object) -> str:
    """Deterministic pretty JSON for generated files: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def pretty(value: object) -> str:
    """Pretty JSON in the given member order, for examples people read."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def md(text: str) -> str:
    """A docstring as Markdown: RST double backticks become single ones."""
    return text.replace("``", "`")


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(md(text).split()).replace("|", "\\|")


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A Markdown table; empty cells show as ``-``."""
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_cell(c) if c else "-" for c in row) + " |" for row in rows]
    return "\n".join(lines)


def doc(obj: object) -> str:
    """The cleaned docstring of ``obj`` (empty when it has none)."""
    return inspect.cleandoc(getattr(obj, "__doc__", None) or "")


def summary(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring on one line."""
    return " ".join(doc(obj).split("\n\n", 1)[0].split())


def attribute_docs(module: ModuleType) -> dict[str, str]:
    """Attribute docstrings (a string right after an assignment) of a module and its classes."""
    docs: dict[str, str] = {}

    def scan(body: list[ast.stmt], prefix: str) -> None:
        for stmt, following in zip(body, [*body[1:], None], strict=True):
            if isinstance(stmt, ast.ClassDef):
                scan(stmt.body, f"{prefix}{stmt.name}.")
                continue
            target = None
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                target = stmt.targets[0].id
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                target = stmt.target.id
            if (
                target
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[prefix + target] = inspect.cleandoc(following.value.value)

    scan(ast.parse(inspect.getsource(module)).body, "")
    return docs


def address(channel: Channel) -> str:
    """The topic of ``channel`` with a ``{device_id}`` placeholder."""
    return f"{PREFIX}/{{device_id}}/{channel.value}"


def bodies_on(channel: Channel) -> list[type[Body]]:
    """The body classes published on ``channel``, in registry order."""
    return [body for body in ALL_BODIES if body.CHANNEL is channel]


def ordered(obj: JsonObject) -> JsonObject:
    """An envelope in reading order (proto, type, device, ids, ..., body, sig; body fields in model order)."""
    order = ["proto", "type", "device", "msg_id", "boot_id", "seq", "ts", "corr_id", "body", "sig"]
    known = {key: obj[key] for key in order if key in obj}
    result = {**known, **{key: value for key, value in obj.items() if key not in known}}
    body, body_cls = obj.get("body"), MESSAGE_TYPES.get(str(obj.get("type")))
    if isinstance(body, dict) and body_cls is not None:
        names = [info.alias or name for name, info in body_cls.model_fields.items()]
        first = {name: body[name] for name in names if name in body}
        result["body"] = {**first, **{key: value for key, value in body.items() if key not in first}}
    return result
