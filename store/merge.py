"""Merging duplicates: one subject per ticket is the rule, and merging is the agent's tool.

``merge_tickets`` moves the messages, the raw-mail records and the logged time of the
merged ticket into the target, copies its participants (the merged ticket's requester
becomes a copied address of the target, so they keep hearing about it), closes it and
points it at the target. Threading follows ``merged_into``, so replies to the old number
land in the target.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from store.enums import Direction, ParticipantRole, Status
from store.errors import InvalidInput, TicketNotFound
from store.lifecycle import change_status
from store.models import Message, Participant, RawMail, Ticket, TimeEntry
from store.sla import SlaPolicy, settle
from store.tickets import add_participant, audit


def merge_tickets(
    session: Session,
    source_id: int,
    target_id: int,
    *,
    actor: str,
    now: datetime,
    sla: SlaPolicy,
) -> Ticket:
    """Merge ticket ``source_id`` into ``target_id``; returns the target.

    Raises ``TicketNotFound``, or ``InvalidInput`` for a ticket merged into itself, one
    already merged, or a target that is closed or itself merged away.
    """
    if source_id == target_id:
        raise InvalidInput("a ticket cannot be merged into itself")
    source = _locked(session, source_id)
    target = _locked(session, target_id)
    if source.merged_into is not None:
        raise InvalidInput(f"ticket #{source_id} is already merged into #{source.merged_into}")
    if target.merged_into is not None:
        raise InvalidInput(
            f"ticket #{target_id} was merged into #{target.merged_into}; merge into that one"
        )
    if target.status == Status.CLOSED.value:
        raise InvalidInput(f"ticket #{target_id} is closed; closed tickets are final")

    moved = _move_rows(session, source_id, target_id)
    for email, role in session.exec(
        select(Participant.email, Participant.role)
        .where(Participant.ticket_id == source_id)
        .order_by(col(Participant.id))
    ).all():
        if email != target.requester:
            keep = ParticipantRole.AGENT if role == ParticipantRole.AGENT.value else None
            add_participant(session, target_id, email, keep or ParticipantRole.CC)
    if target.first_response_at is None and source.first_response_at is not None:
        target.first_response_at = source.first_response_at  # the merchant was answered
    # For stats: the author of the first answer among the messages the target now holds.
    target.first_responder = session.exec(
        select(Message.author)
        .where(
            Message.ticket_id == target_id,
            Message.direction == Direction.OUT.value,
            col(Message.author).is_not(None),
            Message.author != "",
        )
        .order_by(col(Message.id))
        .limit(1)
    ).first()
    source.merged_into = target_id
    if source.status != Status.CLOSED.value:
        change_status(session, source, Status.CLOSED, actor=actor, now=now)
    target.updated_at = now
    audit(
        session,
        source_id,
        actor=actor,
        action="merge",
        now=now,
        field_name="merged_into",
        new=str(target_id),
        detail=moved,
    )
    audit(session, target_id, actor=actor, action="merge", now=now, detail=f"#{source_id}: {moved}")
    settle(session, source, now, sla)
    settle(session, target, now, sla)
    return target


def _move_rows(session: Session, source_id: int, target_id: int) -> str:
    counts = []
    for model, name in ((Message, "messages"), (RawMail, "raw mails"), (TimeEntry, "time")):
        result = session.execute(
            update(model).where(col(model.ticket_id) == source_id).values(ticket_id=target_id)
        )
        counts.append(f"{result.rowcount} {name}")  # type: ignore[attr-defined]
    return "moved " + ", ".join(counts)


def _locked(session: Session, ticket_id: int) -> Ticket:
    ticket = session.exec(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).first()
    if ticket is None:
        raise TicketNotFound(ticket_id)
    return ticket
