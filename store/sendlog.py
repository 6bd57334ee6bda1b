"""What we mailed to whom, and who bounced: the records the send limits read.

``record_recipients`` is called in the transaction that puts a mail in the outbox, so the
counts always match the outbox. Bounces are kept per address (``record_bounce``), the
newest one counting; ``clear_bounce`` forgets one. A batch can have its senders' counts
found in advance (``counted_ahead``): three statements for the batch instead of one for
each acknowledgement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from store import plain
from store.models import BouncedAddress, NotificationLog
from store.reads import fetch, fetch_together, in_list


def record_recipients(
    session: Session,
    *,
    ticket_id: int | None,
    kind: str,
    emails: Iterable[str],
    automatic: bool,
    now: datetime,
) -> None:
    rows = [
        {
            "ticket_id": ticket_id,
            "email": email,
            "kind": kind,
            "automatic": automatic,
            "created_at": now,
        }
        for email in dict.fromkeys(e.lower() for e in emails)
    ]
    if rows:  # plain inserts: the rows are only ever counted, never loaded as objects
        plain.insert_later(session, _LOG_TABLE, rows)
        ahead: _Ahead | None = session.info.get(_AHEAD)
        if ahead is not None:
            if session.in_nested_transaction():
                # A savepoint may take these rows back: the store is asked from now on.
                del session.info[_AHEAD]
            else:
                ahead.recorded.extend(rows)


_LOG_TABLE: sa.Table = NotificationLog.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SentCounts:
    automatic: int  # automatic mails to the address since ``automatic_since``
    for_ticket: int  # mails to the address about one ticket since ``ticket_since``
    bounced_at: datetime | None  # when mail to it last bounced for good


def _sent_counts_query() -> sa.Select[tuple[int, int, datetime | None]]:
    log = NotificationLog.__table__.c  # type: ignore[attr-defined]
    bounced = BouncedAddress.__table__.c  # type: ignore[attr-defined]
    email: sa.BindParameter[str] = sa.bindparam("email")
    automatic = sa.and_(log.automatic == sa.true(), log.created_at >= sa.bindparam("automatic"))
    recent = sa.and_(
        log.ticket_id == sa.bindparam("ticket"), log.created_at >= sa.bindparam("recent")
    )
    return sa.select(
        sa.func.coalesce(sa.func.sum(sa.case((automatic, 1), else_=0)), 0),
        sa.func.coalesce(sa.func.sum(sa.case((recent, 1), else_=0)), 0),
        sa.select(bounced.bounced_at).where(bounced.email == email).scalar_subquery(),
    ).where(log.email == email, log.created_at >= sa.bindparam("since"))


# Built once: every notification asks it per recipient, and only the values change.
_SENT_COUNTS = _sent_counts_query()


def count_sent(
    session: Session,
    email: str,
    *,
    automatic_since: datetime,
    ticket_id: int,
    ticket_since: datetime,
) -> SentCounts:
    """What the send limits need to know of ``email``, in one statement: the automatic
    mails to it, those about one ticket, and its last hard bounce. Rows of this
    transaction still held (``plain.held_inserts``) are counted too. Inside
    ``counted_ahead`` for the same address and windows, no statement at all."""
    email = email.lower()
    ahead: _Ahead | None = session.info.get(_AHEAD)
    since: Sequence[Mapping[str, Any]]
    if ahead is not None and ahead.answers(email, automatic_since, ticket_since):
        automatic = ahead.automatic.get(email, 0)
        for_ticket = ahead.recent.get((email, ticket_id), 0)
        bounced_at = ahead.bounced.get(email)
        since = ahead.recorded  # every row recorded since, held or written
    else:
        (row,) = fetch(
            session,
            _SENT_COUNTS,
            {
                "email": email,
                "automatic": automatic_since,
                "ticket": ticket_id,
                "recent": ticket_since,
                "since": min(automatic_since, ticket_since),
            },
        )
        automatic, for_ticket, bounced_at = int(row[0]), int(row[1]), row[2]
        since = plain.held_rows(session, _LOG_TABLE)  # the rows not yet in the store
    for held in since:
        if held["email"] != email:
            continue
        if held["automatic"] and held["created_at"] >= automatic_since:
            automatic += 1
        if held["ticket_id"] == ticket_id and held["created_at"] >= ticket_since:
            for_ticket += 1
    return SentCounts(automatic, for_ticket, bounced_at)


@contextmanager
def counted_ahead(
    session: Session,
    emails: Iterable[str],
    *,
    automatic_since: datetime,
    ticket_since: datetime,
) -> Iterator[None]:
    """Inside, ``count_sent`` for ``emails`` and these windows is answered from what three
    statements found now (automatic mails per address, recent mails per address and
    ticket, bounces), plus the rows ``record_recipients`` adds meanwhile. A bounce
    recorded or cleared, or a row recorded in a savepoint, ends the answers: the store
    is asked again."""
    wanted = sorted({email.lower() for email in emails})
    if not wanted or _AHEAD in session.info:
        yield
        return
    values = {"emails": wanted, "automatic": automatic_since, "recent": ticket_since}
    automatic_rows, recent_rows, bounced_rows = fetch_together(
        session, (_AUTOMATIC_AHEAD, values), (_RECENT_AHEAD, values), (_BOUNCED_AHEAD, values)
    )  # one round trip to PostgreSQL
    automatic = dict(automatic_rows)
    recent = {(email, ticket_id): count for email, ticket_id, count in recent_rows}
    bounced = dict(bounced_rows)
    session.info[_AHEAD] = _Ahead(
        automatic_since, ticket_since, frozenset(wanted), automatic, recent, bounced
    )
    try:
        yield
    finally:
        session.info.pop(_AHEAD, None)


@dataclass(slots=True)
class _Ahead:
    """``count_sent``'s answers for a batch's addresses, as the store held them when the
    batch began, and the rows recorded since."""

    automatic_since: datetime
    ticket_since: datetime
    emails: frozenset[str]
    automatic: dict[str, int]  # automatic mails since automatic_since, by address
    recent: dict[tuple[str, int | None], int]  # mails since ticket_since, by address, ticket
    bounced: dict[str, datetime]
    recorded: list[Mapping[str, Any]] = field(default_factory=list)

    def answers(self, email: str, automatic_since: datetime, ticket_since: datetime) -> bool:
        return (
            email in self.emails
            and automatic_since == self.automatic_since
            and ticket_since == self.ticket_since
        )


_AHEAD = "store.sendlog.ahead"  # session.info key: the answers of an open counted_ahead


def _ahead_queries() -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    log = NotificationLog.__table__.c  # type: ignore[attr-defined]
    bounced = BouncedAddress.__table__.c  # type: ignore[attr-defined]
    automatic = (
        sa.select(log.email, sa.func.count())
        .where(
            in_list(log.email, "emails"),
            log.automatic == sa.true(),
            log.created_at >= sa.bindparam("automatic"),
        )
        .group_by(log.email)
    )
    recent = (
        sa.select(log.email, log.ticket_id, sa.func.count())
        .where(in_list(log.email, "emails"), log.created_at >= sa.bindparam("recent"))
        .group_by(log.email, log.ticket_id)
    )
    return (
        automatic,
        recent,
        sa.select(bounced.email, bounced.bounced_at).where(in_list(bounced.email, "emails")),
    )


_AUTOMATIC_AHEAD, _RECENT_AHEAD, _BOUNCED_AHEAD = _ahead_queries()


def was_mailed(session: Session, email: str, since: datetime) -> bool:
    """True when we put a mail for ``email`` in the outbox since ``since``."""
    email = email.lower()
    if any(
        held["email"] == email and held["created_at"] >= since
        for held in plain.held_rows(session, _LOG_TABLE)
    ):
        return True
    found = session.exec(
        select(NotificationLog.id).where(
            NotificationLog.email == email, col(NotificationLog.created_at) >= since
        )
    ).first()
    return found is not None


def record_bounce(
    session: Session, email: str, *, at: datetime, detail: str, raw_id: int | None
) -> None:
    """Note (or renew) a hard bounce from ``email``."""
    session.info.pop(_AHEAD, None)
    email = email.lower()
    row = session.exec(select(BouncedAddress).where(BouncedAddress.email == email)).first()
    if row is None:
        row = BouncedAddress(email=email, bounced_at=at, detail=detail[:500], raw_id=raw_id)
    else:
        row.bounced_at, row.detail, row.raw_id = at, detail[:500], raw_id
    session.add(row)
    session.flush()


def clear_bounce(session: Session, email: str) -> bool:
    """Forget a bounce from ``email``; True when there was one."""
    session.info.pop(_AHEAD, None)
    row = session.exec(select(BouncedAddress).where(BouncedAddress.email == email.lower())).first()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
