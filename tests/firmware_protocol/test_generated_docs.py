"""The generated protocol artefacts on disk equal what ``firmware_protocol.docgen`` builds now."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware_protocol import docgen
from firmware_protocol.messages import MESSAGE_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_are_up_to_date() -> None:
    artifacts = docgen.build_artifacts(ROOT)
    stale, extra = docgen.stale_files(ROOT, artifacts)
    problems = [f"{path} (stale or missing)" for path in stale]
    problems += [f"{path} (no longer generated: delete it)" for path in extra]
    assert not problems, (
        "Generated protocol files are out of date:\n  "
        + "\n  ".join(problems)
        + f"\nRun `{docgen.COMMAND}` and commit the result."
    )


def test_build_is_deterministic() -> None:
    assert docgen.build_artifacts(ROOT) == docgen.build_artifacts(ROOT)


def test_every_message_type_and_block_is_generated() -> None:
    artifacts = docgen.build_artifacts(ROOT)
    for type_name in MESSAGE_TYPES:
        assert docgen.SCHEMAS_DIR / f"{type_name}.json" in artifacts
    protocol = artifacts[docgen.PROTOCOL_MD]
    for name in docgen.BLOCK_NAMES:
        assert protocol.count(f"<!-- BEGIN GENERATED: {name} -->") == 1
        assert protocol.count(f"<!-- END GENERATED: {name} -->") == 1
    for type_name in MESSAGE_TYPES:
        assert f"\n#### {type_name}\n" in protocol


def test_generated_text_is_clean() -> None:
    for path, content in docgen.build_artifacts(ROOT).items():
        assert content.endswith("\n"), path
        assert not content.endswith("\n\n"), path
        assert all(line == line.rstrip() for line in content.split("\n")), path


def _cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_markdown_tables_are_well_formed() -> None:
    for path, content in docgen.build_artifacts(ROOT).items():
        if path.suffix != ".md":
            continue
        lines = content.split("\n")
        for number, line in enumerate(lines):
            if re.fullmatch(r"\|(---\|)+", line):
                header = lines[number - 1]
                assert number >= 2, f"{path}:{number}: table at the top"
                assert lines[number - 2] == "", f"{path}:{number}: no blank line before the table"
                width = _cells(header)
                assert line.count("|") - 1 == width
                row = number + 1
                while row < len(lines) and lines[row].startswith("|"):
                    assert _cells(lines[row]) == width, f"{path}:{row + 1}: {lines[row][:80]}"
                    row += 1


def test_check_and_write_on_a_fresh_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docgen.main(["--root", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "firmware_protocol/asyncapi.json" in err
    assert "firmware_protocol/PROTOCOL.md" in err
    assert docgen.COMMAND in err

    assert docgen.main(["--root", str(tmp_path)]) == 0
    protocol = (tmp_path / docgen.PROTOCOL_MD).read_text(encoding="utf-8")
    assert protocol.startswith("# Dispenser wire protocol v1\n")
    assert docgen.main(["--root", str(tmp_path), "--check"]) == 0

    stray = tmp_path / docgen.VECTORS_DIR / "old.json"
    stray.write_text("{}\n", encoding="utf-8")
    (tmp_path / docgen.SCHEMAS_DIR / "birth.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert docgen.main(["--root", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "firmware_protocol/vectors/old.json" in err
    assert "firmware_protocol/schemas/birth.json" in err
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert not stray.exists()
    assert docgen.main(["--root", str(tmp_path), "--check"]) == 0


def test_fill_blocks_keeps_prose_and_replaces_content() -> None:
    text = (
        "# Title\n\nProse before.\n\n<!-- BEGIN GENERATED: topics -->\nold table\n"
        "<!-- END GENERATED: topics -->\n\nProse after.\n"
    )
    filled = docgen.fill_blocks(text, {"topics": "NEW", "errors": "ERRS"})
    assert filled.startswith("# Title\n\nProse before.\n\n<!-- BEGIN GENERATED: topics -->\n\nNEW\n\n")
    assert "old table" not in filled
    assert "<!-- END GENERATED: topics -->\n\nProse after.\n" in filled
    assert filled.endswith("<!-- BEGIN GENERATED: errors -->\n\nERRS\n\n<!-- END GENERATED: errors -->\n")
    assert docgen.fill_blocks(filled, {"topics": "NEW", "errors": "ERRS"}) == filled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- BEGIN GENERATED: topic -->\n<!-- END GENERATED: topic -->\n", "unknown generated block"),
        ("<!-- BEGIN GENERATED: topics -->\n", "no END marker"),
        ("<!-- END GENERATED: topics -->\n", "without its BEGIN"),
        ("<!-- BEGIN GENERATED: topics -->\n<!-- END GENERATED: errors -->\n", "inside block"),
    ],
)
def test_fill_blocks_refuses_broken_markers(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        docgen.fill_blocks(text, {"topics": "T", "errors": "E"})
