"""Queue figures for ``mailgate stats``: backlog, response and resolution times, SLA
results, reopen rate, per agent and per shop.

Times are given in minutes, each as wall-clock time and as business time (working hours of
the business calendar only). SLA results are judged on the SLA clock itself (pauses while
waiting for the merchant excluded, ``immediate`` on 24/7 time), so they agree with the
deadlines agents saw in the queue. Merged tickets are duplicates and are left out of the
time and SLA figures.

The counts (``queue_stats``) are shaped for a store of millions of tickets: the backlog
(not closed) is counted through its partial index, and the closed tickets as the total
minus the backlog, so no query reads every ticket row.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.enums import Direction, Priority, Status
from store.models import AuditEvent, Message, Ticket
from store.sla import STOPPED_STATUSES, Phase, SlaPolicy, is_met, phase_of
from store.timelog import time_by_agent, time_by_shop
from store.views import in_backlog


def queue_stats(session: Session) -> dict[str, Any]:
    """Tickets by status (all), and the open backlog (not closed) by sector and priority."""
    total = session.exec(select(func.count()).select_from(Ticket)).one()
    by_status: dict[str, int] = {}
    by_sector: dict[str, int] = {}
    by_priority: dict[str, int] = {}
    # One pass over the backlog index (sector, priority, status) gives all three.
    for sector, priority, status, count in session.exec(
        select(Ticket.sector, Ticket.priority, Ticket.status, func.count())
        .where(in_backlog())
        .group_by(Ticket.sector, Ticket.priority, Ticket.status)
    ):
        by_status[status] = by_status.get(status, 0) + count
        by_sector[sector] = by_sector.get(sector, 0) + count
        by_priority[priority] = by_priority.get(priority, 0) + count
    by_status[Status.CLOSED.value] = total - sum(by_status.values())
    return {
        "total": total,
        "by_status": {s.value: by_status.get(s.value, 0) for s in Status},
        "by_sector": by_sector,
        "by_priority": by_priority,
    }


def workflow_stats(session: Session, policy: SlaPolicy, now: datetime) -> dict[str, Any]:
    """Everything ``mailgate stats`` shows: ``queue_stats`` plus the workflow figures."""
    tickets = list(session.exec(select(Ticket).where(col(Ticket.merged_into).is_(None))).all())
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
        "backlog": _backlog(tickets),
        "reopen": _reopen_rate(session),
        "agents": _agents(session, tickets, now),
        "time_by_shop": {
            name: {"minutes": spent.minutes, "calls": spent.calls}
            for name, spent in sorted(time_by_shop(session).items())
        },
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
    """``met``, ``breached`` (measured, or still running past its deadline), or None."""
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
    """Unclosed tickets per sector and status."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for ticket in tickets:
        if ticket.status != Status.CLOSED.value:
            table[ticket.sector][ticket.status] += 1
    return {sector: dict(counts) for sector, counts in sorted(table.items())}


def _reopen_rate(session: Session) -> dict[str, Any]:
    """Of the tickets ever solved, how many a merchant (or agent) opened again."""

    def tickets_with(old: str | None, new: str) -> set[int]:
        query = select(AuditEvent.ticket_id).where(
            AuditEvent.action == "status", AuditEvent.new == new
        )
        if old is not None:
            query = query.where(AuditEvent.old == old)
        return {tid for tid in session.exec(query).all() if tid is not None}

    solved = tickets_with(None, Status.SOLVED.value)
    reopened = tickets_with(Status.SOLVED.value, Status.OPEN.value) & solved
    rate = round(len(reopened) / len(solved), 3) if solved else None
    return {"solved": len(solved), "reopened": len(reopened), "rate": rate}


def _agents(session: Session, tickets: list[Ticket], now: datetime) -> dict[str, Any]:
    """Per agent: replies sent, first responses given (and how fast), open work, time."""
    replies = Counter(
        author
        for author in session.exec(
            select(Message.author).where(
                Message.direction == Direction.OUT.value, col(Message.author).is_not(None)
            )
        ).all()
        if author
    )
    first_by: dict[int, str] = {}
    for ticket_id, author in session.exec(
        select(Message.ticket_id, Message.author)
        .where(Message.direction == Direction.OUT.value, col(Message.author).is_not(None))
        .order_by(col(Message.id))
    ).all():
        if author:
            first_by.setdefault(ticket_id, author)
    answered: dict[str, list[float]] = defaultdict(list)
    open_work: Counter[str] = Counter()
    breached: Counter[str] = Counter()
    for t in tickets:
        if t.id in first_by and t.first_response_at is not None:
            answered[first_by[t.id]].append(_minutes(t.created_at, t.first_response_at))
        if t.assignee and Status(t.status) not in STOPPED_STATUSES:
            open_work[t.assignee] += 1
            if t.due_at is not None and t.due_at <= now:
                breached[t.assignee] += 1
    logged = time_by_agent(session)
    names = sorted(set(replies) | set(answered) | set(open_work) | set(logged))
    return {
        name: {
            "replies": replies[name],
            "first_responses": _summary(answered[name]),
            "assigned_open": open_work[name],
            "assigned_breached": breached[name],
            "minutes_logged": logged[name].minutes if name in logged else 0,
        }
        for name in names
    }
