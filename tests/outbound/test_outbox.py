"""The outbox table (``store/outbox.py``) on SQLite and PostgreSQL: enqueue, claim, mark, retry.

Claims are the part that must hold under concurrency: two dispatchers never take the
same row, and a row whose dispatcher died is taken again once its lease has run out.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from store import outbox
from store.db import Database
from store.enums import OutboxState
from store.errors import InvalidInput, RecordNotFound
from store.models import OutboxMail, Ticket

NOW = datetime(2025, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def ticket_id(db: Database) -> int:
    """One ticket for the outbox rows to belong to."""
    with db.write() as session:
        ticket = Ticket(
            requester="ana@shop.example", subject="Help", created_at=NOW, updated_at=NOW
        )
        session.add(ticket)
        session.flush()
        assert ticket.id is not None
        return ticket.id


def add_mails(db: Database, ticket_id: int, count: int = 1, *, at: datetime = NOW) -> list[int]:
    ids = []
    with db.write() as session:
        for i in range(count):
            mail_id = outbox.enqueue(
                session,
                ticket_id=ticket_id,
                kind="ack",
                message_id=f"mg.{ticket_id}.{i}@example.com",
                mail_from="support@example.com",
                recipients=["ana@shop.example", "ion@shop.example"],
                subject=f"[#{ticket_id}] mail {i}",
                raw=b"Subject: x\r\n\r\nbody\r\n",
                now=at,
            )
            ids.append(mail_id)
    return ids


def row(db: Database, id: int) -> OutboxMail:
    with db.read() as session:
        return outbox.get_outbox_mail(session, id)


# -- enqueue --------------------------------------------------------------------------------


def test_enqueue_is_part_of_the_callers_transaction(db: Database, ticket_id: int) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), db.write() as session:
        outbox.enqueue(
            session, ticket_id=ticket_id, kind="ack", message_id="m@x", mail_from="s@x.example",
            recipients=["a@x.example"], subject="s", raw=b"r", now=NOW,
        )  # fmt: skip
        raise Abort
    with db.read() as session:
        assert outbox.list_outbox(session) == []

    (id,) = add_mails(db, ticket_id)
    mail = row(db, id)
    assert mail.state == OutboxState.QUEUED
    assert mail.attempts == 0
    assert mail.next_attempt_at == NOW
    assert mail.created_at == NOW
    assert outbox.recipients_of(mail) == ["ana@shop.example", "ion@shop.example"]
    assert mail.raw == b"Subject: x\r\n\r\nbody\r\n"


@pytest.mark.parametrize("recipients", [[], ["a,b@x.example"], ["a b@x.example"], ["nobody"], [""]])
def test_enqueue_refuses_recipients_it_cannot_keep(
    db: Database, ticket_id: int, recipients: list[str]
) -> None:
    with pytest.raises(InvalidInput), db.write() as session:
        outbox.enqueue(
            session, ticket_id=ticket_id, kind="ack", message_id="m@x", mail_from="s@x.example",
            recipients=recipients, subject="s", raw=b"r", now=NOW,
        )  # fmt: skip


# -- claim and mark -------------------------------------------------------------------------


def test_claim_takes_due_mails_oldest_first_and_leases_them(db: Database, ticket_id: int) -> None:
    later = add_mails(db, ticket_id, 1, at=NOW + timedelta(minutes=5))
    due = add_mails(db, ticket_id, 3, at=NOW - timedelta(minutes=1))

    claimed = outbox.claim_due(db, NOW, limit=2, lease_seconds=300)
    assert [m.id for m in claimed] == due[:2]
    for mail in claimed:
        assert mail.state == OutboxState.SENDING
        assert mail.attempts == 1
        assert mail.next_attempt_at == NOW + timedelta(seconds=300)
        assert mail.raw  # detached rows stay readable after the transaction

    assert [m.id for m in outbox.claim_due(db, NOW, limit=10)] == due[2:]
    assert outbox.claim_due(db, NOW, limit=10) == []  # leased, and the other one is not due
    assert row(db, later[0]).state == OutboxState.QUEUED
    assert outbox.claim_due(db, NOW, limit=0) == []


def test_mark_sent_retry_and_failed(db: Database, ticket_id: int) -> None:
    a, b, c = add_mails(db, ticket_id, 3)
    outbox.claim_due(db, NOW, limit=3)
    later = NOW + timedelta(seconds=10)

    outbox.mark_sent(db, a, later)
    outbox.mark_retry(db, b, "451 busy", later, later + timedelta(minutes=1))
    outbox.mark_failed(db, c, "550 no such user", later)

    sent, retried, failed = row(db, a), row(db, b), row(db, c)
    assert (sent.state, sent.sent_at, sent.last_error) == (OutboxState.SENT, later, None)
    assert (retried.state, retried.last_error) == (OutboxState.QUEUED, "451 busy")
    assert retried.next_attempt_at == later + timedelta(minutes=1)
    assert (failed.state, failed.last_error) == (OutboxState.FAILED, "550 no such user")

    assert outbox.claim_due(db, later, limit=10) == []
    assert [m.id for m in outbox.claim_due(db, later + timedelta(minutes=1), limit=10)] == [b]
    assert row(db, b).attempts == 2


def test_a_sent_mail_stays_sent_when_a_late_dispatcher_reports_failure(
    db: Database, ticket_id: int
) -> None:
    (id,) = add_mails(db, ticket_id)
    outbox.claim_due(db, NOW, limit=1)
    outbox.mark_sent(db, id, NOW)
    outbox.mark_retry(db, id, "timeout", NOW, NOW + timedelta(minutes=1))
    outbox.mark_failed(db, id, "timeout", NOW)
    assert row(db, id).state == OutboxState.SENT


def test_long_errors_are_cut_to_the_column(db: Database, ticket_id: int) -> None:
    (id,) = add_mails(db, ticket_id)
    outbox.mark_failed(db, id, "x" * 5000, NOW)
    error = row(db, id).last_error
    assert error is not None
    assert len(error) == outbox.MAX_ERROR_CHARS


def test_marking_an_unknown_mail_raises(db: Database) -> None:
    with pytest.raises(RecordNotFound):
        outbox.mark_sent(db, 999, NOW)
    with pytest.raises(RecordNotFound):
        outbox.mark_failed(db, 999, "x", NOW)


# -- crash recovery -------------------------------------------------------------------------


def test_a_crashed_sending_row_is_reclaimed_when_its_lease_runs_out(
    db: Database, ticket_id: int
) -> None:
    (id,) = add_mails(db, ticket_id)
    (first,) = outbox.claim_due(db, NOW, limit=1, lease_seconds=300)
    # The dispatcher dies here: the row stays "sending".
    assert outbox.claim_due(db, NOW + timedelta(seconds=299), limit=1) == []
    (again,) = outbox.claim_due(db, NOW + timedelta(seconds=300), limit=1, lease_seconds=300)
    assert again.id == first.id == id
    assert again.attempts == 2
    assert again.next_attempt_at == NOW + timedelta(seconds=600)


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_claims_never_take_the_same_row(db: Database, ticket_id: int) -> None:
    ids = add_mails(db, ticket_id, 60)
    barrier = threading.Barrier(4)
    taken: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def dispatcher(slot: int) -> None:
        try:
            barrier.wait()
            while batch := outbox.claim_due(db, NOW, limit=3):
                taken[slot].extend(m.id for m in batch if m.id is not None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    everything = [id for slot in taken for id in slot]
    assert sorted(everything) == ids, "every row claimed exactly once"
    with db.read() as session:
        attempts = session.exec(select(OutboxMail.attempts)).all()
    assert set(attempts) == {1}


def test_rows_locked_by_another_dispatcher_are_skipped_not_waited_for(
    db: Database, ticket_id: int
) -> None:
    """PostgreSQL: FOR UPDATE SKIP LOCKED lets a second claim pass rows being claimed."""
    if db.is_sqlite:
        pytest.skip("SQLite has no row locks: BEGIN IMMEDIATE serialises claims instead")
    ids = add_mails(db, ticket_id, 4)
    with db.write() as holder:
        locked = holder.exec(
            select(OutboxMail)
            .where(col(OutboxMail.id).in_(ids[:2]))
            .with_for_update()
        ).all()  # fmt: skip
        assert len(locked) == 2
        claimed = outbox.claim_due(db, NOW, limit=10)
        assert sorted(m.id for m in claimed if m.id is not None) == ids[2:]


# -- listing and manual retry ---------------------------------------------------------------


def test_list_outbox_filters_by_state_newest_first(db: Database, ticket_id: int) -> None:
    a, b, c = add_mails(db, ticket_id, 3)
    outbox.claim_due(db, NOW, limit=1)
    outbox.mark_failed(db, a, "550", NOW)
    with db.read() as session:
        assert [m.id for m in outbox.list_outbox(session)] == [c, b, a]
        assert [m.id for m in outbox.list_outbox(session, ["failed"])] == [a]
        queued = outbox.list_outbox(session, [OutboxState.QUEUED], limit=1)
        assert [m.id for m in queued] == [c]
        assert outbox.count_by_state(session) == {"queued": 2, "sending": 0, "sent": 0, "failed": 1}
        with pytest.raises(ValueError):
            outbox.list_outbox(session, ["lost"])


def test_retry_puts_a_failed_mail_back_with_fresh_attempts(db: Database, ticket_id: int) -> None:
    (id,) = add_mails(db, ticket_id)
    outbox.claim_due(db, NOW, limit=1)
    outbox.mark_failed(db, id, "550", NOW)
    later = NOW + timedelta(hours=2)
    with db.write() as session:
        mail = outbox.retry(session, id, later)
        assert (mail.state, mail.attempts, mail.next_attempt_at) == ("queued", 0, later)
    assert [m.id for m in outbox.claim_due(db, later, limit=5)] == [id]


def test_retry_refuses_sent_or_sending_and_unknown_mails(db: Database, ticket_id: int) -> None:
    a, b = add_mails(db, ticket_id, 2)
    outbox.claim_due(db, NOW, limit=2)
    outbox.mark_sent(db, a, NOW)
    with db.write() as session:
        with pytest.raises(InvalidInput):
            outbox.retry(session, a, NOW)
        with pytest.raises(InvalidInput):
            outbox.retry(session, b, NOW)
        with pytest.raises(RecordNotFound):
            outbox.retry(session, 999, NOW)
