"""Read models: what ``--json`` prints (DESIGN.md's contract), and the queue queries.

The table models never leave ``store/``; these pydantic models do, so the JSON shape is
declared once here and the CLI only renders it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, field_serializer
from sqlalchemy import ColumnElement, literal_column
from sqlmodel import Session, col, select

from store.development import budget_of
from store.directory import agent_named
from store.enums import Status
from store.errors import InvalidInput, TicketNotFound
from store.models import Attachment, AuditEvent, Message, Participant, Shop, Ticket
from store.search import search_condition
from store.timelog import time_spent

SortKey = Literal["created", "updated", "priority", "due"]


class _Out(BaseModel):
    @field_serializer("*", when_used="json")
    def _iso_times(self, value: Any) -> Any:
        # ISO 8601 with an explicit offset (+00:00), as the contract says, not pydantic's "Z".
        return value.isoformat() if isinstance(value, datetime) else value


class AttachmentOut(_Out):
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool = False
    status: str = "stored"  # "too_large": kept in the raw mail only
    detected_type: str | None = None  # what the bytes are, when the declared type says otherwise


class MessageOut(_Out):
    id: int
    direction: str
    from_: str | None = None
    to: list[str]
    cc: list[str] = []
    date: datetime | None
    subject: str
    body_text: str
    reply_text: str
    message_id: str | None
    threaded_by: str
    thread_evidence: str
    screen: dict[str, str]
    auth: dict[str, Any]
    author: str | None
    flags: list[str]
    attachments: list[AttachmentOut]

    def model_dump_contract(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["from"] = data.pop("from_")
        return data


class EventOut(_Out):
    at: datetime
    actor: str
    action: str
    field: str | None
    old: str | None
    new: str | None
    detail: str


class TicketOut(_Out):
    id: int
    subject: str
    status: str
    standby_reason: str | None
    type: str
    sector: str
    priority: str
    requester: str
    requester_name: str
    shop: str | None
    verified: bool
    verified_by: str | None
    confidential: bool
    assignee: str | None
    language: str
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    follow_up_of: int | None
    merged_into: int | None
    suggested_sector: str | None = None
    breached: bool = False  # due_at has passed (only when the list was asked with a time)
    budget_hours: float | None = None
    budget_amount: float | None = None
    budget_state: str | None = None
    deadline: date | None = None


class TicketDetail(TicketOut):
    time_spent_minutes: int = 0
    calls: int = 0
    participants: list[dict[str, str]]
    messages: list[MessageOut]
    events: list[EventOut]

    def model_dump_contract(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"messages"})
        data["messages"] = [m.model_dump_contract() for m in self.messages]
        return data


@dataclass(frozen=True, slots=True)
class TicketFilter:
    statuses: tuple[str, ...] = ()  # empty: every status but closed; ("all",): everything
    sector: str | None = None
    priority: str | None = None
    type: str | None = None
    shop: str | None = None
    assignee: str | None = None
    search: str | None = None
    sort: SortKey = "priority"
    limit: int = 50


def ticket_out(ticket: Ticket, shop_name: str | None, now: datetime | None = None) -> TicketOut:
    assert ticket.id is not None
    budget = budget_of(ticket)
    return TicketOut(
        id=ticket.id,
        subject=ticket.subject,
        status=ticket.status,
        standby_reason=ticket.standby_reason,
        type=ticket.type,
        sector=ticket.sector,
        priority=ticket.priority,
        requester=ticket.requester,
        requester_name=ticket.requester_name,
        shop=shop_name,
        verified=ticket.verified,
        verified_by=ticket.verified_by,
        confidential=ticket.confidential,
        assignee=ticket.assignee,
        language=ticket.language,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        due_at=ticket.due_at,
        follow_up_of=ticket.follow_up_of,
        merged_into=ticket.merged_into,
        suggested_sector=ticket.suggested_sector,
        breached=now is not None and ticket.due_at is not None and ticket.due_at <= now,
        budget_hours=budget.hours if budget else None,
        budget_amount=budget.amount if budget else None,
        budget_state=ticket.budget_state,
        deadline=ticket.deadline,
    )


def in_backlog() -> ColumnElement[bool]:
    """Not closed: the agents' default view. Written out as a literal, not a parameter,
    because SQLite only uses the partial backlog indexes when it can see the value."""
    return col(Ticket.status) != literal_column(f"'{Status.CLOSED.value}'")


def list_tickets(
    session: Session, query: TicketFilter, now: datetime | None = None
) -> list[TicketOut]:
    """The queue as ``query`` asks; with ``now``, tickets past their deadline are ``breached``."""
    stmt = select(Ticket, Shop.name).join(Shop, col(Ticket.shop_id) == col(Shop.id), isouter=True)
    statuses = tuple(s.lower() for s in query.statuses)
    if not statuses:
        stmt = stmt.where(in_backlog())
    elif "all" not in statuses:
        for s in statuses:
            if s not in {st.value for st in Status}:
                raise InvalidInput(f"unknown status {s!r}")
        stmt = stmt.where(col(Ticket.status).in_(statuses))
    if query.sector:
        stmt = stmt.where(Ticket.sector == query.sector)
    if query.priority:
        stmt = stmt.where(Ticket.priority == query.priority)
    if query.type:
        stmt = stmt.where(Ticket.type == query.type)
    if query.shop:
        stmt = stmt.where(Shop.name == query.shop)
    if query.assignee:
        assignee = query.assignee.strip().lower()
        stmt = stmt.where(Ticket.assignee == (agent_named(session, assignee) or assignee))
    if query.search:
        walk_queue = not statuses and query.sort in ("priority", "due")  # backlog indexes
        stmt = stmt.where(search_condition(session, query.search, walk_queue=walk_queue))
    orders: dict[str, list[Any]] = {
        "created": [col(Ticket.created_at).desc()],
        "updated": [col(Ticket.updated_at).desc()],
        "priority": [col(Ticket.priority_rank), col(Ticket.created_at)],
        "due": [col(Ticket.due_at).is_(None), col(Ticket.due_at), col(Ticket.priority_rank)],
    }
    stmt = stmt.order_by(*orders[query.sort], col(Ticket.id)).limit(query.limit)
    return [ticket_out(t, shop, now) for t, shop in session.exec(stmt)]


def ticket_detail(session: Session, ticket_id: int, now: datetime | None = None) -> TicketDetail:
    row = session.exec(
        select(Ticket, Shop.name)
        .join(Shop, col(Ticket.shop_id) == col(Shop.id), isouter=True)
        .where(Ticket.id == ticket_id)
    ).first()
    if row is None:
        raise TicketNotFound(ticket_id)
    ticket, shop = row
    messages = session.exec(
        select(Message).where(Message.ticket_id == ticket_id).order_by(col(Message.id))
    ).all()
    ids = [m.id for m in messages]
    attachments: dict[int, list[AttachmentOut]] = {}
    if ids:
        for a in session.exec(
            select(Attachment)
            .where(col(Attachment.message_id).in_(ids))
            .order_by(col(Attachment.id))
        ):
            attachments.setdefault(a.message_id, []).append(
                AttachmentOut(
                    filename=a.filename,
                    content_type=a.content_type,
                    size=a.size,
                    sha256=a.sha256,
                    inline=a.inline,
                    status=a.status,
                    detected_type=a.detected_type,
                )
            )
    participants = session.exec(
        select(Participant).where(Participant.ticket_id == ticket_id).order_by(col(Participant.id))
    ).all()
    events = session.exec(
        select(AuditEvent).where(AuditEvent.ticket_id == ticket_id).order_by(col(AuditEvent.id))
    ).all()
    base = ticket_out(ticket, shop, now).model_dump()
    spent = time_spent(session, ticket_id)
    return TicketDetail(
        **base,
        time_spent_minutes=spent.minutes,
        calls=spent.calls,
        participants=[{"email": p.email, "role": p.role} for p in participants],
        messages=[_message_out(m, attachments.get(m.id or 0, [])) for m in messages],
        events=[
            EventOut(
                at=e.at,
                actor=e.actor,
                action=e.action,
                field=e.field_name,
                old=e.old,
                new=e.new,
                detail=e.detail,
            )
            for e in events
        ],
    )


def _message_out(m: Message, attachments: list[AttachmentOut]) -> MessageOut:
    assert m.id is not None
    return MessageOut(
        id=m.id,
        direction=m.direction,
        from_=m.from_address,
        to=[a for a in m.to_addresses.split(",") if a],
        cc=[a for a in m.cc_addresses.split(",") if a],
        date=m.date or m.created_at,
        subject=m.subject,
        body_text=m.body_text,
        reply_text=m.reply_text,
        message_id=m.message_id,
        threaded_by=m.threaded_by,
        thread_evidence=m.thread_evidence,
        screen={"verdict": m.screen_verdict, "reason": m.screen_reason},
        auth=json.loads(m.auth or "{}"),
        author=m.author,
        flags=[f for f in m.flags.split(",") if f],
        attachments=attachments,
    )
