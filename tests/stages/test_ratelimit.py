"""Stage 8 helper: who may receive mail about a ticket, and how much (a real store)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlmodel import Session, select

from mailgate.config import LimitSettings
from mailgate.ratelimit import RecipientGate
from store import plain
from store.db import Database
from store.directory import add_agent, add_shop, add_user
from store.enums import ParticipantRole
from store.models import AuditEvent, NotificationLog, Ticket
from store.sendlog import (
    SentCounts,
    count_sent,
    counted_ahead,
    record_bounce,
    record_recipients,
    was_mailed,
)
from store.tickets import NewTicket, add_participant, open_ticket

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GATE = RecipientGate(LimitSettings())


@pytest.fixture
def session(store_url: str) -> Iterator[Session]:
    """A session on a migrated store with shop Magazin (ana, ion), an agent and ticket #1."""
    db = Database(store_url)
    db.upgrade()
    with db.write() as s:
        add_shop(s, "Magazin", locale="en", rate=0, now=NOW)
        add_shop(s, "Winkel", locale="en", rate=0, now=NOW)
        add_user(s, "ana@magazin.example", shop="Magazin", name="", now=NOW)
        add_user(s, "ion@magazin.example", shop="Magazin", name="", now=NOW)
        add_user(s, "jan@winkel.example", shop="Winkel", name="", now=NOW)
        add_agent(s, "maria@support.example", name="", sectors=(), known_sectors=(), now=NOW)
        ticket = open_ticket(
            s, NewTicket("Q", "ana@magazin.example", shop_id=1), actor="ana", now=NOW
        )
        assert ticket.id is not None
        add_participant(s, ticket.id, "bob@partner.example", ParticipantRole.CC)
        yield s
        s.rollback()
    db.dispose()


@pytest.fixture(params=["written", "held"])
def counted(request: pytest.FixtureRequest, session: Session) -> Iterator[Session]:
    """The session, with the mails recorded written at once, or held to the end of a batch
    (``plain.held_inserts``, as the pipeline's commit holds them): the limits count both."""
    if request.param == "written":
        yield session
        return
    with plain.held_inserts(session):
        yield session
        assert plain.held_rows(session, NotificationLog.__table__)  # type: ignore[attr-defined]


def ticket(session: Session) -> Ticket:
    found = session.get(Ticket, 1)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("ana@magazin.example", True),  # the requester
        ("bob@partner.example", True),  # copied on the ticket
        ("ion@magazin.example", True),  # a user of the same shop
        ("maria@support.example", True),  # an agent
        ("jan@winkel.example", False),  # a user of another shop
        ("eve@evil.example", False),  # a stranger
    ],
)
def test_only_participants_are_ever_written_to(
    session: Session, address: str, allowed: bool
) -> None:
    admitted = GATE.admit(session, ticket(session), "ack", (address,), automatic=True, now=NOW)
    assert admitted == ((address,) if allowed else ())
    withheld = session.exec(select(AuditEvent).where(AuditEvent.action == "withheld")).all()
    assert len(withheld) == (0 if allowed else 1)
    if not allowed:
        assert withheld[0].detail == f"ack to {address}: not a participant of the ticket"


def test_ten_mails_per_recipient_and_ticket_in_ten_minutes(counted: Session) -> None:
    session = counted
    t, ana = ticket(session), "ana@magazin.example"
    for minute in range(10):
        now = NOW + timedelta(minutes=minute * 0.5)
        assert GATE.refusal(session, t, ana, automatic=True, now=now) is None
        GATE.record(session, t, "status_changed", (ana,), automatic=True, now=now)
    why = GATE.refusal(session, t, ana, automatic=True, now=NOW + timedelta(minutes=5))
    assert why == "10 mails to it for this ticket in 10 minutes"
    assert GATE.refusal(session, t, ana, automatic=False, now=NOW) is None  # an agent's answer
    later = NOW + timedelta(minutes=10, seconds=1)  # the first mail has left the window
    assert GATE.refusal(session, t, ana, automatic=True, now=later) is None


def test_forty_automatic_mails_per_address_a_day(counted: Session) -> None:
    session = counted
    t, ana = ticket(session), "ana@magazin.example"
    for hour in range(40):
        GATE.record(
            session, t, "ack", (ana,), automatic=True, now=NOW + timedelta(minutes=hour * 30)
        )
    late = NOW + timedelta(hours=20)
    assert GATE.refusal(session, t, ana, automatic=True, now=late) == (
        "40 automatic mails to it in 24 hours"
    )
    next_day = NOW + timedelta(hours=24, seconds=1)  # the first mail has left the window
    assert GATE.refusal(session, t, ana, automatic=True, now=next_day) is None


def test_agent_answers_count_but_are_not_held_back(counted: Session) -> None:
    session = counted
    t, ana = ticket(session), "ana@magazin.example"
    for _ in range(10):
        GATE.record(session, t, "agent_reply", (ana,), automatic=False, now=NOW)
    assert GATE.refusal(session, t, ana, automatic=False, now=NOW) is None
    assert GATE.refusal(session, t, ana, automatic=True, now=NOW) is not None


def test_no_automatic_mail_after_a_hard_bounce_for_the_quiet_period(session: Session) -> None:
    t, ana = ticket(session), "ana@magazin.example"
    record_bounce(session, ana, at=NOW, detail="550 5.1.1", raw_id=None)
    why = GATE.refusal(session, t, ana, automatic=True, now=NOW + timedelta(days=59))
    assert why == "mail to it bounced on 2026-11-23"
    assert GATE.refusal(session, t, ana, automatic=False, now=NOW) is None
    assert GATE.refusal(session, t, ana, automatic=True, now=NOW + timedelta(days=60)) is None


def test_a_mail_held_for_the_end_of_the_batch_counts_as_mailed(session: Session) -> None:
    ana = "ana@magazin.example"
    assert not was_mailed(session, ana, NOW - timedelta(days=1))
    with plain.held_inserts(session):
        GATE.record(session, ticket(session), "ack", (ana.upper(),), automatic=True, now=NOW)
        assert was_mailed(session, ana, NOW - timedelta(days=1))
        assert not was_mailed(session, ana, NOW + timedelta(seconds=1))
        assert not was_mailed(session, "ion@magazin.example", NOW - timedelta(days=1))
    assert was_mailed(session, ana, NOW - timedelta(days=1))  # written as the block ended


# -- counts found ahead for a batch -------------------------------------------------------

ADDRESSES = ("ana@magazin.example", "ion@magazin.example", "bob@partner.example")
DAY, RECENT = NOW - timedelta(days=1), NOW - timedelta(minutes=10)


def _counts(session: Session, tickets: list[int]) -> dict[tuple[str, int], SentCounts]:
    return {
        (email, t): count_sent(
            session, email, automatic_since=DAY, ticket_id=t, ticket_since=RECENT
        )
        for email in (*ADDRESSES, "new@nowhere.example")
        for t in tickets
    }


class _LogReads(list[str]):
    """The statements that read the notification log, once listening."""

    def append(self, *args: Any) -> None:  # type: ignore[override]
        if args[2].startswith("SELECT") and "notification_log" in args[2]:
            super().append(args[2])


def _log_reads(session: Session) -> _LogReads:
    reads = _LogReads()
    sa_event.listen(session.get_bind(), "before_cursor_execute", reads.append)
    return reads


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_found_ahead_are_the_store_s_counts(session: Session, seed: int) -> None:
    """A random history of two days; then, in a batch, more mails recorded: the counts
    found ahead (plus what the batch recorded) equal those the store gives, mail by mail,
    and the batch asks the log nothing after its three statements."""
    rng = random.Random(seed)
    tickets = [1]
    for n in range(3):
        opened = open_ticket(session, NewTicket(f"T{n}", "ana@magazin.example"), actor="a", now=NOW)
        assert opened.id is not None
        tickets.append(opened.id)
    for _ in range(60):
        at = NOW - timedelta(minutes=rng.randrange(0, 48 * 60))
        email = rng.choice(ADDRESSES).upper() if rng.random() < 0.1 else rng.choice(ADDRESSES)
        record_recipients(
            session, ticket_id=rng.choice(tickets), kind="ack", emails=(email,),
            automatic=rng.random() < 0.7, now=at,
        )  # fmt: skip
    record_bounce(
        session, "ion@magazin.example", at=NOW - timedelta(days=3), detail="", raw_id=None
    )
    plan = [(rng.choice(ADDRESSES), rng.choice(tickets), rng.random() < 0.7) for _ in range(12)]

    expected = []
    first = session.begin_nested()  # the store's answers, each row written at once
    for email, t, automatic in plan:
        record_recipients(
            session, ticket_id=t, kind="ack", emails=(email,), automatic=automatic, now=NOW
        )
        expected.append(_counts(session, tickets))
    first.rollback()  # the same batch again, its rows held, the counts found ahead
    found = []
    reads = _log_reads(session)
    try:
        with (
            plain.held_inserts(session),
            counted_ahead(session, ADDRESSES, automatic_since=DAY, ticket_since=RECENT),
        ):
            asked = len(reads)
            for email, t, automatic in plan:
                record_recipients(
                    session, ticket_id=t, kind="ack", emails=(email,), automatic=automatic, now=NOW
                )
                found.append(_counts(session, tickets))
            assert len(reads) - asked == len(plan) * len(tickets)  # new@nowhere.example's
    finally:
        sa_event.remove(session.get_bind(), "before_cursor_execute", reads.append)
    assert found == expected


def test_a_bounce_or_a_savepoint_ends_the_counts_found_ahead(session: Session) -> None:
    ana = "ana@magazin.example"

    def counts() -> SentCounts:
        return count_sent(session, ana, automatic_since=DAY, ticket_id=1, ticket_since=RECENT)

    def ahead() -> Any:
        return counted_ahead(session, [ana], automatic_since=DAY, ticket_since=RECENT)

    with plain.held_inserts(session), ahead():
        assert counts() == SentCounts(0, 0, None)
        record_bounce(session, ana, at=NOW, detail="550 5.1.1", raw_id=None)
        assert counts().bounced_at is not None
    with plain.held_inserts(session), ahead():
        savepoint = session.begin_nested()
        record_recipients(session, ticket_id=1, kind="ack", emails=(ana,), automatic=True, now=NOW)
        savepoint.rollback()
        assert counts().automatic == 0  # taken back with its savepoint
        record_recipients(session, ticket_id=1, kind="ack", emails=(ana,), automatic=True, now=NOW)
        assert (counts().automatic, counts().for_ticket) == (1, 1)
    assert (counts().automatic, counts().for_ticket) == (1, 1)  # written as the batch ended
