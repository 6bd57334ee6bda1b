"""``mailgate serve --workers N``: N gateway processes on one SMTP port, supervised."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from mailgate_testing import raw_mail
from serve_process import REPO, free_port, is_running, listening, start_serve, worker_pids


def _config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "mailgate.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/mailgate.db"\nraw = "{tmp_path}/raw"\n'
        f'attachments = "{tmp_path}/att"\n[smtp]\nport = {port}\n'
        f'[outbound]\ntransport = "maildir:{tmp_path}/out"\n'
    )
    return config


def _send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail(subject=subject))


def _wait_for(condition: object, timeout: float = 30, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        said = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
        assert time.monotonic() < deadline, f"timed out; serve said:\n{said}"
        time.sleep(0.1)


def _tickets(tmp_path: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/mailgate.db")
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM tickets")).scalar_one()
    engine.dispose()
    return int(count)


@pytest.mark.slow
def test_workers_share_the_port_and_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    port = free_port()
    server = start_serve(_config(tmp_path, port), port, "--workers", "2")
    try:
        _wait_for(lambda: len(worker_pids(server.pid)) == 2)
        first = worker_pids(server.pid)
        # Killed before it listens, a worker means serve cannot start (and it stops).
        _wait_for(lambda: all(listening(pid, port) for pid in first), 60)
        for i in range(10):
            _send(port, f"before {i}")
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # A worker starts in seconds; on a machine busy with other tests it has taken longer.
        _wait_for(lambda: len(worker_pids(server.pid) - {victim}) == 2, 60, tmp_path / "serve.log")
        for i in range(10):  # the survivor serves meanwhile, the new worker afterwards
            _send(port, f"after {i}")
        assert worker_pids(server.pid) - first  # a new process took the dead one's place
        server.send_signal(signal.SIGTERM)
        assert server.wait(90) == 0
        assert not any(is_running(pid) for pid in first)
    finally:
        server.kill()
        server.wait()
    assert _tickets(tmp_path) == 20


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    port = free_port()
    server = start_serve(_config(tmp_path, port), port, "--workers", "2")
    try:
        _wait_for(lambda: len(worker_pids(server.pid)) == 2)
        workers = worker_pids(server.pid)
        server.kill()
        server.wait()
        _wait_for(lambda: not any(is_running(pid) for pid in workers))
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_workers_that_cannot_listen_make_serve_fail_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "--config",
                str(_config(tmp_path, port)),
                "serve",
                "--workers",
                "2",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("mailgate: worker ")
    assert "Traceback" not in result.stderr
