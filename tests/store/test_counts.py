"""The ticket counts of ``stats`` (``store/counts.py``, revision 0004) equal a COUNT(*) of
the tickets after any sequence of changes, through whichever path makes them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from mailgate.config import SlaSettings, WorkflowSettings
from mailgate.policy import sla_policy
from store import counts
from store.db import Database
from store.enums import Direction, Priority, StandbyReason, Status
from store.lifecycle import ALLOWED, change_status
from store.merge import merge_tickets
from store.migrate import upgrade
from store.models import Ticket, TicketCount
from store.stats import queue_stats
from store.tickets import NewMessage, NewTicket, add_message, open_ticket, set_field

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SLA = sla_policy(WorkflowSettings(), SlaSettings())
SECTORS = ["support", "payments", "shipping", "finance"]
AGENTS = ["maria@support.example", "ioan@support.example", None]


def _counted(session: Session) -> dict[tuple[str, str, str, str], int]:
    rows = session.execute(
        sa.text(
            "SELECT status, sector, priority, COALESCE(assignee, ''), COUNT(*) FROM tickets"
            " GROUP BY status, sector, priority, COALESCE(assignee, '')"
        )
    ).all()
    return {(status, sector, prio, who): n for status, sector, prio, who, n in rows}


def _kept(session: Session) -> dict[tuple[str, str, str, str], int]:
    return {(st, se, pr, who): n for st, se, pr, who, n in counts.ticket_counts(session)}


def _random_change(s: Session, rng: random.Random, at: datetime) -> None:
    """One change to a random ticket, by one of the paths the store has."""
    ids = s.execute(sa.text("SELECT id FROM tickets WHERE merged_into IS NULL")).scalars().all()
    step = rng.random()
    if step < 0.2 or not ids:
        t = open_ticket(
            s,
            NewTicket(
                subject="s",
                requester="ana@magazin.ro",
                sector=rng.choice(SECTORS),
                priority=rng.choice([p.value for p in Priority]),
            ),
            actor="ana",
            now=at,
        )
        return
    t = s.get(Ticket, rng.choice(ids))
    assert t is not None and t.id is not None
    if step < 0.5:
        targets = sorted(ALLOWED[Status(t.status)], key=lambda x: x.value)
        if targets:
            target = rng.choice(targets)
            reason = StandbyReason.AWAITING_IT if target is Status.ON_HOLD else None
            change_status(s, t, target, actor="x", now=at, reason=reason)
    elif step < 0.6:
        set_field(s, t, "sector", rng.choice(SECTORS), actor="x", now=at)
    elif step < 0.65:
        set_field(s, t, "priority", rng.choice([p.value for p in Priority]), actor="x", now=at)
    elif step < 0.7:
        set_field(s, t, "assignee", rng.choice(AGENTS), actor="x", now=at)
    elif step < 0.75:
        t.priority, t.sector = rng.choice([p.value for p in Priority]), rng.choice(SECTORS)
        s.add(t)  # a plain attribute change, flushed by the ORM
    elif step < 0.8:
        s.execute(  # a bulk SQL statement: no ORM object involved
            sa.text("UPDATE tickets SET sector = :sector WHERE id = :id"),
            {"sector": rng.choice(SECTORS), "id": t.id},
        )
        s.expire(t)
    elif step < 0.9:
        others = [i for i in ids if i != t.id]
        if others and t.status != Status.CLOSED.value:
            merge_tickets(s, rng.choice(others), t.id, actor="x", now=at, sla=SLA)
    elif step < 0.95:
        t.subject = "only the subject changes"
        s.add(t)
    else:  # a ticket deleted with its rows, when no other ticket points at it
        pointed = s.execute(
            sa.text("SELECT 1 FROM tickets WHERE merged_into = :id OR follow_up_of = :id"),
            {"id": t.id},
        ).first()
        if pointed is None:
            for table in ("audit_events", "participants", "messages"):
                s.execute(sa.text(f"DELETE FROM {table} WHERE ticket_id = :id"), {"id": t.id})
            s.execute(sa.text("DELETE FROM tickets WHERE id = :id"), {"id": t.id})
            s.expunge(t)


def test_random_changes_keep_the_counts_equal_to_a_count_of_the_tickets(db: Database) -> None:
    rng = random.Random(4)
    at = NOW
    for round_ in range(12):
        with db.write() as s:
            for _ in range(25):
                at += timedelta(minutes=7)
                _random_change(s, rng, at)
            s.flush()
            assert _kept(s) == _counted(s), "in the writer's own transaction"
        with db.read() as s:
            assert _kept(s) == _counted(s)
        if round_ % 4 == 3:
            with db.write() as s:
                assert counts.compact(s) > 0
        with db.read() as s:
            assert _kept(s) == _counted(s)
    with db.read() as s:
        assert sum(n for *_, n in counts.ticket_counts(s)) > 30
        statuses = {status for status, *_ in counts.ticket_counts(s)}
        assert Status.CLOSED.value in statuses and len(statuses) >= 4


def test_a_rolled_back_change_leaves_the_counts_alone(db: Database) -> None:
    with db.write() as s:
        open_ticket(s, NewTicket(subject="s", requester="ana@magazin.ro"), actor="a", now=NOW)
    try:
        with db.write() as s:
            t = s.exec(select(Ticket)).one()
            change_status(s, t, Status.OPEN, actor="x", now=NOW)
            s.flush()
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    with db.read() as s:
        assert counts.ticket_counts(s) == [("new", "support", "normal", "", 1)]


def test_compaction_folds_the_rows_into_one_per_group(db: Database) -> None:
    with db.write() as s:
        for _ in range(3):
            t = open_ticket(
                s, NewTicket(subject="s", requester="ana@magazin.ro"), actor="a", now=NOW
            )
        change_status(s, t, Status.OPEN, actor="x", now=NOW)
        s.flush()
        change_status(s, t, Status.SOLVED, actor="x", now=NOW)
        s.flush()
        assert len(s.exec(select(TicketCount)).all()) == 7  # 3 new, then -1 +1 twice
    with db.write() as s:
        assert counts.compact(s) == 5
        rows = s.exec(select(TicketCount.status, TicketCount.tickets)).all()
        assert sorted(rows) == [("new", 2), ("solved", 1)]  # "open" came to 0: no row
        assert counts.compact(s) == 0  # nothing left to fold
    with db.read() as s:
        stats = queue_stats(s)
    assert stats["total"] == 3
    assert stats["by_status"]["new"] == 2 and stats["by_status"]["solved"] == 1
    assert stats["by_sector"] == {"support": 3} and stats["by_priority"] == {"normal": 3}


def test_revision_0004_counts_the_tickets_already_in_the_store(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    upgrade(engine, "0003")
    with engine.begin() as c:
        for tid, status, sector in (
            (1, "open", "support"),
            (2, "open", "support"),
            (3, "closed", "payments"),
        ):
            c.execute(
                sa.text(
                    "INSERT INTO tickets (id, subject, status, type, sector, priority,"
                    " priority_rank, requester, requester_name, verified, confidential,"
                    " language, created_at, updated_at, sla_clock, sla_used_seconds)"
                    " VALUES (:id, 's', :status, 'question', :sector, 'high', 1, 'a@b.ro', '',"
                    " false, false, 'ro', :at, :at, 'paused', 0)"
                ),
                {"id": tid, "status": status, "sector": sector, "at": NOW.replace(tzinfo=None)},
            )
    upgrade(engine)
    engine.dispose()
    db = Database(sqlite_url)
    with db.read() as s:
        assert sorted(counts.ticket_counts(s)) == [
            ("closed", "payments", "high", "", 1),
            ("open", "support", "high", "", 2),
        ]
    db.dispose()


def _replies_counted(s: Session, since: datetime) -> dict[str, int]:
    rows = s.execute(
        sa.text(
            "SELECT author, COUNT(*) FROM messages WHERE direction = 'out' AND author IS NOT NULL"
            " AND author <> '' AND created_at >= :since GROUP BY author"
        ),
        {"since": since.replace(tzinfo=None)},
    ).all()
    return dict(rows)


def test_replies_per_author_equal_a_count_of_the_messages(db: Database) -> None:
    """Replies over whole days from reply_counts plus the partial first day from the
    messages, through inserts, merges, edits, deletes and compaction."""
    rng = random.Random(5)
    agents = ["maria@support.example", "ioan@support.example", ""]
    with db.write() as s:
        tickets = [
            open_ticket(s, NewTicket(subject="s", requester="ana@magazin.ro"), actor="a", now=NOW)
            for _ in range(6)
        ]
        for n in range(120):
            at = NOW - timedelta(hours=rng.uniform(0, 24 * 9))
            direction = rng.choice([Direction.OUT, Direction.OUT, Direction.IN, Direction.NOTE])
            author = rng.choice(agents) if direction is not Direction.IN else None
            message = NewMessage(direction=direction, body_text=f"{n}", author=author)
            add_message(s, rng.choice(tickets), message, raw_id=None, now=at)
        source, target = tickets[0], tickets[1]
        assert source.id is not None and target.id is not None
        merge_tickets(s, source.id, target.id, actor="x", now=NOW, sla=SLA)
        s.execute(sa.text("UPDATE messages SET author = 'dan@support.example' WHERE id % 7 = 0"))
        s.execute(sa.text("UPDATE messages SET direction = 'note' WHERE id % 11 = 0"))
        s.execute(sa.text("DELETE FROM attachments WHERE message_id % 13 = 0"))
        s.execute(sa.text("DELETE FROM messages WHERE id % 13 = 0"))
    for compact_first in (False, True):
        if compact_first:
            with db.write() as s:
                assert counts.compact(s) > 0
        with db.read() as s:
            for hours in (0.5, 13.25, 24 * 3 + 5, 24 * 8 + 23.9, 24 * 20):
                since = NOW - timedelta(hours=hours)
                assert counts.replies_by_author(s, since) == _replies_counted(s, since), hours
            everything = counts.replies_by_author(s, None)
            assert everything == _replies_counted(s, NOW - timedelta(days=100))
            assert set(everything) == {
                "maria@support.example",
                "ioan@support.example",
                "dan@support.example",
            }
