"""``kill -9`` of ``serve`` in the middle of a burst loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from mailgate_testing import raw_mail

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(config: Path, port: int) -> subprocess.Popen[bytes]:
    log = (config.parent / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--config", str(config), "serve"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                log.close()  # the child keeps its own copy of the descriptor
                return process
        except OSError:
            if process.poll() is not None:
                log.close()
                raise RuntimeError((config.parent / "serve.log").read_text()) from None
            time.sleep(0.1)
    process.kill()
    log.close()
    raise RuntimeError("serve did not start")


@pytest.mark.slow
def test_kill_9_mid_burst(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "mailgate.db"
    config = tmp_path / "mailgate.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{db}"\nraw = "{tmp_path}/raw"\n'
        f'attachments = "{tmp_path}/att"\n[smtp]\nport = {port}\n'
        f'[outbound]\ntransport = "maildir:{tmp_path}/out"\n'
    )
    total, clients = 240, 6
    mails = [
        raw_mail(
            subject=f"Burst {i}", message_id=f"<burst-{i}@magazin.ro>", body=f"mail number {i}"
        )
        for i in range(total)
    ]
    acked: set[int] = set()
    lock = threading.Lock()

    def client(indexes: list[int]) -> None:
        for i in indexes:
            for _ in range(600):  # a retrying MTA: until a 250 comes back
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                        smtp.sendmail("ana@magazin.ro", ["support@localhost"], mails[i])
                    with lock:
                        acked.add(i)
                    break
                except (smtplib.SMTPException, OSError):
                    time.sleep(0.05)

    server = _start(config, port)
    threads = [
        threading.Thread(target=client, args=(list(range(c, total, clients)),))
        for c in range(clients)
    ]
    for t in threads:
        t.start()
    while len(acked) < total // 3:
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    killed_at = len(acked)
    time.sleep(0.5)
    server = _start(config, port)
    for t in threads:
        t.join(300)
    server.send_signal(signal.SIGTERM)
    assert server.wait(60) == 0
    assert 0 < killed_at < total and len(acked) == total

    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT message_id, COUNT(*) FROM messages"
                " WHERE direction = 'in' GROUP BY message_id"
            )
        ).all()
        tickets = conn.execute(sa.text("SELECT COUNT(*) FROM tickets")).scalar_one()
    engine.dispose()
    counts = dict(rows)
    assert len(counts) == total  # every acknowledged mail is stored ...
    assert set(counts.values()) == {1}  # ... exactly once
    assert tickets == total
