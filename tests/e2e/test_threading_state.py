"""Who may write into a ticket, and who is written to about it, under random conversations.

A hypothesis state machine plays shop users of two shops, strangers, the agent (whose
mail is authenticated or not: a forger of the agent's address). They write new mails
and replies that point at tickets by every means threading knows (subject tag,
plus-address, In-Reply-To, References, several at once, and at tickets that are not
theirs), some of them confidential requests or commands. Meanwhile the agent answers
(confirming the merchant's identity or not), assigns, merges a requester's duplicates
and closes tickets, time passes under the scheduler, and the outbox sends, at times
with the relay down. After each step:

- every merchant message in a ticket is from its requester, a user of its shop, or an
  address copied on it; only the authenticated agent's mail becomes an answer or a note;
- every mail about a ticket goes to its requester and copied addresses, or to agents;
- a follow-up is opened only by the closed ticket's people, and a closed ticket gets no
  more mail;
- a held ticket is answered only on the agent's word, and its notices never repeat the
  request;
- each sent notification was handed to the relay once;
- the queue's counters (kept by triggers, read by ``stats``) match its tickets;
- every accepted mail became a ticket message or was suspended (or was a duplicate), and
  is kept raw.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from mailgate_testing import empty_store, make_gateway, make_settings, raw_mail
from sqlmodel import col, select

from mailgate.actions import TicketChanges
from mailgate.agent_notices import AGENT_KINDS
from mailgate.config import AuthSettings
from mailgate.errors import IdentityNotConfirmed, TransportError
from mailgate.holds import is_held
from mailgate.values import Arrival, Envelope, Source
from store import directory
from store.counts import ticket_counts
from store.enums import Direction, ParticipantRole
from store.errors import IllegalTransition, InvalidInput
from store.merge import merge_tickets
from store.models import Message, OutboxMail, Participant, RawMail, ShopUser, SuspendedMail, Ticket

AGENT = "maria@support.example"
SHOP_USERS = {"ana@magazin.ro": "Magazin", "dan@magazin.ro": "Magazin", "piet@winkel.nl": "Winkel"}
STRANGERS = ("eve@gmail.example", "bob@yahoo.example")
WRITERS = (*SHOP_USERS, *STRANGERS, AGENT)
TRUSTED = "mx.support.example; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
# A confidential request (a password reset) carrying a marker of its own, so that a mail
# that repeats it can be found; "#confirm-identity" is the agent's word (mailgate.holds).
TEXTS = (
    "Mesajul {n}.",
    "#solved",
    "Rezolvat",
    "#status closed\n\nGata.",
    "Vă rog resetare parolă, cod Z{n}Q.",
    "#confirm-identity\n\nAm verificat {n}.",
)
SECRET = re.compile(r"Z\d+Q")
NOT_ECHOING = frozenset({"identity_notice", "confirm_identity"})
HOOKS = ("none", "tag", "plus", "in_reply_to", "references", "tag_and_reference", "foreign_tag")


class Conversations(RuleBasedStateMachine):
    """One gateway with a fresh store per run of the machine."""

    def __init__(self, folder: Path, store_url: str) -> None:
        super().__init__()
        if store_url.startswith("sqlite"):
            store_url = f"sqlite:///{folder}/mailgate.db"
        else:
            empty_store(store_url)
        self.gateway, self.clock, self.sent = make_gateway(
            make_settings(
                folder,
                store_url,
                auth=AuthSettings(trusted_authserv_ids=("mx.support.example",)),
            )
        )
        self.numbers = itertools.count(1)
        self.delivered: list[str] = []  # each delivery's kind
        with self.gateway.db.write() as s:
            for shop in sorted(set(SHOP_USERS.values())):
                directory.add_shop(s, shop, locale="ro", rate=45, now=self.clock())
            for address, shop in SHOP_USERS.items():
                directory.add_user(s, address, shop=shop, name="", now=self.clock())
            directory.add_agent(
                s, AGENT, name="Maria", sectors=("support",), known_sectors=("support",),
                now=self.clock(),
            )  # fmt: skip

    def teardown(self) -> None:
        self.gateway.close()

    # --- what people do ---------------------------------------------------------------
    @rule(
        sender=st.sampled_from(WRITERS),
        authenticated=st.booleans(),
        hook=st.sampled_from(HOOKS),
        pick=st.integers(0, 50),
        cc=st.lists(st.sampled_from(WRITERS), max_size=2, unique=True),
        text=st.sampled_from(TEXTS),
    )
    def write(
        self, *, sender: str, authenticated: bool, hook: str, pick: int, cc: list[str], text: str
    ) -> None:
        self.clock.advance(minutes=3)
        number = next(self.numbers)
        target = self._ticket(pick)
        subject, rcpt, in_reply_to, references = (
            f"Intrebare {number}",
            "support@localhost",
            None,
            [],
        )
        if target is not None:
            ids = self._message_ids(target)
            reference = ids[pick % len(ids)] if ids else None
            if hook in ("tag", "tag_and_reference"):
                subject = f"Re: [#{target}] {subject}"
            if hook == "foreign_tag":  # another helpdesk's tag, and ours further on
                subject = f"Re: [#{target + 1000}] [#{target}] {subject}"
            if hook == "plus":
                rcpt = f"support+{target}@localhost"
            if hook == "in_reply_to":
                in_reply_to = reference
            if hook in ("references", "tag_and_reference") and reference:
                references = [f"<unknown{number}@elsewhere.example>", reference]
        domain = sender.partition("@")[2]
        headers = {"Authentication-Results": TRUSTED.format(domain=domain)} if authenticated else {}
        if references:
            headers["References"] = " ".join(references)
        raw = raw_mail(
            sender=f"Someone <{sender}>",
            to=rcpt,
            subject=subject,
            body=text.format(n=number) + "\n",
            message_id=f"<m{number}@{sender.split('@', 1)[1]}>",
            in_reply_to=in_reply_to,
            headers=headers,
            cc=", ".join(cc) or None,
        )
        arrival = Arrival(raw, Envelope(sender, (rcpt,)), Source("pipe"), self.clock())
        outcome = self.gateway.pipeline.process(arrival)
        self.delivered.append(outcome.kind)
        if sender == AGENT and outcome.message_id is not None:
            with self.gateway.db.read() as s:
                message = s.get(Message, outcome.message_id)
                assert message is not None
                # Only the authenticated agent answers or notes; the forger is a merchant.
                agent_wrote = message.direction != Direction.IN.value
                assert agent_wrote == (authenticated and outcome.kind == "message_added")

    @rule(
        pick=st.integers(0, 50),
        status=st.sampled_from([None, "pending", "solved", "closed"]),
        confirmed=st.booleans(),
    )
    def agent_answers(self, pick: int, status: str | None, confirmed: bool) -> None:
        """From the CLI: a held ticket (a confidential request, its sender unverified) is
        answered only on the agent's word that they checked the merchant's identity."""
        target = self._ticket(pick)
        if target is None:
            return
        self.clock.advance(minutes=5)
        with self.gateway.db.write() as s:
            ticket = s.get(Ticket, target)
            assert ticket is not None
            held, closed = is_held(ticket), ticket.status == "closed"
            messages = len(s.exec(select(Message.id).where(Message.ticket_id == target)).all())
            try:
                self.gateway.actions.reply(
                    s, target, "Am verificat.", agent=AGENT, now=self.clock(), status=status,
                    confirm_identity=confirmed,
                )  # fmt: skip
                assert not (held and not confirmed) and not closed
            except IdentityNotConfirmed:
                assert held and not confirmed
                s.rollback()
            except (InvalidInput, IllegalTransition):
                s.rollback()
        if held and not confirmed:
            with self.gateway.db.read() as s:
                after = s.exec(select(Message.id).where(Message.ticket_id == target)).all()
                assert len(after) == messages

    @rule(pick=st.integers(0, 50), assignee=st.sampled_from(["maria", "eve@gmail.example", "none"]))
    def agent_assigns(self, pick: int, assignee: str) -> None:
        target = self._ticket(pick)
        if target is None:
            return
        with self.gateway.db.write() as s:
            self.gateway.actions.update(
                s, target, TicketChanges(assignee=assignee), actor=AGENT, now=self.clock()
            )

    @rule(source=st.integers(0, 50), into=st.integers(0, 50))
    def agent_merges_a_duplicate(self, source: int, into: int) -> None:
        """Only the same requester's tickets: merging is the agent's call, and one across
        shops would copy one shop's merchant on another's ticket by design."""
        first, second = self._ticket(source), self._ticket(into)
        if first is None or second is None:
            return
        with self.gateway.db.write() as s:
            one, other = s.get(Ticket, first), s.get(Ticket, second)
            assert one is not None and other is not None
            if one.requester != other.requester:
                return
            try:
                merge_tickets(s, first, second, actor=AGENT, now=self.clock(), sla=self.gateway.sla)
            except InvalidInput:
                s.rollback()

    @rule(days=st.sampled_from([0, 1, 31]))
    def time_passes(self, days: int) -> None:
        """The scheduler's jobs: auto-close of solved tickets, reminders, SLA warnings."""
        self.clock.advance(days=days, minutes=7)
        self.gateway.scheduler.run_once()

    @rule()
    def outbox_sends(self) -> None:
        self.gateway.dispatcher.run_once()

    @rule(failures=st.integers(1, 3))
    def relay_is_down_for_a_while(self, failures: int) -> None:
        self.sent.failures.extend(TransportError("relay down") for _ in range(failures))
        self.gateway.dispatcher.run_once()

    # --- what must hold ---------------------------------------------------------------
    @invariant()
    def merchant_messages_come_from_the_ticket_s_people(self) -> None:
        with self.gateway.db.read() as s:
            shops = {u.email: u.shop_id for u in s.exec(select(ShopUser))}
            for ticket in s.exec(select(Ticket)):
                for message in s.exec(
                    select(Message).where(
                        Message.ticket_id == ticket.id, Message.direction == Direction.IN.value
                    )
                ):
                    sender = (message.from_address or "").lower()
                    assert _belongs(s, shops, ticket, sender), (sender, ticket.id)

    @invariant()
    def a_closed_ticket_gets_no_more_mail(self) -> None:
        with self.gateway.db.read() as s:
            for ticket in s.exec(select(Ticket).where(col_not_null(Ticket.closed_at))):
                later = s.exec(
                    select(Message).where(
                        Message.ticket_id == ticket.id,
                        Message.direction != Direction.NOTE.value,
                        col(Message.created_at) > ticket.closed_at,
                    )
                ).all()
                assert later == [], (ticket.id, ticket.status, [m.body_text for m in later])

    @invariant()
    def a_follow_up_is_opened_only_by_the_closed_ticket_s_people(self) -> None:
        with self.gateway.db.read() as s:
            shops = {u.email: u.shop_id for u in s.exec(select(ShopUser))}
            for ticket in s.exec(select(Ticket).where(col_not_null(Ticket.follow_up_of))):
                closed = s.get(Ticket, ticket.follow_up_of)
                assert closed is not None
                assert _belongs(s, shops, closed, ticket.requester), (ticket.id, closed.id)

    @invariant()
    def mail_about_a_ticket_goes_to_its_people_or_agents(self) -> None:
        with self.gateway.db.read() as s:
            for mail in s.exec(select(OutboxMail).where(col_not_null(OutboxMail.ticket_id))):
                ticket = s.get(Ticket, mail.ticket_id)
                assert ticket is not None
                recipients = set(mail.recipients.split(","))
                if mail.kind in AGENT_KINDS:
                    assert recipients <= {AGENT}, (mail.kind, recipients)
                else:
                    people = {ticket.requester} | _copied(s, ticket)
                    assert recipients <= people, (mail.kind, recipients, ticket.id)

    @invariant()
    def a_held_request_is_never_repeated_to_its_sender(self) -> None:
        """The notice that asks for proof, or mails a confirmation, repeats nothing of the
        request: its From may be forged, and the text would go out under our name."""
        with self.gateway.db.read() as s:
            for mail in s.exec(select(OutboxMail).where(col(OutboxMail.kind).in_(NOT_ECHOING))):
                assert not SECRET.search(_readable(mail.raw)), (mail.kind, mail.subject)

    @invariant()
    def each_notification_went_out_once(self) -> None:
        handed_over = Counter(
            str(email.message_from_bytes(mail.raw)["Message-ID"]).strip("<>")
            for mail in self.sent.sent
        )
        with self.gateway.db.read() as s:
            sent = s.exec(select(OutboxMail.message_id).where(OutboxMail.state == "sent")).all()
        assert handed_over == Counter(sent)

    @invariant()
    def the_queue_s_counters_match_its_tickets(self) -> None:
        """``stats`` reads counters kept by triggers; every path above changes tickets."""
        with self.gateway.db.read() as s:
            kept = {tuple(row[:4]): row[4] for row in ticket_counts(s)}
            counted = Counter(
                (t.status, t.sector, t.priority, t.assignee or "") for t in s.exec(select(Ticket))
            )
        assert kept == dict(counted)

    @invariant()
    def every_accepted_mail_is_kept_and_accounted_for(self) -> None:
        assert set(self.delivered) <= {"ticket_created", "message_added", "suspended", "duplicate"}
        with self.gateway.db.read() as s:
            raws = s.exec(select(RawMail)).all()
            suspended = s.exec(select(SuspendedMail)).all()
        assert len(raws) == len(self.delivered)
        assert len(suspended) == self.delivered.count("suspended")

    # --- helpers ------------------------------------------------------------------------
    def _ticket(self, pick: int) -> int | None:
        with self.gateway.db.read() as s:
            ids = sorted(t for t in s.exec(select(Ticket.id)) if t is not None)
        return ids[pick % len(ids)] if ids else None

    def _message_ids(self, ticket_id: int) -> list[str]:
        with self.gateway.db.read() as s:
            theirs = s.exec(select(Message.message_id).where(Message.ticket_id == ticket_id))
            ours = s.exec(select(OutboxMail.message_id).where(OutboxMail.ticket_id == ticket_id))
            return sorted({i for i in [*theirs, *ours] if i})


def _belongs(session: Any, shops: dict[str, int], ticket: Ticket, address: str) -> bool:
    """``address`` is the ticket's requester, a user of its shop, or copied on it."""
    return (
        address == ticket.requester
        or (ticket.shop_id is not None and shops.get(address) == ticket.shop_id)
        or address in _copied(session, ticket)
    )


def _readable(raw: bytes) -> str:
    """The subject and every text part of a mail, decoded."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    texts = [str(message["Subject"] or "")]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            texts.append(part.get_content())
    return "\n".join(texts)


def _copied(session: Any, ticket: Ticket) -> set[str]:
    return set(
        session.exec(
            select(Participant.email).where(
                Participant.ticket_id == ticket.id, Participant.role == ParticipantRole.CC.value
            )
        )
    )


def col_not_null(column: Any) -> Any:
    return column.is_not(None)


def test_conversations_keep_strangers_out_of_other_people_s_tickets(
    tmp_path_factory: pytest.TempPathFactory, store_url: str
) -> None:
    runs = 25 if store_url.startswith("sqlite") else 10

    class OnThisStore(Conversations):
        def __init__(self) -> None:
            super().__init__(tmp_path_factory.mktemp("conversations"), store_url)

    run_state_machine_as_test(
        OnThisStore,
        settings=settings(
            max_examples=runs,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
