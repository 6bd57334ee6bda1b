"""Bounces of our own notifications, whichever way they come in (pipe, SMTP listener,
IMAP), are matched to their ticket: a ``delivery_failed`` event in ``tickets show``,
and the suspended bounce points at the ticket."""

from __future__ import annotations

from email.utils import make_msgid
from pathlib import Path
from typing import Any

from dovecot import ImapAccount
from mailgate_testing import raw_mail, write_config
from typer.testing import CliRunner

from cli.main import app
from mailgate.app import Gateway
from mailgate.outbound.transports import RecordingTransport
from mailgate.sources.imap import ImapPoller
from mailgate.values import Arrival, Envelope, Source
from store import suspended as suspended_store
from store.views import ticket_detail


def bounce_of(returned: bytes, recipient: str, *, delayed: bool = False) -> bytes:
    """A Postfix-style delivery status notification (RFC 3464) returning the headers of
    ``returned`` (as ``text/rfc822-headers``)."""
    action, status = ("delayed", "4.4.1") if delayed else ("failed", "5.1.1")
    subject = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    notice = (
        "Your message could not be delivered for 4 hours. It will be retried."
        if delayed
        else f"Your message could not be delivered to one or more recipients.\n\n"
        f"<{recipient}>: host mx.magazin.ro said: 550 5.1.1 User unknown"
    )
    headers = returned.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("ascii", "replace")
    return (
        "From: MAILER-DAEMON@mx.magazin.ro (Mail Delivery System)\n"
        "To: support@localhost\n"
        f"Subject: {subject}\n"
        f"Message-ID: {make_msgid(domain='mx.magazin.ro')}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"This is the mail system at host mx.magazin.ro.\n\n{notice}\n\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.magazin.ro\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n\n"
        f"--B\nContent-Type: text/rfc822-headers\n\n{headers}\n\n--B--\n"
    ).encode()


def first_ticket_and_its_ack(
    gateway: Gateway, sent: RecordingTransport, deliver: Any = None
) -> tuple[int, bytes]:
    """Ticket 1 from Ana, and the acknowledgement Mailgate sent her."""
    first = raw_mail(sender="Ana Pop <ana@magazin.ro>", message_id="<first@magazin.ro>")
    if deliver is None:
        gateway.pipeline.process(Arrival(first, Envelope(), Source("pipe"), gateway.clock()))
    else:
        deliver(first)
    gateway.dispatcher.run_once()
    [ack] = sent.sent
    return 1, ack.raw


def events_of(gateway: Gateway, ticket_id: int) -> list[tuple[str, str]]:
    with gateway.db.read() as session:
        return [(e.action, e.detail) for e in ticket_detail(session, ticket_id).events]


def test_a_bounce_of_our_acknowledgement_lands_on_its_ticket(
    gateway: Gateway, sent: RecordingTransport, deliver: Any
) -> None:
    ticket_id, ack = first_ticket_and_its_ack(gateway, sent, deliver)
    deliver(bounce_of(ack, "ana@magazin.ro"), mail_from="")

    failures = [d for a, d in events_of(gateway, ticket_id) if a == "delivery_failed"]
    assert len(failures) == 1
    assert "ack mail <mg.1." in failures[0] and "did not reach ana@magazin.ro" in failures[0]
    with gateway.db.read() as session:
        [held] = suspended_store.list_suspended(session)
    assert (held.reason, held.ticket_id) == ("bounce", ticket_id)
    assert f"suspended mail {held.id}" in failures[0]


def test_a_delay_report_is_noted_as_a_delay_not_a_failure(
    gateway: Gateway, sent: RecordingTransport, deliver: Any
) -> None:
    ticket_id, ack = first_ticket_and_its_ack(gateway, sent, deliver)
    deliver(bounce_of(ack, "ana@magazin.ro", delayed=True), mail_from="")
    actions = [a for a, _ in events_of(gateway, ticket_id)]
    assert "delivery_delayed" in actions and "delivery_failed" not in actions


def test_a_bounce_of_a_mail_that_is_not_ours_stays_unattached(
    gateway: Gateway, sent: RecordingTransport, deliver: Any
) -> None:
    ticket_id, _ = first_ticket_and_its_ack(gateway, sent, deliver)
    someone_elses = raw_mail(sender="shop@magazin.ro", message_id="<not-ours@magazin.ro>")
    deliver(bounce_of(someone_elses, "x@magazin.ro"), mail_from="")
    # A forged signature in our own format does not fool the matcher either.
    forged = raw_mail(
        sender="x@magazin.ro", message_id="<mg.1.abcdef012345.0123456789abcdef@localhost>"
    )
    deliver(bounce_of(forged, "y@magazin.ro"), mail_from="")

    assert not [a for a, _ in events_of(gateway, ticket_id) if a.startswith("delivery")]
    with gateway.db.read() as session:
        held = suspended_store.list_suspended(session)
    assert [(h.reason, h.ticket_id) for h in held] == [("bounce", None), ("bounce", None)]


def test_a_bounce_read_from_imap_shows_in_tickets_show(
    gateway: Gateway,
    sent: RecordingTransport,
    imap_account: ImapAccount,
    tmp_path: Path,
    store_url: str,
) -> None:
    ticket_id, ack = first_ticket_and_its_ack(gateway, sent)
    imap_account.append(bounce_of(ack, "ana@magazin.ro"))
    poller = ImapPoller(imap_account.settings(), gateway.pipeline, gateway.db, gateway.clock)
    [outcome] = poller.poll_once().outcomes
    poller.disconnect()
    assert (outcome.kind, outcome.ticket_id) == ("suspended", ticket_id)

    config = write_config(tmp_path, store_url)  # the same store and folders as ``gateway``
    shown = CliRunner().invoke(app, ["--config", str(config), "tickets", "show", str(ticket_id)])
    assert shown.exit_code == 0, shown.stderr
    assert "delivery_failed" in shown.stdout and "did not reach ana@magazin.ro" in shown.stdout
