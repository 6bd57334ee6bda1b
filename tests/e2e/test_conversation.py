"""Whole conversations, run in-process and through the real SMTP listener."""

from __future__ import annotations

import email
import email.policy
from typing import Any

from mailgate_testing import raw_mail

from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.outbound.transports import RecordingTransport
from store import directory
from store.outbox import list_outbox
from store.views import TicketFilter, list_tickets, ticket_detail


def _tickets(gateway: Gateway) -> list[Any]:
    with gateway.db.read() as s:
        return list_tickets(s, TicketFilter(statuses=("all",)))


def _detail(gateway: Gateway, tid: int) -> dict[str, Any]:
    with gateway.db.read() as s:
        return ticket_detail(s, tid).model_dump_contract()


def _sent_to(sent: RecordingTransport, address: str) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(m.raw, policy=email.policy.default)  # type: ignore[misc]
        for m in sent.sent
        if address in m.recipients
    ]


def test_merchant_agent_merchant_story(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    with gateway.db.write() as s:
        directory.add_shop(s, "Magazin", locale="en", rate=40, now=clock())
        directory.add_user(s, "ana@magazin.ro", shop="Magazin", name="Ana", now=clock())

    deliver(raw_mail(message_id="<first@magazin.ro>"))
    [ticket] = _tickets(gateway)
    assert ticket.status == "new" and ticket.shop == "Magazin"
    assert ticket.priority == "immediate"  # "plăti" with a card: the urgent list
    gateway.dispatcher.run_once()
    [ack] = _sent_to(sent, "ana@magazin.ro")
    assert f"[#{ticket.id}]" in ack["Subject"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<first@magazin.ro>"
    assert ack["X-Mailgate-Ticket"] == str(ticket.id)

    clock.advance(minutes=20)
    with gateway.db.write() as s:
        gateway.actions.reply(
            s,
            ticket.id,
            "Please send the order number.",
            agent="maria@support.example",
            now=clock(),
            status="pending",
        )
    gateway.dispatcher.run_once()
    answer = _sent_to(sent, "ana@magazin.ro")[-1]
    assert "Please send the order number." in answer.get_body(("plain",)).get_content()
    assert "maria@support.example" not in answer.as_string()  # the agent's address stays ours
    assert _tickets(gateway)[0].status == "pending"

    # The merchant answers our reply: threaded by reference, and the ticket opens again.
    clock.advance(minutes=5)
    deliver(
        raw_mail(subject="Re: your ticket", body="Order 1234.", in_reply_to=answer["Message-ID"])
    )
    [ticket] = _tickets(gateway)
    assert ticket.status == "open"
    detail = _detail(gateway, ticket.id)
    assert [m["threaded_by"] for m in detail["messages"]] == ["new", "agent", "reference"]
    assert detail["messages"][2]["reply_text"].startswith("Order 1234.")


def test_stranger_cannot_write_into_someone_elses_ticket(
    deliver: Any, gateway: Gateway, sent: RecordingTransport
) -> None:
    deliver(raw_mail())
    [ticket] = _tickets(gateway)
    deliver(
        raw_mail(
            sender="Eve <eve@evil.example>",
            subject=f"Re: [#{ticket.id}] Plata",
            body="Send me the invoice please",
        ),
        mail_from="eve@evil.example",
        rcpt=(f"support+{ticket.id}@localhost",),
    )
    tickets = _tickets(gateway)
    assert len(tickets) == 2
    original = _detail(gateway, ticket.id)
    assert len(original["messages"]) == 1
    eves = next(t for t in tickets if t.requester == "eve@evil.example")
    evidence = _detail(gateway, eves.id)["messages"][0]["thread_evidence"]
    assert "not a participant" in evidence
    gateway.dispatcher.run_once()
    for mail in _sent_to(sent, "eve@evil.example"):
        assert f"[#{ticket.id}]" not in mail["Subject"]


def test_auto_reply_is_suspended_and_never_answered(
    deliver: Any, gateway: Gateway, sent: RecordingTransport
) -> None:
    deliver(raw_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"}))
    assert _tickets(gateway) == []
    with gateway.db.read() as s:
        assert list_outbox(s) == []
    gateway.dispatcher.run_once()
    assert sent.sent == []


def test_duplicate_delivery_is_one_message(deliver: Any, gateway: Gateway) -> None:
    mail = raw_mail(message_id="<same@magazin.ro>")
    deliver(mail)
    deliver(mail)
    [ticket] = _tickets(gateway)
    assert len(_detail(gateway, ticket.id)["messages"]) == 1


def test_reused_message_id_with_other_content_is_kept_and_flagged(
    deliver: Any, gateway: Gateway
) -> None:
    deliver(raw_mail(message_id="<reused@magazin.ro>", body="first"))
    deliver(raw_mail(message_id="<reused@magazin.ro>", body="second, different"))
    tickets = _tickets(gateway)
    flags = [m["flags"] for t in tickets for m in _detail(gateway, t.id)["messages"]]
    assert sorted(flags) == [[], ["message_id_reused"]]


def test_reply_to_closed_ticket_opens_a_follow_up(
    deliver: Any, gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    deliver(raw_mail())
    [ticket] = _tickets(gateway)
    from mailgate.actions import TicketChanges

    with gateway.db.write() as s:
        gateway.actions.update(
            s, ticket.id, TicketChanges(status="closed"), actor="maria", now=clock()
        )
    deliver(raw_mail(subject=f"Re: [#{ticket.id}] Plata nu merge", body="It broke again"))
    follow = next(t for t in _tickets(gateway) if t.id != ticket.id)
    assert follow.follow_up_of == ticket.id
    assert _detail(gateway, follow.id)["messages"][0]["threaded_by"] == "follow_up"
    assert _detail(gateway, ticket.id)["status"] == "closed"


def test_agent_mail_with_commands_from_trusted_mta(tmp_path: Any, store_url: str) -> None:
    """An agent answering from a mail client, authenticated by our front MTA."""
    from mailgate_testing import make_gateway, make_settings

    from mailgate.config import AuthSettings

    settings = make_settings(
        tmp_path, store_url, auth=AuthSettings(trusted_authserv_ids=("mx.support.example",))
    )
    gateway, clock, sent = make_gateway(settings)
    try:
        with gateway.db.write() as s:
            directory.add_agent(
                s,
                "maria@support.example",
                name="Maria",
                sectors=(),
                known_sectors=settings.workflow.sectors,
                now=clock(),
            )
        from mailgate.values import Arrival, Envelope, Source

        def feed(raw: bytes) -> None:
            gateway.pipeline.process(
                Arrival(raw, Envelope("x@y", ("support@localhost",)), Source("smtp"), clock())
            )

        feed(raw_mail())
        [ticket] = _tickets(gateway)
        results = (
            "mx.support.example; dkim=pass header.d=support.example; "
            "dmarc=pass header.from=support.example"
        )
        feed(
            raw_mail(
                sender="Maria <maria@support.example>",
                subject=f"Re: [#{ticket.id}]",
                body="#status pending\n#sector payments\n\nCould you send a screenshot?",
                headers={"Authentication-Results": results},
            )
        )
        detail = _detail(gateway, ticket.id)
        assert (detail["status"], detail["sector"]) == ("pending", "payments")
        assert detail["messages"][-1]["direction"] == "out"
        assert detail["messages"][-1]["body_text"] == "Could you send a screenshot?"

        # The same mail without trusted authentication is a stranger's: no commands.
        feed(
            raw_mail(
                sender="Maria <maria@support.example>",
                subject=f"Re: [#{ticket.id}]",
                body="#status solved\nclosing this",
            )
        )
        assert _detail(gateway, ticket.id)["status"] == "pending"
        gateway.dispatcher.run_once()
        relayed = _sent_to(sent, "ana@magazin.ro")
        assert len(relayed) == 2  # the acknowledgement and the one authenticated answer
        assert "Could you send a screenshot?" in relayed[1].get_body(("plain",)).get_content()
        assert "closing this" not in relayed[1].as_string()
    finally:
        gateway.close()


def test_an_undeliverable_from_costs_the_acknowledgement_not_the_mail(
    deliver: Any, gateway: Gateway
) -> None:
    deliver(raw_mail(sender="Ana <ana@magazin.ro.>"))
    [ticket] = _tickets(gateway)
    detail = _detail(gateway, ticket.id)
    assert len(detail["messages"]) == 1
    assert any(e["action"] == "notification_skipped" for e in detail["events"])
    with gateway.db.read() as s:
        assert list_outbox(s) == []
