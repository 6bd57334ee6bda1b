"""What we mailed to whom, and who bounced: the records the send limits read.

``record_recipients`` is called in the transaction that puts a mail in the outbox, so the
counts always match the outbox. Bounces are kept per address (``record_bounce``), the
newest one counting; ``clear_bounce`` forgets one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

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
    for email in dict.fromkeys(e.lower() for e in emails):
        session.add(
            NotificationLog(
                ticket_id=ticket_id, email=email, kind=kind, automatic=automatic, created_at=now
            )
        )
    session.flush()


def count_sent(
    session: Session,
    email: str,
    since: datetime,
    *,
    ticket_id: int | None = None,
    automatic_only: bool = False,
) -> int:
    """Mails put in the outbox for ``email`` since ``since`` (for one ticket, if given)."""
    query = (
        select(sa.func.count())
        .select_from(NotificationLog)
        .where(NotificationLog.email == email.lower(), col(NotificationLog.created_at) >= since)
    )
    if ticket_id is not None:
        query = query.where(NotificationLog.ticket_id == ticket_id)
    if automatic_only:
        query = query.where(NotificationLog.automatic == True)  # noqa: E712
    return int(session.exec(query).one())


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


def bounced_at(session: Session, email: str) -> datetime | None:
    """When mail to ``email`` last bounced for good, or None."""
    return session.exec(
        select(BouncedAddress.bounced_at).where(BouncedAddress.email == email.lower())
    ).first()


def clear_bounce(session: Session, email: str) -> bool:
    """Forget a bounce from ``email``; True when there was one."""
    row = session.exec(select(BouncedAddress).where(BouncedAddress.email == email.lower())).first()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
