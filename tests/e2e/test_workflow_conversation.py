"""The workflow as conversations, in-process and through the real SMTP listener: a merchant
marking their ticket solved, budgets answered by mail in several languages, merged
tickets, follow-ups, agents notified and answering from their mail client, commands an
agent got wrong, and acknowledgements in peak mode."""

from __future__ import annotations

import email
import email.policy
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from mailgate_testing import make_settings, raw_mail
from sqlmodel import select

from mailgate.actions import TicketChanges
from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.config import AuthSettings, Settings
from mailgate.outbound.transports import RecordingTransport
from mailgate.values import Arrival, Envelope, Source
from store import directory
from store.enums import Status
from store.lifecycle import change_status
from store.merge import merge_tickets
from store.models import AuditEvent, Ticket
from store.sla import set_peak_mode
from store.views import TicketFilter, list_tickets, ticket_detail

MARIA = "maria@support.example"
ION = "ion@support.example"
TRUSTED = (
    "mx.support.example; dkim=pass header.d=support.example; dmarc=pass header.from=support.example"
)


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    """Settings whose front MTA (mx.support.example) authenticates the agents' mail."""
    return make_settings(
        tmp_path, store_url, auth=AuthSettings(trusted_authserv_ids=("mx.support.example",))
    )


@pytest.fixture(autouse=True)
def team(gateway: Gateway, clock: ManualClock) -> None:
    """Shop Magazin (45 EUR/h) with its user Ana; Maria watches support, Ion shipping."""
    with gateway.db.write() as s:
        directory.add_shop(s, "Magazin", locale="ro", rate=45, now=clock())
        directory.add_user(s, "ana@magazin.ro", shop="Magazin", name="Ana", now=clock())
        for agent, sector in ((MARIA, "support"), (ION, "shipping")):
            directory.add_agent(
                s,
                agent,
                name=agent.split("@")[0].title(),
                sectors=(sector,),
                known_sectors=gateway.settings.workflow.sectors,
                now=clock(),
            )


def mails_to(sent: RecordingTransport, address: str) -> list[EmailMessage]:
    found = []
    for mail in sent.sent:
        if address in mail.recipients:
            msg = email.message_from_bytes(mail.raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            found.append(msg)
    return found


def text_of(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def tickets(gateway: Gateway) -> list[Any]:
    with gateway.db.read() as s:
        return list_tickets(s, TicketFilter(statuses=("all",), sort="created"))[::-1]


def detail(gateway: Gateway, ticket_id: int) -> Any:
    with gateway.db.read() as s:
        return ticket_detail(s, ticket_id)


def first_ticket(deliver: Any, gateway: Gateway, **mail: Any) -> int:
    deliver(raw_mail(message_id="<first@magazin.ro>", **mail))
    return int(tickets(gateway)[0].id)


# --- the merchant marks their ticket solved -----------------------------------------------


@pytest.mark.parametrize("answer", ["Rezolvat!", "#solved\nMulțumesc, merge acum."])
def test_merchant_marks_the_ticket_solved_by_mail(
    deliver: Any,
    gateway: Gateway,
    clock: ManualClock,
    sent: RecordingTransport,
    answer: str,
) -> None:
    tid = first_ticket(deliver, gateway)
    with gateway.db.write() as s:
        gateway.actions.reply(
            s, tid, "Am repornit modulul de plată.", agent=MARIA, now=clock(), status="pending"
        )
    gateway.dispatcher.run_once()
    ours = mails_to(sent, "ana@magazin.ro")[-1]

    clock.advance(minutes=30)
    deliver(raw_mail(subject="Re: " + ours["Subject"], body=answer, in_reply_to=ours["Message-ID"]))
    solved = detail(gateway, tid)
    assert solved.status == "solved"  # not reopened, as an ordinary reply would be
    assert any(e.actor == "merchant:ana@magazin.ro" and e.new == "solved" for e in solved.events)

    gateway.dispatcher.run_once()
    told = mails_to(sent, MARIA)[-1]
    assert "Marked solved by the merchant" in told["Subject"]
    assert len(mails_to(sent, "ana@magazin.ro")) == 2  # the ack and our answer: no more


def test_an_ordinary_reply_to_a_pending_ticket_opens_it_again(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    tid = first_ticket(deliver, gateway)
    with gateway.db.write() as s:
        gateway.actions.reply(
            s, tid, "Ce eroare apare?", agent=MARIA, now=clock(), status="pending"
        )
    deliver(raw_mail(subject=f"Re: [#{tid}]", body="Nu este rezolvat, apare eroarea 500."))
    assert detail(gateway, tid).status == "open"
    gateway.dispatcher.run_once()
    assert "Merchant replied" in mails_to(sent, MARIA)[-1]["Subject"]


# --- development requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        ("Aprob.", "open", "approved"),  # ro
        ("Akkoord", "open", "approved"),  # nl
        ("aprovado", "open", "approved"),  # pt
        ("#approve\nProszę zaczynać.", "open", "approved"),  # pl, with the command line
        ("Resping", "closed", "rejected"),  # ro
        ("Niet akkoord", "closed", "rejected"),  # nl
        ("#reject\nToo expensive for us this year.", "closed", "rejected"),  # en
    ],
)
def test_budget_answered_by_mail(
    deliver: Any,
    gateway: Gateway,
    clock: ManualClock,
    sent: RecordingTransport,
    case: tuple[str, str, str],
) -> None:
    answer, status, budget = case
    tid = first_ticket(
        deliver,
        gateway,
        subject="Funcționalitate nouă",
        body="Vrem o funcționalitate nouă: export de comenzi în Excel.",
    )
    assert detail(gateway, tid).type == "development"
    with gateway.db.write() as s:
        gateway.workflow.development.propose_budget(s, tid, 10, agent=MARIA, now=clock())
    gateway.dispatcher.run_once()
    proposal = mails_to(sent, "ana@magazin.ro")[-1]  # in Romanian, the shop's language
    assert "Buget spre aprobare" in proposal["Subject"]
    assert "10 ore x 45.00 EUR pe oră = 450.00 EUR" in text_of(proposal)
    assert detail(gateway, tid).status == "pending"

    clock.advance(hours=2)
    deliver(
        raw_mail(
            subject="Re: " + proposal["Subject"], body=answer, in_reply_to=proposal["Message-ID"]
        )
    )
    answered = detail(gateway, tid)
    assert (answered.status, answered.budget_state) == (status, budget)
    gateway.dispatcher.run_once()
    confirmation = mails_to(sent, "ana@magazin.ro")[-1]
    word = "aprobat" if budget == "approved" else "refuzat"
    assert f"Buget {word}" in confirmation["Subject"]
    assert f"Budget {budget}" in mails_to(sent, MARIA)[-1]["Subject"]

    if budget == "approved":
        with gateway.db.write() as s:
            gateway.workflow.development.set_deadline(
                s, tid, date(2026, 12, 18), agent=MARIA, now=clock()
            )
        gateway.dispatcher.run_once()
        told = mails_to(sent, "ana@magazin.ro")[-1]
        assert "2026-12-18" in told["Subject"] and "2026-12-18" in text_of(told)
        scheduled = detail(gateway, tid)
        assert (scheduled.status, scheduled.standby_reason) == ("on_hold", "deadline_set")


def test_approving_without_a_budget_is_an_ordinary_reply(
    deliver: Any, gateway: Gateway, clock: ManualClock
) -> None:
    tid = first_ticket(deliver, gateway)
    with gateway.db.write() as s:
        gateway.actions.reply(s, tid, "Putem continua?", agent=MARIA, now=clock(), status="pending")
    deliver(raw_mail(subject=f"Re: [#{tid}]", body="Aprob"))
    answered = detail(gateway, tid)
    assert (answered.status, answered.budget_state) == ("open", None)


def test_a_budget_answer_its_domain_disowns_decides_nothing(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    """Anyone can put the merchant's address in From: an approval that fails DMARC for
    magazin.ro is a reply for the agents to check, not a decision."""
    tid = first_ticket(deliver, gateway, subject="Funcționalitate nouă", body="Vrem export Excel.")
    with gateway.db.write() as s:
        gateway.workflow.development.propose_budget(s, tid, 10, agent=MARIA, now=clock())
    gateway.dispatcher.run_once()
    proposal = mails_to(sent, "ana@magazin.ro")[-1]
    forged = "mx.support.example; dkim=none; dmarc=fail header.from=magazin.ro"
    deliver(
        raw_mail(
            subject="Re: " + proposal["Subject"],
            body="#approve",
            in_reply_to=proposal["Message-ID"],
            headers={"Authentication-Results": forged},
        )
    )
    answered = detail(gateway, tid)
    assert (answered.status, answered.budget_state) == ("open", "proposed")
    refused = [e for e in answered.events if e.action == "merchant_command_refused"]
    assert refused and "#approve" in refused[0].detail
    gateway.dispatcher.run_once()
    assert "NOT applied" in mails_to(sent, MARIA)[-1]["Subject"]
    assert not any("Buget aprobat" in m["Subject"] for m in mails_to(sent, "ana@magazin.ro"))


# --- merging and follow-ups ---------------------------------------------------------------


def test_a_reply_to_a_merged_ticket_lands_in_the_target(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    target = first_ticket(deliver, gateway)
    deliver(raw_mail(subject="Plata nu merge (din nou)", body="Tot nu pot plăti."))
    duplicate = max(t.id for t in tickets(gateway))
    with gateway.db.write() as s:
        merge_tickets(s, duplicate, target, actor=MARIA, now=clock(), sla=gateway.sla)
    deliver(raw_mail(subject=f"Re: [#{duplicate}] Plata", body="Am atașat captura."))
    merged = detail(gateway, target)
    assert len(merged.messages) == 3
    assert "was merged into" in merged.messages[-1].thread_evidence
    assert detail(gateway, duplicate).messages == []
    assert (detail(gateway, duplicate).merged_into, detail(gateway, duplicate).status) == (
        target,
        "closed",
    )


def test_the_acknowledgement_of_a_follow_up_names_the_closed_ticket(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    old = first_ticket(deliver, gateway)
    with gateway.db.write() as s:
        t = s.get(Ticket, old)
        assert t is not None
        change_status(s, t, Status.CLOSED, actor=MARIA, now=clock())
    deliver(raw_mail(subject=f"Re: [#{old}] Plata nu merge", body="S-a stricat iar."))
    follow = max(t.id for t in tickets(gateway))
    assert detail(gateway, follow).follow_up_of == old
    gateway.dispatcher.run_once()
    ack = mails_to(sent, "ana@magazin.ro")[-1]
    assert f"[#{follow}]" in ack["Subject"]
    assert f"continuare a solicitării #{old}" in ack["Subject"]
    assert f"în continuarea solicitării #{old}" in text_of(ack)
    html = ack.get_body(("html",))
    assert html is not None and f"în continuarea solicitării #{old}" in str(html.get_content())


# --- agents from their mail client --------------------------------------------------------


def test_agent_is_notified_and_answers_from_the_mail_client(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    tid = first_ticket(deliver, gateway)
    gateway.dispatcher.run_once()
    [notice] = mails_to(sent, MARIA)
    assert mails_to(sent, ION) == []  # shipping is not where new tickets wait
    assert notice["Reply-To"] == f"support+{tid}@localhost"
    assert notice["In-Reply-To"] == "<first@magazin.ro>"
    assert f"[#{tid}]" in notice["Subject"] and "immediate" in notice["Subject"]
    body = text_of(notice)
    assert "Clienții nu pot plăti cu cardul." in body and "Triage suggests sector payments" in body

    clock.advance(minutes=12)
    answer = (
        "#time 15\n"
        "#priority high\n"
        "\n"
        "Bună ziua, am verificat: plata merge din nou.\n"
        "\n"
        "-- \n"
        "Maria Ionescu\n"
        "Echipa de suport\n"
        "\n"
        "On Mon, 23 Nov 2026 at 09:00, Support <support@localhost> wrote:\n"
        "> Clienții nu pot plăti cu cardul.\n"
    )
    deliver(
        raw_mail(
            sender="Maria Ionescu <maria@support.example>",
            to=notice["Reply-To"],
            subject="Re: " + notice["Subject"],
            body=answer,
            in_reply_to=notice["Message-ID"],
            headers={"Authentication-Results": TRUSTED},
        ),
        mail_from=MARIA,
        rcpt=(f"support+{tid}@localhost",),
    )
    worked = detail(gateway, tid)
    assert worked.messages[-1].direction == "out"
    assert worked.messages[-1].body_text == "Bună ziua, am verificat: plata merge din nou."
    assert (worked.priority, worked.status, worked.time_spent_minutes) == ("high", "open", 15)

    gateway.dispatcher.run_once()
    relayed = mails_to(sent, "ana@magazin.ro")[-1]
    text = text_of(relayed)
    assert "plata merge din nou" in text
    for hidden in ("Maria Ionescu", "Echipa de suport", "maria@support.example", "> Clien"):
        assert hidden not in relayed.as_string(), hidden
    assert relayed["From"] == "Support <support@localhost>"

    # The merchant answers; Maria hears of it, threaded under the ticket.
    deliver(
        raw_mail(
            subject="Re: " + relayed["Subject"],
            body="Mulțumesc, confirm.",
            in_reply_to=relayed["Message-ID"],
        )
    )
    gateway.dispatcher.run_once()
    news = mails_to(sent, MARIA)[-1]
    assert "Merchant replied" in news["Subject"] and "Mulțumesc, confirm." in text_of(news)


@pytest.mark.parametrize(
    "case",
    [
        ("#frobnicate now", "unknown command '#frobnicate now'"),
        ("#status pendig", "unknown status 'pendig'"),
        ("#status on_hold", "on_hold needs a reason"),
        ("#time soon", "whole minutes"),
    ],
)
def test_a_bad_command_is_answered_to_the_agent_and_never_relayed(
    deliver: Any,
    gateway: Gateway,
    clock: ManualClock,
    sent: RecordingTransport,
    case: tuple[str, str],
) -> None:
    commands, reason = case
    tid = first_ticket(deliver, gateway)
    gateway.dispatcher.run_once()
    merchant_mails = len(mails_to(sent, "ana@magazin.ro"))
    deliver(
        raw_mail(
            sender="Maria <maria@support.example>",
            subject=f"Re: [#{tid}] Plata nu merge",
            body=f"{commands}\n#priority low\n\nVă rog să reîncercați.",
            headers={"Authentication-Results": TRUSTED},
        ),
        mail_from=MARIA,
    )
    kept = detail(gateway, tid)
    assert kept.messages[-1].direction == "note" and reason in kept.messages[-1].body_text
    assert (kept.status, kept.priority) == ("new", "immediate")  # nothing applied
    gateway.dispatcher.run_once()
    assert len(mails_to(sent, "ana@magazin.ro")) == merchant_mails  # nothing relayed
    error = mails_to(sent, MARIA)[-1]
    assert "was not sent to the merchant" in error["Subject"]
    assert reason in text_of(error)


@pytest.mark.parametrize("way", ["plus", "tag"])
def test_an_agent_s_answer_to_a_closed_ticket_is_kept_as_a_note_not_a_follow_up(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport, way: str
) -> None:
    """It opened a follow-up ticket with the agent as its requester: the agent got an
    acknowledgement in Romanian, their commands were read as a merchant's text, and the
    merchant heard nothing. Closed tickets are final, as for ``tickets reply``."""
    tid = first_ticket(deliver, gateway)
    with gateway.db.write() as s:
        gateway.actions.update(s, tid, TicketChanges(status="closed"), actor=MARIA, now=clock())
    gateway.dispatcher.run_once()
    merchant_mails = len(mails_to(sent, "ana@magazin.ro"))
    to = f"support+{tid}@localhost" if way == "plus" else "support@localhost"
    deliver(
        raw_mail(
            sender=f"Maria <{MARIA}>",
            to=to,
            subject="Plata" if way == "plus" else f"Re: [#{tid}] Plata nu merge",
            body="#priority low\n\nAm uitat să vă spun ceva.",
            headers={"Authentication-Results": TRUSTED},
        ),
        mail_from=MARIA,
        rcpt=(to,),
    )
    assert [t.id for t in tickets(gateway)] == [tid]  # no follow-up
    kept = detail(gateway, tid)
    assert (kept.status, kept.priority) == ("closed", "immediate")
    assert kept.messages[-1].direction == "note"
    assert f"ticket #{tid} is closed" in kept.messages[-1].body_text
    assert "Am uitat să vă spun ceva." in kept.messages[-1].body_text
    gateway.dispatcher.run_once()
    assert len(mails_to(sent, "ana@magazin.ro")) == merchant_mails
    error = mails_to(sent, MARIA)[-1]
    assert "was not sent to the merchant" in error["Subject"]
    assert f"ticket #{tid} is closed" in text_of(error)


def test_a_command_refused_when_applied_undoes_the_others_and_their_events(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    """The commands run in a savepoint: the priority set before the refused status change
    is taken back, and so is its audit event, though the batch holds such rows to its end."""
    tid = first_ticket(deliver, gateway)

    def by_maria(body: str) -> None:
        clock.advance(minutes=1)
        deliver(
            raw_mail(
                sender="Maria <maria@support.example>",
                subject=f"Re: [#{tid}] Plata nu merge",
                body=body,
                headers={"Authentication-Results": TRUSTED},
            ),
            mail_from=MARIA,
        )

    by_maria("#status solved\n")
    gateway.dispatcher.run_once()
    merchant_mails = len(mails_to(sent, "ana@magazin.ro"))
    # In one batch: a stranger's new request (its rows held for the batch's end), then
    # Maria's commands, the second of which is refused.
    clock.advance(minutes=1)
    batch = [
        gateway.pipeline.prepare(
            Arrival(raw, Envelope(sender, ("support@localhost",)), Source("pipe"), clock())
        )
        for raw, sender in (
            (
                raw_mail(
                    sender="Ion <ion@alt.example>",
                    subject="Altceva",
                    message_id="<alt@alt.example>",
                ),
                "ion@alt.example",
            ),
            (
                raw_mail(
                    sender="Maria <maria@support.example>",
                    subject=f"Re: [#{tid}] Plata nu merge",
                    body="#priority low\n#status pending\n\nRevin mâine.",
                    headers={"Authentication-Results": TRUSTED},
                ),
                MARIA,
            ),
        )
    ]
    stranger, maria = gateway.pipeline.commit(batch)
    assert (stranger.kind, maria.kind, maria.reason) == (
        "ticket_created",
        "message_added",
        "bad_command",
    )
    assert stranger.ticket_id is not None
    assert [e.action for e in detail(gateway, stranger.ticket_id).events][:1] == ["created"]
    kept = detail(gateway, tid)
    assert (kept.status, kept.priority) == ("solved", "immediate")
    assert [e for e in kept.events if e.field == "priority"] == []
    assert [e.new for e in kept.events if e.field == "status"] == ["solved"]
    assert kept.messages[-1].direction == "note"
    assert "Commands not understood" in kept.messages[-1].body_text
    gateway.dispatcher.run_once()
    assert len(mails_to(sent, "ana@magazin.ro")) == merchant_mails  # nothing relayed
    assert len(mails_to(sent, "ion@alt.example")) == 1  # the stranger's acknowledgement


def test_the_acknowledgement_in_peak_mode_says_answers_are_slower(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    with gateway.db.write() as s:
        set_peak_mode(s, True, actor="admin", now=clock(), policy=gateway.sla)
    tid = first_ticket(deliver, gateway, subject="Logo", body="Cum schimb logo-ul?")
    gateway.dispatcher.run_once()
    ack = mails_to(sent, "ana@magazin.ro")[-1]
    assert ack["Content-Language"] == "ro"
    assert "mai greu decât de obicei" in text_of(ack)  # "slower than usual"
    assert detail(gateway, tid).due_at is None  # a normal ticket has no clock in peak mode
    with gateway.db.read() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "peak")).all()
    assert [e.new for e in events] == ["on"]


def test_a_colleague_who_writes_into_the_ticket_hears_the_answer_too(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    """Dan, of Ana's shop, may write into her ticket; the answer went to Ana alone, so the
    one who asked the last question never heard it. He is copied from then on."""
    with gateway.db.write() as s:
        directory.add_user(s, "dan@magazin.ro", shop="Magazin", name="Dan", now=clock())
    tid = first_ticket(deliver, gateway)
    deliver(
        raw_mail(
            sender="Dan <dan@magazin.ro>",
            subject=f"Re: [#{tid}] Plata nu merge",
            body="Și pe mobil apare aceeași eroare.",
        ),
        mail_from="dan@magazin.ro",
    )
    assert detail(gateway, tid).messages[-1].from_ == "dan@magazin.ro"
    with gateway.db.write() as s:
        gateway.actions.reply(s, tid, "Am rezolvat pe ambele.", agent=MARIA, now=clock())
    gateway.dispatcher.run_once()
    [answer] = [m for m in mails_to(sent, "dan@magazin.ro") if "ambele" in text_of(m)]
    assert answer["To"] == "Ana <ana@magazin.ro>" or "ana@magazin.ro" in answer["To"]
    assert "dan@magazin.ro" in str(answer["Cc"])


# --- who a ticket is assigned to ------------------------------------------------------


def by_agent(deliver: Any, agent: str, tid: int, body: str) -> None:
    deliver(
        raw_mail(
            sender=f"{agent.partition('@')[0].title()} <{agent}>",
            subject=f"Re: [#{tid}] Plata nu merge",
            body=body,
            headers={"Authentication-Results": TRUSTED},
        ),
        mail_from=agent,
    )


def merchant_replies(deliver: Any, tid: int, body: str) -> None:
    deliver(raw_mail(subject=f"Re: [#{tid}] Plata nu merge", body=body))


def test_assign_by_first_name_reaches_that_agent_and_none_gives_the_ticket_back(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    """``#assign ion`` (DESIGN's ``#assign ana``) names Ion by the start of his address:
    the ticket is his, and he hears of the merchant's next reply though shipping is not
    its sector; ``#assign none`` gives it back to its sector."""
    tid = first_ticket(deliver, gateway)
    by_agent(deliver, MARIA, tid, "#assign ion\n")
    kept = detail(gateway, tid)
    assert kept.assignee == ION
    assert kept.messages[-1].body_text == f"Commands: assignee: None -> {ION}"
    gateway.dispatcher.run_once()
    before = len(mails_to(sent, ION))
    merchant_replies(deliver, tid, "Tot nu merge.")
    gateway.dispatcher.run_once()
    assert len(mails_to(sent, ION)) == before + 1
    assert "Tot nu merge." in text_of(mails_to(sent, ION)[-1])

    by_agent(deliver, MARIA, tid, "#assign none\n")
    assert detail(gateway, tid).assignee is None
    merchant_replies(deliver, tid, "Acum merge.")
    gateway.dispatcher.run_once()
    assert len(mails_to(sent, ION)) == before + 1  # no longer his
    assert [(e.old, e.new) for e in detail(gateway, tid).events if e.field == "assignee"] == [
        (None, ION),
        (ION, None),
    ]


def test_an_assignee_who_is_no_agent_is_kept_but_sent_nothing(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    """A mistyped address must not receive the merchant's replies: the assignee is kept
    as written (the agent sees the remark), and only active agents are ever written to."""
    tid = first_ticket(deliver, gateway)
    by_agent(deliver, MARIA, tid, "#assign ion@suport.example\n")
    kept = detail(gateway, tid)
    assert kept.assignee == "ion@suport.example"
    assert "(not an active agent: sent no mail)" in kept.messages[-1].body_text
    merchant_replies(deliver, tid, "Tot nu merge.")
    gateway.dispatcher.run_once()
    assert mails_to(sent, "ion@suport.example") == []
    assert "Tot nu merge." in text_of(mails_to(sent, MARIA)[-1])  # its sector still hears


def test_an_agent_deactivated_is_sent_nothing_and_their_tickets_are_unassigned(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    tid = first_ticket(deliver, gateway)
    by_agent(deliver, MARIA, tid, f"#assign {ION}\n")
    clock.advance(minutes=5)
    with gateway.db.write() as s:
        assert directory.set_agent_active(s, ION, False, actor="admin", now=clock()) == 1
    kept = detail(gateway, tid)
    assert kept.assignee is None
    assert [(e.actor, e.old, e.new) for e in kept.events if e.field == "assignee"][-1] == (
        "admin",
        ION,
        None,
    )
    gateway.dispatcher.run_once()
    before = len(mails_to(sent, ION))
    with gateway.db.write() as s:  # assigned again behind the directory's back
        ticket = s.get(Ticket, tid)
        assert ticket is not None
        ticket.assignee = ION
        s.add(ticket)
    merchant_replies(deliver, tid, "Tot nu merge.")
    by_agent(deliver, ION, tid, "#priority low\n")  # his mail is a stranger's now
    gateway.dispatcher.run_once()
    assert len(mails_to(sent, ION)) == before + 1  # only the reply to a stranger's mail
    assert "Merchant replied" not in mails_to(sent, ION)[-1]["Subject"]
    assert detail(gateway, tid).priority == "immediate"
    with gateway.db.write() as s:
        assert directory.set_agent_active(s, ION, True, actor="admin", now=clock()) == 0
    by_agent(deliver, MARIA, tid, "#assign ion\n")
    assert detail(gateway, tid).assignee == ION


@pytest.mark.parametrize(
    "case",
    [
        ("#assign maria", "'maria' fits 2 agents (maria.pop@support.example, maria@support"),
        ("#assign " + "x" * 400, "an assignee is at most 320 characters"),
    ],
)
def test_an_assignee_that_fits_several_agents_or_is_too_long_is_refused(
    deliver: Any,
    gateway: Gateway,
    clock: ManualClock,
    sent: RecordingTransport,
    case: tuple[str, str],
) -> None:
    command, reason = case
    with gateway.db.write() as s:
        directory.add_agent(
            s,
            "maria.pop@support.example",
            name="Maria Pop",
            sectors=(),
            known_sectors=gateway.settings.workflow.sectors,
            now=clock(),
        )
    tid = first_ticket(deliver, gateway)
    by_agent(deliver, ION, tid, f"{command}\n#priority low\n")
    kept = detail(gateway, tid)
    assert (kept.assignee, kept.priority) == (None, "immediate")
    assert "Commands not understood" in kept.messages[-1].body_text
    assert reason in kept.messages[-1].body_text
