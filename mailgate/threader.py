"""Stage 6, thread: which ticket a mail belongs to, and why.

Evidence is tried in order — plus-address in To/Cc (``support+39430@``), subject tag
(``[#39430]``), ``In-Reply-To``/``References``, then a plus-address that is only in the
envelope (it is not part of the mail, so a replayed signed mail cannot be steered by it
ahead of its own headers). References are looked up among stored Message-IDs, except
ours (``mg.…``): those count only when their HMAC checks, so a forged one is ignored.
A candidate ticket is taken only when the sender is a participant of it: a guessed
number or copied References never put a stranger's mail into someone else's ticket
(they get a ticket of their own), and an agent's address counts only when the mail is
authenticated. A closed ticket is never reopened: the mail becomes a follow-up ticket,
unless it is an authenticated agent's (the apply stage refuses to relay it, keeps it as a
note and tells the agent, rather than open a ticket with the agent as its requester).
Merged tickets forward to their target.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from mailgate.addresses import OurAddresses
from mailgate.values import ParsedMail, Sender, SenderKind, ThreadDecision, ThreadedBy
from store.lookups import TicketRef

TICKET_TAG = re.compile(r"\[#(\d{1,12})\]")
_MAX_MERGE_HOPS = 10


class SignedIds(Protocol):
    def is_our_message_id(self, message_id: str) -> int | None: ...


# What the composer writes first in our Message-IDs (mailgate/outbound/compose.py).
_OUR_ID_PREFIX = "mg."


class TicketLookup(Protocol):
    def ticket(self, ticket_id: int) -> TicketRef | None: ...
    def tickets_for_message_ids(self, message_ids: tuple[str, ...]) -> dict[str, int]: ...
    def participant_role(
        self, ticket: TicketRef, email: str, shop_id: int | None
    ) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Candidate:
    ticket_id: int
    by: ThreadedBy
    evidence: str


def has_ticket_tag(subject: str) -> bool:
    return TICKET_TAG.search(subject) is not None


def thread_for(
    mail: ParsedMail,
    sender: Sender,
    recipients: tuple[str, ...],
    ours: OurAddresses,
    tickets: TicketLookup,
    *,
    signed_ids: SignedIds | None = None,
) -> ThreadDecision:
    """Decide the ticket of ``mail``; ``ThreadDecision.ticket_id`` None means a new ticket."""
    refused: list[str] = []
    for candidate in _candidates(mail, recipients, ours, tickets, signed_ids):
        ticket = _follow_merges(tickets.ticket(candidate.ticket_id), tickets)
        if ticket is None:
            refused.append(f"{candidate.evidence}: no such ticket")
            continue
        why = _may_write(ticket, sender, tickets)
        if why is None:
            refused.append(f"{candidate.evidence}: sender is not a participant of #{ticket.id}")
            continue
        evidence = f"{candidate.evidence} ({why})"
        if ticket.id != candidate.ticket_id:
            evidence += f", #{candidate.ticket_id} was merged into #{ticket.id}"
        if ticket.status == "closed" and why != "agent":
            return ThreadDecision(
                None,
                ThreadedBy.FOLLOW_UP,
                f"{evidence}; #{ticket.id} is closed",
                follow_up_of=ticket.id,
            )
        return ThreadDecision(ticket.id, candidate.by, evidence)
    return ThreadDecision(None, ThreadedBy.NEW, "; ".join(refused) or "no ticket reference")


def _candidates(
    mail: ParsedMail,
    recipients: tuple[str, ...],
    ours: OurAddresses,
    tickets: TicketLookup,
    signed_ids: SignedIds | None,
) -> Iterator[_Candidate]:
    yield from _by_plus_address((*mail.to, *mail.cc), ours)
    for match in TICKET_TAG.finditer(mail.subject):
        yield _Candidate(int(match[1]), ThreadedBy.TAG, f"tag {match[0]} in subject")
    yield from _by_references(mail, tickets, signed_ids)
    yield from _by_plus_address(recipients, ours)


def _by_plus_address(addresses: tuple[str, ...], ours: OurAddresses) -> Iterator[_Candidate]:
    for address in addresses:
        tag = ours.plus_tag(address)
        if tag is not None and tag.isdigit():
            yield _Candidate(int(tag), ThreadedBy.PLUS, f"plus-address {address}")
            return


def stored_references(mail: ParsedMail) -> tuple[str, ...]:
    """The Message-IDs of ``mail``'s In-Reply-To and References that threading looks up in
    the store (ours carry their ticket in a signature instead), nearest first."""
    return tuple(r for r in _references(mail) if not r.lower().startswith(_OUR_ID_PREFIX))


def named_tickets(mail: ParsedMail, recipients: tuple[str, ...], ours: OurAddresses) -> set[int]:
    """The tickets ``mail`` names by subject tag or plus-address (asked for a whole batch
    ahead of threading: ``StoreReader.look_ahead``)."""
    named = {int(match[1]) for match in TICKET_TAG.finditer(mail.subject)}
    for addresses in ((*mail.to, *mail.cc), recipients):
        named.update(c.ticket_id for c in _by_plus_address(addresses, ours))
    return named


def _references(mail: ParsedMail) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*mail.in_reply_to, *reversed(mail.references))))


def _by_references(
    mail: ParsedMail, tickets: TicketLookup, signed_ids: SignedIds | None
) -> Iterator[_Candidate]:
    refs = _references(mail)
    known = tickets.tickets_for_message_ids(stored_references(mail))
    for ref in refs:
        if ref.lower().startswith(_OUR_ID_PREFIX):
            ticket_id = signed_ids.is_our_message_id(ref) if signed_ids else None
            if ticket_id is not None:
                yield _Candidate(ticket_id, ThreadedBy.REFERENCE, f"our signed reference <{ref}>")
        elif ref in known:
            yield _Candidate(known[ref], ThreadedBy.REFERENCE, f"reference <{ref}>")


def _follow_merges(ticket: TicketRef | None, tickets: TicketLookup) -> TicketRef | None:
    hops = 0
    while ticket is not None and ticket.merged_into is not None and hops < _MAX_MERGE_HOPS:
        ticket = tickets.ticket(ticket.merged_into)
        hops += 1
    return ticket


def _may_write(ticket: TicketRef, sender: Sender, tickets: TicketLookup) -> str | None:
    if sender.address is None:
        return None
    if sender.kind is SenderKind.AGENT and sender.verified:
        return "agent"
    role = tickets.participant_role(ticket, sender.address, sender.shop_id)
    # An agent who answered the ticket is on it as a participant; their address alone,
    # unauthenticated, must not let a forger write into the ticket in their name.
    return None if role == "agent" else role
