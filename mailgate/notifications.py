"""Render a notification for a ticket and put it in the outbox, in the caller's transaction.

The one place that turns a ticket row into template context. Mail is only ever addressed
to the ticket's merchants (requester and copied addresses) or to agents, and never to one
of our own addresses (that would loop). Every recipient passes the ``RecipientGate``
(``mailgate.ratelimit``): participants only, send limits, no automatic mail after a bounce.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from mailgate.addresses import OurAddresses
from mailgate.outbound.compose import (
    Composer,
    Notification,
    RenderedMail,
    parse_address,
    status_text,
)
from mailgate.ratelimit import RecipientGate
from store.models import Shop, Ticket
from store.outbox import enqueue
from store.tickets import audit, merchant_addresses, thread_ids


def _deliverable(
    session: Session, ticket: Ticket, kind: str, addresses: tuple[str, ...], now: datetime
) -> tuple[str, ...]:
    """The addresses a relay can deliver to; the others are noted on the ticket, not fatal.

    A merchant's odd From (a trailing dot, an encoded word) must not cost the mail itself.
    """
    usable: list[str] = []
    for address in addresses:
        try:
            parse_address(address)
        except ValueError as exc:
            audit(
                session,
                ticket.id,
                actor="gateway",
                action="notification_skipped",
                now=now,
                detail=f"{kind}: {exc}",
            )
            continue
        usable.append(address)
    return tuple(usable)


def ticket_context(session: Session, ticket: Ticket) -> dict[str, Any]:
    shop = session.get(Shop, ticket.shop_id) if ticket.shop_id is not None else None
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "status_text": status_text(ticket.status, ticket.language),
        "priority": ticket.priority,
        "type": ticket.type,
        "sector": ticket.sector,
        "requester": ticket.requester,
        "requester_name": ticket.requester_name,
        "shop": shop.name if shop else None,
        "follow_up_of": ticket.follow_up_of,
    }


@dataclass(frozen=True, slots=True)
class Notifier:
    """Renders with ``composer``; never writes to one of ``ours``."""

    composer: Composer
    ours: OurAddresses
    from_address: str
    gate: RecipientGate | None = None

    def enqueue(
        self,
        session: Session,
        ticket: Ticket,
        kind: str,
        *,
        to: tuple[str, ...],
        now: datetime,
        cc: tuple[str, ...] = (),
        extra: Mapping[str, Any] | None = None,
        in_reply_to: str | None = None,
        references: tuple[str, ...] = (),
        auto_submitted: bool = True,
        reply_to: str | None = None,
        language: str | None = None,
    ) -> RenderedMail | None:
        """Render ``kind`` for ``ticket`` and enqueue it; None when nobody is left to write to.

        ``language`` defaults to the ticket's (the merchant's); mail to agents passes "en".
        """
        assert ticket.id is not None
        to = tuple(a for a in dict.fromkeys(to) if a and not self.ours.is_ours(a))
        cc = tuple(a for a in dict.fromkeys(cc) if a and a not in to and not self.ours.is_ours(a))
        to = _deliverable(session, ticket, kind, to, now)
        cc = _deliverable(session, ticket, kind, cc, now)
        if self.gate is not None:
            to = self.gate.admit(session, ticket, kind, to, automatic=auto_submitted, now=now)
            cc = self.gate.admit(session, ticket, kind, cc, automatic=auto_submitted, now=now)
        if not to:
            return None
        context = {"ticket": ticket_context(session, ticket), **(extra or {})}
        rendered = self.composer.render(
            Notification(
                kind=kind,
                ticket_id=ticket.id,
                language=language or ticket.language,
                to=to,
                cc=cc,
                context=context,
                in_reply_to=in_reply_to,
                references=references,
                auto_submitted=auto_submitted,
                reply_to=reply_to,
            )
        )
        enqueue(
            session,
            ticket_id=ticket.id,
            kind=kind,
            message_id=rendered.message_id,
            mail_from=rendered.mail_from,
            recipients=rendered.recipients,
            subject=rendered.subject,
            raw=rendered.raw,
            now=now,
        )
        if self.gate is not None:
            self.gate.record(
                session, ticket, kind, rendered.recipients, automatic=auto_submitted, now=now
            )
        return rendered

    def counted_ahead(
        self, session: Session, addresses: Iterable[str], *, now: datetime
    ) -> AbstractContextManager[None]:
        """Inside, the send limits of ``addresses`` need no statement per mail
        (``RecipientGate.counted_ahead``); without a gate, nothing to count."""
        if self.gate is None:
            return nullcontext()
        return self.gate.counted_ahead(session, addresses, now=now)

    def to_merchants(
        self,
        session: Session,
        ticket: Ticket,
        kind: str,
        *,
        now: datetime,
        extra: Mapping[str, Any] | None = None,
        auto_submitted: bool = True,
        merchants: tuple[str, tuple[str, ...]] | None = None,
        thread: tuple[str | None, tuple[str, ...]] | None = None,
    ) -> RenderedMail | None:
        """Notify the requester (copied addresses in Cc), continuing the ticket's thread.

        ``merchants`` (requester, copied) and ``thread`` (In-Reply-To, References) are
        read from the store unless the caller already knows them (a ticket it just opened).
        """
        assert ticket.id is not None
        requester, copied = merchants or merchant_addresses(session, ticket)
        in_reply_to, references = thread or thread_ids(session, ticket.id)
        return self.enqueue(
            session,
            ticket,
            kind,
            to=(requester,),
            cc=copied,
            now=now,
            extra=extra,
            in_reply_to=in_reply_to,
            references=references,
            auto_submitted=auto_submitted,
        )
