"""Which tickets a periodic job (stage 10, schedule) must handle now, and claiming one.

Each job lists candidates in a read, then handles every ticket in its own write
transaction after ``claim``ing it: the row is locked (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers) and the job's condition is
checked again under the lock. Two runners at the same moment (``schedule run`` from cron
and ``serve``, or two crons) therefore never handle one ticket twice: the second finds it
locked or no longer due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select

from store.enums import Status
from store.models import Ticket
from store.sla import RUNNING_STATUSES, Phase

Condition = ColumnElement[bool]


def solved_before(cutoff: datetime) -> Condition:
    """Solved tickets whose solution is older than ``cutoff``: to close automatically."""
    return and_(col(Ticket.status) == Status.SOLVED.value, col(Ticket.solved_at) <= cutoff)


def standby_reminder_due(now: datetime, interval: timedelta) -> Condition:
    """On-hold tickets whose merchant heard nothing for ``interval``."""
    last_heard = func.coalesce(Ticket.standby_reminded_at, Ticket.status_since, Ticket.updated_at)
    return and_(col(Ticket.status) == Status.ON_HOLD.value, last_heard <= now - interval)


def breach_unwarned(now: datetime) -> Condition:
    """Tickets past their SLA deadline whose agents were not warned for this phase yet."""
    return and_(
        col(Ticket.status).in_([s.value for s in RUNNING_STATUSES]),
        col(Ticket.due_at) <= now,
        or_(
            col(Ticket.sla_warned).is_(None),
            and_(
                col(Ticket.sla_warned) == Phase.FIRST_RESPONSE.value,
                col(Ticket.first_response_at).is_not(None),
            ),
        ),
    )


def candidates(session: Session, condition: Condition, limit: int = 500) -> list[int]:
    """Ids of tickets meeting ``condition``, oldest first."""
    found = session.exec(select(Ticket.id).where(condition).order_by(col(Ticket.id)).limit(limit))
    return [ticket_id for ticket_id in found if ticket_id is not None]


def claim(session: Session, ticket_id: int, condition: Condition) -> Ticket | None:
    """Lock ticket ``ticket_id`` if it still meets ``condition``; None when someone else has
    it or has already handled it."""
    return session.exec(
        select(Ticket).where(Ticket.id == ticket_id, condition).with_for_update(skip_locked=True)
    ).first()
