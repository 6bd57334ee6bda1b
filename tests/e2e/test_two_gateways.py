"""Two gateways on one PostgreSQL, the same mails delivered to both, one killed with -9.

The set-up of a platform that has outgrown one machine: two ``mailgate serve`` processes
share a fresh database (and keep raw mails and attachments in it: no shared disk), each
with its own SMTP listener and outbox dispatcher relaying to one SMTP relay. Every mail
goes to both listeners at about the same moment, as a secondary MX would deliver it.
Midway, gateway B is killed with ``kill -9`` and not started again: the senders then
reach only A (B's copies are given up, as an MTA would after trying the other MX), and
A alone must finish the work B left — among it the notifications B had claimed, which
A takes over once B's lease runs out. (A restart would test one gateway's own crash
recovery, which ``test_crash.py`` covers; here the point is that the survivor needs no
help.) Then:

- every mail that got a 250 is stored exactly once (the other copy is a recorded
  duplicate), and every mail got a 250, because A never went away;
- every notification exists once in the outbox and reached the relay once — twice only
  for one that B had claimed when it died (the documented crash window: same bytes, same
  Message-ID);
- no ticket holds messages of two senders: replies threaded only into their own
  sender's tickets, also the "replies" that cite someone else's mail.
"""

from __future__ import annotations

import os
import random
import signal
import smtplib
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession
from mailgate_testing import START
from serve_process import free_port, spawn_serve, wait_listening

MAILS = 2000
SENDERS = 120
CLIENTS = 16
KILL_AFTER = MAILS * 2 // 3  # 250s (of both gateways) seen before B is killed
LEASE_SECONDS = 8


@dataclass
class Relay:
    """The outbound relay: an aiosmtpd server that records every Message-ID it is given."""

    received: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(
        self, server: SmtpServer, session: SmtpSession, envelope: SmtpEnvelope
    ) -> str:
        message = message_from_bytes(envelope.original_content or b"")
        with self.lock:
            self.received[str(message["Message-ID"]).strip("<>")] += 1
        return "250 2.0.0 queued"


@dataclass(frozen=True)
class Mail:
    sender: str
    message_id: str
    raw: bytes


def _corpus() -> list[Mail]:
    """New requests, replies to the sender's own earlier mail, and "replies" that cite a
    mail of another sender (they must not land in that sender's ticket)."""
    rng = random.Random(7)
    mails: list[Mail] = []
    by_sender: dict[int, list[int]] = {}
    for i in range(MAILS):
        who = rng.randrange(SENDERS)
        own = by_sender.setdefault(who, [])
        sender = f"owner{who}@shop{who}.example"
        msg = EmailMessage()
        msg["From"] = f"Merchant {who} <{sender}>"
        msg["To"] = "support@localhost"
        msg["Date"] = format_datetime(START)
        msg["Message-ID"] = f"<mail-{i}@shop{who}.example>"
        kind = rng.random()
        cited = None
        if kind < 0.2 and own:
            cited = rng.choice(own)  # a reply to the sender's own earlier mail
        elif kind < 0.3 and i > 0:
            cited = rng.randrange(i)  # most likely another sender's mail
        if cited is None:
            msg["Subject"] = f"Order problem {i}"
        else:
            msg["Subject"] = f"Re: Order problem {cited}"
            msg["In-Reply-To"] = msg["References"] = f"<{mails[cited].message_id}>"
        msg.set_content(f"Hello,\n\norder {10000 + i} from shop {who} is stuck.\n\nMerchant")
        mails.append(Mail(sender, f"mail-{i}@shop{who}.example", msg.as_bytes(policy=SMTP_POLICY)))
        own.append(i)
    return mails


def _config(folder: Path, url: str, port: int, relay_port: int) -> Path:
    folder.mkdir()
    config = folder / "mailgate.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\nblobs = "database"\n'
        f'raw = "{folder}/raw"\nattachments = "{folder}/att"\n'
        f"[smtp]\nport = {port}\n"
        f'[outbound]\ntransport = "smtp://127.0.0.1:{relay_port}"\nstarttls = "off"\n'
        f"lease_seconds = {LEASE_SECONDS}\nretry_base_seconds = 1\n"
    )
    return config


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(900)  # about two minutes on an idle 2-core machine; room for a busy one
def test_two_gateways_one_killed_store_each_mail_once(
    tmp_path: Path, fresh_pg_database: str
) -> None:
    relay = Relay()
    relay_server = Controller(relay, hostname="127.0.0.1", port=free_port())
    relay_server.start()
    ports = {"A": free_port(), "B": free_port()}
    configs = {
        name: _config(tmp_path / name, fresh_pg_database, port, relay_server.port)
        for name, port in ports.items()
    }
    # Started together on an empty database: the schema is made once (advisory lock).
    servers = {name: spawn_serve(config) for name, config in configs.items()}
    mails = _corpus()
    acked: dict[str, set[int]] = {"A": set(), "B": set()}
    dead: set[str] = set()
    lock = threading.Lock()

    def deliver(task: tuple[int, str]) -> None:
        index, name = task
        while name not in dead:  # a retrying MTA, until 250 or until this MX is gone
            try:
                with smtplib.SMTP("127.0.0.1", ports[name], timeout=30) as client:
                    client.sendmail(mails[index].sender, ["support@localhost"], mails[index].raw)
            except (smtplib.SMTPException, OSError):
                time.sleep(0.05)
                continue
            with lock:
                acked[name].add(index)
            return

    try:
        for name, server in servers.items():
            wait_listening(server, ports[name], configs[name].parent / "serve.log")
        # Both copies of a mail are queued next to each other, so they race.
        tasks = [(i, name) for i in range(MAILS) for name in random.Random(i).sample("AB", 2)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            delivered = pool.map(deliver, tasks)
            while len(acked["A"]) + len(acked["B"]) < KILL_AFTER:
                time.sleep(0.01)
            os.kill(servers["B"].pid, signal.SIGKILL)
            dead.add("B")
            servers["B"].wait()
            acked_by_b_before_kill = len(acked["B"])
            list(delivered)
        every_ack = acked["A"] | acked["B"]
        assert acked_by_b_before_kill > 0
        assert every_ack == set(range(MAILS))  # A answered every mail
        _wait_until_outbox_sent(fresh_pg_database, timeout=150)
        servers["A"].send_signal(signal.SIGTERM)
        assert servers["A"].wait(60) == 0
    finally:
        for server in servers.values():
            if server.poll() is None:
                server.kill()
                server.wait()
        relay_server.stop()

    engine = sa.create_engine(fresh_pg_database)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.text(
                    "SELECT message_id, COUNT(*) FROM raw_mails"
                    " WHERE outcome <> 'duplicate' GROUP BY message_id"
                )
            ).all()
        )
        in_messages = Counter(
            conn.execute(
                sa.text("SELECT message_id FROM messages WHERE direction = 'in'")
            ).scalars()
        )
        mixed = conn.execute(
            sa.text(
                "SELECT m.ticket_id FROM messages m JOIN tickets t ON t.id = m.ticket_id"
                " WHERE m.direction = 'in' GROUP BY m.ticket_id, t.requester"
                " HAVING COUNT(DISTINCT m.from_address) > 1"
                " OR MIN(m.from_address) <> t.requester"
            )
        ).all()
        tickets = conn.execute(sa.text("SELECT COUNT(*) FROM tickets")).scalar_one()
        outbox = conn.execute(
            sa.text("SELECT ticket_id, kind, message_id, state, attempts FROM outbox_mails")
        ).all()
    engine.dispose()

    assert set(stored) == {mail.message_id for mail in mails} and set(stored.values()) == {
        1
    }  # every mail stored once
    assert max(in_messages.values()) == 1  # and never as two ticket messages
    assert mixed == []  # no ticket has messages of two senders
    assert Counter((t, k) for t, k, _, _, _ in outbox) == Counter(
        {(t, "ack"): 1 for t, _, _, _, _ in outbox}
    )
    assert len(outbox) == tickets  # one acknowledgement per ticket, nothing else
    assert {state for _, _, _, state, _ in outbox} == {"sent"}
    attempts = {mid: tries for _, _, mid, _, tries in outbox}
    assert set(relay.received) == set(attempts)  # every notification reached the relay
    twice = {mid for mid, count in relay.received.items() if count > 1}
    assert max(relay.received.values()) <= 2
    assert all(attempts[mid] >= 2 for mid in twice)  # only B's claims, sent again by A


def _wait_until_outbox_sent(url: str, timeout: float) -> None:
    engine = sa.create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                pending = conn.execute(
                    sa.text("SELECT COUNT(*) FROM outbox_mails WHERE state <> 'sent'")
                ).scalar_one()
                total = conn.execute(sa.text("SELECT COUNT(*) FROM outbox_mails")).scalar_one()
            if total and not pending:
                return
            assert time.monotonic() < deadline, f"{pending} of {total} notifications unsent"
            time.sleep(0.5)
    finally:
        engine.dispose()
