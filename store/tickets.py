"""Writing tickets: raw-mail records, tickets, messages, participants, suspensions, audit.

The functions add rows to the caller's session; the caller (the pipeline's apply stage,
or an agent action) owns the transaction, so a ticket change, its audit event and its
notifications commit together. Inputs are plain typed values: the store knows no MIME.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, select

from store import plain
from store.enums import (
    AttachmentStatus,
    Direction,
    ParticipantRole,
    Priority,
    RawOutcome,
    Status,
    SuspendedState,
)
from store.loaded import as_loaded, column_defaults
from store.models import (
    Attachment,
    AuditEvent,
    Message,
    Participant,
    RawMail,
    SuspendedMail,
    Ticket,
)


@dataclass(frozen=True, slots=True)
class NewRaw:
    sha256: str
    size: int
    received_at: datetime
    source: str
    mailbox: str | None
    mail_from: str | None
    rcpt_tos: tuple[str, ...]
    message_id: str | None
    dedupe_key: str | None


@dataclass(frozen=True, slots=True)
class NewTicket:
    subject: str
    requester: str
    requester_name: str = ""
    shop_id: int | None = None
    verified: bool = False
    verified_by: str | None = None
    confidential: bool = False
    type: str = "question"
    sector: str = "support"
    priority: str = Priority.NORMAL.value
    language: str = "en"
    follow_up_of: int | None = None
    suggested_sector: str | None = None  # triage's suggestion while the ticket waits in support


@dataclass(frozen=True, slots=True)
class NewAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None
    inline: bool = False
    status: AttachmentStatus = AttachmentStatus.STORED
    detected_type: str | None = None  # what the bytes are, when the declared type says otherwise


@dataclass(frozen=True, slots=True)
class NewMessage:
    direction: Direction
    body_text: str
    reply_text: str = ""
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    from_address: str | None = None
    from_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    date: datetime | None = None
    threaded_by: str = "new"
    thread_evidence: str = ""
    screen_verdict: str = "ok"
    screen_reason: str = ""
    auth_json: str = "{}"
    author: str | None = None
    flags: tuple[str, ...] = ()
    headers_json: str = "{}"
    attachments: tuple[NewAttachment, ...] = field(default_factory=tuple)


_RAW_TABLE: sa.Table = RawMail.__table__  # type: ignore[attr-defined]


def record_raw(
    session: Session,
    raw: NewRaw,
    outcome: RawOutcome,
    *,
    ticket_id: int | None = None,
    duplicate_of: int | None = None,
) -> int:
    """Record one accepted mail and return its id; duplicates keep no dedupe key (it
    belongs to the first). A plain insert: the row is never changed in this transaction.
    A delivery already taken raises ``IntegrityError`` on the unique dedupe key."""
    return plain.insert_row(
        session, _RAW_TABLE, _raw_row(raw, outcome, ticket_id=ticket_id, duplicate_of=duplicate_of)
    )


def record_raw_with_message(
    session: Session, raw: NewRaw, ticket: Ticket, new: NewMessage, *, now: datetime
) -> tuple[int, int]:
    """``record_raw`` of a mail that becomes a message of ``ticket``, then ``add_message``
    of it: the ids of both. On PostgreSQL the two rows go in one statement (one round
    trip a mail's commit waits for, instead of two)."""
    assert ticket.id is not None
    raw_id, message_id = plain.insert_row_with(
        session,
        _RAW_TABLE,
        _raw_row(raw, RawOutcome.MESSAGE, ticket_id=ticket.id, duplicate_of=None),
        (_MESSAGE_TABLE, "raw_id", _message_row(ticket.id, new, now)),
    )
    _after_message(session, ticket, new, message_id, now)
    return raw_id, message_id


def _raw_row(
    raw: NewRaw, outcome: RawOutcome, *, ticket_id: int | None, duplicate_of: int | None
) -> dict[str, Any]:
    return {
        "sha256": raw.sha256,
        "size": raw.size,
        "received_at": raw.received_at,
        "source": raw.source,
        "mailbox": raw.mailbox,
        "mail_from": raw.mail_from,
        "rcpt_tos": ",".join(raw.rcpt_tos),
        "message_id": raw.message_id,
        "dedupe_key": None if outcome is RawOutcome.DUPLICATE else raw.dedupe_key,
        "outcome": outcome.value,
        "ticket_id": ticket_id,
        "duplicate_of": duplicate_of,
    }


def open_ticket(
    session: Session,
    new: NewTicket,
    *,
    actor: str,
    now: datetime,
    notes: Sequence[tuple[str, str, str]] = (),
    before_insert: Callable[[Ticket], None] | None = None,
) -> Ticket:
    """Create a ticket in status ``new`` with its requester as the first participant.

    ``notes``: more audit events (actor, action, detail) of the ticket's opening, written
    with its ``created`` event in one statement. ``before_insert``: sets more of the
    ticket (its SLA clock) before its row is written.
    """
    ticket = as_loaded(
        Ticket,
        _TICKET_DEFAULTS
        | {
            "subject": new.subject[:998],
            "status": Status.NEW.value,
            "type": new.type,
            "sector": new.sector,
            "priority": new.priority,
            "priority_rank": Priority(new.priority).rank,
            "requester": new.requester,
            "requester_name": new.requester_name[:200],
            "shop_id": new.shop_id,
            "verified": new.verified,
            "verified_by": new.verified_by,
            "confidential": new.confidential,
            "language": new.language,
            "created_at": now,
            "updated_at": now,
            "status_since": now,
            "follow_up_of": new.follow_up_of,
            "suggested_sector": new.suggested_sector,
        },
    )
    if before_insert is not None:
        before_insert(ticket)
    # A plain INSERT, then the object joins the session as if loaded: the unit of work's
    # flush of one new row costs several times the statement (bench/README.md). A new
    # ticket has no participants yet (nothing to look up): its requester goes in with it,
    # in the same statement on PostgreSQL.
    requester = {"email": new.requester.lower(), "role": ParticipantRole.REQUESTER.value}
    ticket.id, _ = plain.insert_row_with(
        session,
        _TICKET_TABLE,
        _ticket_row(ticket),
        (_PARTICIPANT_TABLE, "ticket_id", requester),
    )
    make_transient_to_detached(ticket)
    session.add(ticket)
    detail = f"follow-up of #{new.follow_up_of}" if new.follow_up_of else ""
    events = [(actor, "created", detail), *notes]
    plain.insert_later(
        session,
        _AUDIT_TABLE,
        [_audit_row(ticket.id, now, actor=a, action=b, detail=c) for a, b, c in events],
    )
    return ticket


_TICKET_TABLE: sa.Table = Ticket.__table__  # type: ignore[attr-defined]
_TICKET_FIELDS = tuple(column.key for column in _TICKET_TABLE.columns if column.key != "id")
_TICKET_DEFAULTS = column_defaults(Ticket)
_PARTICIPANT_TABLE: sa.Table = Participant.__table__  # type: ignore[attr-defined]


def _ticket_row(ticket: Ticket) -> dict[str, Any]:
    """Every column of a ticket not yet written: the defaults of the model included, so
    the object holds what the row holds and nothing needs loading back."""
    return {key: getattr(ticket, key) for key in _TICKET_FIELDS}


def add_message(
    session: Session, ticket: Ticket, new: NewMessage, *, raw_id: int | None, now: datetime
) -> int:
    """Add a message (and its attachments) to ``ticket``; returns the message's id.

    Plain INSERTs: nothing changes a message in the transaction that adds it, and the
    search documents are kept by the database's triggers.
    """
    assert ticket.id is not None
    message_id = plain.insert_row(
        session, _MESSAGE_TABLE, {**_message_row(ticket.id, new, now), "raw_id": raw_id}
    )
    _after_message(session, ticket, new, message_id, now)
    return message_id


def _message_row(ticket_id: int, new: NewMessage, now: datetime) -> dict[str, Any]:
    """A message's row, but for its ``raw_id``."""
    return {
        "ticket_id": ticket_id,
        "direction": new.direction.value,
        "message_id": new.message_id,
        "in_reply_to": " ".join(new.in_reply_to) or None,
        "reference_ids": " ".join(new.references) or None,
        "from_address": new.from_address,
        "from_name": new.from_name[:200],
        "to_addresses": ",".join(new.to),
        "cc_addresses": ",".join(new.cc),
        "subject": new.subject[:998],
        "date": new.date,
        "body_text": new.body_text,
        "reply_text": new.reply_text,
        "threaded_by": new.threaded_by,
        "thread_evidence": new.thread_evidence[:500],
        "screen_verdict": new.screen_verdict,
        "screen_reason": new.screen_reason[:500],
        "auth": new.auth_json,
        "author": new.author,
        "flags": ",".join(new.flags),
        "headers": new.headers_json,
        "created_at": now,
    }


def _after_message(
    session: Session, ticket: Ticket, new: NewMessage, message_id: int, now: datetime
) -> None:
    """What a message's row brings with it: its attachments, the ticket's update."""
    if new.attachments:
        plain.insert_rows(
            session,
            _ATTACHMENT_TABLE,
            [
                {
                    "message_id": message_id,
                    "filename": att.filename,
                    "content_type": att.content_type,
                    "size": att.size,
                    "sha256": att.sha256,
                    "content_id": att.content_id,
                    "inline": att.inline,
                    "status": att.status.value,
                    "detected_type": att.detected_type,
                }
                for att in new.attachments
            ],
        )
    if new.direction is Direction.OUT and new.author and ticket.first_responder is None:
        ticket.first_responder = new.author  # for stats (store/durations.py)
    if ticket.updated_at != now:  # a ticket opened by this mail already says so
        ticket.updated_at = now  # (even an equal value costs the unit of work a pass)
    session.add(ticket)


_MESSAGE_TABLE: sa.Table = Message.__table__  # type: ignore[attr-defined]
_ATTACHMENT_TABLE: sa.Table = Attachment.__table__  # type: ignore[attr-defined]


def add_participant(session: Session, ticket_id: int, email: str, role: ParticipantRole) -> bool:
    """Add ``email`` to the ticket's participants; returns False when already there."""
    email = email.lower()
    existing = session.exec(
        select(Participant).where(Participant.ticket_id == ticket_id, Participant.email == email)
    ).first()
    if existing is not None:
        return False
    session.add(Participant(ticket_id=ticket_id, email=email, role=role.value))
    session.flush()
    return True


def suspend(
    session: Session,
    *,
    raw_id: int,
    reason: str,
    detail: str,
    from_address: str | None,
    subject: str,
    now: datetime,
    ticket_id: int | None = None,
) -> SuspendedMail:
    row = SuspendedMail(
        raw_id=raw_id,
        reason=reason,
        detail=detail[:2000],
        from_address=from_address,
        subject=subject[:998],
        ticket_id=ticket_id,
        state=SuspendedState.SUSPENDED.value,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


_AUDIT_TABLE: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]


def audit(
    session: Session,
    ticket_id: int | None,
    *,
    actor: str,
    action: str,
    now: datetime,
    field_name: str | None = None,
    old: str | None = None,
    new: str | None = None,
    detail: str = "",
) -> None:
    # A plain insert: nothing reads the row back in this transaction, so it needs no
    # place in the session (a third of the work of adding it as an object), and it can be
    # held to the end of a batch (``plain.held_inserts``).
    plain.insert_later(
        session,
        _AUDIT_TABLE,
        [
            _audit_row(
                ticket_id,
                now,
                actor=actor,
                action=action,
                field_name=field_name,
                old=old,
                new=new,
                detail=detail,
            )
        ],
    )


def _audit_row(
    ticket_id: int | None,
    now: datetime,
    *,
    actor: str,
    action: str,
    field_name: str | None = None,
    old: str | None = None,
    new: str | None = None,
    detail: str = "",
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "at": now,
        "actor": actor,
        "action": action,
        "field_name": field_name,
        "old": old,
        "new": new,
        "detail": detail[:2000],
    }


def set_field(
    session: Session, ticket: Ticket, name: str, value: str | None, *, actor: str, now: datetime
) -> bool:
    """Set one plain field (type, sector, priority, assignee) with its audit event."""
    old = getattr(ticket, name)
    if old == value:
        return False
    setattr(ticket, name, value)
    if name == "priority" and value is not None:
        ticket.priority_rank = Priority(value).rank
    ticket.updated_at = now
    session.add(ticket)
    audit(
        session,
        ticket.id,
        actor=actor,
        action="set",
        now=now,
        field_name=name,
        old=None if old is None else str(old),
        new=value,
    )
    return True


def merchant_addresses(session: Session, ticket: Ticket) -> tuple[str, tuple[str, ...]]:
    """Who hears about a ticket: the requester, and the addresses copied on it."""
    assert ticket.id is not None
    copied = session.exec(
        select(Participant.email)
        .where(Participant.ticket_id == ticket.id, Participant.role == ParticipantRole.CC.value)
        .order_by(Participant.id)  # type: ignore[arg-type]
    ).all()
    return ticket.requester, tuple(c for c in copied if c != ticket.requester)


def thread_ids(session: Session, ticket_id: int) -> tuple[str | None, tuple[str, ...]]:
    """The Message-ID to answer (the latest inbound one) and the References to carry."""
    rows = session.exec(
        select(Message.message_id, Message.direction)
        .where(Message.ticket_id == ticket_id, Message.message_id != None)  # noqa: E711
        .order_by(Message.id)  # type: ignore[arg-type]
    ).all()
    ids = tuple(mid for mid, _ in rows if mid)
    last_in = next((mid for mid, d in reversed(rows) if d == Direction.IN.value and mid), None)
    return last_in, ids[:1] + ids[-9:] if len(ids) > 10 else ids
