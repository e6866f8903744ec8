"""Command line of the generator: ``python -m firmware_protocol.docgen [--check] [--root DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_protocol.docgen.build import build_artifacts, stale_files
from firmware_protocol.docgen.common import COMMAND

DESCRIPTION = "Generate the protocol's derived artefacts from the code, so that they can never drift from it."


def main(argv: list[str] | None = None) -> int:
    """Command line: write the artefacts, or with ``--check`` report stale ones (exit status 1)."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=DESCRIPTION)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[2], help="repository root"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    artifacts = build_artifacts(root)
    stale, extra = stale_files(root, artifacts)
    if args.check:
        if not stale and not extra:
            sys.stdout.write(f"{len(artifacts)} generated files are up to date.\n")
            return 0
        lines = [f"  {path} (stale or missing)" for path in stale]
        lines += [f"  {path} (not generated any more: delete it)" for path in extra]
        sys.stderr.write(
            "Generated protocol files are out of date:\n" + "\n".join(lines) + f"\nRun `{COMMAND}`.\n"
        )
        return 1
    for path in stale:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artifacts[path].encode("utf-8"))
        sys.stdout.write(f"wrote {path}\n")
    for path in extra:
        (root / path).unlink()
        sys.stdout.write(f"deleted {path}\n")
    sys.stdout.write(f"{len(artifacts)} generated files, {len(stale)} written, {len(extra)} deleted.\n")
    return 0
