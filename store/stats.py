"""Queue figures for ``mailgate stats``.

Shaped for a store of millions of tickets: the backlog (not closed) is counted through
its partial index, and the closed tickets as the total minus the backlog, so no query
reads every ticket row (SQLite counts a table's rows from its pages alone).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from store.enums import Status
from store.models import Ticket
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
