"""Stage 8 helper: who may receive mail about a ticket, and how much (a real store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from mailgate.config import LimitSettings
from mailgate.ratelimit import RecipientGate
from store.db import Database
from store.directory import add_agent, add_shop, add_user
from store.enums import ParticipantRole
from store.models import AuditEvent, Ticket
from store.sendlog import record_bounce
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


def test_ten_mails_per_recipient_and_ticket_in_ten_minutes(session: Session) -> None:
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


def test_forty_automatic_mails_per_address_a_day(session: Session) -> None:
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


def test_agent_answers_count_but_are_not_held_back(session: Session) -> None:
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
