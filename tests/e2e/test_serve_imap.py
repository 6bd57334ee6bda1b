"""``mailgate serve`` with two IMAP mailboxes, a third one that cannot log in, and its own
SMTP listener: every way in delivers, and the broken mailbox stops nothing else."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from dovecot import Dovecot, ImapAccount, free_port
from mailgate_testing import raw_mail, write_config

REPO = Path(__file__).resolve().parents[2]


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"not done within {timeout} s")
        time.sleep(0.1)


def start_serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--config", str(config), "-v", "serve"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )

    def listening() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
            return True
        except OSError:
            return False

    wait_until(listening, 60)
    return process


@pytest.mark.slow
def test_serve_reads_two_mailboxes_and_its_listener_while_a_third_fails(
    tmp_path: Path, store_url: str, dovecot: Dovecot
) -> None:
    sales, billing = dovecot.add_account(), dovecot.add_account()
    broken = ImapAccount(dovecot, "nobody@localhost", "wrong password")
    port = free_port()
    config = write_config(
        tmp_path,
        store_url,
        sales.toml("sales"),
        billing.toml("billing", idle=False, poll_interval=0.5),
        broken.toml("broken"),
        smtp_port=port,
    )
    sales.append(raw_mail(subject="From sales", message_id="<sales@magazin.ro>"))
    serve = start_serve(config, port, tmp_path / "serve.log")
    try:
        billing.append(raw_mail(subject="From billing", message_id="<billing@magazin.ro>"))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(
                "ana@magazin.ro",
                ["support@localhost"],
                raw_mail(subject="From SMTP", message_id="<smtp@magazin.ro>"),
            )
        sales.append(raw_mail(subject="From sales, later", message_id="<sales-2@magazin.ro>"))
        engine = sa.create_engine(store_url)

        def subjects() -> set[str]:
            with engine.connect() as conn:
                return {s for (s,) in conn.execute(sa.text("SELECT subject FROM tickets"))}

        wanted = {"From sales", "From billing", "From SMTP", "From sales, later"}
        wait_until(lambda: subjects() == wanted)
        with engine.connect() as conn:
            sources = dict(conn.execute(sa.text(
                "SELECT t.subject, r.mailbox FROM raw_mails r JOIN tickets t ON t.id = r.ticket_id"
            )).all())  # fmt: skip
            errors = dict(
                conn.execute(sa.text("SELECT name, last_error FROM imap_mailboxes")).all()
            )
        engine.dispose()
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(60)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert sources == {
        "From sales": "sales",
        "From sales, later": "sales",
        "From billing": "billing",
        "From SMTP": None,
    }
    assert "refused the login of nobody@localhost" in (errors["broken"] or "")
    assert errors["sales"] is None and errors["billing"] is None
    assert [sales.count("INBOX"), sales.count("Processed")] == [0, 2]
    assert [billing.count("INBOX"), billing.count("Processed")] == [0, 1]
