"""Time tracking: minutes agents spend on tickets, phone calls included, summed per ticket,
per shop and per agent (``tickets log-time``, the ``#time`` mail command, ``stats``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import case, func
from sqlmodel import Session, col, select

from store.errors import InvalidInput, TicketNotFound
from store.models import Shop, Ticket, TimeEntry
from store.tickets import audit

MAX_MINUTES = 24 * 60  # one entry is at most a day: a typo of 6000 for 60 is refused


@dataclass(frozen=True, slots=True)
class TimeSpent:
    minutes: int = 0
    calls: int = 0  # entries that were phone calls


def log_time(
    session: Session,
    ticket_id: int,
    minutes: int,
    *,
    agent: str,
    now: datetime,
    call: bool = False,
    note: str = "",
) -> TimeEntry:
    """Record ``minutes`` of ``agent``'s work on a ticket (a phone call when ``call``).

    Raises ``TicketNotFound``, or ``InvalidInput`` for minutes outside 1..1440.
    """
    if not 0 < minutes <= MAX_MINUTES:
        raise InvalidInput(f"minutes must be between 1 and {MAX_MINUTES}, not {minutes}")
    if session.get(Ticket, ticket_id) is None:
        raise TicketNotFound(ticket_id)
    entry = TimeEntry(
        ticket_id=ticket_id,
        agent=agent.lower(),
        minutes=minutes,
        call=call,
        note=note.strip()[:500],
        at=now,
    )
    session.add(entry)
    session.flush()
    audit(
        session,
        ticket_id,
        actor=agent,
        action="time",
        now=now,
        detail=f"{minutes} min" + (" (phone call)" if call else ""),
    )
    return entry


def time_spent(session: Session, ticket_id: int) -> TimeSpent:
    minutes, calls = session.exec(
        select(func.coalesce(func.sum(TimeEntry.minutes), 0), _calls()).where(
            TimeEntry.ticket_id == ticket_id
        )
    ).one()
    return TimeSpent(int(minutes), int(calls or 0))


def time_by_shop(session: Session, *, since: datetime | None = None) -> dict[str, TimeSpent]:
    """Minutes and calls per shop name (tickets without a shop under ``""``), of the time
    entries made since ``since`` (None: all)."""
    # Per ticket first (the entries of the period, through their index), then its shop:
    # joined the other way round, SQLite would walk every ticket.
    entries = sa.select(
        col(TimeEntry.ticket_id).label("ticket_id"),
        func.sum(TimeEntry.minutes).label("minutes"),
        _calls().label("calls"),
    ).group_by(col(TimeEntry.ticket_id))
    if since is not None:
        entries = entries.where(col(TimeEntry.at) >= since)
    per_ticket = entries.subquery()
    rows = session.exec(
        select(Shop.name, func.sum(per_ticket.c.minutes), func.sum(per_ticket.c.calls))
        .select_from(per_ticket)
        .join(Ticket, col(Ticket.id) == per_ticket.c.ticket_id)
        .join(Shop, col(Shop.id) == col(Ticket.shop_id), isouter=True)
        .group_by(Shop.name)
    ).all()
    return {name or "": TimeSpent(int(m or 0), int(c or 0)) for name, m, c in rows}


def time_by_agent(session: Session, *, since: datetime | None = None) -> dict[str, TimeSpent]:
    """Minutes and calls per agent, of the time entries made since ``since`` (None: all)."""
    query = select(TimeEntry.agent, func.sum(TimeEntry.minutes), _calls()).group_by(TimeEntry.agent)
    if since is not None:
        query = query.where(col(TimeEntry.at) >= since)
    rows = session.exec(query).all()
    return {agent: TimeSpent(int(m or 0), int(c or 0)) for agent, m, c in rows}


def _calls() -> Any:
    return func.coalesce(func.sum(case((col(TimeEntry.call), 1), else_=0)), 0)
