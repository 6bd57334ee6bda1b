"""What we mailed to whom, and who bounced: the records the send limits read.

``record_recipients`` is called in the transaction that puts a mail in the outbox, so the
counts always match the outbox. Bounces are kept per address (``record_bounce``), the
newest one counting; ``clear_bounce`` forgets one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from store import plain
from store.models import BouncedAddress, NotificationLog


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
        plain.insert_rows(session, _LOG_TABLE, rows)


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
    mails to it, those about one ticket, and its last hard bounce."""
    row = plain.execute(
        session,
        _SENT_COUNTS,
        {
            "email": email.lower(),
            "automatic": automatic_since,
            "ticket": ticket_id,
            "recent": ticket_since,
            "since": min(automatic_since, ticket_since),
        },
    ).one()
    return SentCounts(int(row[0]), int(row[1]), row[2])


def was_mailed(session: Session, email: str, since: datetime) -> bool:
    """True when we put a mail for ``email`` in the outbox since ``since``."""
    found = session.exec(
        select(NotificationLog.id).where(
            NotificationLog.email == email.lower(), col(NotificationLog.created_at) >= since
        )
    ).first()
    return found is not None


def record_bounce(
    session: Session, email: str, *, at: datetime, detail: str, raw_id: int | None
) -> None:
    """Note (or renew) a hard bounce from ``email``."""
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
    row = session.exec(select(BouncedAddress).where(BouncedAddress.email == email.lower())).first()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
