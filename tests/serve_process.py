"""``mailgate serve`` as a real process, for the tests that kill, restart and count them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_serve(config: Path, *args: str, log_name: str = "serve.log") -> subprocess.Popen[bytes]:
    """Start ``mailgate --config CONFIG serve ARGS``; its stderr goes to ``log_name``."""
    with (config.parent / log_name).open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--config", str(config), "serve", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_listening(
    process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60
) -> None:
    """Wait until ``port`` accepts connections; raises with the log if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"serve did not start: {log.read_text()}")


def start_serve(
    config: Path, port: int, *args: str, log_name: str = "serve.log", timeout: float = 60
) -> subprocess.Popen[bytes]:
    """Start ``mailgate --config CONFIG serve ARGS`` and wait until ``port`` accepts."""
    process = spawn_serve(config, *args, log_name=log_name)
    wait_listening(process, port, config.parent / log_name, timeout)
    return process


def worker_pids(parent: int) -> set[int]:
    """The gateway workers of a ``serve --workers`` supervisor (its children, minus
    multiprocessing's resource tracker)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == parent and b"resource_tracker" not in cmdline:
            found.add(int(stat.parent.name))
    return found


def listening(pid: int, port: int) -> bool:
    """True once ``pid`` holds a socket listening on ``port`` (each ``serve --workers``
    worker has its own, shared through SO_REUSEPORT)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    try:
        return any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False  # the process ended (or closed that descriptor) while we looked


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
