"""Held tickets: a confidential request whose sender is not verified waits for proof.

A ticket is *held* while it is confidential and not verified. Agents are warned, and an
answer to it needs the agent to say they confirmed the merchant's identity another way
(``tickets reply --confirm-identity``, or ``#confirm-identity`` from a mail client); that
statement goes into the audit log with the agent's name.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from mailgate.errors import IdentityNotConfirmed
from store.models import Ticket
from store.tickets import audit

CONFIRM_IDENTITY_COMMAND = "confirm-identity"


def is_held(ticket: Ticket) -> bool:
    return ticket.confidential and not ticket.verified


def require_identity(
    session: Session, ticket: Ticket, *, agent: str, confirmed: bool, now: datetime
) -> None:
    """Let an answer to ``ticket`` go out, or raise ``IdentityNotConfirmed`` if it is held.

    ``confirmed`` is the agent's word that they checked the merchant's identity; it is
    recorded in the audit log.
    """
    if not is_held(ticket):
        return
    assert ticket.id is not None
    if not confirmed:
        raise IdentityNotConfirmed(ticket.id)
    audit(
        session,
        ticket.id,
        actor=agent,
        action="identity_confirmed",
        now=now,
        detail="the agent confirmed the sender's identity out of band and answered",
    )
