"""Durations kept on the ticket when they happen, so ``stats`` reads them with SQL.

From ``created_at`` to the first response and to ``solved_at``, each in wall-clock
seconds and in business seconds (working time of the SLA policy's business calendar),
and the agent who gave the first response. ``store/lifecycle.py`` measures the wall-clock
resolution when a ticket is solved and clears it when one is reopened; ``settle_ticket``
(store/sla.py), which every change of status or first response goes through, fills in
the rest with the calendar. Revision 0003 backfilled the wall-clock values of older
tickets in SQL; their business values are computed by ``backfill_business_seconds``
(``mailgate db upgrade``), as the configured calendar is not known to a migration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, or_, select

from store.models import Ticket

if TYPE_CHECKING:
    from store.db import Database
    from store.sla import Calendar

BACKFILL_KEY = "stats_business_backfill"  # meta value set by revision 0003 while pending


def wall_seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def record_durations(ticket: Ticket, calendar: Calendar) -> None:
    """Fill in whichever durations ``ticket`` has reached and not recorded yet."""
    if ticket.first_response_at is None:
        ticket.first_response_wall_seconds = None
        ticket.first_response_business_seconds = None
    else:
        if ticket.first_response_wall_seconds is None:
            ticket.first_response_wall_seconds = wall_seconds(
                ticket.created_at, ticket.first_response_at
            )
        if ticket.first_response_business_seconds is None:
            ticket.first_response_business_seconds = calendar.seconds_between(
                ticket.created_at, ticket.first_response_at
            )
    if ticket.solved_at is None:
        clear_resolution(ticket)
    else:
        if ticket.resolution_wall_seconds is None:
            ticket.resolution_wall_seconds = wall_seconds(ticket.created_at, ticket.solved_at)
        if ticket.resolution_business_seconds is None:
            ticket.resolution_business_seconds = calendar.seconds_between(
                ticket.created_at, ticket.solved_at
            )


def solved(ticket: Ticket, now: datetime) -> None:
    """``ticket`` is solved at ``now``: a new resolution (business time by ``settle``)."""
    ticket.solved_at = now
    ticket.resolution_wall_seconds = wall_seconds(ticket.created_at, now)
    ticket.resolution_business_seconds = None


def clear_resolution(ticket: Ticket) -> None:
    """Reopened: the resolution is measured again at the next solve."""
    ticket.resolution_wall_seconds = None
    ticket.resolution_business_seconds = None


def backfill_business_seconds(
    db: Database,
    calendar: Calendar,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Business seconds for the tickets revision 0003 left without; returns how many.

    Walks the tickets by id in committed batches, so it can be stopped and run again;
    each row is written only if its times are still the ones read (a ticket answered or
    reopened meanwhile keeps what ``settle`` wrote). Removes the pending mark at the end.
    """
    from store.meta import get_value

    with db.read() as session:
        if get_value(session, BACKFILL_KEY) is None:
            return 0
    done, last = 0, 0
    missing = or_(
        sa.and_(
            col(Ticket.first_response_at).is_not(None),
            col(Ticket.first_response_business_seconds).is_(None),
        ),
        sa.and_(
            col(Ticket.resolution_wall_seconds).is_not(None),
            col(Ticket.resolution_business_seconds).is_(None),
        ),
    )
    while True:
        with db.write() as session:
            rows = session.exec(
                select(Ticket.id, Ticket.created_at, Ticket.first_response_at, Ticket.solved_at)
                .where(col(Ticket.id) > last, missing)
                .order_by(col(Ticket.id))
                .limit(batch)
            ).all()
            if not rows:
                break
            _write_business(session, rows, calendar)
            last = rows[-1][0] or 0
            done += len(rows)
        if progress is not None:
            progress(done)
    with db.write() as session:
        session.execute(sa.delete(_meta()).where(_meta().c.key == BACKFILL_KEY))
    return done


def _write_business(session: Session, rows: Sequence[Any], calendar: Calendar) -> None:
    """Two executemany UPDATEs for a batch of (id, created_at, first_response_at, solved_at).

    Each only writes a value still missing: a ticket reopened since it was read has no
    wall-clock resolution any more, and one solved again had its value written by settle.
    """
    table = _tickets()
    first_rows, resolution_rows = [], []
    for ticket_id, created, first, solved_at in rows:
        if first is not None:
            seconds = calendar.seconds_between(created, first)
            first_rows.append({"tid": ticket_id, "seconds": seconds})
        if solved_at is not None:
            seconds = calendar.seconds_between(created, solved_at)
            resolution_rows.append({"tid": ticket_id, "seconds": seconds})
    for values, target, reached in (
        (first_rows, "first_response_business_seconds", table.c.first_response_at),
        (resolution_rows, "resolution_business_seconds", table.c.resolution_wall_seconds),
    ):
        if values:
            session.execute(
                sa.update(table)
                .where(
                    table.c.id == sa.bindparam("tid"),
                    reached.is_not(None),
                    table.c[target].is_(None),
                )
                .values({target: sa.bindparam("seconds")}),
                values,
            )


def _tickets() -> sa.Table:
    return Ticket.__table__  # type: ignore[attr-defined, no-any-return]


def _meta() -> sa.Table:
    from store.models import MetaValue

    return MetaValue.__table__  # type: ignore[attr-defined, no-any-return]


def business_backfill_pending(session: Session) -> bool:
    from store.meta import get_value

    return get_value(session, BACKFILL_KEY) is not None
