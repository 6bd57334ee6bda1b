"""IMAP bookkeeping: where each mailbox's poller stands, and the mails it is working on.

Stage 1 (receive) for IMAP keeps three facts here, each in its own short transaction:

- the folder's ``UIDVALIDITY`` and the last UID committed (``ImapMailbox``), so a mail
  committed but not yet moved is moved without running the pipeline again;
- one ``ImapAttempt`` row per mail in flight, written *before* the pipeline runs, so a
  mail that kills the process is recognised on the next start and suspended after three
  tries instead of crashing the poller forever;
- the time of the last good round and the last error, for ``mailboxes list``.

The counts of mails taken in come from ``raw_mails`` itself (source ``imap``), so they
cannot drift from what was really committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from store.enums import RawOutcome
from store.models import ImapAttempt, ImapMailbox, RawMail

_ERROR_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class MailboxPosition:
    """How far a poller got in one folder incarnation."""

    folder: str
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """What ``mailboxes list`` shows next to the configuration of one mailbox."""

    name: str
    last_poll_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    ingested: int = 0


def open_position(session: Session, name: str, folder: str, uidvalidity: int) -> MailboxPosition:
    """The position in ``folder`` as of ``uidvalidity``; reset to UID 0 when either changed.

    A new UIDVALIDITY means the server renumbered the folder: the old last UID says
    nothing any more, and attempts counted under the old numbers are forgotten.
    """
    row = session.get(ImapMailbox, name)
    if row is None:
        row = ImapMailbox(name=name)
    if row.folder != folder or row.uidvalidity != uidvalidity:
        row.folder = folder
        row.uidvalidity = uidvalidity
        row.last_uid = 0
        session.exec(delete(ImapAttempt).where(col(ImapAttempt.mailbox) == name))
    session.add(row)
    session.flush()
    return MailboxPosition(folder, uidvalidity, row.last_uid)


def count_attempt(
    session: Session, name: str, uidvalidity: int, uid: int, now: datetime, *, again: bool = True
) -> int:
    """Note one more attempt at mail ``uid`` and return how many there have been.

    ``again=False`` continues the last attempt instead (it ended in a way that was no
    crash, such as the store being unavailable), unless there is none yet.
    """
    row = session.exec(
        select(ImapAttempt).where(
            ImapAttempt.mailbox == name,
            ImapAttempt.uidvalidity == uidvalidity,
            ImapAttempt.uid == uid,
        )
    ).first()
    if row is None:
        row = ImapAttempt(mailbox=name, uidvalidity=uidvalidity, uid=uid, attempts=0)
    if again or row.attempts == 0:
        row.attempts += 1
    row.last_attempt_at = now
    session.add(row)
    session.flush()
    return row.attempts


def mark_committed(session: Session, name: str, uidvalidity: int, uid: int) -> None:
    """Mail ``uid`` is committed: advance the last UID and drop its attempt count."""
    row = session.get(ImapMailbox, name)
    if row is None or row.uidvalidity != uidvalidity:
        return  # the folder was renumbered meanwhile; its next round starts over
    row.last_uid = max(row.last_uid, uid)
    session.add(row)
    session.exec(
        delete(ImapAttempt).where(
            col(ImapAttempt.mailbox) == name,
            col(ImapAttempt.uidvalidity) == uidvalidity,
            col(ImapAttempt.uid) == uid,
        )
    )


def record_poll(session: Session, name: str, now: datetime) -> None:
    """A round went through: the mailbox was read and everything found was handled."""
    row = session.get(ImapMailbox, name) or ImapMailbox(name=name)
    row.last_poll_at = now
    session.add(row)


def record_error(session: Session, name: str, error: str, now: datetime) -> None:
    """A round failed with ``error`` (one line); kept until the next error replaces it."""
    row = session.get(ImapMailbox, name) or ImapMailbox(name=name)
    row.last_error = error[:_ERROR_LIMIT]
    row.last_error_at = now
    session.add(row)


def mailbox_statuses(session: Session, names: tuple[str, ...]) -> dict[str, MailboxStatus]:
    """The status of each mailbox in ``names`` (an empty one for a mailbox never polled)."""
    rows = {
        r.name: r for r in session.exec(select(ImapMailbox).where(col(ImapMailbox.name).in_(names)))
    }
    counts = dict(
        session.exec(
            select(RawMail.mailbox, sa.func.count())
            .where(
                RawMail.source == "imap",
                col(RawMail.mailbox).in_(names),
                RawMail.outcome != RawOutcome.DUPLICATE.value,
            )
            .group_by(col(RawMail.mailbox))
        ).all()
    )
    statuses: dict[str, MailboxStatus] = {}
    for name in names:
        row = rows.get(name)
        statuses[name] = MailboxStatus(
            name,
            last_poll_at=row.last_poll_at if row else None,
            last_error=row.last_error if row else None,
            last_error_at=row.last_error_at if row else None,
            ingested=int(counts.get(name, 0)),
        )
    return statuses
