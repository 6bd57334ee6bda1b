"""``mailgate stats`` from stored durations and SQL aggregates, on SQLite and PostgreSQL.

The durations are kept on the ticket when they happen (first response, solve, reopen,
re-solve, merge); revision 0003 backfills them for older tickets; and the SQL figures
equal those of the former computation, which loaded every ticket and measured each one in
Python (kept below as the oracle), over all time and over a reporting period.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailgate.config import SlaSettings, SlaTargets, TypeTargets, WorkflowSettings
from mailgate.policy import sla_policy
from store import directory
from store.day_totals import limits_match, sync_limits
from store.db import Database
from store.durations import BACKFILL_KEY, backfill_business_seconds
from store.enums import Direction, ParticipantRole, Priority, Status
from store.lifecycle import ALLOWED, change_status
from store.merge import merge_tickets
from store.meta import get_value
from store.migrate import upgrade
from store.models import AuditEvent, Message, Shop, Ticket, TimeEntry
from store.sla import STOPPED_STATUSES, Phase, SlaPolicy, is_met, phase_of, settle
from store.stats import default_since, workflow_stats
from store.tickets import NewMessage, NewTicket, add_message, add_participant, open_ticket
from store.timelog import log_time

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 09:00
SLA = sla_policy(WorkflowSettings(), SlaSettings())
# Other targets, some per type: questions answered faster, problems solved slower.
TYPED_SLA = sla_policy(
    WorkflowSettings(),
    SlaSettings(
        first_response=SlaTargets(normal="6h", question=TypeTargets(normal="2h", high="1h")),
        resolution=SlaTargets(
            immediate="4h", high="16h", normal="40h", low="120h", problem=TypeTargets(high="30h")
        ),
    ),
)
MARIA, IOAN = "maria@support.example", "ioan@support.example"


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    database = Database(store_url)
    database.upgrade()
    with database.write() as s:
        directory.add_shop(s, "Magazin", locale="ro", rate=45, now=NOW)
    yield database
    database.dispose()


def _new_ticket(s: Session, at: datetime, **kw: Any) -> Ticket:
    t = open_ticket(
        s, NewTicket(subject="Plata", requester="ana@magazin.ro", **kw), actor="ana", now=at
    )
    add_message(s, t, NewMessage(direction=Direction.IN, body_text="text"), raw_id=None, now=at)
    settle(s, t, at, SLA)
    return t


def _reply(s: Session, t: Ticket, agent: str, at: datetime, status: Status | None = None) -> None:
    """What ``AgentActions.reply`` does to the store (without the notification)."""
    assert t.id is not None
    add_participant(s, t.id, agent, ParticipantRole.AGENT)
    target = status or (Status.OPEN if t.status == Status.NEW.value else None)
    if target is not None:
        change_status(s, t, target, actor=agent, now=at)
    if t.first_response_at is None:
        t.first_response_at = at
    settle(s, t, at, SLA)
    add_message(
        s, t, NewMessage(direction=Direction.OUT, body_text="ok", author=agent), raw_id=None, now=at
    )


def _move(s: Session, t: Ticket, target: Status, at: datetime) -> None:
    change_status(s, t, target, actor="x", now=at)
    settle(s, t, at, SLA)


# --- durations kept on the ticket ------------------------------------------------------


def test_durations_are_stored_at_first_response_solve_reopen_and_resolve(db: Database) -> None:
    friday = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # one working hour left in the week
    with db.write() as s:
        t = _new_ticket(s, friday)
        assert t.first_response_wall_seconds is None and t.first_responder is None
        answered = friday + timedelta(days=3, minutes=30)  # Monday 16:30
        _reply(s, t, MARIA, answered)
        assert t.first_responder == MARIA
        assert t.first_response_wall_seconds == (answered - friday).total_seconds()
        assert t.first_response_business_seconds == 3600 + 7.5 * 3600  # Fri 16-17, Mon 9-16:30
        _reply(s, t, IOAN, answered + timedelta(hours=1))
        assert t.first_responder == MARIA  # the first answer stays
        assert t.first_response_wall_seconds == (answered - friday).total_seconds()
        assert t.resolution_wall_seconds is None

        solved = answered + timedelta(hours=16)  # Tuesday 08:30, before opening
        _move(s, t, Status.SOLVED, solved)
        assert t.resolution_wall_seconds == (solved - friday).total_seconds()
        assert t.resolution_business_seconds == 3600 + 8 * 3600

        _move(s, t, Status.OPEN, solved + timedelta(hours=1))  # reopened
        assert t.resolution_wall_seconds is None and t.resolution_business_seconds is None
        assert t.first_response_wall_seconds is not None  # the first response stays

        again = solved + timedelta(hours=3)  # Tuesday 11:30
        _move(s, t, Status.SOLVED, again)
        assert t.resolution_wall_seconds == (again - friday).total_seconds()
        assert t.resolution_business_seconds == 3600 + 8 * 3600 + 2.5 * 3600
        _move(s, t, Status.CLOSED, again + timedelta(days=7))
        assert t.resolution_wall_seconds == (again - friday).total_seconds()  # closing keeps it
        tid = t.id
    with db.read() as s:
        row = s.get(Ticket, tid)
        assert row is not None and row.resolution_business_seconds == 3600 + 8 * 3600 + 2.5 * 3600


def test_a_merge_keeps_the_first_answer_among_the_moved_messages(db: Database) -> None:
    with db.write() as s:
        source = _new_ticket(s, NOW)
        target = _new_ticket(s, NOW + timedelta(minutes=5))
        _reply(s, source, IOAN, NOW + timedelta(minutes=10))
        assert source.id is not None and target.id is not None
        merged = merge_tickets(
            s, source.id, target.id, actor=MARIA, now=NOW + timedelta(minutes=20), sla=SLA
        )
        assert merged.first_responder == IOAN
        assert merged.first_response_wall_seconds == 300.0  # target created 09:05, answered 09:10
        assert merged.first_response_business_seconds == 300.0


# --- revision 0003: the backfill -------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    """A database with no schema yet, on each database."""
    name = "sqlite_url" if request.param == "sqlite" else "fresh_pg_database"
    url: str = request.getfixturevalue(name)
    return url


def test_revision_0003_backfills_durations_and_db_upgrade_the_business_times(
    empty_url: str,
) -> None:
    engine = sa.create_engine(empty_url)
    upgrade(engine, "0002")
    created = datetime(2026, 11, 20, 16, 0)  # naive UTC, as the store keeps times; a Friday
    answered = created + timedelta(days=3, minutes=30)
    solved = answered + timedelta(hours=16)
    rows = [  # id, status, first_response_at, solved_at
        (1, "closed", answered, solved),
        (2, "open", answered, None),
        (3, "new", None, None),
        (4, "solved", created - timedelta(hours=1), created - timedelta(hours=1)),  # clock skew
    ]
    with engine.begin() as c:
        for tid, status, first, done in rows:
            c.execute(
                sa.text(
                    "INSERT INTO tickets (id, subject, status, type, sector, priority,"
                    " priority_rank, requester, requester_name, verified, confidential,"
                    " language, created_at, updated_at, first_response_at, solved_at,"
                    " sla_clock, sla_used_seconds) VALUES (:id, 's', :status, 'question',"
                    " 'support', 'normal', 2, 'ana@magazin.ro', '', false, false, 'ro',"
                    " :created, :created, :first, :done, 'paused', 0)"
                ),
                {"id": tid, "status": status, "created": created, "first": first, "done": done},
            )
        for mid, tid, direction, author in (
            (1, 1, "in", None),
            (2, 1, "note", MARIA),
            (3, 1, "out", ""),
            (4, 1, "out", IOAN),
            (5, 1, "out", MARIA),
            (6, 2, "out", MARIA),
        ):
            c.execute(
                sa.text(
                    "INSERT INTO messages (id, ticket_id, direction, from_name, to_addresses,"
                    " cc_addresses, subject, body_text, reply_text, threaded_by,"
                    " thread_evidence, screen_verdict, screen_reason, auth, author, flags,"
                    " headers, created_at) VALUES (:id, :tid, :direction, '', '', '', '', '',"
                    " '', 'new', '', 'ok', '', '{}', :author, '', '{}', :at)"
                ),
                {"id": mid, "tid": tid, "direction": direction, "author": author, "at": created},
            )
    upgrade(engine)
    engine.dispose()

    db = Database(empty_url)
    with db.read() as s:
        assert get_value(s, BACKFILL_KEY) == "pending"
        got = {t.id: t for t in s.exec(select(Ticket)).all()}
        pending = workflow_stats(s, SLA, NOW, since=None)
    assert pending["period"]["business_time_complete"] is False
    assert pending["first_response_minutes"]["wall_clock"]["count"] == 3
    assert pending["first_response_minutes"]["business"]["count"] == 0  # not known yet
    wall_first = (answered - created).total_seconds()
    assert got[1].first_response_wall_seconds == pytest.approx(wall_first, abs=1e-3)
    assert got[1].resolution_wall_seconds == pytest.approx((solved - created).total_seconds())
    assert got[1].first_responder == IOAN  # the first outbound message with an author
    assert got[2].first_responder == MARIA and got[2].resolution_wall_seconds is None
    assert got[3].first_response_wall_seconds is None and got[3].first_responder is None
    assert got[4].first_response_wall_seconds == 0 and got[4].resolution_wall_seconds == 0
    assert all(t.first_response_business_seconds is None for t in got.values())

    assert backfill_business_seconds(db, SLA.calendar, batch=2) == 3
    with db.read() as s:
        assert get_value(s, BACKFILL_KEY) is None
        got = {t.id: t for t in s.exec(select(Ticket)).all()}
    assert got[1].first_response_business_seconds == 3600 + 7.5 * 3600
    assert got[1].resolution_business_seconds == 3600 + 8 * 3600
    assert got[2].first_response_business_seconds == 3600 + 7.5 * 3600
    assert got[2].resolution_business_seconds is None
    assert got[4].first_response_business_seconds == 0
    assert backfill_business_seconds(db, SLA.calendar) == 0  # done: nothing left
    with db.read() as s:
        done = workflow_stats(s, SLA, NOW, since=None)
    assert done["period"]["business_time_complete"] is True
    assert done["first_response_minutes"]["business"]["count"] == 3
    db.dispose()


# --- the figures equal the former per-ticket computation -------------------------------


def _generate(db: Database, seed: int, count: int) -> None:
    """``count`` tickets over the 60 days before NOW, worked through the store's own
    functions: replies, notes, status moves (reopens too), priority changes, merges, time."""
    rng = random.Random(seed)
    agents = [MARIA, IOAN, "dan@support.example"]
    with db.write() as s:
        shop = directory.shop_by_name(s, "Magazin")
        made: list[Ticket] = []
        for _ in range(count):
            at = NOW - timedelta(days=60) + timedelta(minutes=rng.randrange(60 * 24 * 60))
            t = _new_ticket(
                s,
                at,
                priority=rng.choice([p.value for p in Priority]),
                type=rng.choice(["question", "problem", "development"]),
                sector=rng.choice(["support", "payments", "shipping"]),
                shop_id=shop.id if rng.random() < 0.7 else None,
            )
            if rng.random() < 0.8:
                t.assignee = rng.choice(agents)
            for _ in range(rng.randrange(7)):
                at += timedelta(minutes=rng.choice([3, 30, 200, 900, 3000]))
                if at > NOW:
                    break
                step = rng.random()
                if t.status == Status.CLOSED.value:
                    break
                if step < 0.35:
                    _reply(s, t, rng.choice(agents), at)
                elif step < 0.45:
                    assert t.id is not None
                    log_time(s, t.id, rng.randrange(1, 90), agent=rng.choice(agents), now=at)
                elif step < 0.5:
                    t.priority = rng.choice([p.value for p in Priority])
                    settle(s, t, at, SLA)
                else:
                    targets = sorted(ALLOWED[Status(t.status)], key=lambda x: x.value)
                    target = rng.choice(targets)
                    change_status(s, t, target, actor="x", now=at, reason=_reason(target))
                    settle(s, t, at, SLA)
            made.append(t)
        for _ in range(count // 20):
            source, target = rng.sample(made, 2)
            assert source.id is not None and target.id is not None
            if source.merged_into or target.merged_into or target.status == Status.CLOSED.value:
                continue
            merge_tickets(
                s, source.id, target.id, actor=MARIA, now=NOW - timedelta(hours=1), sla=SLA
            )


def _reason(target: Status) -> Any:
    from store.enums import StandbyReason

    return next(iter(StandbyReason)) if target is Status.ON_HOLD else None


@pytest.mark.parametrize("days", [None, 30, 7])
@pytest.mark.parametrize(
    "limits",
    ["kept by the triggers", "per type, kept", "recounted", "other targets", "none"],
)
def test_sql_figures_equal_the_former_per_ticket_computation(
    db: Database, days: int | None, limits: str
) -> None:
    """Whatever the per-day verdicts were judged by (the targets, written before the
    tickets changed or recounted afterwards; other targets; no limits yet), the figures
    are the same."""
    policy = TYPED_SLA if limits == "per type, kept" else SLA
    if limits != "none":
        with db.write() as s:
            sync_limits(s, TYPED_SLA if limits == "other targets" else policy)
    _generate(db, seed=7, count=160)
    if limits == "recounted":
        with db.write() as s:
            assert sync_limits(s, TYPED_SLA)
            assert sync_limits(s, SLA)
    with db.read() as s:
        assert limits_match(s, policy) is (limits not in ("other targets", "none"))
    now = NOW + timedelta(hours=2)
    since = None if days is None else now - timedelta(days=days)
    with db.read() as s:
        new = workflow_stats(s, policy, now, since=since)
        old = _former_workflow_stats(s, policy, now, since)
    assert new.pop("period") == {
        "since": since.isoformat() if since else None,
        "until": now.isoformat(),
        "tickets": "created",
        "business_time_complete": True,
    }
    if days != 7:  # the generated store has something of everything to compare
        assert new["first_response_minutes"]["wall_clock"]["count"] > 40
        assert new["resolution_minutes"]["wall_clock"]["count"] > 5
        assert new["reopen"]["reopened"] > 0
        assert new["sla"]["by_priority"]["high"]["resolution"]["breached"] > 0
    assert new == old


def test_the_default_period_is_thirty_days() -> None:
    assert default_since(NOW) == NOW - timedelta(days=30)


# The computation ``stats`` made before the durations were stored (store/stats.py up to
# revision 0002), with the reporting period applied as documented in store/stats.py.


def _former_workflow_stats(
    session: Session, policy: SlaPolicy, now: datetime, since: datetime | None
) -> dict[str, Any]:
    from store.stats import queue_stats

    def in_period(at: datetime) -> bool:
        return since is None or at >= since

    everything = list(session.exec(select(Ticket).where(col(Ticket.merged_into).is_(None))).all())
    tickets = [t for t in everything if in_period(t.created_at)]
    first_wall, first_business, done_wall, done_business = [], [], [], []
    for t in tickets:
        if t.first_response_at is not None:
            first_wall.append(_minutes(t.created_at, t.first_response_at))
            first_business.append(
                policy.calendar.seconds_between(t.created_at, t.first_response_at) / 60
            )
        if t.solved_at is not None and Status(t.status) in STOPPED_STATUSES:
            done_wall.append(_minutes(t.created_at, t.solved_at))
            done_business.append(policy.calendar.seconds_between(t.created_at, t.solved_at) / 60)
    return {
        **queue_stats(session),
        "first_response_minutes": {
            "wall_clock": _summary(first_wall),
            "business": _summary(first_business),
        },
        "resolution_minutes": {
            "wall_clock": _summary(done_wall),
            "business": _summary(done_business),
        },
        "sla": _sla_results(tickets, policy, now),
        "backlog": _backlog(everything),
        "reopen": _reopen_rate(session, in_period),
        "agents": _agents(session, tickets, everything, now, in_period),
        "time_by_shop": _time_by_shop(session, in_period),
    }


def _minutes(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 60)


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean": None, "median": None}
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 1),
        "median": round(statistics.median(values), 1),
    }


def _sla_verdict(ticket: Ticket, phase: Phase, policy: SlaPolicy, now: datetime) -> str | None:
    measured = (
        ticket.sla_first_response_seconds
        if phase is Phase.FIRST_RESPONSE
        else ticket.sla_resolution_seconds
    )
    met = is_met(measured, policy.target(phase, ticket.priority, ticket.type))
    if met is not None:
        return "met" if met else "breached"
    if phase_of(ticket) is phase and ticket.due_at is not None and ticket.due_at <= now:
        return "breached"
    return None


def _sla_results(tickets: Iterable[Ticket], policy: SlaPolicy, now: datetime) -> dict[str, Any]:
    def empty() -> dict[str, dict[str, int]]:
        return {p.value: {"met": 0, "breached": 0} for p in Phase}

    by_priority: dict[str, dict[str, dict[str, int]]] = {p.value: empty() for p in Priority}
    by_sector: dict[str, dict[str, dict[str, int]]] = defaultdict(empty)
    for ticket in tickets:
        for phase in Phase:
            verdict = _sla_verdict(ticket, phase, policy, now)
            if verdict is not None:
                by_priority.setdefault(ticket.priority, empty())[phase.value][verdict] += 1
                by_sector[ticket.sector][phase.value][verdict] += 1
    return {"by_priority": by_priority, "by_sector": dict(sorted(by_sector.items()))}


def _backlog(tickets: Iterable[Ticket]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for ticket in tickets:
        if ticket.status != Status.CLOSED.value:
            table[ticket.sector][ticket.status] += 1
    return {sector: dict(counts) for sector, counts in sorted(table.items())}


def _reopen_rate(session: Session, in_period: Any) -> dict[str, Any]:
    def tickets_with(old: str | None, new: str) -> set[int]:
        query = select(AuditEvent).where(AuditEvent.action == "status", AuditEvent.new == new)
        if old is not None:
            query = query.where(AuditEvent.old == old)
        return {
            e.ticket_id
            for e in session.exec(query).all()
            if e.ticket_id is not None and in_period(e.at)
        }

    solved = tickets_with(None, Status.SOLVED.value)
    reopened = tickets_with(Status.SOLVED.value, Status.OPEN.value) & solved
    rate = round(len(reopened) / len(solved), 3) if solved else None
    return {"solved": len(solved), "reopened": len(reopened), "rate": rate}


def _agents(
    session: Session,
    tickets: list[Ticket],
    everything: list[Ticket],
    now: datetime,
    in_period: Any,
) -> dict[str, Any]:
    out = list(
        session.exec(
            select(Message)
            .where(Message.direction == Direction.OUT.value, col(Message.author).is_not(None))
            .order_by(col(Message.id))
        ).all()
    )
    replies = Counter(m.author for m in out if m.author and in_period(m.created_at))
    first_by: dict[int, str] = {}
    for m in out:
        if m.author:
            first_by.setdefault(m.ticket_id, m.author)
    answered: dict[str, list[float]] = defaultdict(list)
    open_work: Counter[str] = Counter()
    breached: Counter[str] = Counter()
    for t in tickets:
        if t.id in first_by and t.first_response_at is not None:
            answered[first_by[t.id]].append(_minutes(t.created_at, t.first_response_at))
    for t in everything:
        if t.assignee and Status(t.status) not in STOPPED_STATUSES:
            open_work[t.assignee] += 1
            if t.due_at is not None and t.due_at <= now:
                breached[t.assignee] += 1
    logged: Counter[str] = Counter()
    for e in session.exec(select(TimeEntry)).all():
        if in_period(e.at):
            logged[e.agent] += e.minutes
    names = sorted(set(replies) | set(answered) | set(open_work) | set(logged))
    return {
        name: {
            "replies": replies[name],
            "first_responses": _summary(answered[name]),
            "assigned_open": open_work[name],
            "assigned_breached": breached[name],
            "minutes_logged": logged[name],
        }
        for name in names
    }


def _time_by_shop(session: Session, in_period: Any) -> dict[str, Any]:
    shops = {shop.id: shop.name for shop in session.exec(select(Shop)).all()}
    totals: dict[str, dict[str, int]] = {}
    for entry in session.exec(select(TimeEntry)).all():
        if not in_period(entry.at):
            continue
        ticket = session.get(Ticket, entry.ticket_id)
        assert ticket is not None
        name = shops.get(ticket.shop_id, "") if ticket.shop_id else ""
        into = totals.setdefault(name, {"minutes": 0, "calls": 0})
        into["minutes"] += entry.minutes
        into["calls"] += int(entry.call)
    return dict(sorted(totals.items()))
