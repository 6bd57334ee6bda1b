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
a read stays a few hundred or thousand rows however many changes were made since. A fold
rewrites only the groups with rows added since the previous one (``fold_rows``), which
the per-day tables of ``store/day_totals.py`` need: at a million tickets they hold ~400,000
rows, and rewriting them all every minute held the write lock for 1.6 to 1.9 s.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from store.enums import Direction
from store.meta import set_value
from store.models import Message, MetaValue, ReplyCount, TicketCount

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
    """Replace the rows of each group of ``keys`` that has rows added since the last fold
    by one row with the sums of ``values`` (none where they are all 0); returns how many
    rows fewer there are.

    Only the groups touched since then are read (the rows above the id the last fold left
    in ``meta``), so a fold costs what changed, not the size of the table: the per-day
    tables of a large store hold hundreds of thousands of rows, and the scheduler folds
    every minute. (On PostgreSQL a row of a transaction still open during a fold may stay
    under the mark, unfolded: it is still counted.)"""
    noted = session.get(MetaValue, _folded_key(table))  # not get_value's memo: set below
    mark = int(noted.value) if noted is not None else 0
    group = sa.tuple_(*(table.c[k] for k in keys))
    touched = sa.select(*(table.c[k] for k in keys)).where(table.c.id > mark)
    removed = session.execute(
        sa.delete(table)
        .where(group.in_(touched))
        .returning(*(table.c[k] for k in keys), *(table.c[v] for v in values))
    ).all()
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for row in removed:
        into = sums.setdefault(tuple(row[: len(keys)]), [0] * len(values))
        for n, value in enumerate(row[len(keys) :]):
            into[n] += value
    kept = [
        {**dict(zip(keys, group_, strict=True)), **dict(zip(values, figures, strict=True))}
        for group_, figures in sums.items()
        if any(figures)
    ]
    if kept:
        session.execute(sa.insert(table), kept)
    mark_folded(session, table)
    return len(removed) - len(kept)


def mark_folded(session: Session, table: sa.Table) -> None:
    """Note that every row of ``table`` so far is folded: the next fold starts after them."""
    last = session.execute(sa.select(func.max(table.c.id))).scalar_one()
    set_value(session, _folded_key(table), str(last or 0))


def _folded_key(table: sa.Table) -> str:
    return f"folded:{table.name}"
