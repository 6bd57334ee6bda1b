"""Stage 6: which ticket a mail lands in, and why — never a stranger's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from factories import parsed_mail

from mailgate.addresses import OurAddresses
from mailgate.config import OutboundSettings
from mailgate.outbound.compose import Composer
from mailgate.threader import has_ticket_tag, thread_for
from mailgate.values import Sender, SenderKind, ThreadedBy
from store.lookups import TicketRef

OURS = OurAddresses.of(["support@localhost"])
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
COMPOSER = Composer(OutboundSettings(), b"this server's secret", lambda: START)
ANA = Sender(SenderKind.SHOP_USER, "ana@shop.example", shop_id=1)
STRANGER = Sender(SenderKind.STRANGER, "eve@evil.example")


@dataclass
class FakeTickets:
    """An in-memory ticket lookup: the threader only reads these three things."""

    tickets: dict[int, TicketRef] = field(default_factory=dict)
    message_ids: dict[str, int] = field(default_factory=dict)
    copied: set[tuple[int, str]] = field(default_factory=set)
    roles: dict[tuple[int, str], str] = field(default_factory=dict)

    def add(
        self,
        tid: int,
        requester: str = "ana@shop.example",
        status: str = "open",
        shop_id: int | None = 1,
        merged_into: int | None = None,
    ) -> None:
        self.tickets[tid] = TicketRef(tid, status, requester, shop_id, merged_into, "en", "s")

    def ticket(self, ticket_id: int) -> TicketRef | None:
        return self.tickets.get(ticket_id)

    def tickets_for_message_ids(self, ids: tuple[str, ...]) -> dict[str, int]:
        return {i: self.message_ids[i] for i in ids if i in self.message_ids}

    def participant_role(self, ticket: TicketRef, email: str, shop_id: int | None) -> str | None:
        if email == ticket.requester:
            return "requester"
        if shop_id is not None and shop_id == ticket.shop_id:
            return "user of the same shop"
        if (ticket.id, email) in self.copied:
            return self.roles.get((ticket.id, email), "cc")
        return None


@pytest.fixture
def tickets() -> FakeTickets:
    t = FakeTickets()
    t.add(7)
    return t


def test_subject_tag_threads_the_requester(tickets: FakeTickets) -> None:
    decision = thread_for(parsed_mail(subject="Re: [#7] Payment"), ANA, (), OURS, tickets)
    assert (decision.ticket_id, decision.by) == (7, ThreadedBy.TAG)
    assert "[#7]" in decision.evidence


def test_plus_address_threads(tickets: FakeTickets) -> None:
    decision = thread_for(
        parsed_mail(subject="hello"), ANA, ("support+7@localhost",), OURS, tickets
    )
    assert (decision.ticket_id, decision.by) == (7, ThreadedBy.PLUS)


def test_plus_address_in_to_header_threads_without_envelope(tickets: FakeTickets) -> None:
    mail = parsed_mail(subject="hello", to=("support+7@localhost",))
    assert thread_for(mail, ANA, (), OURS, tickets).by is ThreadedBy.PLUS


def test_reference_to_our_signed_message_id_threads(tickets: FakeTickets) -> None:
    ours = COMPOSER.new_message_id(7)
    mail = parsed_mail(subject="Re: hello", in_reply_to=(ours,))
    decision = thread_for(mail, ANA, (), OURS, tickets, signed_ids=COMPOSER)
    assert (decision.ticket_id, decision.by) == (7, ThreadedBy.REFERENCE)
    assert "our signed reference" in decision.evidence


def test_forged_mg_message_id_is_ignored_even_when_stored(tickets: FakeTickets) -> None:
    """An ``mg.`` id counts only by its HMAC: not by the store, not by its ticket number."""
    forged = "mg.7.0123456789ab.0000000000000000@localhost"
    tickets.message_ids[forged] = 7  # e.g. written into the store as some mail's Message-ID
    mail = parsed_mail(subject="Re: hello", in_reply_to=(forged,))
    decision = thread_for(mail, ANA, (), OURS, tickets, signed_ids=COMPOSER)
    assert decision.ticket_id is None and decision.by is ThreadedBy.NEW


def test_our_message_id_signed_with_another_secret_is_ignored(tickets: FakeTickets) -> None:
    other = Composer(OutboundSettings(), b"another server's secret", lambda: START)
    mail = parsed_mail(subject="Re: hello", references=(other.new_message_id(7),))
    assert thread_for(mail, ANA, (), OURS, tickets, signed_ids=COMPOSER).ticket_id is None


def test_plus_address_only_in_the_envelope_comes_after_the_mails_own_evidence(
    tickets: FakeTickets,
) -> None:
    """A replayed signed mail keeps its own [#7]; a plus-address added in the envelope
    cannot steer it into another ticket ahead of it."""
    tickets.add(8)
    mail = parsed_mail(subject="Re: [#7] Payment")
    decision = thread_for(mail, ANA, ("support+8@localhost",), OURS, tickets)
    assert (decision.ticket_id, decision.by) == (7, ThreadedBy.TAG)


def test_agent_participant_role_needs_authentication(tickets: FakeTickets) -> None:
    """An agent who answered is on the ticket; a forged mail in their name is not let in."""
    tickets.copied.add((7, "maria@support.example"))
    tickets.roles[(7, "maria@support.example")] = "agent"
    forged = Sender(SenderKind.STRANGER, "maria@support.example")
    assert thread_for(parsed_mail(subject="[#7]"), forged, (), OURS, tickets).ticket_id is None


def test_stranger_with_guessed_tag_gets_a_new_ticket(tickets: FakeTickets) -> None:
    decision = thread_for(parsed_mail(subject="[#7] let me in"), STRANGER, (), OURS, tickets)
    assert decision.ticket_id is None and decision.by is ThreadedBy.NEW
    assert "not a participant" in decision.evidence


def test_stranger_with_copied_references_gets_a_new_ticket(tickets: FakeTickets) -> None:
    tickets.message_ids["m-original@shop.example"] = 7
    mail = parsed_mail(references=("m-original@shop.example",))
    assert thread_for(mail, STRANGER, ("support+7@localhost",), OURS, tickets).ticket_id is None


def test_copied_address_may_write(tickets: FakeTickets) -> None:
    tickets.copied.add((7, "bob@partner.example"))
    bob = Sender(SenderKind.STRANGER, "bob@partner.example")
    assert thread_for(parsed_mail(subject="[#7]"), bob, (), OURS, tickets).ticket_id == 7


def test_user_of_same_shop_may_write(tickets: FakeTickets) -> None:
    colleague = Sender(SenderKind.SHOP_USER, "ion@shop.example", shop_id=1)
    assert thread_for(parsed_mail(subject="[#7]"), colleague, (), OURS, tickets).ticket_id == 7


def test_user_of_other_shop_may_not(tickets: FakeTickets) -> None:
    other = Sender(SenderKind.SHOP_USER, "jan@other.example", shop_id=2)
    assert thread_for(parsed_mail(subject="[#7]"), other, (), OURS, tickets).ticket_id is None


def test_verified_agent_may_write_anywhere(tickets: FakeTickets) -> None:
    agent = Sender(SenderKind.AGENT, "maria@support.example", agent_id=1, verified=True)
    assert thread_for(parsed_mail(subject="[#7]"), agent, (), OURS, tickets).ticket_id == 7


def test_unverified_agent_is_not_trusted(tickets: FakeTickets) -> None:
    forged = Sender(SenderKind.AGENT, "maria@support.example", agent_id=1, verified=False)
    assert thread_for(parsed_mail(subject="[#7]"), forged, (), OURS, tickets).ticket_id is None


def test_closed_ticket_gives_follow_up(tickets: FakeTickets) -> None:
    tickets.add(8, status="closed")
    decision = thread_for(parsed_mail(subject="Re: [#8]"), ANA, (), OURS, tickets)
    assert decision.ticket_id is None
    assert (decision.by, decision.follow_up_of) == (ThreadedBy.FOLLOW_UP, 8)


def test_merged_ticket_forwards_to_target(tickets: FakeTickets) -> None:
    tickets.add(9, merged_into=7)
    decision = thread_for(parsed_mail(subject="Re: [#9]"), ANA, (), OURS, tickets)
    assert decision.ticket_id == 7 and "merged into #7" in decision.evidence


def test_unknown_ticket_number_gives_new_ticket(tickets: FakeTickets) -> None:
    decision = thread_for(parsed_mail(subject="[#999]"), ANA, (), OURS, tickets)
    assert decision.ticket_id is None and "no such ticket" in decision.evidence


def test_plus_address_of_someone_elses_domain_is_ignored(tickets: FakeTickets) -> None:
    decision = thread_for(parsed_mail(), ANA, ("support+7@elsewhere.example",), OURS, tickets)
    assert decision.ticket_id is None


@pytest.mark.parametrize(
    ("subject", "tagged"),
    [
        ("[#39430] x", True),
        ("Re: Fwd: [#1]", True),
        ("#39430", False),
        ("[# 3]", False),
    ],
)
def test_has_ticket_tag(subject: str, tagged: bool) -> None:
    assert has_ticket_tag(subject) is tagged
