"""Counts kept as the store changes, so ``stats`` reads them without counting a million rows.

- ``ticket_counts``: tickets per status, sector, priority and assignee (the whole store);
- ``reply_counts``: replies (outbound messages with an author) per UTC day and author.

Both hold rows of changes: triggers (revision 0004) add +1 for a new row of the counted
kind, -1 for a deleted one, and -1/+1 when a counted column changes, in the transaction
that makes the change, whatever code path or SQL statement makes it. Rows are only
inserted, so gateways ingesting at the same time never wait for each other on a counter
(PostgreSQL: every new ticket starts as (new, default sector, normal), and one row per
group would be locked by each ingest transaction until it commits). The readers sum
them per group; ``compact`` (run by the scheduler) folds them into one row per group, so
a read stays a few hundred or thousand rows however many changes were made since.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from store.enums import Direction
from store.models import Message, ReplyCount, TicketCount

_COMPACT_LOCK_ID = 0x636F756E  # "coun": one compaction at a time (PostgreSQL)


def ticket_counts(session: Session) -> list[tuple[str, str, str, str, int]]:
    """(status, sector, priority, assignee or "", tickets) of every group with tickets,
    summed here: a few thousand rows cost less to add up here than to sort in SQL."""
    sums: Counter[tuple[str, str, str, str]] = Counter()
    for status, sector, priority, assignee, n in session.execute(
        sa.select(
            col(TicketCount.status),
            col(TicketCount.sector),
            col(TicketCount.priority),
            col(TicketCount.assignee),
            col(TicketCount.tickets),
        )
    ):
        sums[(status, sector, priority, assignee)] += n
    return [(*group, n) for group, n in sums.items() if n]


def replies_by_author(session: Session, since: datetime | None) -> dict[str, int]:
    """Outbound messages with an author sent since ``since`` (None: ever), per author: the
    whole days after ``since`` from ``reply_counts``, the rest of its own day from the
    messages (``ix_messages_replies``)."""
    total = func.sum(col(ReplyCount.replies))
    query = select(ReplyCount.author, total).group_by(col(ReplyCount.author)).having(total != 0)
    replies: Counter[str] = Counter()
    if since is not None:
        day = since.astimezone(UTC).date()
        query = query.where(col(ReplyCount.day) > day)
        next_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        author = col(Message.author)
        for name, n in session.exec(
            select(author, func.count())
            .where(
                col(Message.direction) == Direction.OUT.value,
                col(Message.created_at) >= since,
                col(Message.created_at) < next_day,
                author.is_not(None),
                author != "",
            )
            .group_by(author)
        ).all():
            replies[name or ""] += n
    for name, n in session.exec(query).all():
        replies[name] += int(n)
    return {name: n for name, n in replies.items() if n}


def compact(session: Session) -> int:
    """Fold the rows of both tables into one per group (none for an empty group); returns
    how many rows fewer there are. Rows that writers add meanwhile are not seen and stay
    for the next time; on PostgreSQL a second compaction at the same time returns 0
    without waiting."""
    if not try_lock(session, _COMPACT_LOCK_ID):
        return 0
    tickets = TicketCount.__table__  # type: ignore[attr-defined]
    replies = ReplyCount.__table__  # type: ignore[attr-defined]
    return fold_rows(
        session, tickets, ["status", "sector", "priority", "assignee"], ["tickets"]
    ) + fold_rows(session, replies, ["day", "author"], ["replies"])


def try_lock(session: Session, lock_id: int) -> bool:
    """PostgreSQL: take the transaction's advisory lock ``lock_id`` if free (SQLite's
    writer holds the whole store already)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(
        session.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": lock_id}
        ).scalar_one()
    )


def fold_rows(session: Session, table: sa.Table, keys: list[str], values: list[str]) -> int:
    """Replace the rows of ``table`` by one per group of ``keys`` with the sums of
    ``values`` (none where they are all 0); returns how many rows fewer there are."""
    groups = sa.select(*(table.c[k] for k in keys)).distinct().subquery()
    rows, kinds = session.execute(
        sa.select(
            sa.select(func.count()).select_from(table).scalar_subquery(),
            sa.select(func.count()).select_from(groups).scalar_subquery(),
        )
    ).one()
    if rows <= kinds:
        return 0  # one row per group already
    removed = session.execute(
        sa.delete(table).returning(*(table.c[k] for k in keys), *(table.c[v] for v in values))
    ).all()
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for row in removed:
        into = sums.setdefault(tuple(row[: len(keys)]), [0] * len(values))
        for n, value in enumerate(row[len(keys) :]):
            into[n] += value
    kept = [
        {**dict(zip(keys, group, strict=True)), **dict(zip(values, figures, strict=True))}
        for group, figures in sums.items()
        if any(figures)
    ]
    if kept:
        session.execute(sa.insert(table), kept)
    return len(removed) - len(kept)
