"""Who belongs to a ticket, for outgoing mail: nobody else is ever written to about it."""

from __future__ import annotations

from sqlmodel import Session, select

from store.models import Agent, Participant, ShopUser, Ticket


def is_participant(session: Session, ticket: Ticket, email: str) -> bool:
    """The requester, an address on the ticket, a user of the ticket's shop, or an agent."""
    email = email.lower()
    if email == ticket.requester.lower():
        return True
    on_ticket = session.exec(
        select(Participant.id).where(Participant.ticket_id == ticket.id, Participant.email == email)
    ).first()
    if on_ticket is not None:
        return True
    if ticket.shop_id is not None:
        colleague = session.exec(
            select(ShopUser.id).where(ShopUser.email == email, ShopUser.shop_id == ticket.shop_id)
        ).first()
        if colleague is not None:
            return True
    agent = session.exec(
        select(Agent.id).where(Agent.email == email, Agent.active == True)  # noqa: E712
    ).first()
    return agent is not None


def participant_emails(session: Session, ticket_id: int, role: str) -> set[str]:
    """The addresses on the ticket in ``role`` (a ``ParticipantRole`` value)."""
    return set(
        session.exec(
            select(Participant.email).where(
                Participant.ticket_id == ticket_id, Participant.role == role
            )
        )
    )
