"""The outbox table: notifications rendered in stage 8 (apply), sent by stage 9 (notify).

``enqueue`` adds a row to the caller's session, so a notification is committed in the
same transaction as the ticket change that caused it (never one without the other).
The dispatcher then ``claim_due``s rows, hands them to a transport and records the
outcome with ``mark_sent`` / ``mark_retry`` / ``mark_failed``. Agents see the rows with
``list_outbox`` and put failed ones back with ``retry`` (``mailgate outbox list|retry``).

States: ``queued`` → ``sending`` → ``sent``, or back to ``queued`` (temporary failure),
or ``failed`` (permanent failure, or too many attempts). While a row is ``sending``,
``next_attempt_at`` holds the end of the dispatcher's lease: a dispatcher that dies
mid-send leaves the row to be claimed again once the lease has run out (crash recovery,
at the price of a possible second send with the same Message-ID).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from store import plain
from store.db import Database
from store.enums import OutboxState
from store.errors import InvalidInput, RecordNotFound
from store.loaded import as_loaded
from store.models import OutboxMail
from store.reads import column_names, fetch, in_list

MAX_ERROR_CHARS = 2000  # the width of outbox_mails.last_error


def enqueue(
    session: Session,
    *,
    ticket_id: int | None,
    kind: str,
    message_id: str,
    mail_from: str,
    recipients: Sequence[str],
    subject: str,
    raw: bytes,
    now: datetime,
) -> int | None:
    """Queue a mail in the caller's transaction (committed with it); returns its id, or
    None when it is held to be written at the end of a batch (``plain.held_inserts``).

    A plain INSERT: nothing changes the row in the same transaction, so it needs no
    object in the session. Nothing of the same transaction reads it back either: the
    dispatcher claims it once committed, and only a reply to the mail once sent can
    name its Message-ID (threading looks it up). Raises ``InvalidInput`` when there is
    no recipient or one cannot be stored.
    """
    rcpts = [r.strip() for r in recipients]
    if not rcpts:
        raise InvalidInput(f"outbox mail {kind} for #{ticket_id} has no recipient")
    for rcpt in rcpts:
        # Recipients are kept comma-separated; an address with a comma or a space in it
        # would come back as two (or a broken one), so it is refused here, not later.
        if not rcpt or any(c in rcpt for c in ", \t\r\n") or "@" not in rcpt:
            raise InvalidInput(f"bad outbox recipient: {rcpt!r}")
    row = {
        "ticket_id": ticket_id,
        "kind": kind,
        "message_id": message_id,
        "mail_from": mail_from,
        "recipients": ",".join(rcpts),
        "subject": subject[:998],
        "raw": raw,
        "state": OutboxState.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    if plain.holding(session):
        plain.insert_later(session, _TABLE, [row])
        return None
    return plain.insert_row(session, _TABLE, row)


_TABLE: sa.Table = OutboxMail.__table__  # type: ignore[attr-defined]


def recipients_of(mail: OutboxMail) -> list[str]:
    """The envelope recipients of ``mail``."""
    return [r for r in mail.recipients.split(",") if r]


def claim_due(
    db: Database,
    now: datetime,
    limit: int,
    lease_seconds: float = 300,
    *,
    sent: Sequence[int] = (),
) -> list[OutboxMail]:
    """Take up to ``limit`` due mails for sending, and return them (detached rows).

    Due: ``queued`` with ``next_attempt_at <= now``, or ``sending`` whose lease has run
    out (a dispatcher crashed). Each claimed row becomes ``sending``, its attempt count
    goes up by one (so a mail that crashes every dispatcher still reaches
    ``max_attempts``), and ``next_attempt_at`` becomes the lease end. On PostgreSQL the
    rows are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent dispatchers take
    disjoint sets without waiting for each other; SQLite's ``BEGIN IMMEDIATE`` (see
    ``Database.write``) serialises claims instead.

    ``sent``: the ids of the dispatcher's previous chunk, recorded as sent (as by
    ``mark_all_sent``) in the same transaction, so that a chunk costs one turn at the
    write lock, not two.
    """
    if limit <= 0:
        mark_all_sent(db, sent, now)
        return []
    lease_end = now + timedelta(seconds=lease_seconds)
    with db.write() as session:
        _mark_all_sent(session, sent, now)
        rows = fetch(session, _DUE, {"now": now, "limit": limit})
        if not rows:
            return []
        ids = [row[_ID] for row in rows]
        plain.execute(session, _LEASE, {"ids": ids, "lease_end": lease_end})
    return [_leased(row, lease_end) for row in rows]


# Due rows, oldest first: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (nothing
# after it on SQLite, whose write transaction excludes every other claim).
_DUE = (
    sa.select(_TABLE)
    .where(
        _TABLE.c.state.in_(
            [sa.literal(OutboxState.QUEUED.value), sa.literal(OutboxState.SENDING.value)]
        )
    )
    .where(_TABLE.c.next_attempt_at <= sa.bindparam("now"))
    .order_by(_TABLE.c.next_attempt_at, _TABLE.c.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_DUE_COLUMNS = column_names(_DUE)
_ID = _DUE_COLUMNS.index("id")
_LEASE = (
    sa.update(_TABLE)
    .where(in_list(_TABLE.c.id, "ids"))
    .values(
        state=OutboxState.SENDING.value,
        attempts=_TABLE.c.attempts + 1,
        next_attempt_at=sa.bindparam("lease_end"),
    )
)


def _leased(row: tuple[object, ...], lease_end: datetime) -> OutboxMail:
    """The claimed mail as its row now holds it (detached: changed through this module)."""
    values = dict(zip(_DUE_COLUMNS, row, strict=True))
    attempts = values["attempts"]
    assert isinstance(attempts, int)
    values.update(state=OutboxState.SENDING.value, attempts=attempts + 1, next_attempt_at=lease_end)
    return as_loaded(OutboxMail, values)


def mark_sent(db: Database, id: int, now: datetime) -> None:
    """Record that mail ``id`` was handed to the relay. Raises ``RecordNotFound``."""
    with db.write() as session:
        if not _mark_all_sent(session, [id], now):
            raise RecordNotFound(f"outbox mail {id} not found")


def mark_all_sent(db: Database, ids: Sequence[int], now: datetime) -> None:
    """Record that the mails ``ids`` were handed to the relay, in one transaction (on
    SQLite, one turn at the write lock for a dispatcher's whole chunk). A row gone in
    the meantime (deleted by an admin) is skipped."""
    if not ids:
        return
    with db.write() as session:
        _mark_all_sent(session, ids, now)


def _mark_all_sent(session: Session, ids: Sequence[int], now: datetime) -> int:
    """Mark ``ids`` sent in one statement, not the ORM's select and flush
    (bench/README.md); returns how many of them were there."""
    if not ids:
        return 0
    return plain.execute(session, _MARK_SENT, {"ids": list(ids), "now": now}).rowcount


_MARK_SENT = (
    sa.update(_TABLE)
    .where(in_list(_TABLE.c.id, "ids"))
    .values(
        state=OutboxState.SENT.value,
        sent_at=sa.bindparam("now"),
        next_attempt_at=sa.bindparam("now"),
        last_error=None,
    )
)


def mark_retry(db: Database, id: int, error: str, now: datetime, next_attempt_at: datetime) -> None:
    """Put mail ``id`` back in the queue until ``next_attempt_at``, noting ``error``.

    A mail that has been sent meanwhile (another dispatcher after a lease ran out) stays
    sent. Raises ``RecordNotFound``.
    """
    with db.write() as session:
        mail = _get(session, id)
        if mail.state == OutboxState.SENT:
            return
        mail.state = OutboxState.QUEUED
        mail.next_attempt_at = max(next_attempt_at, now)
        mail.last_error = _error_text(error)


def mark_failed(db: Database, id: int, error: str, now: datetime) -> None:
    """Give mail ``id`` up (until an agent retries it), noting ``error``.

    Raises ``RecordNotFound``.
    """
    with db.write() as session:
        mail = _get(session, id)
        if mail.state == OutboxState.SENT:
            return
        mail.state = OutboxState.FAILED
        mail.next_attempt_at = now
        mail.last_error = _error_text(error)


def list_outbox(
    session: Session, states: Iterable[str] | None = None, limit: int = 100
) -> list[OutboxMail]:
    """Outbox mails, newest first, optionally only those in ``states``."""
    query = select(OutboxMail)
    wanted = [OutboxState(s) for s in states] if states is not None else None
    if wanted is not None:
        query = query.where(col(OutboxMail.state).in_(wanted))
    query = query.order_by(col(OutboxMail.created_at).desc(), col(OutboxMail.id).desc())
    return list(session.exec(query.limit(limit)))


def get_outbox_mail(session: Session, id: int) -> OutboxMail:
    """One outbox mail. Raises ``RecordNotFound``."""
    return _get(session, id)


def count_by_state(session: Session) -> dict[str, int]:
    """How many outbox mails are in each state (every state present, zeros included)."""
    counts = dict.fromkeys((s.value for s in OutboxState), 0)
    query = select(OutboxMail.state, sa.func.count()).group_by(OutboxMail.state)
    for state, count in session.exec(query):
        counts[state] = count
    return counts


def retry(session: Session, id: int, now: datetime) -> OutboxMail:
    """Queue a ``failed`` (or still ``queued``) mail for sending now, with fresh attempts.

    The attempt count starts again from zero: the agent who asks for a retry has usually
    fixed what made it fail, and deserves the full series of tries. Raises
    ``RecordNotFound``, or ``InvalidInput`` for a mail that is sending or already sent.
    """
    mail = _get(session, id)
    if mail.state not in (OutboxState.FAILED, OutboxState.QUEUED):
        raise InvalidInput(f"outbox mail {id} is {mail.state}; only failed or queued mails retry")
    mail.state = OutboxState.QUEUED
    mail.attempts = 0
    mail.next_attempt_at = now
    session.add(mail)
    session.flush()
    return mail


def _get(session: Session, id: int) -> OutboxMail:
    mail = session.get(OutboxMail, id)
    if mail is None:
        raise RecordNotFound(f"outbox mail {id} not found")
    return mail


def _error_text(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


def find_by_message_id(session: Session, message_id: str) -> OutboxMail | None:
    """The outbox mail that carried ``message_id`` (without brackets), if we sent one."""
    return session.exec(
        select(OutboxMail).where(OutboxMail.message_id == message_id).limit(1)
    ).first()
