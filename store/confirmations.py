"""One-time identity confirmations: issued for a ticket and an address, redeemed once.

The token itself (its HMAC) is made and checked in ``mailgate.confirmation``; the store
keeps the nonce, who it was mailed to, until when it is good, and whether it was used.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from store.models import IdentityConfirmation


def create_confirmation(
    session: Session, *, ticket_id: int, email: str, nonce: str, now: datetime, expires_at: datetime
) -> IdentityConfirmation:
    row = IdentityConfirmation(
        ticket_id=ticket_id, email=email.lower(), nonce=nonce, created_at=now, expires_at=expires_at
    )
    session.add(row)
    session.flush()
    return row


def open_confirmation(
    session: Session, ticket_id: int, email: str, now: datetime
) -> IdentityConfirmation | None:
    """An unanswered, unexpired confirmation already mailed for this ticket and address."""
    return session.exec(
        select(IdentityConfirmation).where(
            IdentityConfirmation.ticket_id == ticket_id,
            IdentityConfirmation.email == email.lower(),
            col(IdentityConfirmation.confirmed_at).is_(None),
            col(IdentityConfirmation.expires_at) > now,
        )
    ).first()


def confirmation_by_nonce(session: Session, nonce: str) -> IdentityConfirmation | None:
    return session.exec(
        select(IdentityConfirmation).where(IdentityConfirmation.nonce == nonce)
    ).first()


def mark_confirmed(
    session: Session, row: IdentityConfirmation, *, now: datetime, raw_id: int | None
) -> None:
    row.confirmed_at = now
    row.confirmed_raw_id = raw_id
    session.add(row)
    session.flush()
