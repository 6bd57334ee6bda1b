"""Stage 8 (apply) helper: a bounce of one of our own mails, matched to its ticket.

A bounce is suspended like any machine mail; when it returns a mail we sent — a
Message-ID the outbox holds, or one carrying our signature (``Composer``) — the ticket
hears of it: an audit event ``delivery_failed`` (``delivery_delayed`` for a delay
report) naming the mail and the recipients it did not reach, and the suspended bounce
points at the ticket. Called from apply, so it works whatever way the bounce came in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from mailgate.outbound.compose import Composer
from mailgate.screen import bounced_message_ids, bounced_recipients
from mailgate.values import ParsedMail
from store.models import Ticket
from store.outbox import find_by_message_id
from store.tickets import audit

DELAY_PREFIX = "delay:"  # how screen words the reason of a delay report


@dataclass(frozen=True, slots=True)
class ReturnedMail:
    """Which of our mails a bounce returns, and to whom it did not get through."""

    ticket_id: int
    message_id: str
    kind: str | None  # the notification's kind (ack, agent_reply…) when the outbox has it
    recipients: tuple[str, ...]


def find_returned_mail(
    session: Session, bounce: ParsedMail, composer: Composer
) -> ReturnedMail | None:
    """Our mail that ``bounce`` returns, or None when it returns nothing of ours."""
    for message_id in bounced_message_ids(bounce):
        sent = find_by_message_id(session, message_id)
        ticket_id = sent.ticket_id if sent is not None else composer.is_our_message_id(message_id)
        # A signed ID from another installation sharing the secret names no ticket here.
        if ticket_id is None or session.get(Ticket, ticket_id) is None:
            continue
        return ReturnedMail(
            ticket_id, message_id, sent.kind if sent else None, bounced_recipients(bounce)
        )
    return None


def record_delivery_failure(
    session: Session, returned: ReturnedMail, *, reason: str, suspended_id: int, now: datetime
) -> None:
    """Note on the ticket that one of its mails bounced (``reason`` from screen)."""
    delayed = reason.startswith(DELAY_PREFIX)
    what = f"{returned.kind} mail" if returned.kind else "mail"
    whom = ", ".join(returned.recipients) or "its recipient"
    verb = "is delayed for" if delayed else "did not reach"
    audit(
        session,
        returned.ticket_id,
        actor="gateway",
        action="delivery_delayed" if delayed else "delivery_failed",
        now=now,
        detail=(
            f"{what} <{returned.message_id}> {verb} {whom} "
            f"(bounce kept as suspended mail {suspended_id}: {reason})"
        ),
    )
