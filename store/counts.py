"""Whole-store ticket counts per status, sector and priority, read without counting tickets.

``ticket_counts`` holds rows of changes: triggers on ``tickets`` (revision 0004) add +1
for a new ticket, -1 for a deleted one, and -1/+1 when a status, sector or priority
changes, in the transaction that makes the change, whatever code path makes it. The
rows are only inserted, so gateways ingesting at the same time never wait for each other
on a counter (PostgreSQL). ``ticket_counts`` sums them per group; ``compact`` (the
scheduler) folds them into one row per group, so the sum stays a read of a few hundred
rows however many changes were made since.
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from store.models import TicketCount

_COMPACT_LOCK_ID = 0x636F756E  # "coun": one compaction at a time (PostgreSQL)


def ticket_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """(status, sector, priority, tickets) of every group that has tickets."""
    total = func.sum(col(TicketCount.tickets))
    rows = session.exec(
        select(TicketCount.status, TicketCount.sector, TicketCount.priority, total)
        .group_by(col(TicketCount.status), col(TicketCount.sector), col(TicketCount.priority))
        .having(total != 0)
    ).all()
    return [(status, sector, priority, int(n)) for status, sector, priority, n in rows]


def compact(session: Session) -> int:
    """Fold the rows into one per group (none for an empty group); returns how many rows
    fewer there are. Rows that writers add meanwhile are not seen and stay for the next time;
    on PostgreSQL a second compaction at the same time returns 0 without waiting."""
    if (
        session.get_bind().dialect.name == "postgresql"
        and not session.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _COMPACT_LOCK_ID}
        ).scalar_one()
    ):
        return 0
    table = TicketCount.__table__  # type: ignore[attr-defined]
    groups = sa.select(table.c.status, table.c.sector, table.c.priority).distinct().subquery()
    rows, kinds = session.execute(
        sa.select(
            sa.select(func.count()).select_from(table).scalar_subquery(),
            sa.select(func.count()).select_from(groups).scalar_subquery(),
        )
    ).one()
    if rows <= kinds:
        return 0  # one row per group already
    removed = session.execute(
        sa.delete(table).returning(
            table.c.status, table.c.sector, table.c.priority, table.c.tickets
        )
    ).all()
    sums: Counter[tuple[str, str, str]] = Counter()
    for status, sector, priority, tickets in removed:
        sums[(status, sector, priority)] += tickets
    kept = [
        {"status": status, "sector": sector, "priority": priority, "tickets": n}
        for (status, sector, priority), n in sorted(sums.items())
        if n
    ]
    if kept:
        session.execute(sa.insert(table), kept)
    return len(removed) - len(kept)
