"""The security suite: attacks on trust, each delivered through the real SMTP listener.

Every case runs against a gateway whose store is SQLite or PostgreSQL, whose DKIM keys
are made in this test run and published by a real DNS server on 127.0.0.1, and whose
outbox is sent by the dispatcher to a recording transport. Each case checks what became
of the tickets AND what was (or was not) mailed to whom.

The world every case starts from: shop Magazin (ana@ and ion@magazin.example, whose
domain signs with DKIM and publishes DMARC p=reject), shop Winkel (jan@winkel.example,
DKIM with strict alignment), shop Nodkim (maria@nodkim.example, a domain that signs
nothing), the agent agent@support.example (DKIM), and an attacker at evil.example, who
has DKIM keys of their own. Ticket #1 is Ana's, ticket #2 Jan's, both verified; both
acknowledgements have been sent.
"""

from __future__ import annotations

import base64
import email
import email.policy
import smtplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from dkim_support import SigningKey, shared_key, sign
from dns_server import LoopbackDns
from mailgate_testing import make_gateway, make_settings, raw_mail, running_listener
from sqlmodel import select

from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.config import AuthSettings
from mailgate.errors import IdentityNotConfirmed
from mailgate.outbound.transports import RecordingTransport
from store import directory
from store.models import AuditEvent, SuspendedMail
from store.views import TicketFilter, list_tickets, ticket_detail

MX = "mx.mailgate.test"  # our front MTA's authserv-id
DOMAINS = ("magazin.example", "winkel.example", "support.example", "evil.example")
KEYS: dict[str, SigningKey] = {d: shared_key(d) for d in DOMAINS}
SUPPORT = "support@localhost"
ANA, ION, JAN, MARIA = (
    "ana@magazin.example",
    "ion@magazin.example",
    "jan@winkel.example",
    "maria@nodkim.example",
)
AGENT, EVE = "agent@support.example", "eve@evil.example"


def signed(raw: bytes, domain: str, **options: Any) -> bytes:
    """``raw`` signed for ``domain`` with the key published for it (a ``mail.`` subdomain
    uses its parent's key)."""
    key = KEYS[domain.removeprefix("mail.")]
    return sign(raw, domain=domain, key=key, **options)


def mail(sender: str, subject: str, body: str = "Bună ziua,\nO întrebare.\n", **kw: Any) -> bytes:
    return raw_mail(sender=sender, subject=subject, body=body, **kw)


@dataclass(frozen=True)
class Sent:
    """One mail handed to the relay: the message, and its envelope recipients."""

    message: EmailMessage
    to: frozenset[str]

    def __getitem__(self, name: str) -> Any:
        return self.message[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.message.get(name, default)

    def get_all(self, name: str) -> Any:
        return self.message.get_all(name)

    def as_string(self) -> str:
        return self.message.as_string()


@dataclass
class World:
    gateway: Gateway
    clock: ManualClock
    transport: RecordingTransport
    dns: LoopbackDns
    host: str
    port: int
    first_mail: bytes = b""  # Ana's signed mail that opened #1, as delivered
    ack_ids: dict[int, str] = field(default_factory=dict)  # our Message-ID of each ack
    _seen: int = 0

    def send(
        self,
        raw: bytes,
        *,
        mail_from: str = "sender@example.net",
        rcpt: tuple[str, ...] = (SUPPORT,),
    ) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=30) as client:
            client.sendmail(mail_from, list(rcpt), raw)

    def sent(self) -> list[Sent]:
        """What the dispatcher hands to the relay now (mails sent since the last call)."""
        self.gateway.dispatcher.run_once()
        new = self.transport.sent[self._seen :]
        self._seen = len(self.transport.sent)
        out = []
        for item in new:
            message = email.message_from_bytes(item.raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            out.append(Sent(message, frozenset(item.recipients)))
        return out

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        with self.gateway.db.read() as s:
            return ticket_detail(s, ticket_id).model_dump_contract()

    def ticket_count(self) -> int:
        with self.gateway.db.read() as s:
            return len(list_tickets(s, TicketFilter(statuses=("all",), limit=1000)))

    def newest(self) -> dict[str, Any]:
        with self.gateway.db.read() as s:
            newest = max(t.id for t in list_tickets(s, TicketFilter(statuses=("all",), limit=1000)))
        return self.ticket(newest)

    def suspended(self) -> list[SuspendedMail]:
        with self.gateway.db.read() as s:
            return list(s.exec(select(SuspendedMail).order_by(SuspendedMail.id)))  # type: ignore[arg-type]

    def events(self, action: str) -> list[AuditEvent]:
        with self.gateway.db.read() as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)))


def recipients(sent: Sent) -> set[str]:
    return set(sent.to)


def text_of(sent: Sent) -> str:
    body = sent.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def only_mail_to(world: World, address: str) -> Sent:
    sent = world.sent()
    assert [recipients(m) for m in sent] == [{address}], [m["Subject"] for m in sent]
    return sent[0]


@pytest.fixture
def world(tmp_path: Path, store_url: str, dns: LoopbackDns) -> Iterator[World]:
    """The shops, the agent, DNS with their keys and policies, tickets #1 and #2."""
    for domain in ("magazin.example", "winkel.example", "support.example", "evil.example"):
        dns.publish(f"mail._domainkey.{domain}", KEYS[domain].record())
    dns.publish("mail._domainkey.mail.winkel.example", KEYS["winkel.example"].record())
    dns.publish("_dmarc.magazin.example", "v=DMARC1; p=reject")
    dns.publish("_dmarc.winkel.example", "v=DMARC1; p=reject; adkim=s")
    dns.publish("_dmarc.support.example", "v=DMARC1; p=reject")
    settings = make_settings(
        tmp_path,
        store_url,
        auth=AuthSettings(trusted_authserv_ids=(MX,), dns_resolver=dns.address, dns_timeout=2.0),
    )
    gateway, clock, transport = make_gateway(settings)
    with gateway.db.write() as s:
        for shop in ("Magazin", "Winkel", "Nodkim"):
            directory.add_shop(s, shop, locale="en", rate=50, now=clock())
        for user, shop in ((ANA, "Magazin"), (ION, "Magazin"), (JAN, "Winkel"), (MARIA, "Nodkim")):
            directory.add_user(s, user, shop=shop, name="", now=clock())
        directory.add_agent(
            s, AGENT, name="Agent", sectors=(), known_sectors=settings.workflow.sectors, now=clock()
        )
    try:
        with running_listener(gateway) as (host, port):
            w = World(gateway, clock, transport, dns, host, port)
            w.first_mail = signed(
                mail(ANA, "Livrare întârziată", "Coletul nu a ajuns.\n"), "magazin.example"
            )
            w.send(w.first_mail)
            w.send(
                signed(
                    mail(JAN, "Verzending vertraagd", "Pakket niet aangekomen.\n"), "winkel.example"
                )
            )
            for ack in w.sent():
                w.ack_ids[int(str(ack["X-Mailgate-Ticket"]))] = str(ack["Message-ID"]).strip("<>")
            assert (w.ticket(1)["verified"], w.ticket(2)["verified"]) == (True, True)
            assert sorted(w.ack_ids) == [1, 2]
            yield w
    finally:
        gateway.close()


# --- the table ---------------------------------------------------------------------------------

Case = Callable[[World], None]
CASES: list[Case] = []


def case(fn: Case) -> Case:
    CASES.append(fn)
    return fn


# authentication ---------------------------------------------------------------------------------


@case
def signed_mail_of_a_registered_user_is_verified(w: World) -> None:
    w.send(signed(mail(ANA, "Stoc greșit"), "magazin.example"))
    t = w.newest()
    assert (t["id"], t["verified"], t["verified_by"], t["shop"]) == (3, True, "dkim", "Magazin")
    assert t["messages"][0]["auth"]["dkim"] == "pass"
    assert "[#3]" in only_mail_to(w, ANA)["Subject"]


@case
def unsigned_mail_of_a_registered_user_is_not_verified(w: World) -> None:
    w.send(mail(ANA, "Stoc greșit"))
    t = w.newest()
    assert (t["verified"], t["verified_by"], t["shop"]) == (False, None, "Magazin")
    assert t["messages"][0]["auth"]["dmarc"] == "fail"  # the domain says it signs its mail
    only_mail_to(w, ANA)  # an ordinary request: acknowledged


@case
def tampered_body_is_not_verified(w: World) -> None:
    raw = signed(mail(ANA, "Stoc", "Vă rog verificați stocul.\n"), "magazin.example")
    w.send(raw.replace(b"verifica", b"stergeti "))
    t = w.newest()
    assert not t["verified"] and t["messages"][0]["auth"]["dkim"] == "fail"
    only_mail_to(w, ANA)


@case
def misaligned_signature_is_not_verified(w: World) -> None:
    w.send(signed(mail(ANA, "Stoc"), "evil.example"))
    t = w.newest()
    assert not t["verified"] and t["messages"][0]["auth"]["dkim"] == "none"
    assert "d=evil.example s=mail: unaligned" in t["messages"][0]["auth"]["signatures"]
    only_mail_to(w, ANA)


@case
def strict_alignment_refuses_a_subdomain_signature(w: World) -> None:
    w.send(signed(mail(JAN, "Voorraad"), "mail.winkel.example"))
    t = w.newest()
    assert (t["shop"], t["verified"]) == ("Winkel", False)
    only_mail_to(w, JAN)


@case
def every_signature_is_tried_until_an_aligned_one_passes(w: World) -> None:
    w.send(signed(signed(mail(ANA, "Stoc"), "magazin.example"), "evil.example"))
    assert (w.newest()["verified"], w.newest()["verified_by"]) == (True, "dkim")
    only_mail_to(w, ANA)


@case
def a_dns_outage_is_never_a_pass(w: World) -> None:
    # A key not looked up before: an answer already cached would rightly be used for its TTL.
    w.dns.publish("outage._domainkey.magazin.example", KEYS["magazin.example"].record())
    w.dns.fail("outage._domainkey.magazin.example")
    raw = mail(ANA, "Schimbare IBAN", "Noul IBAN este RO49AAAA.\n")
    w.send(signed(raw, "magazin.example", selector="outage"))
    t = w.newest()
    assert (t["verified"], t["confidential"]) == (False, True)
    assert t["messages"][0]["auth"]["dkim"] == "temperror"
    notice = only_mail_to(w, ANA)  # held: told to write again, no confirmation token
    assert "registered address" in notice["Subject"] and notice["Reply-To"] is None


@case
def trusted_authentication_results_verify(w: World) -> None:
    results = f"{MX}; dkim=pass header.d=magazin.example; dmarc=pass header.from=magazin.example"
    w.send(f"Authentication-Results: {results}\r\n".encode() + mail(ANA, "Stoc"))
    assert (w.newest()["verified"], w.newest()["verified_by"]) == (True, "trusted_mta")
    only_mail_to(w, ANA)


@case
def authentication_results_of_another_host_are_ignored(w: World) -> None:
    results = "mx.evil.example; dkim=pass header.d=magazin.example; dmarc=pass"
    w.send(f"Authentication-Results: {results}\r\n".encode() + mail(ANA, "Stoc"))
    assert not w.newest()["verified"]
    only_mail_to(w, ANA)


@case
def our_hosts_id_below_its_own_header_was_forged(w: World) -> None:
    ours = f"Authentication-Results: {MX}; dkim=none; dmarc=fail header.from=magazin.example\r\n"
    forged = f"Authentication-Results: {MX}; dkim=pass header.d=magazin.example; dmarc=pass\r\n"
    w.send(ours.encode() + forged.encode() + mail(ANA, "Stoc"))
    assert not w.newest()["verified"]
    only_mail_to(w, ANA)


@case
def two_from_headers_match_nobody(w: World) -> None:
    raw = signed(mail(ANA, "Password change", "A new password, please.\n"), "magazin.example")
    w.send(b"From: Eve <eve@evil.example>\r\n" + raw)
    t = w.newest()
    assert (t["shop"], t["verified"], t["confidential"]) == (None, False, True)
    notice = only_mail_to(w, t["requester"])
    assert "not registered with us" in text_of(notice)


@case
def an_encoded_word_inside_the_address_matches_nobody(w: World) -> None:
    raw = mail("Ana <ana@magazin.example>", "Stoc").replace(
        b"<ana@magazin.example>", b"<=?utf-8?q?ana?=@magazin.example>"
    )
    w.send(signed(raw, "magazin.example"))
    assert_suspended_silently(w, "unusable_sender")


@case
def a_from_the_parser_had_to_repair_matches_nobody(w: World) -> None:
    raw = mail("Ana <ana@magazin.example>", "Stoc").replace(
        b"From: Ana <ana@magazin.example>", b"From: ana@magazin.example <eve@evil.example>"
    )
    w.send(raw)
    t = w.newest()
    assert (t["requester"], t["shop"], t["verified"]) == (EVE, None, False)
    only_mail_to(w, EVE)


@case
def text_past_a_signed_length_is_not_shown_as_the_senders(w: World) -> None:
    raw = signed(mail(ANA, "Întrebare", "Cum export comenzile?\n"), "magazin.example", length=True)
    w.send(raw + b"PS: please change our IBAN to RO49EVIL0000000000000000\n")
    t = w.newest()
    assert (t["verified"], t["confidential"]) == (True, False)
    message = t["messages"][0]
    assert "EVIL" not in message["body_text"] and "export comenzile" in message["body_text"]
    assert "unsigned_text_dropped" in message["flags"]
    assert "IBAN" not in w.ticket(t["id"])["subject"]
    only_mail_to(w, ANA)


# hijacking -----------------------------------------------------------------------------------


def assert_untouched(w: World, ticket_id: int, messages: int = 1) -> None:
    t = w.ticket(ticket_id)
    assert len(t["messages"]) == messages and t["status"] == "new"


def assert_nothing_about(message: Sent, ticket_id: int) -> None:
    """No content of another ticket in a mail: neither its number nor its subject."""
    other = ("Livrare", "Coletul") if ticket_id == 1 else ("Verzending", "Pakket")
    text = f"{message['Subject']}\n{text_of(message)}"
    assert f"#{ticket_id}]" not in text and f"#{ticket_id} " not in text
    assert not any(word in text for word in other)


@case
def a_stranger_guessing_a_ticket_number_gets_a_ticket_of_their_own(w: World) -> None:
    w.send(mail(EVE, "Re: [#1] order status", "Send me the details of this order."))
    t = w.newest()
    assert (t["id"], t["requester"], t["messages"][0]["threaded_by"]) == (3, EVE, "new")
    assert "not a participant of #1" in t["messages"][0]["thread_evidence"]
    assert_untouched(w, 1)
    assert_nothing_about(only_mail_to(w, EVE), 1)


@case
def a_stranger_writing_to_a_tickets_plus_address_gets_a_ticket_of_their_own(w: World) -> None:
    w.send(mail(EVE, "hello", to="support+1@localhost"), rcpt=("support+1@localhost",))
    assert (w.newest()["id"], w.newest()["requester"]) == (3, EVE)
    assert_untouched(w, 1)
    assert_nothing_about(only_mail_to(w, EVE), 1)


@case
def a_stranger_copying_references_gets_a_ticket_of_their_own(w: World) -> None:
    raw = mail(EVE, "Re: your ticket", in_reply_to=f"<{w.ack_ids[1]}>")
    w.send(raw)
    assert (w.newest()["id"], w.newest()["requester"]) == (3, EVE)
    assert_untouched(w, 1)
    assert_nothing_about(only_mail_to(w, EVE), 1)


@case
def a_forged_mg_message_id_threads_nothing(w: World) -> None:
    forged = "mg.1.0123456789ab.0123456789abcdef@localhost"
    w.send(mail(ANA, "Re: colet", "Any news?", in_reply_to=f"<{forged}>"))
    t = w.newest()
    assert (t["id"], t["requester"]) == (3, ANA)
    assert_untouched(w, 1)
    only_mail_to(w, ANA)


@case
def our_genuine_message_id_threads_the_requester(w: World) -> None:
    w.send(mail(ANA, "Re: colet", "Any news?", in_reply_to=f"<{w.ack_ids[1]}>"))
    assert w.ticket_count() == 2
    message = w.ticket(1)["messages"][-1]
    assert (message["threaded_by"], message["reply_text"]) == ("reference", "Any news?")
    assert w.sent() == []  # a merchant's reply is not acknowledged


@case
def our_signed_message_id_threads_by_its_hmac_alone(w: World) -> None:
    """A reference to a notification the store no longer holds (or another gateway sent
    with the same secret) still threads: the HMAC, not a table, says it is ours."""
    ours = w.gateway.composer.new_message_id(1)
    w.send(mail(ANA, "Re: colet", "Still waiting.", in_reply_to=f"<{ours}>"))
    message = w.ticket(1)["messages"][-1]
    assert (
        message["threaded_by"] == "reference"
        and "our signed reference" in message["thread_evidence"]
    )
    assert w.sent() == []


@case
def a_replayed_signed_mail_is_a_duplicate_wherever_it_is_sent(w: World) -> None:
    w.send(w.first_mail, rcpt=("support+2@localhost",))
    assert w.ticket_count() == 2
    assert_untouched(w, 2)
    assert_untouched(w, 1)
    assert w.sent() == []


@case
def a_signed_mail_cannot_be_steered_by_the_envelope(w: World) -> None:
    """Eve got a signed mail of Ana's about #1 and delivers it for Jan's ticket #2."""
    w.send(
        signed(mail(ANA, "Re: [#1] Livrare", "Mulțumesc"), "magazin.example"),
        rcpt=("support+2@localhost",),
    )
    assert w.ticket(1)["messages"][-1]["threaded_by"] == "tag"
    assert_untouched(w, 2)
    assert w.sent() == []


@case
def a_user_of_another_shop_cannot_write_into_a_ticket(w: World) -> None:
    w.send(signed(mail(JAN, "Re: [#1] order", "Ik kijk mee."), "winkel.example"))
    t = w.newest()
    assert (t["id"], t["requester"], t["verified"]) == (3, JAN, True)
    assert_untouched(w, 1)
    assert_nothing_about(only_mail_to(w, JAN), 1)


@case
def a_colleague_from_the_same_shop_may_write(w: World) -> None:
    w.send(mail(ION, "Re: [#1] Livrare", "Am și eu aceeași problemă."))
    message = w.ticket(1)["messages"][-1]
    assert (message["from"], message["thread_evidence"]) == (
        ION,
        "tag [#1] in subject (user of the same shop)",
    )
    assert w.sent() == []


# agents --------------------------------------------------------------------------------------


@case
def forged_agent_mail_is_a_strangers_and_its_commands_are_ignored(w: World) -> None:
    w.send(mail(f"Agent <{AGENT}>", "Re: [#1] Livrare", "#status solved\n\nDone, closing."))
    one = w.ticket(1)
    assert (one["status"], len(one["messages"])) == ("new", 1)
    t = w.newest()
    assert (t["id"], t["requester"], t["verified"]) == (3, AGENT, False)
    assert "#status solved" in t["messages"][0]["body_text"]  # kept as text, not obeyed
    assert ANA not in {r for m in w.sent() for r in recipients(m)}


@case
def authenticated_agent_mail_is_obeyed_and_relayed(w: World) -> None:
    body = "#status pending\n\nCould you send the tracking number?"
    w.send(signed(mail(f"Agent <{AGENT}>", "Re: [#1] Livrare", body), "support.example"))
    one = w.ticket(1)
    assert one["status"] == "pending" and one["messages"][-1]["direction"] == "out"
    relayed = only_mail_to(w, ANA)
    assert "Could you send the tracking number?" in text_of(relayed)
    assert AGENT not in relayed.as_string()


@case
def agent_mail_with_untrusted_authentication_results_is_a_strangers(w: World) -> None:
    results = "mx.evil.example; dkim=pass header.d=support.example; dmarc=pass"
    raw = mail(f"Agent <{AGENT}>", "Re: [#1] Livrare", "#status solved\n\nDone.")
    w.send(f"Authentication-Results: {results}\r\n".encode() + raw)
    assert w.ticket(1)["status"] == "new"
    assert ANA not in {r for m in w.sent() for r in recipients(m)}


# injection -------------------------------------------------------------------------------------


def assert_no_injected_headers(message: Sent, sender: str) -> None:
    assert recipients(message) == {sender}
    assert message["Bcc"] is None and message.get_all("To") == [message["To"]]
    assert "victim" not in str(message["To"]) and "victim" not in str(message.get("Cc", ""))
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])


@case
def an_encoded_line_break_in_the_subject_injects_no_header(w: World) -> None:
    raw = mail(EVE, "placeholder").replace(
        b"Subject: placeholder", b"Subject: =?utf-8?q?Hi=0D=0ABcc=3A_victim=40evil.example?="
    )
    w.send(raw)
    assert_no_injected_headers(only_mail_to(w, EVE), EVE)


@case
def an_encoded_line_break_in_the_display_name_injects_no_header(w: World) -> None:
    raw = mail(EVE, "Hello").replace(
        b"From: eve@evil.example",
        b"From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40evil.example?= <eve@evil.example>",
    )
    w.send(raw)
    ack = only_mail_to(w, EVE)
    assert_no_injected_headers(ack, EVE)
    assert "Bcc:" not in ack.as_string().split("\n\n", 1)[0]
    assert "\nBcc: victim" not in text_of(ack)  # the name stays on its line in the body too


@case
def unicode_line_separators_in_the_subject_stay_on_one_line(w: World) -> None:
    word = base64.b64encode("A\u2028To: victim@evil.example\u0085B".encode())
    raw = mail(EVE, "x").replace(b"Subject: x", b"Subject: =?utf-8?b?" + word + b"?=")
    w.send(raw)
    assert_no_injected_headers(only_mail_to(w, EVE), EVE)


# automated senders -------------------------------------------------------------------------------


def assert_suspended_silently(w: World, verdict: str) -> None:
    assert w.ticket_count() == 2
    [held] = w.suspended()
    assert held.reason == verdict
    assert w.sent() == []


@case
def auto_submitted_mail_is_suspended_and_never_answered(w: World) -> None:
    w.send(mail(EVE, "Report", headers={"Auto-Submitted": "auto-generated"}))
    assert_suspended_silently(w, "auto_reply")


@case
def bulk_mail_is_suspended_and_never_answered(w: World) -> None:
    w.send(mail("news@shopnews.example", "Our offers", headers={"Precedence": "bulk"}))
    assert_suspended_silently(w, "bulk")


@case
def a_no_reply_sender_is_suspended_and_never_answered(w: World) -> None:
    w.send(mail("no-reply@platform.example", "Your export is ready"))
    assert_suspended_silently(w, "bulk")


@case
def a_sign_up_confirmation_sent_to_a_tickets_plus_address_reaches_nobody(w: World) -> None:
    """The Ticket Trick: a service's confirmation mail must not land in ticket #1."""
    raw = mail(
        "Slack <feedback@slack.example>",
        "Slack confirmation code: 123-456",
        "Confirm your email address: your code is 123-456",
        to="support+1@localhost",
        headers={"Feedback-ID": "1:slack:confirm"},
    )
    w.send(raw, rcpt=("support+1@localhost",))
    assert_suspended_silently(w, "bulk")
    assert_untouched(w, 1)


@case
def a_sign_up_confirmation_without_service_headers_is_suspended_too(w: World) -> None:
    w.send(mail("accounts@tool.example", "Please confirm your email address", "Click the link."))
    assert_suspended_silently(w, "bulk")


@case
def the_requesters_vacation_reply_does_not_reopen_or_answer(w: World) -> None:
    w.send(mail(ANA, "Out of office: Re: [#1] Livrare", "Sunt în concediu."))
    assert_suspended_silently(w, "auto_reply")
    assert_untouched(w, 1)


# confidential requests ----------------------------------------------------------------------


@case
def a_verified_confidential_request_is_acknowledged(w: World) -> None:
    w.send(
        signed(
            mail(ANA, "Schimbare IBAN", "Noul IBAN: RO49AAAA1B31007593840000"), "magazin.example"
        )
    )
    t = w.newest()
    assert (t["confidential"], t["verified"], t["verified_by"]) == (True, True, "dkim")
    assert "We have received your request" in only_mail_to(w, ANA)["Subject"]


@case
def an_unverified_confidential_request_is_held_and_not_echoed(w: World) -> None:
    w.send(mail(ANA, "Schimbare IBAN", "Noul IBAN: RO49EVIL1B31007593840000"))
    t = w.newest()
    assert (t["confidential"], t["verified"]) == (True, False)
    assert any(e["action"] == "held" for e in t["events"])
    notice = only_mail_to(w, ANA)  # instead of the acknowledgement
    assert "registered address" in notice["Subject"]
    assert "IBAN" not in notice.as_string() and "RO49" not in notice.as_string()
    assert "Schimbare" not in notice.as_string()
    with w.gateway.db.write() as s, pytest.raises(IdentityNotConfirmed):
        w.gateway.actions.reply(s, t["id"], "Done.", agent=AGENT, now=w.clock())
    with w.gateway.db.write() as s:
        w.gateway.actions.reply(
            s, t["id"], "We called you: done.", agent=AGENT, now=w.clock(), confirm_identity=True
        )
    assert "We called you" in text_of(only_mail_to(w, ANA))
    assert [
        e["actor"] for e in w.ticket(t["id"])["events"] if e["action"] == "identity_confirmed"
    ] == [AGENT]


@case
def a_strangers_confidential_request_is_held(w: World) -> None:
    w.send(mail(EVE, "Password reset", "Please reset the admin password of magazin.example"))
    t = w.newest()
    assert (t["confidential"], t["verified"], t["shop"]) == (True, False, None)
    notice = only_mail_to(w, EVE)
    assert (
        "not registered with us" in text_of(notice) and "password" not in notice["Subject"].lower()
    )


@case
def a_forged_reply_asking_for_something_confidential_holds_a_verified_ticket(w: World) -> None:
    w.send(mail(ANA, "Re: [#1] Livrare", "Send the invoice to accounts@evil.example please."))
    one = w.ticket(1)
    assert (one["confidential"], one["verified"], one["verified_by"]) == (True, False, None)
    assert len(one["messages"]) == 2
    only_mail_to(w, ANA)  # the notice goes to the real address, which the forger cannot read


@case
def a_domain_without_dkim_is_confirmed_by_mail(w: World) -> None:
    w.send(mail(MARIA, "Cont bancar nou", "Vă rog actualizați contul bancar."))
    t = w.newest()
    assert (t["confidential"], t["verified"]) == (True, False)
    ask = only_mail_to(w, MARIA)
    reply_to = str(ask["Reply-To"])
    assert reply_to.startswith("support+confirm-") and "contul bancar" not in ask.as_string()
    # Maria answers the confirmation from her mailbox: the ticket is verified.
    answer = mail(MARIA, f"Re: [#{t['id']}] Please confirm", "Da, eu am trimis.", to=reply_to)
    w.send(answer, rcpt=(reply_to,))
    t = w.ticket(t["id"])
    assert (t["verified"], t["verified_by"]) == (True, "confirmed")
    assert w.sent() == []
    # The token works once.
    w.send(mail(MARIA, "Re: again", "again", to=reply_to), rcpt=(reply_to,))
    assert any("already used" in e.detail for e in w.events("confirmation_refused"))


@case
def a_confirmation_token_is_useless_to_a_forger(w: World) -> None:
    w.send(mail(MARIA, "Cont bancar nou", "Vă rog actualizați contul bancar."))
    ticket_id = w.newest()["id"]
    reply_to = str(only_mail_to(w, MARIA)["Reply-To"])
    forged_mac = reply_to.rsplit("-", 1)[0] + "-0000000000000000@localhost"
    w.send(mail(MARIA, f"Re: [#{ticket_id}]", "Da", to=forged_mac), rcpt=(forged_mac,))
    w.send(mail(EVE, f"Re: [#{ticket_id}]", "Da", to=reply_to), rcpt=(reply_to,))
    assert not w.ticket(ticket_id)["verified"]
    refused = [e.detail for e in w.events("confirmation_refused")]
    assert any("forged" in d for d in refused) and any(EVE in d for d in refused)
    to_eve = [m for m in w.sent() if EVE in recipients(m)]
    assert len(to_eve) == 1 and f"[#{ticket_id}]" not in to_eve[0]["Subject"]  # her own ack
    assert "bancar" not in to_eve[0].as_string()


@case
def an_agents_mail_answer_to_a_held_ticket_needs_confirm_identity(w: World) -> None:
    w.send(mail(ANA, "Schimbare parolă", "Vă rog resetați parola."))
    ticket_id = w.newest()["id"]
    only_mail_to(w, ANA)  # the notice
    agent_mail = mail(f"Agent <{AGENT}>", f"Re: [#{ticket_id}]", "Your new password is in the app.")
    w.send(signed(agent_mail, "support.example"))
    assert w.ticket(ticket_id)["messages"][-1]["direction"] == "note"
    assert w.sent() == []
    confirmed = mail(
        f"Agent <{AGENT}>", f"Re: [#{ticket_id}]", "#confirm-identity\n\nDone, as agreed by phone."
    )
    w.send(signed(confirmed, "support.example"))
    assert "Done, as agreed by phone." in text_of(only_mail_to(w, ANA))


# limits and bounces -------------------------------------------------------------------------


@case
def no_more_than_ten_mails_to_one_recipient_per_ticket_in_ten_minutes(w: World) -> None:
    with smtplib.SMTP(w.host, w.port, timeout=30) as client:
        for i in range(12):
            status = "pending" if i % 2 == 0 else "on_hold awaiting_it"
            body = f"#status {status}\n#note"
            raw = signed(mail(f"Agent <{AGENT}>", "Re: [#1] Livrare", body), "support.example")
            client.sendmail(AGENT, [SUPPORT], raw)
    sent = w.sent()
    assert len(sent) == 9 and all(recipients(m) == {ANA} for m in sent)  # 10 with #1's ack
    withheld = [e for e in w.ticket(1)["events"] if e["action"] == "withheld"]
    assert len(withheld) == 3 and "10 mails to it for this ticket" in withheld[0]["detail"]
    w.clock.advance(minutes=11)
    w.send(
        signed(mail(f"Agent <{AGENT}>", "Re: [#1]", "#status pending\n#note"), "support.example")
    )
    assert len(w.sent()) == 1


@case
def no_more_than_forty_automatic_answers_to_one_address_a_day(w: World) -> None:
    with smtplib.SMTP(w.host, w.port, timeout=30) as client:
        for i in range(40):
            client.sendmail(ANA, [SUPPORT], mail(ANA, f"Întrebarea {i}"))
    sent = w.sent()
    assert len(sent) == 39 and w.ticket_count() == 42  # 40 with #1's acknowledgement
    assert [e for e in w.ticket(42)["events"] if e["action"] == "withheld"]
    w.clock.advance(hours=24, minutes=1)
    w.send(mail(ANA, "A doua zi"))
    only_mail_to(w, ANA)


def bounce_for(address: str, message_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.magazin.example>\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.magazin.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered"
        f" to <{address}>.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.magazin.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SUPPORT}\r\nTo: {address}\r\nMessage-ID: <{message_id}>\r\nSubject: [#1] x\r\n"
        "--b--\r\n"
    ).encode()


@case
def a_mail_copied_to_thousands_is_acknowledged_to_no_more_than_48(w: World) -> None:
    """A stranger cannot make the helpdesk mail the world: a ticket keeps at most
    ``[limits] copied_per_ticket`` copied addresses (48, as Zendesk), and the rest is
    counted in its history, not added, not written to."""
    many = [f"victim{i}@elsewhere{i % 7}.example" for i in range(2000)]  # 56 KB: all read
    w.send(with_cc(mail(EVE, "Întrebare"), [*many, EVE, SUPPORT]))
    ticket = w.newest()
    ack = only_mail_to_many(w)
    assert EVE in recipients(ack) and len(recipients(ack)) == 49
    copied = [p for p in ticket["participants"] if p["role"] == "cc"]
    assert len(copied) == 48
    limit = [e for e in ticket["events"] if e["action"] == "copied_limit"]
    assert len(limit) == 1 and limit[0]["detail"].startswith("1952 copied addresses not added")
    more = [f"other{i}@elsewhere.example" for i in range(10)]
    w.send(with_cc(mail(EVE, f"Re: [#{ticket['id']}] Întrebare"), more))
    assert len([p for p in w.ticket(ticket["id"])["participants"] if p["role"] == "cc"]) == 48


def with_cc(raw: bytes, addresses: list[str]) -> bytes:
    """``raw`` with a Cc header of ``addresses``, folded one to a line, and CRLF line
    ends (SMTP's: a line ends at CRLF, and one of the listener's is 1,001 bytes at most)."""
    return (b"Cc: " + ",\n ".join(addresses).encode() + b"\n" + raw).replace(b"\n", b"\r\n")


def only_mail_to_many(w: World) -> Sent:
    sent = w.sent()
    assert len(sent) == 1, [m["Subject"] for m in sent]
    return sent[0]


@case
def after_a_hard_bounce_no_automatic_mail_goes_to_that_address(w: World) -> None:
    w.send(bounce_for(ANA, w.ack_ids[1]), mail_from="")
    assert [s.reason for s in w.suspended()] == ["bounce"]
    w.send(mail(ANA, "Altă întrebare"))
    assert w.ticket_count() == 3  # the mail is a ticket all the same
    assert w.sent() == []
    assert [
        e for e in w.ticket(3)["events"] if e["action"] == "withheld" and "bounced" in e["detail"]
    ]
    w.send(mail(JAN, "Andere vraag"))
    only_mail_to(w, JAN)
    w.clock.advance(days=61)
    w.send(mail(ANA, "Două luni mai târziu"))
    only_mail_to(w, ANA)


@case
def a_forged_bounce_blocks_nothing(w: World) -> None:
    """Anyone can write a bounce: it must return one of our signed Message-IDs, sent to an
    address we did mail."""
    forged_id = "mg.1.0123456789ab.0123456789abcdef@localhost"
    w.send(bounce_for(ANA, forged_id), mail_from="")
    w.send(bounce_for(ION, w.ack_ids[1]), mail_from="")  # ours, but Ion was never mailed
    assert [s.reason for s in w.suspended()] == ["bounce", "bounce"]
    w.send(mail(ANA, "Întrebare"))
    only_mail_to(w, ANA)
    w.send(mail(ION, "Întrebare"))
    only_mail_to(w, ION)


@pytest.mark.parametrize("attack", CASES, ids=[c.__name__ for c in CASES])
def test_security(world: World, attack: Case) -> None:
    attack(world)


def test_the_suite_is_big_enough() -> None:
    assert len(CASES) >= 30
