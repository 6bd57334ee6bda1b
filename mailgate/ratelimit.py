"""Stage 8 helper: who may receive a notification now — the send limits and the bounce block.

Every mail Mailgate writes passes ``RecipientGate.admit`` on its way into the outbox
(``mailgate.notifications``), so the rules hold for every kind, present and future:

- only participants of the ticket are ever written to (``store.participants``);
- automatic mail (``Auto-Submitted``: acknowledgements, notices, status changes) is held
  back from an address that bounced for good within ``bounce_quiet_days`` (Zammad: 60),
  after ``automatic_per_address_per_day`` such mails in 24 hours (Znuny: 40), and after
  ``per_ticket_recipient`` mails to that address for one ticket within
  ``per_ticket_minutes`` (Zammad: 10 in 10). These are what stop two auto-responders, or a
  forged sender, from turning the helpdesk into a mail cannon.

An agent's own answer is never held back by a limit (a person chose to send it), but it
counts towards them. Agents themselves are exempt from the daily cap (they are sent a
notice of each new ticket and reply in their sectors), not from the per-ticket one.
Whatever is held back is written to the ticket's audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from mailgate.config import LimitSettings
from store.directory import is_active_agent
from store.models import Ticket
from store.participants import is_participant
from store.sendlog import count_sent, counted_ahead, record_recipients
from store.tickets import audit

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RecipientGate:
    limits: LimitSettings

    def admit(
        self,
        session: Session,
        ticket: Ticket,
        kind: str,
        addresses: tuple[str, ...],
        *,
        automatic: bool,
        now: datetime,
    ) -> tuple[str, ...]:
        """The addresses that may receive ``kind`` now; the others are audited as withheld."""
        admitted: list[str] = []
        for address in addresses:
            why = self.refusal(session, ticket, address, automatic=automatic, now=now)
            if why is None:
                admitted.append(address)
            else:
                audit(
                    session,
                    ticket.id,
                    actor="gateway",
                    action="withheld",
                    now=now,
                    detail=f"{kind} to {address}: {why}",
                )
        return tuple(admitted)

    def counted_ahead(
        self, session: Session, addresses: Iterable[str], *, now: datetime
    ) -> AbstractContextManager[None]:
        """Inside, the limits of ``addresses`` are checked against counts found now, in a
        few statements for a whole batch (``store.sendlog.counted_ahead``)."""
        return counted_ahead(
            session,
            addresses,
            automatic_since=now - _DAY,
            ticket_since=now - timedelta(minutes=self.limits.per_ticket_minutes),
        )

    def refusal(
        self, session: Session, ticket: Ticket, address: str, *, automatic: bool, now: datetime
    ) -> str | None:
        """Why ``address`` may not receive a mail about ``ticket`` now, or None."""
        if not is_participant(session, ticket, address):
            return "not a participant of the ticket"
        if not automatic:
            return None
        limits = self.limits
        assert ticket.id is not None
        sent = count_sent(  # the same windows as counted_ahead's
            session,
            address,
            automatic_since=now - _DAY,
            ticket_id=ticket.id,
            ticket_since=now - timedelta(minutes=limits.per_ticket_minutes),
        )
        bounced = sent.bounced_at
        if bounced is not None and now - bounced < timedelta(days=limits.bounce_quiet_days):
            return f"mail to it bounced on {bounced:%Y-%m-%d}"
        # Our own agents hear of every new ticket and reply in their sectors: a busy day is
        # far over the daily cap, which is there for merchants and forged senders.
        daily = sent.automatic
        if daily >= limits.automatic_per_address_per_day and not is_active_agent(session, address):
            return f"{daily} automatic mails to it in 24 hours"
        if sent.for_ticket >= limits.per_ticket_recipient:
            return (
                f"{sent.for_ticket} mails to it for this ticket in"
                f" {limits.per_ticket_minutes} minutes"
            )
        return None

    def record(
        self,
        session: Session,
        ticket: Ticket,
        kind: str,
        recipients: tuple[str, ...],
        *,
        automatic: bool,
        now: datetime,
    ) -> None:
        record_recipients(
            session,
            ticket_id=ticket.id,
            kind=kind,
            emails=recipients,
            automatic=automatic,
            now=now,
        )
