"""Assembly: every generated file from the generators, and which files on disk are stale."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from firmware_protocol.docgen.asyncapi import asyncapi_document
from firmware_protocol.docgen.blocks import (
    codes_block,
    errors_block,
    limits_block,
    messages_block,
    signing_block,
    topics_block,
)
from firmware_protocol.docgen.common import (
    ASYNCAPI_PATH,
    GENERATED_DIRS,
    PROTOCOL_MD,
    SCHEMAS_DIR,
    VECTORS_DIR,
    dump_json,
)
from firmware_protocol.docgen.invalid_vectors import invalid_vectors
from firmware_protocol.docgen.markdown import fill_blocks, skeleton
from firmware_protocol.docgen.material import TEST_KEY_WARNING, keys_document, test_material
from firmware_protocol.docgen.receiver_vectors import receiver_document
from firmware_protocol.docgen.schemas import envelope_schema, message_schema
from firmware_protocol.docgen.vectors import readme, valid_vectors
from firmware_protocol.messages import ALL_BODIES

if TYPE_CHECKING:
    from pathlib import Path

    from firmware_protocol.canonical import JsonObject


def build_artifacts(repo_root: Path) -> dict[Path, str]:
    """Every generated file as {path relative to ``repo_root``: exact content}; writes nothing."""
    material = test_material()
    keys = keys_document(material)
    valid = valid_vectors(material)
    invalid = invalid_vectors(material)
    examples: dict[str, JsonObject] = {}
    for vector in valid:
        if vector["name"] == vector["type"]:
            examples[vector["type"]] = json.loads(vector["payload"])
    artifacts: dict[Path, str] = {
        ASYNCAPI_PATH: dump_json(asyncapi_document(examples)),
        SCHEMAS_DIR / "envelope.json": dump_json(envelope_schema()),
        VECTORS_DIR / "keys.json": dump_json(keys),
        VECTORS_DIR / "valid.json": dump_json(
            {"warning": TEST_KEY_WARNING, "keys": "keys.json", "vectors": valid}
        ),
        VECTORS_DIR / "invalid.json": dump_json(
            {"warning": TEST_KEY_WARNING, "keys": "keys.json", "vectors": invalid}
        ),
        VECTORS_DIR / "receiver.json": dump_json(receiver_document()),
        VECTORS_DIR / "README.md": readme(valid, invalid, keys),
    }
    for body_cls in ALL_BODIES:
        artifacts[SCHEMAS_DIR / f"{body_cls.TYPE}.json"] = dump_json(message_schema(body_cls))
    blocks = {
        "topics": topics_block(),
        "messages": messages_block(examples),
        "errors": errors_block(),
        "codes": codes_block(),
        "limits": limits_block(),
        "signing-example": signing_block(next(v for v in valid if v["name"] == "dose.taken"), keys),
    }
    protocol = repo_root / PROTOCOL_MD
    text = protocol.read_text(encoding="utf-8") if protocol.exists() else skeleton()
    artifacts[PROTOCOL_MD] = fill_blocks(text, blocks)
    for path, content in artifacts.items():
        if path.suffix == ".md" and any(line != line.rstrip() for line in content.split("\n")):
            bad = next(n for n, line in enumerate(content.split("\n"), 1) if line != line.rstrip())
            msg = f"generated {path} has trailing whitespace on line {bad}"
            raise ValueError(msg)
    return artifacts


def stale_files(repo_root: Path, artifacts: dict[Path, str]) -> tuple[list[Path], list[Path]]:
    """(files whose content differs or that are missing, files in generated directories not generated)."""
    stale = [
        path
        for path, content in sorted(artifacts.items())
        if not (repo_root / path).is_file() or (repo_root / path).read_bytes() != content.encode("utf-8")
    ]
    extra = sorted(
        file.relative_to(repo_root)
        for directory in GENERATED_DIRS
        if (repo_root / directory).is_dir()
        for file in (repo_root / directory).rglob("*")
        if file.is_file() and file.relative_to(repo_root) not in artifacts
    )
    return stale, extra
