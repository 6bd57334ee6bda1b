"""Queue figures for ``mailgate stats``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from store.enums import Status
from store.models import Ticket


def queue_stats(session: Session) -> dict[str, Any]:
    """Tickets by status (all), and the open backlog (not closed) by sector and priority."""
    by_status = dict(
        session.exec(select(Ticket.status, func.count()).group_by(Ticket.status)).all()
    )
    backlog = Ticket.status != Status.CLOSED.value
    by_sector = dict(
        session.exec(
            select(Ticket.sector, func.count()).where(backlog).group_by(Ticket.sector)
        ).all()
    )
    by_priority = dict(
        session.exec(
            select(Ticket.priority, func.count()).where(backlog).group_by(Ticket.priority)
        ).all()
    )
    return {
        "total": sum(by_status.values()),
        "by_status": {s.value: by_status.get(s.value, 0) for s in Status},
        "by_sector": by_sector,
        "by_priority": by_priority,
    }
