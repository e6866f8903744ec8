"""A private Mosquitto for benchmarks: a free port of 127.0.0.1, the caller's configuration, stopped after."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

FALLBACK_BINARY = "/usr/sbin/mosquitto"
START_TIMEOUT_S = 10.0


def binary() -> str:
    """The mosquitto executable (``PATH`` first, then Debian's location)."""
    return shutil.which("mosquitto") or FALLBACK_BINARY


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mosquitto(workdir: Path, config_lines: Callable[[int], list[str]]) -> Iterator[tuple[int, int]]:
    """Run Mosquitto with ``config_lines(port)`` on a free port until the block ends; yields (port, pid)."""
    port = free_port()
    config = workdir / f"mosquitto-{port}.conf"
    config.write_text("\n".join(config_lines(port)), encoding="utf-8")
    log = (workdir / f"mosquitto-{port}.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - fixed argv of the broker binary
        [binary(), "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
