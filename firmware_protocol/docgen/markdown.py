"""PROTOCOL.md as a file: its generated-block markers, a skeleton for a new file, and filling the blocks."""

from __future__ import annotations

import re

from firmware_protocol.docgen.common import COMMAND

BLOCK_NAMES = ("topics", "messages", "errors", "codes", "limits", "signing-example")
"""The generated blocks of PROTOCOL.md, in the order a new skeleton lists them."""
_BEGIN = re.compile(r"^<!-- BEGIN GENERATED: ([a-z0-9-]+) -->$")
_END = re.compile(r"^<!-- END GENERATED: ([a-z0-9-]+) -->$")


def skeleton() -> str:
    """A new PROTOCOL.md: a title and an empty generated block per section."""
    sections = {
        "topics": "Topics",
        "messages": "Messages",
        "errors": "Errors",
        "codes": "Code mapping",
        "limits": "Limits",
        "signing-example": "Signing example",
    }
    parts = [
        "# Dispenser wire protocol v1",
        "",
        (
            f"Skeleton created by `{COMMAND}` because this file did not exist; write the prose around the "
            "generated blocks and keep their markers."
        ),
    ]
    for name, title in sections.items():
        parts += [
            "",
            f"## {title}",
            "",
            f"<!-- BEGIN GENERATED: {name} -->",
            f"<!-- END GENERATED: {name} -->",
        ]
    return "\n".join(parts) + "\n"


def fill_blocks(text: str, blocks: dict[str, str]) -> str:
    """Replace the content of every generated block of ``text``; append blocks that have no markers."""
    lines = text.split("\n")
    out: list[str] = []
    found: set[str] = set()
    inside: str | None = None
    for number, line in enumerate(lines, 1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if inside is None and begin:
            name = begin.group(1)
            if name not in blocks:
                msg = f"PROTOCOL.md:{number}: unknown generated block {name!r}; known: {', '.join(blocks)}"
                raise ValueError(msg)
            if name in found:
                msg = f"PROTOCOL.md:{number}: generated block {name!r} appears twice"
                raise ValueError(msg)
            found.add(name)
            inside = name
            out += [line, "", blocks[name], ""]
        elif inside is not None and end:
            if end.group(1) != inside:
                msg = f"PROTOCOL.md:{number}: END of {end.group(1)!r} inside block {inside!r}"
                raise ValueError(msg)
            inside = None
            out.append(line)
        elif inside is None:
            if end:
                msg = f"PROTOCOL.md:{number}: END of {end.group(1)!r} without its BEGIN"
                raise ValueError(msg)
            out.append(line)
    if inside is not None:
        msg = f"PROTOCOL.md: block {inside!r} has no END marker"
        raise ValueError(msg)
    missing = [name for name in blocks if name not in found]
    if missing:
        while out and out[-1] == "":
            out.pop()
        out += ["", "## Generated reference (blocks not yet placed in the prose)"]
        for name in missing:
            out += [
                "",
                f"<!-- BEGIN GENERATED: {name} -->",
                "",
                blocks[name],
                "",
                f"<!-- END GENERATED: {name} -->",
            ]
        out.append("")
    result = "\n".join(out)
    return result if result.endswith("\n") else result + "\n"
