"""The workflow rules kept by ``store/`` on SQLite and PostgreSQL: the SLA clock on real
rows, peak mode, merging, development budgets, time tracking, the scheduler's claims and
the figures of ``stats``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from mailgate.config import SlaSettings, WorkflowSettings
from mailgate.policy import sla_policy
from store import directory, due
from store.db import Database
from store.development import decide_budget, propose_budget, set_deadline
from store.enums import Direction, ParticipantRole, Status
from store.errors import IllegalTransition, InvalidInput
from store.lifecycle import change_status
from store.lookups import StoreReader
from store.merge import merge_tickets
from store.models import AuditEvent, Message, Participant, Ticket
from store.sla import peak_mode, set_peak_mode, settle
from store.stats import workflow_stats
from store.tickets import NewMessage, NewTicket, add_message, add_participant, open_ticket
from store.timelog import log_time, time_by_agent, time_by_shop, time_spent
from store.views import TicketFilter, list_tickets, ticket_detail

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 09:00
SLA = sla_policy(WorkflowSettings(), SlaSettings())


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    """A migrated store on SQLite or PostgreSQL, with one shop (rate 45 EUR/h)."""
    database = Database(store_url)
    database.upgrade()
    with database.write() as s:
        directory.add_shop(s, "Magazin", locale="ro", rate=45, now=NOW)
        directory.add_user(s, "ana@magazin.ro", shop="Magazin", name="Ana", now=NOW)
    yield database
    database.dispose()


def ticket(
    db: Database, *, at: datetime = NOW, message_id: str = "m1@magazin.ro", **kw: object
) -> int:
    """A ticket from Ana with one inbound message, its SLA clock started."""
    with db.write() as s:
        shop = directory.shop_by_name(s, "Magazin")
        t = open_ticket(
            s,
            NewTicket(subject="Plata", requester="ana@magazin.ro", shop_id=shop.id, **kw),  # type: ignore[arg-type]
            actor="ana@magazin.ro",
            now=at,
        )
        add_message(
            s,
            t,
            NewMessage(direction=Direction.IN, body_text="text", message_id=message_id),
            raw_id=None,
            now=at,
        )
        settle(s, t, at, SLA)
        assert t.id is not None
        return t.id


def row(db: Database, ticket_id: int) -> Ticket:
    with db.read() as s:
        found = s.get(Ticket, ticket_id)
        assert found is not None
        return found


def test_the_sla_clock_is_kept_on_the_row(db: Database) -> None:
    tid = ticket(db)
    assert row(db, tid).due_at == NOW + timedelta(hours=8)
    with db.write() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        change_status(s, t, Status.PENDING, actor="maria", now=NOW + timedelta(hours=2))
        settle(s, t, NOW + timedelta(hours=2), SLA)
    paused = row(db, tid)
    assert (paused.due_at, paused.sla_used_seconds, paused.sla_clock) == (None, 7200.0, "paused")
    assert paused.status_since == NOW + timedelta(hours=2)
    with db.write() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        change_status(s, t, Status.OPEN, actor="ana", now=NOW + timedelta(days=1))
        settle(s, t, NOW + timedelta(days=1), SLA)
    assert row(db, tid).due_at == NOW + timedelta(days=1, hours=6)


def test_the_queue_marks_breached_tickets_and_sorts_by_deadline(db: Database) -> None:
    late = ticket(db, priority="high", message_id="a@x")  # due 13:00
    soon = ticket(
        db, priority="immediate", at=NOW + timedelta(hours=3, minutes=30), message_id="b@x"
    )
    later = ticket(db, message_id="c@x")  # due 17:00
    with db.read() as s:
        queue = list_tickets(s, TicketFilter(sort="due"), now=NOW + timedelta(hours=4, minutes=15))
    assert [t.id for t in queue] == [late, soon, later]
    assert [t.breached for t in queue] == [True, False, False]


def test_peak_mode_keeps_only_immediate_clocks(db: Database) -> None:
    normal = ticket(db, message_id="a@x")
    urgent = ticket(db, priority="immediate", message_id="b@x")
    with db.write() as s:
        assert set_peak_mode(s, True, actor="admin", now=NOW + timedelta(hours=1), policy=SLA) == 2
    with db.read() as s:
        assert peak_mode(s)
    assert row(db, normal).due_at is None
    assert row(db, urgent).due_at == NOW + timedelta(hours=1)
    with db.write() as s:
        set_peak_mode(s, False, actor="admin", now=NOW + timedelta(hours=2), policy=SLA)
    # 1 h used before the campaign, 7 h left from 11:00: the peak hour did not count
    assert row(db, normal).due_at == NOW + timedelta(days=1, hours=1)


def test_merge_moves_messages_people_and_time_and_closes_the_duplicate(db: Database) -> None:
    target = ticket(db, message_id="first@magazin.ro")
    source = ticket(db, message_id="second@magazin.ro")
    with db.write() as s:
        add_participant(s, source, "ion@magazin.ro", ParticipantRole.CC)
        log_time(s, source, 20, agent="maria@support.example", now=NOW)
        merge_tickets(s, source, target, actor="maria@support.example", now=NOW, sla=SLA)
    merged = row(db, source)
    assert (merged.status, merged.merged_into, merged.due_at) == ("closed", target, None)
    with db.read() as s:
        assert s.exec(select(Message.ticket_id).where(Message.ticket_id == source)).all() == []
        assert StoreReader(s).tickets_for_message_ids(("second@magazin.ro",)) == {
            "second@magazin.ro": target
        }
        people = s.exec(select(Participant.email).where(Participant.ticket_id == target)).all()
        assert set(people) == {"ana@magazin.ro", "ion@magazin.ro"}
        assert time_spent(s, target).minutes == 20
        merges = s.exec(select(AuditEvent).where(AuditEvent.action == "merge")).all()
        assert {e.ticket_id for e in merges} == {source, target}
        detail = ticket_detail(s, target)
    assert len(detail.messages) == 2


def test_merge_refuses_what_cannot_be_merged(db: Database) -> None:
    a = ticket(db, message_id="a@x")
    b = ticket(db, message_id="b@x")
    c = ticket(db, message_id="c@x")
    with db.write() as s, pytest.raises(InvalidInput, match="itself"):
        merge_tickets(s, a, a, actor="m", now=NOW, sla=SLA)
    with db.write() as s:
        merge_tickets(s, b, c, actor="m", now=NOW, sla=SLA)
    with db.write() as s, pytest.raises(InvalidInput, match="already merged"):
        merge_tickets(s, b, a, actor="m", now=NOW, sla=SLA)
    with db.write() as s, pytest.raises(InvalidInput, match="merge into that one"):
        merge_tickets(s, a, b, actor="m", now=NOW, sla=SLA)
    with db.write() as s:
        t = s.get(Ticket, c)
        assert t is not None
        change_status(s, t, Status.CLOSED, actor="m", now=NOW)
    with db.write() as s, pytest.raises(InvalidInput, match="closed"):
        merge_tickets(s, a, c, actor="m", now=NOW, sla=SLA)


def test_a_budget_is_hours_times_the_shop_rate_and_waits_for_the_merchant(db: Database) -> None:
    question = ticket(db, message_id="q@x")
    with db.write() as s, pytest.raises(InvalidInput, match="not a development request"):
        propose_budget(s, question, 10, actor="maria", now=NOW, sla=SLA)
    tid = ticket(db, type="development", message_id="d@x")
    with db.write() as s, pytest.raises(InvalidInput, match="hours"):
        propose_budget(s, tid, 0, actor="maria", now=NOW, sla=SLA)
    with db.write() as s, pytest.raises(InvalidInput, match="no budget waiting"):
        t = s.get(Ticket, tid)
        assert t is not None
        decide_budget(s, t, True, actor="ana", now=NOW, sla=SLA)
    with db.write() as s:
        _, budget = propose_budget(s, tid, 12, actor="maria", now=NOW, sla=SLA)
    assert (budget.hours, budget.rate, budget.amount) == (12, 45, 540)
    t = row(db, tid)
    assert (t.status, t.budget_state, t.due_at) == ("pending", "proposed", None)
    with db.write() as s, pytest.raises(InvalidInput, match="approved budget"):
        set_deadline(s, tid, date(2026, 12, 15), actor="maria", now=NOW, sla=SLA)

    with db.write() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        decide_budget(s, t, True, actor="merchant:ana@magazin.ro", now=NOW, sla=SLA)
    assert (row(db, tid).status, row(db, tid).budget_state) == ("open", "approved")
    with db.write() as s, pytest.raises(InvalidInput, match="past"):
        set_deadline(s, tid, date(2026, 11, 20), actor="maria", now=NOW, sla=SLA)
    with db.write() as s:
        set_deadline(s, tid, date(2026, 12, 15), actor="maria", now=NOW, sla=SLA)
    t = row(db, tid)
    assert (t.status, t.standby_reason, t.deadline) == (
        "on_hold",
        "deadline_set",
        date(2026, 12, 15),
    )
    with db.read() as s:
        out = ticket_detail(s, tid)
    assert (out.budget_hours, out.budget_amount, out.budget_state) == (12, 540, "approved")


def test_a_rejected_budget_closes_the_ticket_for_good(db: Database) -> None:
    tid = ticket(db, type="development")
    with db.write() as s:
        propose_budget(s, tid, 3, actor="maria", now=NOW, sla=SLA)
    with db.write() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        decide_budget(s, t, False, actor="merchant:ana@magazin.ro", now=NOW, sla=SLA)
    assert (row(db, tid).status, row(db, tid).budget_state) == ("closed", "rejected")
    with db.write() as s, pytest.raises((InvalidInput, IllegalTransition)):
        propose_budget(s, tid, 2, actor="maria", now=NOW, sla=SLA)


def test_a_shop_without_a_rate_cannot_be_given_a_budget(db: Database) -> None:
    with db.write() as s:
        directory.add_shop(s, "Free", locale="en", rate=0, now=NOW)
        directory.add_user(s, "bob@free.example", shop="Free", name="", now=NOW)
        shop = directory.shop_by_name(s, "Free")
        t = open_ticket(
            s,
            NewTicket(
                subject="x", requester="bob@free.example", shop_id=shop.id, type="development"
            ),
            actor="bob",
            now=NOW,
        )
        tid = t.id
    with db.write() as s, pytest.raises(InvalidInput, match="no hourly rate"):
        propose_budget(s, tid, 2, actor="maria", now=NOW, sla=SLA)  # type: ignore[arg-type]


def test_time_is_summed_per_ticket_shop_and_agent(db: Database) -> None:
    a = ticket(db, message_id="a@x")
    b = ticket(db, message_id="b@x")
    with db.write() as s:
        log_time(s, a, 15, agent="maria@support.example", now=NOW)
        log_time(s, a, 30, agent="ion@support.example", now=NOW, call=True)
        log_time(s, b, 10, agent="maria@support.example", now=NOW)
        for bad in (0, -5, 24 * 60 + 1):
            with pytest.raises(InvalidInput, match="minutes"):
                log_time(s, a, bad, agent="maria@support.example", now=NOW)
    with db.read() as s:
        assert (time_spent(s, a).minutes, time_spent(s, a).calls) == (45, 1)
        assert time_by_shop(s)["Magazin"].minutes == 55
        by_agent = time_by_agent(s)
        assert (
            by_agent["maria@support.example"].minutes,
            by_agent["ion@support.example"].calls,
        ) == (25, 1)
        assert ticket_detail(s, a).time_spent_minutes == 45


def test_a_claimed_ticket_is_not_claimed_twice(db: Database) -> None:
    tid = ticket(db)
    with db.write() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        change_status(s, t, Status.SOLVED, actor="maria", now=NOW)
    condition = due.solved_before(NOW + timedelta(days=30))
    with db.read() as s:
        assert due.candidates(s, condition) == [tid]
    with db.write() as s:
        claimed = due.claim(s, tid, condition)
        assert claimed is not None
        change_status(s, claimed, Status.CLOSED, actor="scheduler", now=NOW)
    with db.write() as s:
        assert due.claim(s, tid, condition) is None  # done: no longer due


def test_stats_give_first_response_times_sla_results_and_reopen_rate(db: Database) -> None:
    fast = ticket(db, message_id="a@x")
    slow = ticket(db, message_id="b@x")
    waiting = ticket(db, priority="high", message_id="c@x")
    answers = {fast: NOW + timedelta(minutes=10), slow: NOW + timedelta(minutes=30)}
    with db.write() as s:
        for tid, when in answers.items():
            t = s.get(Ticket, tid)
            assert t is not None
            add_message(
                s,
                t,
                NewMessage(direction=Direction.OUT, body_text="ok", author="maria@support.example"),
                raw_id=None,
                now=when,
            )
            t.first_response_at = when
            change_status(s, t, Status.SOLVED, actor="maria", now=when)
            settle(s, t, when, SLA)
        t = s.get(Ticket, slow)
        assert t is not None
        change_status(s, t, Status.OPEN, actor="ana", now=NOW + timedelta(hours=1))
        settle(s, t, NOW + timedelta(hours=1), SLA)
        t.assignee = "maria@support.example"
    with db.read() as s:
        figures = workflow_stats(s, SLA, NOW + timedelta(hours=5))
    first = figures["first_response_minutes"]
    assert first["wall_clock"] == {"count": 2, "mean": 20.0, "median": 20.0}
    assert first["business"]["mean"] == 20.0
    assert figures["sla"]["by_priority"]["normal"]["first_response"] == {"met": 2, "breached": 0}
    assert figures["sla"]["by_priority"]["high"]["first_response"] == {"met": 0, "breached": 1}
    assert figures["sla"]["by_sector"]["support"]["resolution"] == {"met": 1, "breached": 0}
    assert figures["reopen"] == {"solved": 2, "reopened": 1, "rate": 0.5}
    assert figures["backlog"]["support"] == {"solved": 1, "open": 1, "new": 1}
    maria = figures["agents"]["maria@support.example"]
    assert (maria["replies"], maria["first_responses"]["mean"], maria["assigned_open"]) == (
        2,
        20.0,
        1,
    )
    assert figures["by_status"]["new"] == 1 and waiting not in answers
