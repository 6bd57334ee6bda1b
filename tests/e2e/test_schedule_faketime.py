"""``mailgate schedule run`` as cron runs it, in a real process whose clock is moved with
``faketime`` (libfaketime): 31 days after a ticket was solved it closes, and the stand-by
ticket's merchant gets their reminder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from mailgate_testing import make_settings, raw_mail
from sqlmodel import select

from mailgate.actions import TicketChanges
from mailgate.app import build_gateway
from mailgate.values import Arrival, Envelope, Source
from store.models import OutboxMail, Ticket

REPO = Path(__file__).resolve().parents[2]
FAKETIME = shutil.which("faketime")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),  # two cold CLI starts; slow on a loaded machine
    pytest.mark.skipif(
        FAKETIME is None, reason="faketime is not installed (scripts/setup --test installs it)"
    ),
]


def test_schedule_run_under_faketime_closes_and_reminds(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    gateway = build_gateway(settings)  # the real clock: today
    try:
        ids = []
        for body in ("Plata nu merge", "Vrem un export nou"):
            outcome = gateway.pipeline.process(
                Arrival(
                    raw_mail(body=body),
                    Envelope("ana@magazin.ro", ("support@localhost",)),
                    Source("pipe"),
                    gateway.clock(),
                )
            )
            assert outcome.ticket_id is not None
            ids.append(outcome.ticket_id)
        solved, waiting = ids
        with gateway.db.write() as s:
            for tid, changes in (
                (solved, TicketChanges(status="solved")),
                (waiting, TicketChanges(status="on_hold", reason="awaiting_other_sector")),
            ):
                gateway.actions.update(s, tid, changes, actor="maria", now=gateway.clock())
    finally:
        gateway.close()

    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env = {
        **inherited,
        "TZ": "UTC",
        "PYTHONPATH": str(REPO),
        "MAILGATE_STORE_URL": sqlite_url,
        "MAILGATE_STORE_RAW": str(tmp_path / "raw"),
        "MAILGATE_STORE_ATTACHMENTS": str(tmp_path / "attachments"),
        "MAILGATE_OUTBOUND_TRANSPORT": f"maildir:{tmp_path}/outbound",
    }
    command = [sys.executable, "-m", "cli.main", "schedule", "run"]

    today = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert today.returncode == 0, today.stderr
    assert "auto-closed 0, stand-by reminders 0" in today.stdout, today.stdout

    later = subprocess.run(
        [str(FAKETIME), "-f", "+31d", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        check=False,
    )
    assert later.returncode == 0, later.stderr
    assert "auto-closed 1, stand-by reminders 1" in later.stdout, later.stdout

    gateway = build_gateway(settings)
    try:
        with gateway.db.read() as s:
            closed = s.get(Ticket, solved)
            assert closed is not None and closed.status == "closed"
            assert closed.closed_at is not None
            ahead = closed.closed_at - datetime.now(UTC)
            assert timedelta(days=30) < ahead < timedelta(days=32)  # the faked clock
            reminders = s.exec(
                select(OutboxMail).where(OutboxMail.kind == "standby_reminder")
            ).all()
            assert len(reminders) == 1
    finally:
        gateway.close()
    delivered = [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in (tmp_path / "outbound" / "new").iterdir()
    ]
    # The acknowledgements and the on-hold notice were written today; the reminder a month on.
    later_mail = [
        m for m in delivered if m["Date"].datetime - datetime.now(UTC) > timedelta(days=30)
    ]
    assert [m["X-Mailgate-Ticket"] for m in later_mail] == [str(waiting)]
