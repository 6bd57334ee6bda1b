"""Stage 9 dispatcher: retries with backoff, giving up, permanent failures, crash recovery.

The relay is real (aiosmtpd on loopback) wherever the protocol matters; the clock is moved
by hand, so no test sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from outbound_support import REJECTED, Clock, RelayFactory

from mailgate.config import OutboundSettings
from mailgate.errors import TransportError
from mailgate.outbound.compose import Composer, Notification
from mailgate.outbound.dispatcher import Dispatcher, DispatchReport
from mailgate.outbound.transports import (
    MaildirTransport,
    RecordingTransport,
    SmtpTransport,
    Transport,
)
from store import durable, outbox
from store.db import Database
from store.enums import OutboxState
from store.errors import StoreUnavailable
from store.models import OutboxMail, Ticket

SETTINGS = OutboundSettings(
    **{"from": "Example Support <support@example.com>"},
    max_attempts=4,
    retry_base_seconds=60,
    retry_max_seconds=3600,
)


def queue_ack(db: Database, clock: Clock, to: str = "ana@shop.example") -> int:
    """Render a real acknowledgement and put it in the outbox, as the pipeline does."""
    composer = Composer(SETTINGS, b"secret-for-tests", clock)
    with db.write() as session:
        ticket = Ticket(requester=to, subject="Help", created_at=clock(), updated_at=clock())
        session.add(ticket)
        session.flush()
        assert ticket.id is not None
        mail = composer.render(
            Notification(kind="ack", ticket_id=ticket.id, language="en", to=(to,))
        )
        return outbox.enqueue(
            session, ticket_id=ticket.id, kind="ack", message_id=mail.message_id,
            mail_from=mail.mail_from, recipients=mail.recipients, subject=mail.subject,
            raw=mail.raw, now=clock(),
        )  # fmt: skip


def row(db: Database, id: int) -> OutboxMail:
    with db.read() as session:
        return outbox.get_outbox_mail(session, id)


def smtp(port: int) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", port, starttls="off", timeout=10)


def dispatcher(
    db: Database, transport: Transport, clock: Clock, settings: OutboundSettings = SETTINGS
) -> Dispatcher:
    return Dispatcher(db, transport, clock, settings, rng=random.Random(7))


# -- the relay is down, then back -----------------------------------------------------------


def test_relay_down_keeps_the_mail_queued_with_growing_delays_until_it_is_back(
    db: Database, clock: Clock, free_port: int, start_relay: RelayFactory
) -> None:
    id = queue_ack(db, clock)
    sender = dispatcher(db, smtp(free_port), clock)

    delays = []
    for attempt in (1, 2, 3):
        assert sender.run_once() == DispatchReport(retried=1)
        mail = row(db, id)
        assert (mail.state, mail.attempts) == (OutboxState.QUEUED, attempt)
        assert mail.last_error
        delays.append(mail.next_attempt_at - clock())
        assert sender.run_once() == DispatchReport(), "not due yet: nothing happens"
        clock.advance(to=mail.next_attempt_at)

    base = timedelta(seconds=SETTINGS.retry_base_seconds)
    assert base <= delays[0] < base * 1.1 + timedelta(seconds=1)
    assert delays[0] < delays[1] < delays[2]
    assert 2 * base <= delays[1] and 4 * base <= delays[2]

    relay = start_relay(port=free_port)
    assert sender.run_once() == DispatchReport(sent=1)
    mail = row(db, id)
    assert (mail.state, mail.attempts, mail.sent_at) == (OutboxState.SENT, 4, clock())
    assert mail.last_error is None
    (got,) = relay.received
    assert got.rcpt_tos == ["ana@shop.example"]
    msg = message_from_bytes(got.content, policy=policy.default)
    assert msg["Message-ID"] == f"<{mail.message_id}>"
    assert sender.run_once() == DispatchReport()


def test_after_max_attempts_the_mail_fails(db: Database, clock: Clock, free_port: int) -> None:
    id = queue_ack(db, clock)
    sender = dispatcher(db, smtp(free_port), clock)
    for _ in range(SETTINGS.max_attempts - 1):
        assert sender.run_once() == DispatchReport(retried=1)
        clock.advance(to=row(db, id).next_attempt_at)
    assert sender.run_once() == DispatchReport(failed=1)
    mail = row(db, id)
    assert (mail.state, mail.attempts) == (OutboxState.FAILED, SETTINGS.max_attempts)
    assert mail.last_error is not None
    assert f"gave up after {SETTINGS.max_attempts} attempts" in mail.last_error
    clock.advance(86400)
    assert sender.run_once() == DispatchReport(), "failed mails wait for an agent's retry"


def test_a_permanent_error_fails_at_once(
    db: Database, clock: Clock, start_relay: RelayFactory
) -> None:
    relay = start_relay()
    id = queue_ack(db, clock, to=REJECTED)
    assert dispatcher(db, smtp(relay.port), clock).run_once() == DispatchReport(failed=1)
    mail = row(db, id)
    assert (mail.state, mail.attempts) == (OutboxState.FAILED, 1)
    assert mail.last_error is not None
    assert "550" in mail.last_error


def test_an_agent_retry_sends_a_failed_mail(
    db: Database, clock: Clock, start_relay: RelayFactory
) -> None:
    id = queue_ack(db, clock)
    transport = RecordingTransport([TransportError("553 sender not allowed", permanent=True)])
    sender = dispatcher(db, transport, clock)
    assert sender.run_once() == DispatchReport(failed=1)
    with db.write() as session:
        outbox.retry(session, id, clock())
    assert sender.run_once() == DispatchReport(sent=1)
    assert len(transport.sent) == 1


# -- one round ------------------------------------------------------------------------------


def test_a_round_sends_everything_due_over_one_connection(
    db: Database, clock: Clock, start_relay: RelayFactory
) -> None:
    relay = start_relay()
    ids = [queue_ack(db, clock) for _ in range(12)]  # more than one claim chunk
    transport = smtp(relay.port)
    assert dispatcher(db, transport, clock).run_once() == DispatchReport(sent=12)
    assert transport.connections_opened == 1
    assert len({r.peer for r in relay.received}) == 1
    assert all(row(db, id).state == OutboxState.SENT for id in ids)


def test_a_round_respects_its_limit(db: Database, clock: Clock) -> None:
    for _ in range(5):
        queue_ack(db, clock)
    transport = RecordingTransport()
    sender = dispatcher(db, transport, clock)
    first, second = sender.run_once(limit=3), sender.run_once(limit=3)
    assert (first, first.more) == (DispatchReport(sent=3), True)
    assert (second, second.more) == (DispatchReport(sent=2), False)


def test_one_bad_mail_does_not_stop_the_others(db: Database, clock: Clock) -> None:
    first, second = queue_ack(db, clock), queue_ack(db, clock)
    transport = RecordingTransport([TransportError("451 try later")])
    assert dispatcher(db, transport, clock).run_once() == DispatchReport(sent=1, retried=1)
    assert row(db, first).state == OutboxState.QUEUED
    assert row(db, second).state == OutboxState.SENT


class MaildirThatCannotSync(MaildirTransport):
    """A maildir whose disk takes the files but fails to sync them."""

    def flush(self) -> None:
        super().flush()
        raise TransportError("maildir /var/outbound: [Errno 5] Input/output error")


def test_a_chunk_of_a_maildir_is_synced_once_before_it_is_marked_sent(
    db: Database, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [queue_ack(db, clock) for _ in range(3)]
    states_when_synced: list[list[OutboxState]] = []
    real_syncfs = durable.syncfs
    assert real_syncfs is not None

    def recorded(fd: int) -> int:
        states_when_synced.append([row(db, id).state for id in ids])
        return real_syncfs(fd)

    monkeypatch.setattr(durable, "syncfs", recorded)
    report = dispatcher(db, MaildirTransport(tmp_path / "outbound"), clock).run_once()
    assert report == DispatchReport(sent=3)
    assert states_when_synced == [[OutboxState.SENDING] * 3]
    assert all(row(db, id).state == OutboxState.SENT for id in ids)
    assert len(list((tmp_path / "outbound" / "new").iterdir())) == 3


def test_mails_a_maildir_could_not_sync_are_tried_again(
    db: Database, clock: Clock, tmp_path: Path
) -> None:
    ids = [queue_ack(db, clock) for _ in range(2)]
    report = dispatcher(db, MaildirThatCannotSync(tmp_path / "outbound"), clock).run_once()
    assert report == DispatchReport(retried=2)
    for id in ids:
        assert row(db, id).state == OutboxState.QUEUED
        assert row(db, id).last_error == "maildir /var/outbound: [Errno 5] Input/output error"


class CrashingTransport:
    """A transport with a bug: raises something that is not a TransportError."""

    def send(self, mail_from: str, recipients: Sequence[str], raw: bytes) -> None:
        raise RuntimeError("bug in transport")

    def flush(self) -> None:
        pass


def test_a_crashing_transport_costs_an_attempt_not_the_round(db: Database, clock: Clock) -> None:
    id = queue_ack(db, clock)
    assert dispatcher(db, CrashingTransport(), clock).run_once() == DispatchReport(retried=1)
    mail = row(db, id)
    assert mail.state == OutboxState.QUEUED
    assert mail.last_error == "RuntimeError: bug in transport"


def test_store_unavailable_propagates(sqlite_url: str, clock: Clock) -> None:
    """No schema at all: the store cannot answer, and the caller's loop must know."""
    broken = Database(sqlite_url)
    with pytest.raises(StoreUnavailable):
        dispatcher(broken, RecordingTransport(), clock).run_once()
    broken.dispose()


# -- crashes and leases ---------------------------------------------------------------------


def test_a_crash_between_send_and_mark_sent_resends_the_same_message_id(
    db: Database, clock: Clock
) -> None:
    id = queue_ack(db, clock)
    (claimed,) = outbox.claim_due(db, clock(), limit=1, lease_seconds=300)
    # ... the crashed dispatcher had handed it to the relay, but never recorded it.
    transport = RecordingTransport()
    sender = dispatcher(db, transport, clock)
    assert sender.run_once() == DispatchReport(), "leased: not taken before the lease ends"
    clock.advance(300)
    assert sender.run_once() == DispatchReport(sent=1)
    (resent,) = transport.sent
    assert claimed.raw == resent.raw
    assert f"<{claimed.message_id}>".encode() in resent.raw
    assert row(db, id).attempts == 2


def test_a_chunk_is_recorded_sent_in_one_transaction(
    db: Database, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a burst each write waits its turn behind the committer: one per mail sent
    held the dispatcher to a few mails a second."""
    ids = [queue_ack(db, clock, to=f"m{i}@shop.example") for i in range(25)]
    writes = 0
    real_write = db.write

    def counting_write() -> object:
        nonlocal writes
        writes += 1
        return real_write()

    monkeypatch.setattr(db, "write", counting_write)
    transport = RecordingTransport()
    assert dispatcher(db, transport, clock).run_once() == DispatchReport(sent=25)
    monkeypatch.undo()
    assert len(transport.sent) == 25
    assert all(row(db, id).state == OutboxState.SENT for id in ids)
    # Chunks of 10: 3 claims, the second and third recording the chunk before them, and
    # the empty claim that ends the round recording the last.
    assert writes == 3 + 1


class SlowTransport(RecordingTransport):
    """Each send takes ``seconds`` on the test clock (a relay near its timeout)."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = seconds

    def send(self, mail_from: str, recipients: Sequence[str], raw: bytes) -> None:
        self.clock.advance(self.seconds)
        super().send(mail_from, recipients, raw)


def test_a_mail_whose_lease_ran_out_mid_round_is_not_sent_twice(db: Database, clock: Clock) -> None:
    ids = [queue_ack(db, clock) for _ in range(3)]
    transport = SlowTransport(clock, seconds=200)
    report = Dispatcher(db, transport, clock, SETTINGS, lease_seconds=300).run_once()
    assert report == DispatchReport(sent=3)
    assert len(transport.sent) == 3
    assert len({m.raw for m in transport.sent}) == 3, "each mail exactly once"
    assert all(row(db, id).state == OutboxState.SENT for id in ids)


# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_then_caps_with_a_little_jitter(db: Database, clock: Clock) -> None:
    settings = SETTINGS.model_copy(update={"retry_base_seconds": 60, "retry_max_seconds": 600})
    sender = dispatcher(db, RecordingTransport(), clock, settings)
    for attempts, expected in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (40, 600)]:
        delay = sender.backoff(attempts).total_seconds()
        assert expected <= delay <= expected * 1.1, (attempts, delay)
