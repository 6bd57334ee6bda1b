"""Stage 8 helper: what trust changes when a mail is applied — holds, confirmations, bounces.

Called by ``mailgate.apply`` inside the mail's transaction:

- a confidential request from a verified sender marks the ticket confidential and
  verified; from an unverified one it marks it confidential and *held*
  (``mailgate.holds``), and the sender is told — without the request being echoed — to
  write from their registered, authenticated address (``identity_notice``), or, when the
  registered address's domain signs nothing, is mailed a one-time confirmation
  (``confirm_identity``, ``mailgate.confirmation``). A held new ticket gets that mail
  *instead of* the acknowledgement, which would repeat the request's subject;
- a mail that answers a confirmation token verifies its ticket (``confirmed``);
- a hard bounce of one of our mails (it returns a Message-ID we signed) blocks automatic
  mail to the bounced address for ``[limits] bounce_quiet_days`` (``mailgate.ratelimit``).
  Mail *from* the address does not lift the block: anyone can write that From.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from mailgate.confirmation import Confirmations
from mailgate.delivery_failures import DELAY_PREFIX, ReturnedMail
from mailgate.notifications import Notifier
from mailgate.values import AuthResult, Sender, SenderKind
from store.errors import TicketNotFound
from store.models import Message, ShopUser, Ticket
from store.sendlog import record_bounce, was_mailed
from store.tickets import audit, thread_ids

if TYPE_CHECKING:  # apply imports this module; the annotation needs no import at run time
    from mailgate.apply import MailFacts

NOTICE = "identity_notice"
CONFIRMATION = "confirm_identity"


@dataclass(frozen=True, slots=True)
class TrustKeeper:
    notifier: Notifier
    confirmations: Confirmations
    bounce_quiet: timedelta

    # --- hooks called by apply -------------------------------------------------------------
    def after_new_ticket(
        self, session: Session, ticket: Ticket, facts: MailFacts, raw_id: int | None, now: datetime
    ) -> bool:
        """Settle trust for a new ticket; True when it is held (send no acknowledgement)."""
        sender = facts.sender
        self._redeem(session, facts, raw_id, now)
        if not facts.instructions.confidential:
            return False
        _audit(session, ticket, "confidential", now, facts.instructions.confidential_reason)
        if sender.verified:
            return False
        self._hold(session, ticket, sender, facts.auth, now)
        return True

    def after_reply(
        self, session: Session, ticket: Ticket, facts: MailFacts, raw_id: int | None, now: datetime
    ) -> None:
        """Settle trust after a merchant's mail was added to ``ticket``."""
        sender = facts.sender
        confirmed = self._redeem(session, facts, raw_id, now)
        if not facts.instructions.confidential:
            return
        if not ticket.confidential:
            ticket.confidential = True
            _audit(session, ticket, "confidential", now, facts.instructions.confidential_reason)
        if confirmed == ticket.id:
            return  # this very mail proves the sender: nothing to hold
        if sender.verified:
            if not ticket.verified:
                _set_verified(session, ticket, sender.verified_by, now, f"by {sender.address}")
            return
        if ticket.verified:
            # A new confidential request from an unverified sender stands on its own: an
            # earlier verified mail proves nothing about this one.
            _set_verified(session, ticket, None, now, f"unverified request by {sender.address}")
        self._hold(session, ticket, sender, facts.auth, now)

    def after_bounce(
        self,
        session: Session,
        returned: ReturnedMail,
        reason: str,
        raw_id: int | None,
        now: datetime,
    ) -> None:
        """Note a hard bounce of one of our mails (``returned``: matched by a Message-ID we
        sent or signed) for the addresses we did mail. Anyone can write a bounce: one that
        returns nothing of ours never gets here, so a forged report cannot silence a
        merchant's notifications for weeks."""
        if reason.startswith(DELAY_PREFIX):
            return
        for address in returned.recipients:
            if was_mailed(session, address, now - self.bounce_quiet):
                record_bounce(session, address, at=now, detail=reason, raw_id=raw_id)

    # --- agents --------------------------------------------------------------------------------
    def mark_confidential(
        self, session: Session, ticket_id: int, *, actor: str, now: datetime
    ) -> bool:
        """An agent marks a ticket confidential; if unverified, its requester is asked for
        proof as if the request had said so. Returns False when it already was."""
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        if ticket.confidential:
            return False
        ticket.confidential = True
        session.add(ticket)
        _audit(session, ticket, "confidential", now, f"marked by {actor}", actor=actor)
        if not ticket.verified:
            registered = _registered_user(session, ticket.requester)
            kind = SenderKind.SHOP_USER if registered else SenderKind.STRANGER
            requester = Sender(kind, ticket.requester, shop_id=ticket.shop_id)
            self._hold(session, ticket, requester, _requester_auth(session, ticket), now)
        return True

    # --- the steps ----------------------------------------------------------------------------
    def _hold(
        self, session: Session, ticket: Ticket, sender: Sender, auth: AuthResult, now: datetime
    ) -> None:
        assert ticket.id is not None and sender.address is not None
        session.add(ticket)
        registered = sender.kind is SenderKind.SHOP_USER
        in_reply_to, references = thread_ids(session, ticket.id)
        if registered and auth.publishes_no_authentication:
            reply_to = self.confirmations.issue(session, ticket.id, sender.address, now)
            if reply_to is None:
                _audit(session, ticket, "held", now, f"confirmation to {sender.address} pending")
                return
            _audit(session, ticket, "held", now, f"confirmation mailed to {sender.address}")
            hours = int(self.confirmations.lifetime.total_seconds() // 3600)
            self.notifier.enqueue(
                session,
                ticket,
                CONFIRMATION,
                to=(sender.address,),
                now=now,
                reply_to=reply_to,
                in_reply_to=in_reply_to,
                references=references,
                extra={"confirmation_hours": hours},
            )
            return
        _audit(session, ticket, "held", now, f"sender {sender.address} not verified: {auth.reason}")
        self.notifier.enqueue(
            session,
            ticket,
            NOTICE,
            to=(sender.address,),
            now=now,
            in_reply_to=in_reply_to,
            references=references,
            extra={"registered": registered},
        )

    def _redeem(
        self, session: Session, facts: MailFacts, raw_id: int | None, now: datetime
    ) -> int | None:
        """Use a confirmation token the mail answers; the confirmed ticket id, or None."""
        mail = facts.mail
        recipients = (*facts.arrival.envelope.rcpt_tos, *mail.to, *mail.cc)
        result = self.confirmations.redeem(
            session, recipients, facts.sender.address, raw_id=raw_id, now=now
        )
        if result is None:
            return None
        if result.ticket_id is None:
            _audit_detached(session, "confirmation_refused", now, result.detail)
            return None
        ticket = session.get(Ticket, result.ticket_id)
        if ticket is None:
            return None
        _set_verified(session, ticket, "confirmed", now, result.detail)
        return ticket.id


def _set_verified(
    session: Session, ticket: Ticket, verified_by: str | None, now: datetime, detail: str
) -> None:
    old = ticket.verified_by if ticket.verified else "unverified"
    ticket.verified = verified_by is not None
    ticket.verified_by = verified_by
    session.add(ticket)
    audit(
        session,
        ticket.id,
        actor="gateway",
        action="set",
        now=now,
        field_name="verified_by",
        old=old,
        new=verified_by or "unverified",
        detail=detail,
    )


def _audit(
    session: Session,
    ticket: Ticket,
    action: str,
    now: datetime,
    detail: str,
    *,
    actor: str = "gateway",
) -> None:
    audit(session, ticket.id, actor=actor, action=action, now=now, detail=detail)


def _audit_detached(session: Session, action: str, now: datetime, detail: str) -> None:
    audit(session, None, actor="gateway", action=action, now=now, detail=detail)


def _registered_user(session: Session, email: str) -> bool:
    found = session.exec(select(ShopUser.id).where(ShopUser.email == email.lower())).first()
    return found is not None


def _requester_auth(session: Session, ticket: Ticket) -> AuthResult:
    """How the requester's latest mail on ``ticket`` authenticated (dkim and dmarc only)."""
    stored = session.exec(
        select(Message.auth)
        .where(Message.ticket_id == ticket.id, Message.from_address == ticket.requester)
        .order_by(col(Message.id).desc())
    ).first()
    values = json.loads(stored) if stored else {}
    return AuthResult(
        dkim=str(values.get("dkim", "none")),
        dmarc=str(values.get("dmarc", "none")),
        reason="the requester's last mail was not verified",
    )
