#!/usr/bin/env python3
"""Project tasks, runnable on a fresh machine with nothing but Python 3.11+.

    python3 tasks.py run  [ARGS...]   run the demo (``dispenser-hub demo ARGS...``)
    python3 tasks.py test [ARGS...]   ruff check, ruff format --check, mypy, lint-imports, pytest ARGS...

Both create ``.venv`` if missing and (re)install the project with its dev extras whenever pyproject.toml
changed since the last install. Only the standard library is used, so this works before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

MIN_PYTHON = (3, 11)
ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"
STAMP = VENV / ".pyproject.sha256"  # hash of pyproject.toml at the last successful install
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXE_SUFFIX = ".exe" if os.name == "nt" else ""
PYTEST_NO_TESTS_COLLECTED = 5


class TaskError(Exception):
    """A step failed; the message says which and why."""


def tool(name: str) -> str:
    """Path of an executable installed in the project's virtual environment."""
    return str(BIN / f"{name}{EXE_SUFFIX}")


def check_python() -> None:
    """Refuse to run on a Python older than the project supports."""
    if sys.version_info < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        found = ".".join(map(str, sys.version_info[:3]))
        msg = f"Python {wanted}+ is required, but this is Python {found} ({sys.executable})."
        raise TaskError(msg)


def ensure_venv() -> None:
    """Create ``.venv`` if needed; install the project when pyproject.toml changed since the last install."""
    if not Path(tool("python")).exists():
        print(f"==> creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    digest = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text(encoding="utf-8").strip() == digest:
        return
    print("==> installing the project and its dev dependencies (pyproject.toml changed)", flush=True)
    run_step("pip install", [tool("python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run_step("pip install", [tool("python"), "-m", "pip", "install", "--quiet", "-e", ".[dev]"])
    STAMP.write_text(digest + "\n", encoding="utf-8")


def run_step(name: str, command: list[str]) -> None:
    """Run ``command`` in the repository root; raise TaskError naming the step if it fails."""
    print(f"==> {name}: {' '.join(command)}", flush=True)
    try:
        returncode = subprocess.run(command, cwd=ROOT, check=False).returncode
    except FileNotFoundError as exc:
        msg = f"{name}: cannot run {command[0]} ({exc.strerror}); delete .venv and try again"
        raise TaskError(msg) from exc
    if returncode == 0:
        return
    if name == "pytest" and returncode == PYTEST_NO_TESTS_COLLECTED:
        msg = "pytest: no tests ran (none collected or all deselected); that is a failure"
        raise TaskError(msg)
    msg = f"{name} failed (exit code {returncode})"
    raise TaskError(msg)


def mypy_targets() -> list[str]:
    """The ``[tool.mypy] files`` entries that contain Python code (mypy errors on a directory without any)."""
    with PYPROJECT.open("rb") as file:
        configured: list[str] = tomllib.load(file)["tool"]["mypy"]["files"]
    return [entry for entry in configured if (ROOT / entry).is_file() or any((ROOT / entry).rglob("*.py"))]


def task_run(args: list[str]) -> None:
    """Run the demo: ``dispenser-hub demo`` with ``args`` passed through."""
    run_step("dispenser-hub demo", [tool("dispenser-hub"), "demo", *args])


def task_test(args: list[str]) -> None:
    """Run every check in order, stopping at the first failure; ``args`` go to pytest."""
    run_step("ruff check", [tool("ruff"), "check", "."])
    run_step("ruff format", [tool("ruff"), "format", "--check", "."])
    run_step("mypy", [tool("mypy"), *mypy_targets()])
    run_step("lint-imports", [tool("lint-imports")])
    run_step("pytest", [tool("pytest"), *args])
    print("==> all checks passed", flush=True)


TASKS = {"run": task_run, "test": task_test}


def main(argv: list[str]) -> int:
    """Dispatch ``argv`` (without the program name) to a task; return the process exit code."""
    if not argv or argv[0] not in TASKS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        check_python()
        ensure_venv()
        TASKS[argv[0]](argv[1:])
    except TaskError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
